//! Models the trainer fits. Each implements [`crate::train::Objective`] for its batches.

pub mod cnn;
pub mod linear;

pub use cnn::{Cnn, CnnConfig};
pub use linear::{LinearModel, mse};
