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
use serde_json::{Value, json};

use crate::config::RunConfig;
use crate::experiment::EarlyStopped;
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

/// Early stopping in a summary: what it watched, its patience, the best epoch and its value, and
/// whether it stopped the run.
pub fn early_stop_json(stop: &EarlyStopped, config: &RunConfig) -> Value {
    json!({
        "monitor": stop.monitor.name(),
        "patience": config.training.early_stop,
        "best_epoch": stop.state.best_epoch,
        "best": stop.state.best,
        "stopped_early": stop.stopped,
    })
}
