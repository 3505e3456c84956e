//! Image classification with any registered image model: validated after every epoch, with the
//! confusion matrix, the worst predictions and fastai's `show_results` grid.

use burn::module::Module;
use serde::Serialize;
use serde_json::Value;

use super::EarlyStopSummary;
use crate::data::ImageBatch;
use crate::experiment::EarlyStopped;
use crate::experiment::{ImageExperiment, Prepared, RunError, TrainOptions, TrainedClassifier};
use crate::inference::init_from::InitReport;
use crate::metrics::{Classifier, Evaluation, Prediction};
use crate::model::{ImageModel, ImageModelVisitor};
use crate::report::confusion::confusion_figure;
use crate::report::figures::Figures;
use crate::report::plots::{Format, GridImage, LineChart, PlotError, Series, image_grid};
use crate::report::{MetricsRow, RunFolder, RunFolderError, RunPlace, RunSummary};
use crate::run::{OutputError, Task};
use crate::train::{LrFindSettings, LrFinding, Objective, Trained, lr_find};

/// Validation images in `results.png` (fastai's `show_results`), and its columns.
const RESULTS_SHOWN: usize = 20;
const RESULTS_COLUMNS: usize = 5;
/// The worst predictions listed.
pub const WORST_SHOWN: usize = 8;
/// The validation images of `top_losses.png` (fastai's `plot_top_losses(9)`), and its columns.
pub const TOP_LOSSES_SHOWN: usize = 9;
const TOP_LOSSES_COLUMNS: usize = 3;
/// The pairs of `most_confused` in the summary.
pub const MOST_CONFUSED_LISTED: usize = 10;

/// The classification of a prepared image experiment by a network of `parameters` parameters,
/// which it holds until it trains it.
pub struct Classification<'a, M> {
    /// The experiment: the images, the optimizer, the devices.
    pub experiment: &'a ImageExperiment,
    /// The network's parameter count.
    pub parameters: usize,
    network: Option<M>,
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
    /// The classification of `experiment` by `network` (its parameters are counted): a network
    /// from [`ImageExperiment::network`], or a checkpoint's to resume (any freshly made one of
    /// the configuration, whose parameters the checkpoint replaces).
    pub fn new(experiment: &'a ImageExperiment, network: M) -> Self {
        Self { experiment, parameters: network.num_params(), network: Some(network) }
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
    epochs: Vec<EpochEntry>,
    error_rate: f64,
    accuracy: f64,
    valid_loss: f64,
    confusion: Vec<Vec<usize>>,
    worst: Vec<WorstEntry>,
    images_per_second: f64,
    n_train: usize,
    n_valid: usize,
    parameters: usize,
    classes: Vec<String>,
    most_confused: Vec<ConfusedEntry>,
    top_losses: Vec<TopLossEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    early_stop: Option<EarlyStopSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<usize>,
    /// With `--tta N`: the accuracy and loss of the averaged predictions.
    #[serde(skip_serializing_if = "Option::is_none")]
    tta_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tta_valid_loss: Option<f64>,
}

/// A pair of classes mistaken for each other, in a classifier's summary (fastai's
/// `most_confused`).
#[derive(Serialize)]
struct ConfusedEntry {
    actual: String,
    predicted: String,
    count: usize,
}

/// One of the largest validation losses, in a classifier's summary (fastai's `top_losses`).
#[derive(Serialize)]
struct TopLossEntry {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    actual: String,
    predicted: String,
    loss: f64,
    probability: f64,
}

/// An epoch in a classifier's summary.
#[derive(Serialize)]
struct EpochEntry {
    epoch: usize,
    step: usize,
    train_loss: f64,
    valid_loss: Option<f64>,
    accuracy: Option<f64>,
    error_rate: Option<f64>,
}

/// One of the worst predictions in a classifier's summary.
#[derive(Serialize)]
struct WorstEntry {
    index: usize,
    #[serde(rename = "true")]
    label: u8,
    predicted: u8,
    confidence: f64,
}

impl<M> Task for Classification<'_, M>
where
    M: Objective<ImageBatch> + Classifier + 'static,
{
    type Outcome = ClassifierOutcome<M>;

    fn prepared(&self) -> &Prepared {
        self.experiment
    }

    /// Train the network, validated after every epoch; a classification trains once.
    fn train(&mut self, options: TrainOptions<'_>) -> Result<ClassifierOutcome<M>, RunError> {
        let network = self.network.take().ok_or_else(|| {
            RunError::WrongModel("this classification's network has trained already: make another".into())
        })?;
        let trained =
            self.experiment.train_with(network, options, &mut |_| std::ops::ControlFlow::Continue(()))?;
        Ok(self.outcome(trained))
    }

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
        let names = class_names(experiment);
        let grid: Vec<GridImage> = evaluation
            .predictions
            .iter()
            .take(RESULTS_SHOWN)
            .map(|p| {
                let caption =
                    format!("{} / {}", names[usize::from(p.label)], names[usize::from(p.predicted)]);
                shown(experiment, p, caption)
            })
            .collect();
        figures.save("results", |format| {
            image_grid(&grid, RESULTS_COLUMNS, "Validation images: true / predicted", format)
        })?;
        figures.save("confusion", |format| confusion_picture(experiment, evaluation, format))?;
        figures.save("top_losses", |format| {
            top_losses_picture(experiment, evaluation, TOP_LOSSES_SHOWN, format)
        })?;
        figures.rates(&experiment.config, &outcome.classifier.rates)?;
        if let Some(folder) = experiment.folder.as_ref().filter(|folder| !folder.skipped.is_empty()) {
            let lines: String =
                folder.skipped.iter().map(|s| format!("{}\t{}\n", s.path.display(), s.reason)).collect();
            figures.folder().write(SKIPPED_FILE, lines.as_bytes())?;
        }
        Ok(())
    }

    fn metrics(&self, outcome: &ClassifierOutcome<M>) -> Option<Vec<MetricsRow>> {
        Some(outcome.classifier.metrics.clone())
    }

    fn summary(&self, outcome: &ClassifierOutcome<M>, place: RunPlace<'_>) -> Value {
        let experiment = self.experiment;
        let names = class_names(experiment);
        let TrainedClassifier { trained, evaluation, metrics: rows, early_stop, tta, .. } =
            &outcome.classifier;
        let history = rows
            .iter()
            .map(|row| EpochEntry {
                epoch: row.epoch,
                step: row.step,
                train_loss: row.train_loss,
                valid_loss: row.valid_loss,
                accuracy: row.accuracy,
                error_rate: row.error_rate,
            })
            .collect();
        let worst = outcome
            .worst
            .iter()
            .map(|p| WorstEntry {
                index: p.index,
                label: p.label,
                predicted: p.predicted,
                confidence: p.confidence,
            })
            .collect();
        let task = ClassifierSummary {
            epochs: history,
            error_rate: evaluation.error_rate,
            accuracy: evaluation.accuracy,
            valid_loss: evaluation.loss,
            confusion: evaluation.confusion.iter().map(|row| row.to_vec()).collect(),
            worst,
            images_per_second: outcome.images_per_second,
            n_train: experiment.train.len(),
            n_valid: experiment.valid.len(),
            parameters: self.parameters,
            most_confused: evaluation
                .most_confused(1)
                .into_iter()
                .take(MOST_CONFUSED_LISTED)
                .map(|(actual, predicted, count)| ConfusedEntry {
                    actual: names[actual].clone(),
                    predicted: names[predicted].clone(),
                    count,
                })
                .collect(),
            top_losses: evaluation
                .top_losses(TOP_LOSSES_SHOWN)
                .into_iter()
                .map(|(p, loss)| TopLossEntry {
                    index: p.index,
                    file: experiment
                        .folder
                        .as_ref()
                        .and_then(|folder| folder.files.get(p.index))
                        .map(|file| file.display().to_string()),
                    actual: names[usize::from(p.label)].clone(),
                    predicted: names[usize::from(p.predicted)].clone(),
                    loss,
                    probability: p.label_probability,
                })
                .collect(),
            classes: names,
            early_stop: early_stop.map(|stop| EarlyStopSummary::of(&stop, &experiment.config)),
            skipped: experiment.folder.as_ref().map(|folder| folder.skipped.len()),
            tta_accuracy: tta.as_ref().map(|tta| tta.accuracy),
            tta_valid_loss: tta.as_ref().map(|tta| tta.loss),
        };
        RunSummary::new(place, trained.steps, experiment.batch_size(), trained.seconds, task).to_json()
    }
}

/// The confusion matrix of `evaluation` (fastai's `plot_confusion_matrix`): one row per true
/// class, one column per predicted class, the counts in the cells, the experiment's class names
/// along both axes. A run saves it as `confusion.png`.
pub fn confusion_picture(
    experiment: &ImageExperiment,
    evaluation: &Evaluation,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    confusion_figure(&evaluation.confusion, &class_names(experiment), format)
}

/// The `count` validation images of `evaluation` with the largest losses, worst first, each
/// titled prediction / actual / loss / probability of the actual class (fastai's
/// `plot_top_losses`). A run saves the worst nine as `top_losses.png`.
pub fn top_losses_picture(
    experiment: &ImageExperiment,
    evaluation: &Evaluation,
    count: usize,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    let names = class_names(experiment);
    let top: Vec<GridImage> = evaluation
        .top_losses(count)
        .into_iter()
        .map(|(p, loss)| {
            let caption = format!(
                "{} / {}\n{loss:.2} / {:.2}",
                names[usize::from(p.predicted)],
                names[usize::from(p.label)],
                p.label_probability
            );
            shown(experiment, &p, caption)
        })
        .collect();
    image_grid(&top, TOP_LOSSES_COLUMNS, "Prediction / actual / loss / probability", format)
}

/// The file listing the pictures of a folder that were skipped, and why (tab-separated).
pub const SKIPPED_FILE: &str = "skipped.txt";

/// The names of the experiment's classes.
fn class_names(experiment: &ImageExperiment) -> Vec<String> {
    experiment.class_names()
}

/// A validation image as a grid shows it: a folder's picture in its colours (its
/// normalisation undone), a built-in set's grey image as ink.
fn shown(experiment: &ImageExperiment, p: &Prediction, caption: String) -> GridImage {
    let set = &experiment.valid_set;
    let values = set.image(p.index);
    let (pixels, colour) = match experiment.config.data.normalisation() {
        Some(normalisation) => {
            let shown = normalisation.undo(values);
            // A grey picture shows in grey: its one channel three times.
            let pixels = if set.channels() == 3 { shown } else { shown.repeat(3) };
            (pixels, true)
        }
        None => (values.to_vec(), false),
    };
    GridImage { pixels, colour, side: set.side(), caption, wrong: p.label != p.predicted }
}

/// What training an image classifier gave, whatever its model: what the command line prints and
/// a program reads. The model itself is saved by the run ([`Run::execute`](crate::run::Run::execute)).
#[derive(Clone, Debug)]
pub struct ClassifierResults {
    /// Updates, epochs, the reported losses and the training time (without the model).
    pub trained: Trained<()>,
    /// The validation results of the run's model (the best epoch's with early stopping).
    pub evaluation: Evaluation,
    /// The validation images the network got most wrong, worst first.
    pub worst: Vec<Prediction>,
    /// With early stopping: the best epoch and whether the run stopped early.
    pub early_stop: Option<EarlyStopped>,
    /// Training images per second over every epoch of the run.
    pub images_per_second: f64,
    /// One row per epoch, from the first.
    pub metrics: Vec<MetricsRow>,
    /// With `training.tta`: the run's model validated with test-time augmentation.
    pub tta: Option<Evaluation>,
}

/// The classification of an image experiment by the model its configuration names: the one
/// place the model's type is chosen from its name for a run. The command line and a program
/// alike make it, say what it trains, and hand it to [`Run::execute`](crate::run::Run::execute).
pub struct ImageClassification<'a> {
    /// The experiment: the images, the optimizer, the devices.
    pub experiment: &'a ImageExperiment,
    /// The model's name (`cnn`, `mlp`, ...).
    pub model: &'static str,
    /// Its settings in a few words.
    pub settings: String,
    /// Its parameter count.
    pub parameters: usize,
    /// With `training.init_from`: what was loaded.
    pub init: Option<InitReport>,
    typed: Box<dyn Classify + 'a>,
}

impl<'a> ImageClassification<'a> {
    /// The classification by the configured model, at its seeded initial weights; a
    /// configuration that names no image model is refused.
    pub fn of(experiment: &'a ImageExperiment) -> Result<Self, RunError> {
        struct Make<'a>(&'a ImageExperiment);
        impl<'a> ImageModelVisitor for Make<'a> {
            type Output = Result<ImageClassification<'a>, RunError>;
            fn visit<T: ImageModel>(self, settings: &T) -> Self::Output {
                let (network, init) = self.0.start_network(settings)?;
                let task = Classification::new(self.0, network);
                Ok(ImageClassification {
                    experiment: self.0,
                    model: T::NAME,
                    settings: settings.describe(),
                    parameters: task.parameters,
                    init,
                    typed: Box::new(Typed { task, outcome: None }),
                })
            }
        }
        let config = &experiment.config;
        config.model.visit_image_model(Make(experiment)).unwrap_or_else(|| {
            Err(RunError::WrongModel(format!(
                "the configuration names the {} model, not an image model",
                config.model.name()
            )))
        })
    }

    /// fastai's `lr_find` on the untrained network: the loss as the learning rate sweeps up.
    pub fn lr_find(&mut self, settings: &LrFindSettings) -> Result<LrFinding, RunError> {
        self.typed.lr_find(settings)
    }
}

impl Task for ImageClassification<'_> {
    type Outcome = ClassifierResults;

    fn prepared(&self) -> &Prepared {
        self.experiment
    }

    fn train(&mut self, options: TrainOptions<'_>) -> Result<ClassifierResults, RunError> {
        self.typed.train(options)
    }

    fn save_model(&self, _: &ClassifierResults, folder: &RunFolder) -> Result<(), RunFolderError> {
        self.typed.save_model(folder)
    }

    fn figures(&self, _: &ClassifierResults, figures: &Figures) -> Result<(), OutputError> {
        self.typed.figures(figures)
    }

    fn metrics(&self, outcome: &ClassifierResults) -> Option<Vec<MetricsRow>> {
        Some(outcome.metrics.clone())
    }

    fn summary(&self, _: &ClassifierResults, place: RunPlace<'_>) -> Value {
        self.typed.summary(place)
    }
}

/// A [`Classification`] with its network's type erased, and its outcome once trained.
trait Classify {
    fn train(&mut self, options: TrainOptions<'_>) -> Result<ClassifierResults, RunError>;
    fn lr_find(&mut self, settings: &LrFindSettings) -> Result<LrFinding, RunError>;
    fn save_model(&self, folder: &RunFolder) -> Result<(), RunFolderError>;
    fn figures(&self, figures: &Figures) -> Result<(), OutputError>;
    fn summary(&self, place: RunPlace<'_>) -> Value;
}

struct Typed<'a, M> {
    task: Classification<'a, M>,
    outcome: Option<ClassifierOutcome<M>>,
}

impl<M> Typed<'_, M> {
    /// The outcome; the run calls for the outputs only after training succeeded.
    fn outcome(&self) -> Result<&ClassifierOutcome<M>, RunError> {
        self.outcome
            .as_ref()
            .ok_or_else(|| RunError::WrongModel("the classification has not trained yet".into()))
    }
}

impl<M> Classify for Typed<'_, M>
where
    M: Objective<ImageBatch> + Classifier + 'static,
{
    fn train(&mut self, options: TrainOptions<'_>) -> Result<ClassifierResults, RunError> {
        let outcome = self.task.train(options)?;
        let classifier = &outcome.classifier;
        let trained = &classifier.trained;
        let results = ClassifierResults {
            trained: Trained {
                model: (),
                steps: trained.steps,
                epochs: trained.epochs,
                losses: trained.losses.clone(),
                seconds: trained.seconds,
                stopped: trained.stopped,
                interrupted: trained.interrupted,
            },
            evaluation: classifier.evaluation.clone(),
            worst: outcome.worst.clone(),
            early_stop: classifier.early_stop,
            images_per_second: outcome.images_per_second,
            tta: classifier.tta.clone(),
            metrics: classifier.metrics.clone(),
        };
        self.outcome = Some(outcome);
        Ok(results)
    }

    fn lr_find(&mut self, settings: &LrFindSettings) -> Result<LrFinding, RunError> {
        let experiment = self.task.experiment;
        let network = self.task.network.take().ok_or_else(|| {
            RunError::WrongModel("this classification's network has trained already: make another".into())
        })?;
        let mut optimizer = experiment.config.optimizer.build();
        let source = experiment.batches();
        Ok(lr_find(network, &mut optimizer, source.as_ref(), settings, &experiment.plan().replicas)?)
    }

    fn save_model(&self, folder: &RunFolder) -> Result<(), RunFolderError> {
        match self.outcome.as_ref() {
            Some(outcome) => self.task.save_model(outcome, folder),
            None => Ok(()),
        }
    }

    fn figures(&self, figures: &Figures) -> Result<(), OutputError> {
        self.task.figures(self.outcome()?, figures)
    }

    fn summary(&self, place: RunPlace<'_>) -> Value {
        match self.outcome.as_ref() {
            Some(outcome) => self.task.summary(outcome, place),
            None => Value::Null,
        }
    }
}
