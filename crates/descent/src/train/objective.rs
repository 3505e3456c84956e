//! What the engine and its data-parallel steps share: the model's side of a step, and why
//! training stops early. Both `engine` and `parallel` use them; neither imports the other for
//! them.

use burn::module::Module;
use burn::prelude::*;

use crate::data::ImageBatch;

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

/// The cross-entropy of `logits [batch, K]` against the class `labels`, averaged over the batch,
/// with label smoothing `epsilon`: against `(1 − ε)·one-hot + ε/K` (PyTorch's
/// `cross_entropy(..., label_smoothing=ε)`, fastai's `LabelSmoothingCrossEntropy`). The loss of
/// descent's classifiers, and the one to use in your own (`ImageBatch::label_smoothing` carries
/// the run's ε).
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>, epsilon: f32) -> Tensor<1> {
    let smoothing = (epsilon > 0.0).then_some(epsilon);
    burn::nn::loss::CrossEntropyLossConfig::new()
        .with_smoothing(smoothing)
        .init(&logits.device())
        .forward(logits, labels)
}

/// A classifier's training loss on `batch` for its `logits`: [`cross_entropy`] with the batch's
/// label smoothing, and with MixUp (`batch.mix`) the blend `λ·CE(y) + (1 − λ)·CE(y[π])` of the
/// losses against each image's own label and its partner's, as fastai's `MixUp` blends them.
/// The loss of descent's classifiers, and the one to use in your own.
pub fn classification_loss(logits: Tensor<2>, batch: &ImageBatch) -> Tensor<1> {
    let epsilon = batch.label_smoothing;
    match &batch.mix {
        None => cross_entropy(logits, batch.labels.clone(), epsilon),
        Some(mix) => {
            let own = cross_entropy(logits.clone(), batch.labels.clone(), epsilon);
            let partners = cross_entropy(logits, mix.labels.clone(), epsilon);
            own * f64::from(mix.weight) + partners * f64::from(1.0 - mix.weight)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four rows of three classes: their mean cross-entropy with label smoothing ε, by the
    /// formula in f64, and as PyTorch 2.15 gives it (`F.cross_entropy(logits, labels,
    /// label_smoothing=ε)` in float64, printed with `repr`).
    #[test]
    fn cross_entropy_smooths_labels_as_the_formula_and_pytorch_do() {
        let logits = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-3.0, 4.0, 1.0], [1.5, 1.5, -2.0f64]];
        let labels = [0usize, 2, 1, 1];
        let formula = |epsilon: f64| -> f64 {
            let k = 3.0;
            let total: f64 = logits
                .iter()
                .zip(labels)
                .map(|(row, label)| {
                    let log_sum = row.iter().map(|z| z.exp()).sum::<f64>().ln();
                    (0..3)
                        .map(|c| {
                            let target = if c == label { 1.0 - epsilon + epsilon / k } else { epsilon / k };
                            -target * (row[c] - log_sum)
                        })
                        .sum::<f64>()
                })
                .sum();
            total / 4.0
        };
        let device = Device::flex();
        let flat: Vec<f32> = logits.iter().flatten().map(|&v| v as f32).collect();
        let labels_i64: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
        for (epsilon, pytorch) in
            [(0.0, 0.5002106940304664), (0.1, 0.6527106940304663), (0.25, 0.8814606940304663)]
        {
            let loss = cross_entropy(
                Tensor::from_data(TensorData::new(flat.clone(), [4, 3]), &device),
                Tensor::from_data(TensorData::new(labels_i64.clone(), [4]), &device),
                epsilon as f32,
            );
            let got = f64::from(loss.into_scalar::<f32>());
            assert!((formula(epsilon) - pytorch).abs() < 1e-12, "the formula is PyTorch's at ε = {epsilon}");
            assert!((got - pytorch).abs() < 1e-6, "ε = {epsilon}: {got} vs PyTorch {pytorch}");
        }
    }

    /// MixUp's loss is the cross-entropy against the blended targets
    /// `λ·smooth(one-hot(y)) + (1 − λ)·smooth(one-hot(y[π]))`, summed in f64 here.
    #[test]
    fn a_mixed_batchs_loss_is_the_cross_entropy_against_the_blended_targets() {
        let logits = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-3.0, 4.0, 1.0], [1.5, 1.5, -2.0f64]];
        let (labels, partners) = ([0usize, 2, 1, 1], [2usize, 0, 1, 1]);
        let device = Device::flex();
        let flat: Vec<f32> = logits.iter().flatten().map(|&v| v as f32).collect();
        let tensor = |l: &[usize]| {
            Tensor::<1, Int>::from_data(
                TensorData::new(l.iter().map(|&v| v as i64).collect::<Vec<_>>(), [4]),
                &device,
            )
        };
        for (weight, epsilon) in [(0.3f32, 0.0f32), (0.8, 0.1), (1.0, 0.0)] {
            let (w, e, k) = (f64::from(weight), f64::from(epsilon), 3.0);
            let target = |c: usize, label: usize| if c == label { 1.0 - e + e / k } else { e / k };
            let expected: f64 = logits
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    let log_sum = row.iter().map(|z| z.exp()).sum::<f64>().ln();
                    (0..3)
                        .map(|c| {
                            -(w * target(c, labels[i]) + (1.0 - w) * target(c, partners[i]))
                                * (row[c] - log_sum)
                        })
                        .sum::<f64>()
                })
                .sum::<f64>()
                / 4.0;
            let batch = ImageBatch {
                images: Tensor::zeros([4, 1, 1, 1], &device),
                labels: tensor(&labels),
                seed: 0,
                label_smoothing: epsilon,
                mix: Some(crate::data::batches::Mix { labels: tensor(&partners), weight }),
            };
            let logits = Tensor::from_data(TensorData::new(flat.clone(), [4, 3]), &device);
            let got = f64::from(classification_loss(logits, &batch).into_scalar::<f32>());
            assert!((got - expected).abs() < 1e-6, "λ {weight}, ε {epsilon}: {got} vs {expected}");
        }
    }
}
