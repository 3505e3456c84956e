//! What a run says about its results, as lines of text: the command line prints them, and a
//! program or a notebook can print the same.

use crate::experiment::EarlyStopped;
use crate::metrics::{Evaluation, Prediction};
use crate::regression::{FitReport, Metrics};

/// The confusion matrix (rows: true class, columns: predicted class), after a legend of the
/// classes' names when they are not their numbers (Fashion-MNIST's).
pub fn confusion_matrix(evaluation: &Evaluation, names: &[&str]) -> Vec<String> {
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

/// The worst predictions (lowest probability given to the true class), by class name when the
/// classes have names.
pub fn worst_predictions(worst: &[Prediction], names: &[&str]) -> Vec<String> {
    let mut lines = vec!["worst predictions (lowest probability given to the true class):".to_string()];
    if named(names) {
        lines.push(format!("  {:>6}  {:<12}  {:<12}  {:>10}", "index", "true", "predicted", "confidence"));
        for p in worst {
            let (truth, predicted) = (names[usize::from(p.label)], names[usize::from(p.predicted)]);
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

/// Whether the classes have names other than their numbers.
fn named(names: &[&str]) -> bool {
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
