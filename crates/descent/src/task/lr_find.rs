//! fastai's learning-rate finder as a task: the sweep of any model the trainer supports, its
//! curve (`lr_find.png`, TensorBoard's `lr_find/*` tags) and its typed summary.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::experiment::{Experiment, Prepared, RunError, TrainOptions};
use crate::report::figures::Figures;
use crate::report::plots::{LineChart, Series};
use crate::report::{MetricsRow, RunFolder, RunFolderError, RunPlace};
use crate::run::{OutputError, Task};
use crate::train::{LrFindSettings, LrFinding, LrPoint, lr_find};

use super::classify::ImageClassification;

/// The sweep of a prepared run's model: the linear model's, or the configured image model's.
pub struct LrFind<'a> {
    /// The sweep's rates and length.
    pub settings: LrFindSettings,
    model: Swept<'a>,
}

enum Swept<'a> {
    Linear(&'a Experiment),
    Image(ImageClassification<'a>),
}

impl<'a> LrFind<'a> {
    /// The sweep of the linear model of `experiment`.
    pub fn linear(experiment: &'a Experiment, settings: LrFindSettings) -> Self {
        Self { settings, model: Swept::Linear(experiment) }
    }

    /// The sweep of the image model `classification` trains.
    pub fn image(classification: ImageClassification<'a>, settings: LrFindSettings) -> Self {
        Self { settings, model: Swept::Image(classification) }
    }
}

/// `lr-find`'s summary (`summary.json`, `--json`).
#[derive(Serialize)]
struct LrFindSummary<'a> {
    command: &'a str,
    points: &'a [LrPoint],
    suggestion: Option<f64>,
    steepest: Option<f64>,
    minimum_lr: Option<f64>,
    stopped_early: bool,
    optimizer: &'static str,
    device: String,
    devices: Vec<String>,
    run_folder: PathBuf,
}

impl Task for LrFind<'_> {
    type Outcome = LrFinding;

    fn prepared(&self) -> &Prepared {
        match &self.model {
            Swept::Linear(experiment) => experiment,
            Swept::Image(classification) => classification.experiment,
        }
    }

    /// The sweep from the initial weights; each step's rate and losses go to the observers as
    /// scalars (`lr_find/lr`, `lr_find/loss`, `lr_find/smoothed`). The swept model is discarded.
    fn train(&mut self, options: TrainOptions<'_>) -> Result<LrFinding, RunError> {
        let finding = match &mut self.model {
            Swept::Image(classification) => classification.lr_find(&self.settings)?,
            Swept::Linear(experiment) => {
                let mut optimizer = experiment.config.optimizer.build();
                let source = experiment.batches();
                let replicas = experiment.plan().replicas;
                lr_find(experiment.model(), &mut optimizer, source.as_ref(), &self.settings, &replicas)?
            }
        };
        for observer in options.observers {
            for point in &finding.points {
                observer.scalar("lr_find/lr", point.step, point.lr);
                observer.scalar("lr_find/loss", point.step, point.loss);
                observer.scalar("lr_find/smoothed", point.step, point.smoothed);
            }
        }
        Ok(finding)
    }

    /// No model: the sweep's is discarded.
    fn save_model(&self, _: &LrFinding, _: &RunFolder) -> Result<(), RunFolderError> {
        Ok(())
    }

    /// `lr_find`: the smoothed loss against the rate, log scale, with the suggestion marked.
    fn figures(&self, finding: &LrFinding, figures: &Figures) -> Result<(), OutputError> {
        let optimizer = self.prepared().config.optimizer.name();
        let chart = LineChart {
            title: format!("Learning-rate finder: {optimizer}"),
            x_label: "learning rate (log scale)".into(),
            y_label: "loss".into(),
            // The smoothed loss only, as fastai plots it: the raw loss of the last steps, where
            // the sweep diverges, would squash the curve that matters.
            series: vec![Series {
                name: "smoothed loss".into(),
                points: finding.points.iter().map(|p| (p.lr, p.smoothed)).collect(),
            }],
            log_x: true,
            log_y: false,
            marker: finding.suggestion.map(|lr| (format!("suggested {lr:.2e}"), lr)),
        };
        Ok(figures.chart("lr_find", &chart)?)
    }

    /// No `metrics.csv`: the summary holds every step.
    fn metrics(&self, _: &LrFinding) -> Option<Vec<MetricsRow>> {
        None
    }

    fn summary(&self, finding: &LrFinding, place: RunPlace<'_>) -> Value {
        let summary = LrFindSummary {
            command: place.command,
            points: &finding.points,
            suggestion: finding.suggestion,
            steepest: finding.steepest,
            minimum_lr: finding.minimum.map(|m| m.lr),
            stopped_early: finding.stopped_early,
            optimizer: place.config.optimizer.name(),
            device: place.device.describe(),
            devices: place.devices,
            run_folder: place.folder,
        };
        serde_json::to_value(summary).unwrap_or(Value::Null)
    }
}
