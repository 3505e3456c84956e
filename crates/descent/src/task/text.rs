//! What a run says about itself and its results, as lines of text: the command line prints
//! them, and a program or a notebook can print the same.

use crate::config::DataConfig;
use crate::data::csv_table::shown;
use crate::experiment::{EarlyStopped, Experiment, ImageExperiment, Prepared};
use crate::metrics::{Evaluation, Prediction};
use crate::model::LinearModel;
use crate::optim::ScheduleConfig;
use crate::regression::{FitReport, Metrics, RegressionData};
use crate::train::{Length, Trained};

use super::classify::{ClassifierResults, ImageClassification};
use super::lesson::{Lesson, LessonOutcome};

/// A relative gap to the closed form above which a fit suggests training longer.
const GAP_HINT: f64 = 1e-3;

/// The first line of a training command: the command and where it trains.
pub fn heading(command: &str, prepared: &Prepared) -> String {
    let world = crate::world::World::current();
    let processes = match world.size() {
        1 => String::new(),
        size => format!(", in each of {size} processes (MPI): every batch split across them"),
    };
    format!("descent {command} on {}{processes}", prepared.describe_device())
}

/// The notebook's first cells: the data, the first rows of x, and the loss of the guess
/// (`initial_loss`, from [`Lesson::initial_loss`]).
pub fn lesson_setup(lesson: &Lesson<'_>, initial_loss: f64) -> Vec<String> {
    let experiment = lesson.experiment;
    let (config, rows) = (&experiment.config, &experiment.rows);
    let mut lines = vec![match &config.data {
        DataConfig::Points { path, .. } => format!("data: {} points from {}", rows.len(), path.display()),
        DataConfig::Lesson { true_a, noise, .. } => format!(
            "data: n = {}, x = [U(-1, 1), 1], y = x·({}, {}) + {}·N(0, 1), seed {}",
            rows.len(),
            true_a[0],
            true_a[1],
            noise,
            config.seed
        ),
        _ => format!("data: {} rows", rows.len()),
    }];
    lines.push("first rows of x:".into());
    for row in rows.head(5) {
        lines.push(format!("  [{:>8.4}, {:>6.4}]", row[0], row[1]));
    }
    let guess = config.linear_init(2);
    lines.push(format!("mse of the guess a = ({}, {}): {initial_loss:.6}", guess[0] as f32, guess[1] as f32));
    lines
}

/// The lesson's fit beside the closed form, and how far apart they are.
pub fn lesson_result(lesson: &Lesson<'_>, outcome: &LessonOutcome) -> Vec<String> {
    let (a, ols) = (&outcome.a, &lesson.ols);
    vec![
        format!("fitted a:             ({:.6}, {:.6})   mse {:.6}", a[0], a[1], outcome.loss),
        format!("least squares a_ols:  ({:.6}, {:.6})   mse {:.6}", ols.a[0], ols.a[1], ols.mse),
        format!("gap: max |a - a_ols| = {:.6}, loss - loss_ols = {:.3e}", outcome.gap_a, outcome.gap_loss),
    ]
}

/// How a linear experiment trains: full-batch or mini-batch, the optimizer, the schedule and
/// the length.
pub fn linear_training(experiment: &Experiment) -> String {
    let config = &experiment.config;
    let (lr, optimizer) = (config.optimizer.lr(), config.optimizer.name());
    let schedule = match config.schedule {
        ScheduleConfig::Constant => String::new(),
        ref other => format!(", {} schedule", other.name()),
    };
    let length = match (experiment.plan().length, experiment.full_batch()) {
        (Length::Steps(steps), _) => format!("{steps} steps"),
        (Length::Epochs(epochs), true) => format!("{epochs} epochs (one step each)"),
        (Length::Epochs(epochs), false) => format!("{epochs} epochs"),
    };
    match config.training.batch_size {
        None => format!("full-batch gradient descent: {optimizer} lr {lr}{schedule}, {length}"),
        Some(size) => format!(
            "mini-batch SGD: batch size {size} ({} batches per epoch, shuffled with seed {}), {optimizer} lr {lr}{schedule}, {length}",
            experiment.batches_per_epoch(),
            config.seed,
        ),
    }
}

/// The last line about a linear model's training: steps (and epochs), time, device.
pub fn linear_trained(experiment: &Experiment, trained: &Trained<LinearModel>) -> String {
    let epochs =
        if experiment.full_batch() { String::new() } else { format!(" ({} epochs)", trained.epochs) };
    format!(
        "trained {} steps{epochs} in {:.2} ms on {}",
        trained.steps,
        trained.seconds * 1e3,
        experiment.describe_device()
    )
}

/// A table's lines before training: its rows and split, its columns and their scaling.
pub fn table_setup(regression: &RegressionData, seed: u64) -> Vec<String> {
    let features = &regression.features;
    vec![
        format!(
            "data: {}: {} rows, {} for training and {} for validation (split with seed {seed})",
            regression.path.display(),
            regression.rows,
            regression.train.len(),
            regression.valid.len(),
        ),
        format!(
            "target `{}`, {} feature{}: {}",
            shown(&regression.target),
            features.len(),
            if features.len() == 1 { "" } else { "s" },
            features.iter().map(|name| shown(name)).collect::<Vec<_>>().join(", ")
        ),
        match regression.standardized {
            true => "features standardised with the training rows' mean and standard deviation; coefficients are reported on the original scale".into(),
            false => "features used as they are (--no-standardize)".into(),
        },
    ]
}

/// A fitted table beside the closed form ([`fit_table`]), and how far apart they are.
pub fn fit_comparison(regression: &RegressionData, fit: &FitReport) -> Vec<String> {
    let names: Vec<String> = regression.features.iter().map(|name| shown(name)).collect();
    let mut lines = fit_table(&names, fit);
    match (&regression.ols, fit.gap_relative) {
        (Err(error), _) => lines.push(format!("least squares: none to compare with: {error}")),
        (Ok(_), Some(gap)) => {
            let gap_loss = fit.ols_train.map_or(f64::NAN, |ols| fit.train.mse - ols.mse);
            lines.push(format!(
                "gap to least squares: largest relative difference of a coefficient {gap:.3e}, train mse - least squares mse = {gap_loss:.3e}"
            ));
            if gap > GAP_HINT {
                lines.push("  gradient descent has not reached the closed form yet: train longer (--steps, --epochs) or try another --lr (descent lr-find)".into());
            }
        }
        (Ok(_), None) => {}
    }
    lines
}

/// The names of an image experiment's classes (the digits `0`..`9` unless the data names them).
pub fn class_names(experiment: &ImageExperiment) -> Vec<String> {
    experiment.class_names()
}

/// An image classification's lines before training: the data and its classes, the model, the
/// training settings.
pub fn image_setup(task: &ImageClassification<'_>) -> Vec<String> {
    let experiment = task.experiment;
    let config = &experiment.config;
    let side = experiment.train_set.side();
    let data = match &config.data {
        DataConfig::Mnist { dir, train_limit, .. } | DataConfig::FashionMnist { dir, train_limit, .. } => {
            let set = if matches!(config.data, DataConfig::FashionMnist { .. }) {
                "Fashion-MNIST"
            } else {
                "MNIST"
            };
            let first = match train_limit {
                Some(_) => format!(" (the first of {})", experiment.train_set.len()),
                None => String::new(),
            };
            format!(
                "data: {set} from {} ({side}x{side}): {} training images{first}, {} test images for validation",
                dir.display(),
                experiment.train.len(),
                experiment.valid.len()
            )
        }
        DataConfig::Folder { dir, .. } => {
            let shape = experiment.train_set.shape();
            let colour = if shape.channels == 3 { "in colour" } else { "grey" };
            let split = match &experiment.folder {
                Some(folder) if folder.presplit => "the folder's own train/valid split".to_string(),
                _ => format!("held out per class with seed {}", config.seed),
            };
            format!(
                "data: {} pictures from {} in {} classes, resized to {side}x{side} {colour}: {} train, {} valid ({split})",
                experiment.train_set.len(),
                dir.display(),
                shape.classes,
                experiment.train.len(),
                experiment.valid.len()
            )
        }
        _ => format!(
            "data: {} digits ({side}x{side}), split at random with seed {}: {} train, {} valid",
            experiment.train_set.len(),
            config.seed,
            experiment.train.len(),
            experiment.valid.len()
        ),
    };
    let names = class_names(experiment);
    let counts = |counts: Vec<usize>| {
        counts.iter().enumerate().map(|(c, n)| format!("{}:{n}", names[c])).collect::<Vec<_>>().join(" ")
    };
    let mut lines = vec![data];
    lines.extend(folder_lines(experiment));
    lines.extend([
        format!("  train classes {}", counts(experiment.train_set.class_counts(&experiment.train))),
        format!("  valid classes {}", counts(experiment.valid_set.class_counts(&experiment.valid))),
        format!("model: {}, {}: {} parameters", task.model, task.settings, task.parameters),
        image_training(experiment),
    ]);
    if let (Some(init), Some(path)) = (&task.init, &config.training.init_from) {
        let head = if init.new_head {
            format!("a new head for the {} classes", experiment.train_set.classes())
        } else {
            "the head too".to_string()
        };
        let mut line = format!("fine-tuning: {} tensors from {}, {head}", init.loaded, path.display());
        if let Some(freeze) = config.training.freeze {
            let epochs = if freeze == 1 { "epoch" } else { "epochs" };
            line.push_str(&format!("; the head alone for {freeze} {epochs}, then every layer"));
        }
        if let Some(factor) = config.optimizer.body_lr_factor() {
            line.push_str(&format!("; the body at {factor} x the rate"));
        }
        lines.push(line);
    }
    lines
}

/// For a folder of pictures: the skipped files and the cache.
fn folder_lines(experiment: &ImageExperiment) -> Vec<String> {
    let Some(folder) = &experiment.folder else { return Vec::new() };
    let mut lines = Vec::new();
    if !folder.skipped.is_empty() {
        let shown: Vec<String> =
            folder.skipped.iter().take(3).map(|s| s.path.display().to_string()).collect();
        let more = if folder.skipped.len() > 3 { ", ..." } else { "" };
        lines.push(format!(
            "  skipped {} files that are not readable pictures ({}{more}): listed in skipped.txt",
            folder.skipped.len(),
            shown.join(", ")
        ));
    }
    let pictures = folder.files.len();
    let rate = pictures as f64 / folder.seconds.max(1e-9);
    match &folder.cache {
        Some((path, true)) => lines.push(format!(
            "  pictures read from the cache in {:.3} s: {}",
            folder.seconds,
            path.display()
        )),
        Some((path, false)) => lines.push(format!(
            "  {pictures} pictures decoded in {:.2} s ({rate:.0}/s), and cached in {}",
            folder.seconds,
            path.display()
        )),
        None => lines.push(format!("  {pictures} pictures decoded in {:.2} s ({rate:.0}/s)", folder.seconds)),
    }
    lines
}

/// fastai's `most_confused`: the pairs of classes most often mistaken, (true, predicted, count).
pub fn most_confused(evaluation: &Evaluation, names: &[String]) -> Vec<String> {
    let pairs = evaluation.most_confused(1);
    if pairs.is_empty() {
        return vec!["most confused: no validation image was mistaken".into()];
    }
    let shown: Vec<String> = pairs
        .iter()
        .take(MOST_CONFUSED_SHOWN)
        .map(|&(actual, predicted, count)| format!("{} as {} ({count})", names[actual], names[predicted]))
        .collect();
    vec![format!("most confused (true as predicted): {}", shown.join(", "))]
}

/// The pairs of classes `most_confused` lists.
pub const MOST_CONFUSED_SHOWN: usize = 5;

/// How an image experiment trains: optimizer, schedule, batches, length and the extras.
fn image_training(experiment: &ImageExperiment) -> String {
    let (config, training) = (&experiment.config, &experiment.config.training);
    let length = match experiment.plan().length {
        Length::Epochs(e) => format!("{e} epochs"),
        Length::Steps(s) => format!("{s} steps"),
    };
    let mut extras = String::new();
    if let Some(k) = training.accumulate.filter(|&k| k > 1) {
        extras.push_str(&format!(", an update every {k} batches"));
    }
    if let Some(augment) = &training.augment {
        let flips = if config.augment_flips() { " and flips" } else { "" };
        extras.push_str(&format!(", augmented (shifts of up to {} pixels{flips})", augment.shift));
    }
    if let Some(patience) = training.early_stop {
        let monitor = training.monitor.unwrap_or_default().name();
        extras
            .push_str(&format!(", early stopping on {monitor} after {patience} epochs without improvement"));
    }
    format!(
        "training: {} lr {}, {} schedule, batch size {}, {length}{extras}",
        config.optimizer.name(),
        config.optimizer.lr(),
        config.schedule.name(),
        experiment.batch_size()
    )
}

/// An image classifier's last line: its error rate and accuracy, epochs, time and speed.
pub fn classifier_result(experiment: &ImageExperiment, results: &ClassifierResults) -> String {
    let evaluation = &results.evaluation;
    let wrong = evaluation.predictions.iter().filter(|p| p.label != p.predicted).count();
    format!(
        "error_rate {:.4} ({wrong}/{} wrong), accuracy {:.4}; trained {} epochs in {:.2} s ({:.0} images/s) on {}",
        evaluation.error_rate,
        evaluation.predictions.len(),
        evaluation.accuracy,
        results.trained.epochs,
        results.trained.seconds,
        results.images_per_second,
        experiment.describe_device()
    )
}

/// With `--tta N`: the accuracy of the averaged predictions beside the plain one.
pub fn tta_result(experiment: &ImageExperiment, results: &ClassifierResults) -> Option<String> {
    let (tta, plain) = (results.tta.as_ref()?, &results.evaluation);
    let copies = experiment.config.training.tta.unwrap_or_default();
    Some(format!(
        "test-time augmentation ({copies} moved copies per image): accuracy {:.4} (without: {:.4}), valid_loss {:.4}",
        tta.accuracy, plain.accuracy, tta.loss
    ))
}

/// The confusion matrix (rows: true class, columns: predicted class), after a legend of the
/// classes' names when they are not their numbers (Fashion-MNIST's).
pub fn confusion_matrix(evaluation: &Evaluation, names: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    if named(names) {
        let legend: Vec<String> = names.iter().enumerate().map(|(c, name)| format!("{c} {name}")).collect();
        lines.push(format!("classes: {}", legend.join(", ")));
    }
    lines.push("confusion matrix (rows: true class, columns: predicted class):".into());
    lines.push(format!(
        "      {}",
        (0..evaluation.confusion.len()).map(|c| format!("{c:>4}")).collect::<String>()
    ));
    for (label, row) in evaluation.confusion.iter().enumerate() {
        lines.push(format!("  {label:>2}: {}", row.iter().map(|n| format!("{n:>4}")).collect::<String>()));
    }
    lines
}

/// The line above the worst predictions.
const WORST_HEADING: &str = "worst predictions (lowest probability given to the true class):";

/// The worst predictions (lowest probability given to the true class), by class name when the
/// classes have names.
pub fn worst_predictions(worst: &[Prediction], names: &[String]) -> Vec<String> {
    let mut lines = vec![WORST_HEADING.to_string()];
    if named(names) {
        lines.push(format!("  {:>6}  {:<12}  {:<12}  {:>10}", "index", "true", "predicted", "confidence"));
        for p in worst {
            let (truth, predicted) = (&names[usize::from(p.label)], &names[usize::from(p.predicted)]);
            lines.push(format!("  {:>6}  {truth:<12}  {predicted:<12}  {:>10.4}", p.index, p.confidence));
        }
        return lines;
    }
    lines.push(format!("  {:>6}  {:>4}  {:>9}  {:>10}", "index", "true", "predicted", "confidence"));
    for p in worst {
        lines.push(format!("  {:>6}  {:>4}  {:>9}  {:>10.4}", p.index, p.label, p.predicted, p.confidence));
    }
    lines
}

/// [`worst_predictions`] for a folder of pictures: each named by its file (relative to the
/// folder, `files[index]`), which is what a user opens to look at it.
pub fn worst_pictures(worst: &[Prediction], names: &[String], files: &[std::path::PathBuf]) -> Vec<String> {
    let mut lines = vec![WORST_HEADING.to_string()];
    lines.push(format!("  {:<12}  {:<12}  {:>10}  {}", "true", "predicted", "confidence", "file"));
    for p in worst {
        let (truth, predicted) = (&names[usize::from(p.label)], &names[usize::from(p.predicted)]);
        let file = files.get(p.index).map_or_else(|| format!("#{}", p.index), |f| f.display().to_string());
        lines.push(format!("  {truth:<12}  {predicted:<12}  {:>10.4}  {file}", p.confidence));
    }
    lines
}

/// Whether the classes have names other than their numbers.
fn named(names: &[String]) -> bool {
    names.iter().enumerate().any(|(c, name)| *name != c.to_string())
}

/// Where early stopping ended: the best epoch (the saved model's), and whether it stopped the
/// run (after `trained_epochs`) before its plan's end.
pub fn early_stop(stop: &EarlyStopped, trained_epochs: usize) -> String {
    let (monitor, state) = (stop.monitor.name(), stop.state);
    let how = if stop.stopped {
        format!(
            "stopped after epoch {trained_epochs}: no better {monitor} in the {} epochs since",
            state.stale
        )
    } else {
        "trained every epoch of the plan".to_string()
    };
    format!(
        "early stopping: best {monitor} {:.6} at epoch {}; {how}; model.bpk holds epoch {}",
        state.best, state.best_epoch, state.best_epoch
    )
}

/// A fitted table's coefficients beside the closed form's, then the metrics on both splits and
/// the closed form's.
pub fn fit_table(features: &[String], fit: &FitReport) -> Vec<String> {
    let width = features.iter().map(|name| name.chars().count()).max().unwrap_or(0).max(9);
    let mut lines = vec![format!("{:<width$}  {:>16}  {:>16}", "", "gradient descent", "least squares")];
    let ols = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.6e}"));
    for (i, name) in features.iter().enumerate() {
        let closed = fit.ols_coefficients.as_ref().map(|c| c[i]);
        lines.push(format!("{name:<width$}  {:>16.6e}  {:>16}", fit.coefficients[i], ols(closed)));
    }
    lines.push(format!("{:<width$}  {:>16.6e}  {:>16}", "intercept", fit.intercept, ols(fit.ols_intercept)));
    let cell =
        |m: Option<Metrics>, pick: Metric| m.map_or("-".to_string(), |m| format!("{:.6}", pick.of(&m)));
    lines.push(format!("{:<width$}  {:>16}  {:>16}", "", "train", "validation"));
    let picks = [("mse", Metric::Mse), ("rmse", Metric::Rmse), ("r2", Metric::R2)];
    for (name, pick) in picks {
        lines.push(format!(
            "{name:<width$}  {:>16}  {:>16}",
            cell(Some(fit.train), pick),
            cell(fit.valid, pick)
        ));
    }
    if let Some(ols_train) = fit.ols_train {
        let valid =
            fit.ols_valid.map_or(String::new(), |v| format!(", validation mse {:.6} r2 {:.6}", v.mse, v.r2));
        lines.push(format!("least squares: train mse {:.6} r2 {:.6}{valid}", ols_train.mse, ols_train.r2));
    }
    lines
}

/// A column of [`Metrics`].
#[derive(Clone, Copy)]
enum Metric {
    Mse,
    Rmse,
    R2,
}

impl Metric {
    fn of(self, metrics: &Metrics) -> f64 {
        match self {
            Metric::Mse => metrics.mse,
            Metric::Rmse => metrics.rmse,
            Metric::R2 => metrics.r2,
        }
    }
}
