//! The training engine: one loop for every model.

mod engine;
mod lr_find;

pub use engine::{
    BatchRows, BatchSource, Batches, EpochEnd, Length, LossRecord, Objective, Plan, Report, TrainError,
    Trained, train, train_with_epochs,
};
pub use lr_find::{LrFindSettings, LrFinding, LrPoint, lr_find};
