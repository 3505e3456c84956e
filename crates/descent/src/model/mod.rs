//! Models the trainer fits. Each implements [`crate::train::Objective`] for its batches.

pub mod linear;

pub use linear::{LinearModel, mse};
