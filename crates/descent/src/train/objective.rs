//! What the engine and its data-parallel steps share: the model's side of a step, and why
//! training stops early. Both `engine` and `parallel` use them; neither imports the other for
//! them.

use burn::module::Module;
use burn::prelude::*;

/// A model the engine can train on batches of type `B`: a Burn module with a scalar loss.
pub trait Objective<B>: Module + Sized {
    /// The loss to minimise on one batch, a tensor of one element on the model's device: the
    /// mean over the batch's examples (as MSE and cross-entropy are), which is what data-parallel
    /// training ([`Plan::replicas`]) relies on when it weights each device's share by its rows.
    fn loss(&self, batch: B) -> Tensor<1>;
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A batch could not be produced.
    #[error("could not load batch {batch} of epoch {epoch}: {message}")]
    Batch {
        /// Epoch, 1-based.
        epoch: usize,
        /// Batch within the epoch, 1-based.
        batch: usize,
        /// What went wrong.
        message: String,
    },
    /// The device failed to return a value or to finish its work.
    #[error("the device failed: {0}")]
    Device(String),
    /// The loss became NaN or infinite: training stopped before that step's update.
    #[error("{}", diverged(*step, *lr, *loss))]
    Diverged {
        /// Updates made before the loss was computed.
        step: usize,
        /// The epoch (1-based).
        epoch: usize,
        /// The step's learning rate.
        lr: f64,
        /// The loss: NaN or infinite.
        loss: f64,
    },
    /// The processes of a job no longer hold the same parameters.
    #[error("the processes of this MPI job disagree: {0}")]
    Replicas(String),
    /// The data produced no batch at all.
    #[error("the data produced no batches: there is nothing to train on")]
    NoBatches,
}

/// The sentence of [`TrainError::Diverged`]. Before the first update the learning rate has not
/// acted yet, so the overflow is in the data (or the starting parameters), and a smaller rate
/// would not help.
fn diverged(step: usize, lr: f64, loss: f64) -> String {
    if step == 0 {
        format!(
            "loss became {loss} on the first batch, before any update, so the learning rate is not the cause: \
             the data's values (or the starting parameters) are too large for f32 arithmetic, whose largest \
             value is about 3.4e38; scale the data down"
        )
    } else {
        format!("loss became {loss} at step {step} (lr {lr}): try a smaller --lr, or `descent lr-find`")
    }
}
