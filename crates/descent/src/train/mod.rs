//! The training engine: one loop for every model.

pub mod checkpoint;
mod distributed;
mod engine;
mod head;
mod interrupter;
mod lr_find;
mod objective;
mod parallel;
#[cfg(test)]
mod tests;

pub use checkpoint::{CHECKPOINT_FILE, Checkpoint, CheckpointError, CheckpointState, EarlyStopState};
pub use distributed::{gradient_values, parameter_checksum};
pub use engine::{
    BatchEnd, BatchError, BatchHook, BatchRows, BatchSource, Batches, EpochEnd, Events, Hooks, Length,
    LossRecord, MetricsRow, Plan, Position, Report, Trained, Update, step_seed, train, train_observed,
};
pub use head::HeadTraining;
pub use interrupter::Interrupter;
pub use lr_find::{LrFindSettings, LrFinding, LrPoint, lr_find};
pub use objective::{Objective, TrainError, classification_loss, cross_entropy};
