//! Linear regression on a table of your own (`descent fit`): the chosen columns of a CSV file,
//! split into training and validation rows, the features standardised from the training rows,
//! and the results (coefficients on the original scale, MSE, RMSE and R² on both splits, and the
//! closed-form least-squares solution on the same training rows).
//!
//! The model is the lesson's `x·a` with a column of ones appended to the features, so its last
//! parameter is the intercept. With standardisation it trains on `(x - mean) / std`; the
//! coefficients on the original scale are `a_j / std_j` and the intercept
//! `a_d - Σ a_j mean_j / std_j`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::data::csv_table::{Columns, CsvOptions, SkippedRows, Target, parse_delimiter, read_csv};
use crate::data::images::split;
use crate::data::{DataError, Table};
use crate::ols::{OlsError, least_squares};

/// How to read and prepare a regression table: the `source = "csv"` data of a run configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSource {
    /// The file.
    pub path: PathBuf,
    /// The column to predict.
    pub target: String,
    /// The feature columns, in order; absent: every column but the target (a run fills in the
    /// list it found, so that its saved configuration names them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// The field delimiter: one character, or `tab` or `space` (see [`parse_delimiter`]).
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Standardise the features (mean 0, variance 1, from the training rows); coefficients are
    /// still reported on the original scale.
    #[serde(default = "default_true")]
    pub standardize: bool,
    /// Fraction of the rows held out for validation, in [0, 1); 0 trains on every row.
    #[serde(default = "crate::data::default_valid_fraction")]
    pub valid_fraction: f64,
    /// Skip rows that are ragged or hold a bad value in a chosen column, and count them, instead
    /// of stopping at the first.
    #[serde(default)]
    pub skip_bad_rows: bool,
    /// SHA-256 of the file as it was first trained on, recorded by the run: a resumed run, or a
    /// run of this configuration, refuses a file that has changed since. Absent: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl CsvSource {
    /// The file and target with every other setting at its default: all other columns as
    /// features, comma-delimited, standardised, 20% held out, bad rows refused.
    pub fn new(path: PathBuf, target: String) -> Self {
        Self {
            path,
            target,
            features: None,
            delimiter: default_delimiter(),
            standardize: true,
            valid_fraction: crate::data::default_valid_fraction(),
            skip_bad_rows: false,
            sha256: None,
        }
    }
}

fn default_delimiter() -> String {
    ",".into()
}

fn default_true() -> bool {
    true
}

/// Per-feature affine maps `(x - mean) / scale`: standardisation, or the identity.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Scaling {
    /// What is subtracted from each feature.
    pub mean: Vec<f64>,
    /// What each feature is divided by after that.
    pub scale: Vec<f64>,
}

impl Scaling {
    /// Leave `features` columns as they are.
    pub fn identity(features: usize) -> Self {
        Self { mean: vec![0.0; features], scale: vec![1.0; features] }
    }

    /// Mean and standard deviation (population, as scikit-learn's `StandardScaler`) of each
    /// feature over `rows` of the row-major `x`, accumulated in `f64`. A column whose values are
    /// all equal gets scale 0: see [`Self::constant_column`].
    pub fn standardize(x: &[f32], features: usize, rows: &[usize]) -> Self {
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0f64; features];
        for &row in rows {
            for (m, &v) in mean.iter_mut().zip(&x[row * features..(row + 1) * features]) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut variance = vec![0.0f64; features];
        for &row in rows {
            for ((s, &v), m) in variance.iter_mut().zip(&x[row * features..(row + 1) * features]).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        let scale = variance.into_iter().map(|s| (s / n).sqrt()).collect();
        Self { mean, scale }
    }

    /// The first feature whose scale is 0 or not finite (a constant column: nothing to divide by).
    pub fn constant_column(&self) -> Option<usize> {
        self.scale.iter().position(|&s| !(s > 0.0 && s.is_finite()))
    }

    /// `rows` of the row-major `x` and `y`, mapped, with a column of ones appended: the table the
    /// model trains on.
    pub fn table(&self, x: &[f32], y: &[f32], rows: &[usize]) -> Table {
        let d = self.mean.len();
        let mut features = Vec::with_capacity(rows.len() * (d + 1));
        for &row in rows {
            let values = &x[row * d..(row + 1) * d];
            features.extend(
                values
                    .iter()
                    .zip(&self.mean)
                    .zip(&self.scale)
                    .map(|((&v, m), s)| ((f64::from(v) - m) / s) as f32),
            );
            features.push(1.0);
        }
        Table::new(features, rows.iter().map(|&row| y[row]).collect(), d + 1)
    }

    /// The model's parameters (one per mapped feature, then the intercept) as coefficients and
    /// an intercept on the original scale.
    pub fn to_original(&self, a: &[f64]) -> (Vec<f64>, f64) {
        let d = self.mean.len();
        let coefficients: Vec<f64> = a[..d].iter().zip(&self.scale).map(|(a, s)| a / s).collect();
        let shift: f64 = coefficients.iter().zip(&self.mean).map(|(c, m)| c * m).sum();
        (coefficients, a[d] - shift)
    }
}

/// The regression's rows, read, split and scaled.
#[derive(Clone, Debug)]
pub struct RegressionData {
    /// The file the rows were read from.
    pub path: std::path::PathBuf,
    /// Whether the features were standardised (`standardize`).
    pub standardized: bool,
    /// The feature columns' names, in the model's order.
    pub features: Vec<String>,
    /// The target column's name.
    pub target: String,
    /// The map from the file's values to the model's features.
    pub scaling: Scaling,
    /// The training rows, scaled, with the column of ones.
    pub train: Arc<Table>,
    /// The validation rows, scaled the same way; empty when `valid_fraction` is 0.
    pub valid: Table,
    /// Rows of the file (after skipping).
    pub rows: usize,
    /// Rows skipped under `skip_bad_rows`.
    pub skipped: SkippedRows,
    /// The closed-form least-squares coefficients and intercept on the training rows (original
    /// scale), or why there is no unique solution.
    pub ols: Result<(Vec<f64>, f64), OlsError>,
}

impl RegressionData {
    /// Read `source`, split its rows with `seed` and scale them. Errors name the file (and the
    /// line and column, or the constant column).
    pub fn prepare(source: &CsvSource, seed: u64) -> Result<Self, DataError> {
        let path = source.path.as_path();
        let delimiter = parse_delimiter(&source.delimiter).map_err(|message| DataError::Malformed {
            path: path.into(),
            line: 1,
            message: format!("delimiter: {message}"),
        })?;
        let columns =
            Columns { features: source.features.clone(), target: Target::Required(source.target.clone()) };
        let options = CsvOptions { delimiter, skip_bad_rows: source.skip_bad_rows };
        let table = read_csv(path, &columns, &options)?;
        let y = table.y.expect("the target is required");
        let d = table.features.len();
        let parts = split(table.rows, source.valid_fraction, seed);
        let needed = d + 1;
        if parts.train.len() < needed {
            return Err(DataError::Rows {
                path: path.into(),
                message: format!(
                    "{} training row{} for {d} feature{} and the intercept: at least {needed} are needed{}",
                    parts.train.len(),
                    if parts.train.len() == 1 { "" } else { "s" },
                    if d == 1 { "" } else { "s" },
                    if parts.valid.is_empty() { String::new() } else { " (lower --valid-fraction)".into() }
                ),
            });
        }
        let statistics = Scaling::standardize(&table.x, d, &parts.train);
        if let Some(column) = statistics.constant_column() {
            return Err(constant_column(
                path,
                &table.features[column],
                table.feature_columns[column],
                statistics.mean[column],
            ));
        }
        // The closed form on standardised rows is the closed form on the original rows (an
        // affine change of the features, with an intercept), and far better conditioned.
        let standardized = statistics.table(&table.x, &y, &parts.train);
        let ols = least_squares(&standardized).map(|fit| statistics.to_original(&fit.a));
        let (scaling, train) = if source.standardize {
            (statistics, standardized)
        } else {
            drop(standardized);
            let identity = Scaling::identity(d);
            let train = identity.table(&table.x, &y, &parts.train);
            (identity, train)
        };
        let valid = if parts.valid.is_empty() {
            Table::new(Vec::new(), Vec::new(), d + 1)
        } else {
            scaling.table(&table.x, &y, &parts.valid)
        };
        Ok(Self {
            path: source.path.clone(),
            standardized: source.standardize,
            features: table.features,
            target: source.target.clone(),
            scaling,
            train: Arc::new(train),
            valid,
            rows: table.rows,
            skipped: table.skipped,
            ols,
        })
    }

    /// Everything `descent fit` reports about the model's parameters `a` (as trained: one per
    /// scaled feature, then the intercept).
    pub fn report(&self, a: &[f64]) -> FitReport {
        let (coefficients, intercept) = self.scaling.to_original(a);
        let ols = self.ols.as_ref().ok();
        let ols_a = ols.map(|(c, i)| self.to_model(c, *i));
        let gap_relative = ols.map(|(ols_coefficients, ols_intercept)| {
            coefficients
                .iter()
                .chain([&intercept])
                .zip(ols_coefficients.iter().chain([ols_intercept]))
                .map(|(c, o)| (c - o).abs() / o.abs().max(f64::MIN_POSITIVE))
                .fold(0.0, f64::max)
        });
        let has_valid = !self.valid.is_empty();
        FitReport {
            train: Metrics::of(&self.train, a),
            valid: has_valid.then(|| Metrics::of(&self.valid, a)),
            ols_train: ols_a.as_ref().map(|o| Metrics::of(&self.train, o)),
            ols_valid: ols_a.as_ref().filter(|_| has_valid).map(|o| Metrics::of(&self.valid, o)),
            ols_coefficients: ols.map(|o| o.0.clone()),
            ols_intercept: ols.map(|o| o.1),
            coefficients,
            intercept,
            gap_relative,
        }
    }

    /// Coefficients and intercept on the original scale as the model's parameters.
    pub fn to_model(&self, coefficients: &[f64], intercept: f64) -> Vec<f64> {
        let mut a: Vec<f64> = coefficients.iter().zip(&self.scaling.scale).map(|(c, s)| c * s).collect();
        let shift: f64 = coefficients.iter().zip(&self.scaling.mean).map(|(c, m)| c * m).sum();
        a.push(intercept + shift);
        a
    }
}

fn constant_column(path: &Path, name: &str, column: usize, value: f64) -> DataError {
    DataError::Column {
        path: path.into(),
        column,
        name: name.into(),
        message: format!(
            "every training row holds the same value ({value}): a constant feature cannot be standardised and adds nothing beside the intercept; leave it out of --features"
        ),
    }
}

/// Mean squared error, its root and R² of some predictions.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Mean squared error.
    pub mse: f64,
    /// Its square root, in the target's units.
    pub rmse: f64,
    /// The coefficient of determination, `1 - SSE / SST` with SST about these rows' own mean
    /// target (as scikit-learn's `r2_score`); NaN when every target is equal.
    pub r2: f64,
}

impl Metrics {
    /// The metrics of the predictions `x·a` on `table`, accumulated in `f64`.
    pub fn of(table: &Table, a: &[f64]) -> Self {
        let mse = table.mse(a);
        let n = table.len() as f64;
        let mean = table.y().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let variance = table.y().iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
        let r2 = if variance > 0.0 { 1.0 - mse / variance } else { f64::NAN };
        Self { mse, rmse: mse.sqrt(), r2 }
    }
}

/// The results of a fit, on the original scale.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Gradient descent's coefficients, one per feature.
    pub coefficients: Vec<f64>,
    /// Gradient descent's intercept.
    pub intercept: f64,
    /// The closed-form least-squares coefficients on the training rows (`None` when the
    /// features are linearly dependent: no unique solution).
    pub ols_coefficients: Option<Vec<f64>>,
    /// The closed-form intercept.
    pub ols_intercept: Option<f64>,
    /// Gradient descent's metrics on the training rows.
    pub train: Metrics,
    /// The closed form's metrics on the training rows.
    pub ols_train: Option<Metrics>,
    /// Gradient descent's metrics on the validation rows, when there are any.
    pub valid: Option<Metrics>,
    /// The closed form's metrics on the validation rows.
    pub ols_valid: Option<Metrics>,
    /// The largest relative difference between a parameter (coefficient or intercept) and its
    /// closed-form value: `|b - b_ols| / |b_ols|`.
    pub gap_relative: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardising_and_back_is_the_same_line() {
        // Two features, three rows.
        let x = [1.0f32, 100.0, 2.0, 300.0, 3.0, 200.0];
        let y = [1.0f32, 2.0, 3.0];
        let rows = [0, 1, 2];
        let scaling = Scaling::standardize(&x, 2, &rows);
        assert!((scaling.mean[0] - 2.0).abs() < 1e-12 && (scaling.mean[1] - 200.0).abs() < 1e-12);
        assert!((scaling.scale[0] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        let table = scaling.table(&x, &y, &rows);
        let a = [0.5, -0.25, 7.0];
        let (coefficients, intercept) = scaling.to_original(&a);
        for row in 0..3 {
            let scaled: f64 = table.row(row).iter().zip(&a).map(|(&v, a)| f64::from(v) * a).sum();
            let original: f64 = x[row * 2..row * 2 + 2]
                .iter()
                .zip(&coefficients)
                .map(|(&v, c)| f64::from(v) * c)
                .sum::<f64>()
                + intercept;
            assert!((scaled - original).abs() < 1e-5, "{scaled} {original}");
        }
    }

    #[test]
    fn constant_columns_are_found() {
        let scaling = Scaling::standardize(&[1.0, 5.0, 2.0, 5.0], 2, &[0, 1]);
        assert_eq!(scaling.constant_column(), Some(1));
    }

    #[test]
    fn r2_of_the_mean_is_zero_and_of_a_perfect_fit_one() {
        let table = Table::new(vec![1.0, 1.0, 2.0, 1.0, 3.0, 1.0], vec![2.0, 4.0, 6.0], 2);
        assert!(Metrics::of(&table, &[0.0, 4.0]).r2.abs() < 1e-12);
        let perfect = Metrics::of(&table, &[2.0, 0.0]);
        assert!((perfect.r2 - 1.0).abs() < 1e-12 && perfect.rmse < 1e-12);
    }
}
