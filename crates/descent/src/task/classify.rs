//! Image classification with any registered image model: validated after every epoch, with the
//! confusion matrix, the worst predictions and fastai's `show_results` grid.

use std::marker::PhantomData;

use burn::module::Module;
use serde::Serialize;
use serde_json::{Value, json};

use crate::data::ImageBatch;
use crate::data::images::DIGIT_CLASS_NAMES;
use crate::experiment::{ImageExperiment, TrainedClassifier};
use crate::metrics::{Classifier, Prediction};
use crate::report::figures::Figures;
use crate::report::plots::{GridImage, LineChart, Series, image_grid};
use crate::report::{MetricsRow, RunFolder, RunFolderError, RunPlace, RunSummary};
use crate::run::{OutputError, Task};
use crate::train::Objective;

/// Validation images in `results.png` (fastai's `show_results`), and its columns.
const RESULTS_SHOWN: usize = 20;
const RESULTS_COLUMNS: usize = 5;
/// The worst predictions listed.
pub const WORST_SHOWN: usize = 8;

/// The classification of a prepared image experiment, with a network of `parameters`
/// parameters.
pub struct Classification<'a, M> {
    /// The experiment: the images, the optimizer, the devices.
    pub experiment: &'a ImageExperiment,
    /// The network's parameter count.
    pub parameters: usize,
    network: PhantomData<fn() -> M>,
}

/// What a classifier's training gave.
pub struct ClassifierOutcome<M> {
    /// The trained network, its last validation and every epoch's metrics.
    pub classifier: TrainedClassifier<M>,
    /// The validation images the network got most wrong, worst first.
    pub worst: Vec<Prediction>,
    /// Training images per second over every epoch of the run (resumed ones included).
    pub images_per_second: f64,
}

impl<'a, M: Module> Classification<'a, M> {
    /// The classification of `experiment` with `network` (its parameters are counted).
    pub fn new(experiment: &'a ImageExperiment, network: &M) -> Self {
        Self { experiment, parameters: network.num_params(), network: PhantomData }
    }

    /// The trained classifier with its worst predictions and speed.
    pub fn outcome(&self, classifier: TrainedClassifier<M>) -> ClassifierOutcome<M> {
        let trained = &classifier.trained;
        // Over every epoch of the run, resumed or not: `trained.seconds` includes the checkpoint's.
        let images = self.experiment.train.len() as f64 * trained.epochs as f64;
        let images_per_second = if trained.seconds > 0.0 { images / trained.seconds } else { 0.0 };
        let worst = classifier.evaluation.worst(WORST_SHOWN);
        ClassifierOutcome { classifier, worst, images_per_second }
    }
}

/// A classifier's own fields of its summary.
#[derive(Serialize)]
struct ClassifierSummary {
    epochs: Vec<Value>,
    error_rate: f64,
    accuracy: f64,
    valid_loss: f64,
    confusion: Value,
    worst: Vec<Value>,
    images_per_second: f64,
    n_train: usize,
    n_valid: usize,
    parameters: usize,
    classes: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    early_stop: Option<Value>,
}

impl<M> Task for Classification<'_, M>
where
    M: Objective<ImageBatch> + Classifier,
{
    type Outcome = ClassifierOutcome<M>;

    /// The last epoch's model; with early stopping the best epoch's (already in the folder when
    /// that epoch was trained before a resume).
    fn save_model(&self, outcome: &ClassifierOutcome<M>, folder: &RunFolder) -> Result<(), RunFolderError> {
        let classifier = &outcome.classifier;
        match (&classifier.best, classifier.early_stop) {
            (Some(best), _) => folder.save_model(best.clone()).map(drop),
            (None, Some(_)) => Ok(()),
            (None, None) => folder.save_model(classifier.trained.model.valid()).map(drop),
        }
    }

    /// `loss` (train and validation), `accuracy`, `results` and `lr`.
    fn figures(&self, outcome: &ClassifierOutcome<M>, figures: &Figures) -> Result<(), OutputError> {
        let experiment = self.experiment;
        let (rows, evaluation) = (&outcome.classifier.metrics, &outcome.classifier.evaluation);
        let by_epoch = |value: fn(&MetricsRow) -> Option<f64>| -> Vec<(f64, f64)> {
            rows.iter().filter_map(|row| Some((row.epoch as f64, value(row)?))).collect()
        };
        let chart = |title: &str, y_label: &str, series: Vec<Series>| LineChart {
            title: title.into(),
            x_label: "epoch".into(),
            y_label: y_label.into(),
            series,
            log_x: false,
            log_y: false,
            marker: None,
        };
        // Every update's loss, smoothed, with each epoch's validation loss at its last step.
        let valid = rows.iter().filter_map(|row| Some((row.step as f64, row.valid_loss?))).collect();
        figures.batch_losses(("loss (cross-entropy)", false), &outcome.classifier.batch_losses, valid)?;
        let accuracy = vec![Series { name: "accuracy".into(), points: by_epoch(|r| r.accuracy) }];
        figures.chart("accuracy", &chart("Validation accuracy", "accuracy", accuracy))?;
        let side = experiment.train_set.side();
        let names = experiment.config.data.class_names().unwrap_or(&DIGIT_CLASS_NAMES);
        let grid: Vec<GridImage> = evaluation
            .predictions
            .iter()
            .take(RESULTS_SHOWN)
            .map(|p| GridImage {
                pixels: experiment.valid_set.image(p.index).to_vec(),
                side,
                caption: format!("{} / {}", names[usize::from(p.label)], names[usize::from(p.predicted)]),
                wrong: p.label != p.predicted,
            })
            .collect();
        figures.save("results", |format| {
            image_grid(&grid, RESULTS_COLUMNS, "Validation images: true / predicted", format)
        })?;
        figures.schedule(&experiment.config, experiment.total_steps())?;
        Ok(())
    }

    fn metrics(&self, outcome: &ClassifierOutcome<M>) -> Vec<MetricsRow> {
        outcome.classifier.metrics.clone()
    }

    fn summary(&self, outcome: &ClassifierOutcome<M>, place: RunPlace<'_>) -> Value {
        let experiment = self.experiment;
        let TrainedClassifier { trained, evaluation, metrics: rows, early_stop, .. } = &outcome.classifier;
        let history: Vec<_> = rows
            .iter()
            .map(|row| {
                json!({
                    "epoch": row.epoch,
                    "step": row.step,
                    "train_loss": row.train_loss,
                    "valid_loss": row.valid_loss,
                    "accuracy": row.accuracy,
                    "error_rate": row.error_rate,
                })
            })
            .collect();
        let worst: Vec<_> = outcome
            .worst
            .iter()
            .map(|p| json!({"index": p.index, "true": p.label, "predicted": p.predicted, "confidence": p.confidence}))
            .collect();
        let task = ClassifierSummary {
            epochs: history,
            error_rate: evaluation.error_rate,
            accuracy: evaluation.accuracy,
            valid_loss: evaluation.loss,
            confusion: json!(evaluation.confusion),
            worst,
            images_per_second: outcome.images_per_second,
            n_train: experiment.train.len(),
            n_valid: experiment.valid.len(),
            parameters: self.parameters,
            classes: experiment.config.data.class_names().unwrap_or(&DIGIT_CLASS_NAMES).to_vec(),
            early_stop: early_stop.map(|stop| super::early_stop_json(&stop, &experiment.config)),
        };
        RunSummary::new(place, trained.steps, experiment.batch_size(), trained.seconds, task).to_json()
    }
}
