//! The training engine: one loop for every model.

mod engine;

pub use engine::{
    BatchRows, BatchSource, Batches, Length, LossRecord, Objective, Plan, Report, TrainError,
    Trained, train,
};
