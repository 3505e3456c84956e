//! The tasks a run trains, each behind [`crate::run::Task`]: what it leaves behind once it has
//! trained (its model, figures, metrics rows and summary fields).
//!
//! - [`lesson`]: the lesson's linear model on points, beside the closed form;
//! - [`table`]: linear regression on a CSV table of your own (`descent fit`);
//! - [`classify`]: an image classifier of any registered model (the CNN, the MLP, yours).
//!
//! The command line prints what a task's outcome says; the run writes what the task gives it
//! ([`crate::run::Run::complete`]).

pub mod classify;
pub mod lesson;
pub mod table;

use serde::Serialize;

use crate::train::LossRecord;

/// A reported loss as the summary lists it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LossEntry {
    /// Updates made.
    pub step: usize,
    /// The epoch (1-based).
    pub epoch: usize,
    /// The learning rate of the step.
    pub lr: f64,
    /// The loss.
    pub loss: f64,
}

/// The reported losses as the summary's `losses` list.
pub fn loss_entries(losses: &[LossRecord]) -> Vec<LossEntry> {
    losses.iter().map(|r| LossEntry { step: r.step, epoch: r.epoch, lr: r.lr, loss: r.loss }).collect()
}
