//! Linear regression on a CSV table of your own (`descent fit`): the linear model with an
//! intercept on the (standardised) features, reported on the original scale beside the
//! closed-form least squares, on the training and validation rows.

use serde::Serialize;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::experiment::{EarlyStopped, Experiment, Prepared, RunError, TrainOptions, TrainedRun};
use crate::model::LinearModel;
use crate::regression::{FitReport, Metrics, RegressionData, Scaling};
use crate::report::figures::Figures;
use crate::report::{MetricsRow, RunFolder, RunFolderError, RunPlace, RunSummary, plots};
use crate::run::{OutputError, Task};
use crate::train::{TrainError, Trained};

use super::{EarlyStopSummary, LossEntry, loss_entries};

/// A regression on a prepared linear experiment with CSV data.
pub struct TableRegression<'a> {
    /// The experiment: the rows, the model, the optimizer.
    pub experiment: &'a Experiment,
    /// The table: its columns, scaling, validation rows and closed form.
    pub regression: &'a RegressionData,
}

/// What the regression's training gave.
pub struct TableOutcome {
    /// The trained model and what happened on the way.
    pub trained: Trained<LinearModel>,
    /// The parameters as trained (with early stopping, the best epoch's): one per (scaled)
    /// feature, then the intercept.
    pub a: Vec<f64>,
    /// With early stopping: the best epoch and whether the run stopped early.
    pub early_stop: Option<EarlyStopped>,
    /// Every update's loss, as (step, loss).
    pub batch_losses: Vec<(usize, f64)>,
    /// Every update's learning rate, as (updates made before it, rate).
    pub rates: Vec<(usize, f64)>,
    /// Whether `a` is the best epoch's of this call (else a resumed run's earlier best is the
    /// folder's `model.bpk`, or there is no early stopping).
    best_here: bool,
    /// The coefficients on the original scale, the metrics and the closed form.
    pub fit: FitReport,
}

impl<'a> TableRegression<'a> {
    /// The regression of `experiment`, when its data is a table.
    pub fn of(experiment: &'a Experiment) -> Option<Self> {
        Some(Self { experiment, regression: experiment.regression.as_ref()? })
    }

    /// The trained model's coefficients and metrics beside the closed form; with early
    /// stopping, the best epoch's.
    pub fn outcome(&self, run: TrainedRun<LinearModel>) -> Result<TableOutcome, RunError> {
        let TrainedRun { trained, early_stop, best, batch_losses, rates, .. } = run;
        let model = best.as_ref().unwrap_or(&trained.model);
        let a = model.parameters().map_err(|error| TrainError::Device(error.to_string()))?;
        let a: Vec<f64> = a.into_iter().map(f64::from).collect();
        let fit = self.regression.report(&a);
        Ok(TableOutcome { trained, a, fit, early_stop, best_here: best.is_some(), batch_losses, rates })
    }
}

/// A fit's own fields of its summary.
#[derive(Serialize)]
struct FitSummary {
    data: std::path::PathBuf,
    target: String,
    features: Vec<String>,
    coefficients: BTreeMap<String, f64>,
    intercept: f64,
    ols_coefficients: Option<BTreeMap<String, f64>>,
    ols_intercept: Option<f64>,
    gap_relative: Option<f64>,
    mse_train: f64,
    rmse_train: f64,
    r2_train: f64,
    mse_valid: Option<f64>,
    rmse_valid: Option<f64>,
    r2_valid: Option<f64>,
    ols_train: Option<Metrics>,
    ols_valid: Option<Metrics>,
    standardized: bool,
    scaling: Scaling,
    rows: usize,
    rows_train: usize,
    rows_valid: usize,
    skipped_rows: u64,
    skipped_lines: Vec<u64>,
    losses: Vec<LossEntry>,
    a: Vec<f64>,
    loss: f64,
    epochs: usize,
    lr: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    early_stop: Option<EarlyStopSummary>,
}

impl Task for TableRegression<'_> {
    type Outcome = TableOutcome;

    fn prepared(&self) -> &Prepared {
        self.experiment
    }

    /// The training, and the coefficients and metrics beside the closed form.
    fn train(&mut self, options: TrainOptions<'_>) -> Result<TableOutcome, RunError> {
        let source = self.experiment.batches();
        let trained = self
            .experiment
            .train_run_with(source.as_ref(), options, &mut |_| std::ops::ControlFlow::Continue(()))?;
        self.outcome(trained)
    }

    /// The saved model works on the original columns: its parameters are the coefficients and
    /// the intercept on the original scale, so `descent predict` and `descent export` need no
    /// scaling.
    fn save_model(&self, outcome: &TableOutcome, folder: &RunFolder) -> Result<(), RunFolderError> {
        if outcome.early_stop.is_some() && !outcome.best_here {
            return Ok(()); // the best epoch was trained before a resume: model.bpk holds it
        }
        let fit = &outcome.fit;
        let original: Vec<f32> = fit.coefficients.iter().chain([&fit.intercept]).map(|&v| v as f32).collect();
        folder.save_model(LinearModel::new(&original, &self.experiment.device.device)).map(drop)
    }

    /// `loss`, `lr` and `predictions` (predicted against actual, training and validation rows).
    fn figures(&self, outcome: &TableOutcome, figures: &Figures) -> Result<(), OutputError> {
        let (experiment, regression, fit, a) = (self.experiment, self.regression, &outcome.fit, &outcome.a);
        // The validation MSE of the model kept, at the last step.
        let valid = fit.valid.map(|v| vec![(outcome.trained.steps as f64, v.mse)]).unwrap_or_default();
        let losses = (&outcome.trained.losses[..], &outcome.batch_losses[..], valid);
        figures.linear_loss_and_schedule(&experiment.config, losses, &outcome.rates)?;
        let pairs = |table: &crate::data::Table| -> Vec<(f64, f64)> {
            plots::scatter_rows(table.len())
                .map(|i| {
                    let prediction: f64 = table.row(i).iter().zip(a).map(|(&x, a)| f64::from(x) * a).sum();
                    (f64::from(table.y()[i]), prediction)
                })
                .collect()
        };
        let title = match fit.valid {
            Some(valid) => format!(
                "Predicted {}: R² {:.4} train, {:.4} validation",
                regression.target, fit.train.r2, valid.r2
            ),
            None => format!("Predicted {}: R² {:.4} on the training rows", regression.target, fit.train.r2),
        };
        let (train_points, valid_points) = (pairs(&regression.train), pairs(&regression.valid));
        figures.save("predictions", |format| {
            plots::prediction_plot(&title, &train_points, &valid_points, format)
        })?;
        Ok(())
    }

    /// The reported losses, the last with the validation rows' mean squared error.
    fn metrics(&self, outcome: &TableOutcome) -> Option<Vec<MetricsRow>> {
        let mut rows: Vec<MetricsRow> = outcome.trained.losses.iter().map(MetricsRow::from).collect();
        if let (Some(last), Some(valid)) = (rows.last_mut(), outcome.fit.valid) {
            last.valid_loss = Some(valid.mse);
        }
        Some(rows)
    }

    fn summary(&self, outcome: &TableOutcome, place: RunPlace<'_>) -> Value {
        let (experiment, regression) = (self.experiment, self.regression);
        let TableOutcome { trained, a, fit, early_stop, .. } = outcome;
        let named = |values: &[f64]| -> BTreeMap<String, f64> {
            regression.features.iter().cloned().zip(values.iter().copied()).collect()
        };
        let task = FitSummary {
            data: regression.path.clone(),
            target: regression.target.clone(),
            features: regression.features.clone(),
            coefficients: named(&fit.coefficients),
            intercept: fit.intercept,
            ols_coefficients: fit.ols_coefficients.as_deref().map(named),
            ols_intercept: fit.ols_intercept,
            gap_relative: fit.gap_relative,
            mse_train: fit.train.mse,
            rmse_train: fit.train.rmse,
            r2_train: fit.train.r2,
            mse_valid: fit.valid.map(|m| m.mse),
            rmse_valid: fit.valid.map(|m| m.rmse),
            r2_valid: fit.valid.map(|m| m.r2),
            ols_train: fit.ols_train,
            ols_valid: fit.ols_valid,
            standardized: regression.standardized,
            scaling: regression.scaling.clone(),
            rows: regression.rows,
            rows_train: regression.train.len(),
            rows_valid: regression.valid.len(),
            skipped_rows: regression.skipped.count,
            skipped_lines: regression.skipped.first_lines.clone(),
            losses: loss_entries(&trained.losses),
            a: a.clone(),
            loss: fit.train.mse,
            epochs: trained.epochs,
            lr: experiment.config.optimizer.lr(),
            early_stop: early_stop.map(|stop| EarlyStopSummary::of(&stop, &experiment.config)),
        };
        let batch_size = experiment.config.training.batch_size.unwrap_or(regression.train.len());
        RunSummary::new(place, trained.steps, batch_size, trained.seconds, task).to_json()
    }
}
