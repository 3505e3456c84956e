//! The tasks a run trains, each behind [`crate::run::Task`]: what it leaves behind once it has
//! trained (its model, figures, metrics rows and summary fields).
//!
//! - [`lesson`]: the lesson's linear model on points, beside the closed form;
//! - [`table`]: linear regression on a CSV table of your own (`descent fit`);
//! - [`classify`]: an image classifier of any registered model (the CNN, the MLP, yours);
//! - [`lr_find`]: fastai's learning-rate finder on any of them;
//! - [`text`]: what the results say, as lines the command line (or a notebook) prints.
//!
//! The command line prints what a task's outcome says; the run writes what the task gives it
//! ([`crate::run::Run::complete`]).

pub mod classify;
pub mod lesson;
pub mod lr_find;
pub mod table;
pub mod text;

use serde::Serialize;

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
#[derive(Clone, Debug, Serialize)]
pub struct EarlyStopSummary {
    /// The metric watched.
    pub monitor: &'static str,
    /// Epochs without improvement that stop the run.
    pub patience: Option<usize>,
    /// The best epoch.
    pub best_epoch: usize,
    /// Its value of the metric.
    pub best: f64,
    /// Whether the run stopped before its plan's end.
    pub stopped_early: bool,
}

impl EarlyStopSummary {
    /// How `stop` ended the run of `config`.
    pub fn of(stop: &EarlyStopped, config: &RunConfig) -> Self {
        Self {
            monitor: stop.monitor.name(),
            patience: config.training.early_stop,
            best_epoch: stop.state.best_epoch,
            best: stop.state.best,
            stopped_early: stop.stopped,
        }
    }
}
