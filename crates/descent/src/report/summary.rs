//! The summary of a run: `summary.json` in its folder, and the last line of stdout with
//! `--json`. Every training run has the fields of [`RunSummary`]; its task adds its own.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::RunConfig;
use crate::device::SelectedDevice;

/// The fields every training run's summary has, and its task's own (`task`, flattened beside
/// them). Users' scripts read these keys: they never change.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary<T> {
    /// The command that ran (`lesson2`, `train`, `fit`, `cnn`).
    pub command: String,
    /// Updates made.
    pub steps: usize,
    /// The optimizer's name.
    pub optimizer: &'static str,
    /// The schedule's name.
    pub schedule: &'static str,
    /// Examples per batch.
    pub batch_size: usize,
    /// The run's seed.
    pub seed: u64,
    /// The main device, described.
    pub device: String,
    /// Every device trained on, described.
    pub devices: Vec<String>,
    /// The main device's backend.
    pub backend: &'static str,
    /// The processes that trained together (an MPI job started by `mpirun` or `srun`); 1 alone.
    pub processes: usize,
    /// Seconds this process spent in MPI's collective operations (summing gradients and
    /// losses, the checks), waiting for the others included; 0 alone.
    pub communication_seconds: f64,
    /// Wall time of the training loop; a resumed run's includes the time before its checkpoint.
    pub seconds: f64,
    /// The checkpoint's epoch when the run was resumed.
    pub resumed_from_epoch: Option<usize>,
    /// The run folder.
    pub run_folder: PathBuf,
    /// The task's own fields.
    #[serde(flatten)]
    pub task: T,
}

/// Where and how a run trained: the part of [`RunSummary`] that its configuration, its devices
/// and its folder decide.
#[derive(Clone, Debug)]
pub struct RunPlace<'a> {
    /// The command that ran.
    pub command: &'a str,
    /// The effective configuration.
    pub config: &'a RunConfig,
    /// The main device.
    pub device: &'a SelectedDevice,
    /// Every device trained on, described.
    pub devices: Vec<String>,
    /// The run folder.
    pub folder: PathBuf,
    /// The checkpoint's epoch when the run was resumed.
    pub resumed_from_epoch: Option<usize>,
}

impl<T: Serialize> RunSummary<T> {
    /// The summary of a run at `place` that made `steps` updates of `batch_size` examples in
    /// `seconds`, with its task's fields.
    pub fn new(place: RunPlace<'_>, steps: usize, batch_size: usize, seconds: f64, task: T) -> Self {
        Self {
            command: place.command.to_string(),
            steps,
            optimizer: place.config.optimizer.name(),
            schedule: place.config.schedule.name(),
            batch_size,
            seed: place.config.seed,
            device: place.device.describe(),
            devices: place.devices,
            backend: place.device.backend.name(),
            processes: crate::world::World::current().size(),
            communication_seconds: crate::world::traffic().seconds,
            seconds,
            resumed_from_epoch: place.resumed_from_epoch,
            run_folder: place.folder,
            task,
        }
    }

    /// As a JSON object, its keys in alphabetical order (as every summary has had them); numbers
    /// that are not finite become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|error| serde_json::json!({ "error": error.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Task {
        zeta: f64,
        alpha: Option<f64>,
    }

    #[test]
    fn keys_are_sorted_and_the_task_is_beside_the_common_fields() {
        let config = RunConfig::default();
        let device = crate::device::select("ndarray").unwrap();
        let place = RunPlace {
            command: "lesson2",
            config: &config,
            device: &device,
            devices: vec![device.describe()],
            folder: PathBuf::from("runs/x"),
            resumed_from_epoch: None,
        };
        let summary = RunSummary::new(place, 100, 100, 0.5, Task { zeta: f64::NAN, alpha: Some(1.0) });
        let json = summary.to_json();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(json["command"], "lesson2");
        assert_eq!(json["optimizer"], "sgd");
        assert_eq!(json["alpha"], 1.0);
        assert!(json["zeta"].is_null(), "NaN is null");
        assert!(json["resumed_from_epoch"].is_null());
        assert_eq!(json["run_folder"], "runs/x");
    }
}
