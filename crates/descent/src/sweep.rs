//! Hyperparameter sweeps (`descent sweep --config sweep.toml`): a base run configuration and the
//! values to try, as a grid or as seeded random draws (learning rates log-uniform). Each trial
//! is a normal run folder under the sweep's folder; the record of every trial (`sweep.json`,
//! `sweep.csv`), the metric against each swept value (`sweep.png`) and the best trial's
//! configuration (`best.toml`) are rewritten after each trial, so an interrupted sweep shows what
//! it has done and resumes where it stopped.
//!
//! ```toml
//! base = "run.toml"         # a run configuration, relative to this file
//! metric = "valid_loss"     # optional: valid_loss when the runs report it, else loss
//!
//! [grid]                    # every combination, in the keys' alphabetical order
//! "optimizer.lr" = [0.01, 0.1]
//! "training.batch_size" = [16, 64]
//!
//! # or, instead of [grid]:
//! [random]
//! trials = 8
//! seed = 1
//! "optimizer.lr" = { log_uniform = [1e-4, 1e-1] }
//! "optimizer.momentum" = { uniform = [0.8, 0.99] }
//! "training.batch_size" = [16, 32, 64]   # one of these
//! ```
//!
//! The library plans the trials and keeps the record; running a trial (a process of its own, so
//! trials can run side by side and a diverging one ends only itself) is the caller's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::RunConfig;
use crate::data::random::SeededRng;
use crate::limits::{MAX_CONFIG_BYTES, read_text};
use crate::report::csv_field;
use crate::report::plots::{Format, LineChart, Series};

/// The sweep file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    base: PathBuf,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    grid: Option<BTreeMap<String, Vec<toml::Value>>>,
    #[serde(default)]
    random: Option<toml::Table>,
}

/// How one key's values are drawn in a random sweep.
#[derive(Clone, Debug, PartialEq)]
enum Draw {
    /// One of these, each as likely.
    OneOf(Vec<toml::Value>),
    /// `exp(U(ln low, ln high))`: for learning rates and other scales.
    LogUniform(f64, f64),
    /// `U(low, high)`.
    Uniform(f64, f64),
}

/// One trial: the values it sets and the configuration they make.
#[derive(Clone, Debug)]
pub struct Trial {
    /// 1-based.
    pub number: usize,
    /// `(key, value)` for each swept key, in the sweep's key order.
    pub values: Vec<(String, toml::Value)>,
    /// The base configuration with the values set.
    pub config: RunConfig,
}

impl Trial {
    /// The trial's run folder's name: `trial-001`.
    pub fn folder_name(&self) -> String {
        format!("trial-{:03}", self.number)
    }

    /// Its run folder in the sweep folder `dir`.
    pub fn folder(&self, dir: &Path) -> PathBuf {
        dir.join(self.folder_name())
    }

    /// Its values as TOML text, by key.
    pub fn value_texts(&self) -> BTreeMap<String, String> {
        self.values.iter().map(|(key, value)| (key.clone(), value.to_string())).collect()
    }

    /// The values as `key=value, ...`.
    pub fn describe(&self) -> String {
        self.values.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(", ")
    }
}

/// A planned sweep.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The swept keys, in order.
    pub keys: Vec<String>,
    /// The trials, in the order they run.
    pub trials: Vec<Trial>,
    /// The metric trials are ranked by, when the file names one.
    pub metric: Option<String>,
}

/// Why a sweep cannot be planned or continued. Every message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep file cannot be read or is not a sweep.
    #[error("{}: {message}", path.display())]
    File {
        /// The sweep file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The sweep folder holds another sweep.
    #[error("{}: {message}", dir.display())]
    Folder {
        /// The sweep folder.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The largest number of trials a sweep plans.
pub const MAX_TRIALS: usize = 10_000;

impl Sweep {
    /// Read the sweep file at `path` and plan its trials: each trial's configuration is the base
    /// with the trial's values set (as `--set` sets them) and checked.
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let fail = |message: String| SweepError::File { path: path.into(), message };
        let text = read_text(path, MAX_CONFIG_BYTES).map_err(|error| fail(error.to_string()))?;
        let file: SweepFile = toml::from_str(&text).map_err(|error| fail(error.message().to_string()))?;
        let base_path = path.parent().unwrap_or(Path::new(".")).join(&file.base);
        let base = RunConfig::load(&base_path).map_err(|error| fail(format!("base: {error}")))?;
        let rows = match (&file.grid, &file.random) {
            (Some(grid), None) => grid_rows(grid).map_err(fail)?,
            (None, Some(random)) => random_rows(random).map_err(fail)?,
            _ => return Err(fail("give the values to try as [grid] or as [random], one of the two".into())),
        };
        let keys: Vec<String> =
            rows.first().map(|row| row.iter().map(|(key, _)| key.clone()).collect()).unwrap_or_default();
        let mut trials = Vec::with_capacity(rows.len());
        for (index, values) in rows.into_iter().enumerate() {
            let mut config = base.clone();
            for (key, value) in &values {
                config
                    .set(&format!("{key}={value}"))
                    .map_err(|error| fail(format!("trial {} ({key} = {value}): {error}", index + 1)))?;
            }
            trials.push(Trial { number: index + 1, values, config });
        }
        Ok(Self { keys, trials, metric: file.metric })
    }

    /// The metric trials are ranked by, and whether larger is better: the file's, else
    /// `valid_loss` when any finished trial reports it, else `loss`. Accuracies are maximised,
    /// everything else minimised.
    pub fn ranking(&self, results: &[TrialResult]) -> (String, bool) {
        let reported = |key: &str| results.iter().any(|r| r.figures.contains_key(key));
        let metric = match &self.metric {
            Some(metric) => metric.clone(),
            None if reported("valid_loss") => "valid_loss".into(),
            None => "loss".into(),
        };
        let larger = metric.contains("accuracy");
        (metric, larger)
    }

    /// The best finished trial by [`Self::ranking`], if any finished with the metric.
    pub fn best<'a>(&self, results: &'a [TrialResult]) -> Option<&'a TrialResult> {
        let (metric, larger) = self.ranking(results);
        let value = |r: &TrialResult| r.figures.get(&metric).copied().filter(|v| v.is_finite());
        results.iter().filter(|r| r.status == Status::Finished && value(r).is_some()).min_by(|a, b| {
            let (a, b) = (value(a).unwrap_or(f64::NAN), value(b).unwrap_or(f64::NAN));
            if larger { b.total_cmp(&a) } else { a.total_cmp(&b) }
        })
    }
}

/// Every combination of the grid's values, the first key varying slowest.
fn grid_rows(grid: &BTreeMap<String, Vec<toml::Value>>) -> Result<Vec<Vec<(String, toml::Value)>>, String> {
    if grid.is_empty() {
        return Err("[grid] names no key to sweep".into());
    }
    let mut rows: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (key, values) in grid {
        if values.is_empty() {
            return Err(format!("grid.\"{key}\" lists no values"));
        }
        rows = rows
            .into_iter()
            .flat_map(|row| {
                values.iter().map(move |value| [row.clone(), vec![(key.clone(), value.clone())]].concat())
            })
            .collect();
        if rows.len() > MAX_TRIALS {
            return Err(format!("the grid makes more than {MAX_TRIALS} trials"));
        }
    }
    Ok(rows)
}

/// `trials` draws of every key of `[random]` from its seed.
fn random_rows(random: &toml::Table) -> Result<Vec<Vec<(String, toml::Value)>>, String> {
    let count = |name: &str| -> Result<u64, String> {
        match random.get(name) {
            Some(toml::Value::Integer(value)) if *value >= 1 => Ok(*value as u64),
            Some(other) => Err(format!("random.{name} must be a whole number of at least 1, got {other}")),
            None => Err(format!(
                "random.{name} is missing: say how many trials to draw (trials) and from which seed (seed)"
            )),
        }
    };
    let trials = count("trials")?;
    if trials > MAX_TRIALS as u64 {
        return Err(format!("random.trials must be at most {MAX_TRIALS}, got {trials}"));
    }
    let seed = count("seed")?;
    let draws: Vec<(String, Draw)> = random
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "trials" | "seed"))
        .map(|(key, value)| draw_of(key, value).map(|draw| (key.clone(), draw)))
        .collect::<Result<_, _>>()?;
    if draws.is_empty() {
        return Err("[random] names no key to sweep".into());
    }
    let mut rng = SeededRng::new(seed);
    Ok((0..trials)
        .map(|_| {
            draws
                .iter()
                .map(|(key, draw)| {
                    let value = match draw {
                        Draw::OneOf(values) => values
                            [((rng.unit() * values.len() as f64) as usize).min(values.len() - 1)]
                        .clone(),
                        Draw::LogUniform(low, high) => {
                            toml::Value::Float(round((low.ln() + rng.unit() * (high.ln() - low.ln())).exp()))
                        }
                        Draw::Uniform(low, high) => {
                            toml::Value::Float(round(low + rng.unit() * (high - low)))
                        }
                    };
                    (key.clone(), value)
                })
                .collect()
        })
        .collect())
}

/// A drawn value to 6 significant digits, so that it reads well in folders and tables.
fn round(value: f64) -> f64 {
    format!("{value:.5e}").parse().unwrap_or(value)
}

/// How `[random]`'s `key` is drawn: a list (one of), `{ log_uniform = [a, b] }` or
/// `{ uniform = [a, b] }`.
fn draw_of(key: &str, value: &toml::Value) -> Result<Draw, String> {
    let bounds = |pair: &toml::Value, positive: bool| -> Option<(f64, f64)> {
        let pair = pair.as_array()?;
        let number = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        let (low, high) = (number(pair.first()?)?, number(pair.get(1)?)?);
        (pair.len() == 2 && low.is_finite() && high.is_finite() && low < high && (!positive || low > 0.0))
            .then_some((low, high))
    };
    let wrong = || {
        format!(
            "random.\"{key}\" must be a list of values, {{ log_uniform = [low, high] }} (0 < low < high) or {{ uniform = [low, high] }} (low < high), got {value}"
        )
    };
    match value {
        toml::Value::Array(values) if !values.is_empty() => Ok(Draw::OneOf(values.clone())),
        toml::Value::Table(table) if table.len() == 1 => {
            if let Some(pair) = table.get("log_uniform") {
                bounds(pair, true).map(|(low, high)| Draw::LogUniform(low, high)).ok_or_else(wrong)
            } else if let Some(pair) = table.get("uniform") {
                bounds(pair, false).map(|(low, high)| Draw::Uniform(low, high)).ok_or_else(wrong)
            } else {
                Err(wrong())
            }
        }
        _ => Err(wrong()),
    }
}

/// How a trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It ran to its end (or early stopping ended it).
    Finished,
    /// Its loss became NaN or infinite: recorded, and the sweep goes on.
    Diverged,
    /// It failed otherwise (a device, the data): recorded with the reason.
    Failed,
}

/// What a trial gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// The trial's number (1-based).
    pub trial: usize,
    /// Its values, as TOML text, by key.
    pub values: BTreeMap<String, String>,
    /// How it ended.
    pub status: Status,
    /// Its final figures, from its summary: `loss`, `valid_loss`, `accuracy`, `error_rate`,
    /// `tta_accuracy`, `epochs`, `steps`, `seconds`, as the run reports them.
    pub figures: BTreeMap<String, f64>,
    /// For a failure, its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The summary keys a trial's figures are taken from.
const FIGURES: [&str; 8] =
    ["loss", "valid_loss", "accuracy", "error_rate", "tta_accuracy", "epochs", "steps", "seconds"];

impl TrialResult {
    /// A finished trial's result from its run summary (`summary.json`): each of [`FIGURES`]
    /// the summary has as a number (`epochs` as the count when it is the list of epochs).
    pub fn finished(trial: &Trial, summary: &Value) -> Self {
        let mut figures = BTreeMap::new();
        for key in FIGURES {
            let value = match &summary[key] {
                Value::Array(epochs) => Some(epochs.len() as f64),
                other => other.as_f64(),
            };
            if let Some(value) = value {
                figures.insert(key.to_string(), value);
            }
        }
        Self { figures, ..Self::ended(trial, Status::Finished, None) }
    }

    /// A trial that ended without a summary.
    pub fn ended(trial: &Trial, status: Status, message: Option<String>) -> Self {
        Self { trial: trial.number, values: trial.value_texts(), status, figures: BTreeMap::new(), message }
    }

    /// A finished trial's result, from the summary its run wrote into its folder under the
    /// sweep folder `dir`; `None` when there is no summary (the trial has not finished), an
    /// error when it cannot be read.
    pub fn read_finished(trial: &Trial, dir: &Path) -> Option<Result<Self, String>> {
        let path = trial.folder(dir).join(crate::report::SUMMARY_FILE);
        if !path.exists() {
            return None;
        }
        let text = read_text(&path, MAX_CONFIG_BYTES).map_err(|error| format!("{}: {error}", path.display()));
        Some(text.and_then(|text| {
            let summary =
                serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
            Ok(Self::finished(trial, &summary))
        }))
    }
}

/// The record of a sweep: `sweep.json` (every result), `sweep.csv` (a row per trial that ended),
/// `sweep.png` and `best.toml`, in the sweep folder.
pub struct Record<'a> {
    /// The sweep.
    pub sweep: &'a Sweep,
    /// The sweep folder.
    pub dir: &'a Path,
}

/// The record's file of every result.
pub const RECORD_FILE: &str = "sweep.json";

impl Record<'_> {
    /// The results recorded so far (none when the folder has no record), checked against the
    /// sweep: a folder of another sweep is refused.
    pub fn read(&self) -> Result<Vec<TrialResult>, SweepError> {
        let path = self.dir.join(RECORD_FILE);
        let fail = |message: String| SweepError::Folder { dir: self.dir.into(), message };
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = read_text(&path, 64 << 20).map_err(|error| fail(format!("{RECORD_FILE}: {error}")))?;
        let results: Vec<TrialResult> = serde_json::from_str(&text).map_err(|error| {
            fail(format!("{RECORD_FILE} is damaged ({error}): move it away to run the sweep again"))
        })?;
        for result in &results {
            let planned = self.sweep.trials.get(result.trial.wrapping_sub(1));
            let same = planned.is_some_and(|trial| trial.value_texts() == result.values);
            if !same {
                return Err(fail(format!(
                    "this folder holds another sweep (its trial {} tried {:?}): give another --out, or the same sweep file",
                    result.trial, result.values
                )));
            }
        }
        Ok(results)
    }

    /// Write every file of the record from `results` (in trial order), each atomically.
    pub fn write(&self, results: &[TrialResult]) -> Result<(), String> {
        let write = |name: &str, bytes: &[u8]| {
            crate::report::write_atomic(&self.dir.join(name), bytes)
                .map_err(|error| format!("{name}: {error}"))
        };
        let json = serde_json::to_string_pretty(results).map_err(|error| error.to_string())?;
        write(RECORD_FILE, json.as_bytes())?;
        write("sweep.csv", self.csv(results).as_bytes())?;
        let png = crate::report::plots::panels(&self.charts(results), Format::Png)
            .map_err(|error| error.to_string())?;
        write("sweep.png", &png)?;
        if let Some(best) = self.sweep.best(results) {
            let trial = &self.sweep.trials[best.trial - 1];
            let text = format!(
                "# The best trial of this sweep, trial {} ({}): run it with `descent train --config FILE`\n{}",
                trial.number,
                trial.describe(),
                trial.config.to_toml()
            );
            write("best.toml", text.as_bytes())?;
        }
        Ok(())
    }

    /// `sweep.csv`: `trial`, each swept key, `status`, each figure any trial has, `folder`.
    pub fn csv(&self, results: &[TrialResult]) -> String {
        let figures: Vec<&str> = FIGURES
            .iter()
            .copied()
            .filter(|key| results.iter().any(|r| r.figures.contains_key(*key)))
            .collect();
        let mut header = vec!["trial".to_string()];
        header.extend(self.sweep.keys.iter().map(|key| csv_field(key)));
        header.push("status".into());
        header.extend(figures.iter().map(|key| key.to_string()));
        header.push("folder".into());
        let mut text = header.join(",") + "\n";
        for result in results {
            let mut row = vec![result.trial.to_string()];
            row.extend(
                self.sweep
                    .keys
                    .iter()
                    .map(|key| csv_field(result.values.get(key).map_or("", String::as_str))),
            );
            row.push(format!("{:?}", result.status).to_lowercase());
            row.extend(
                figures.iter().map(|key| result.figures.get(*key).map_or(String::new(), |v| v.to_string())),
            );
            row.push(format!("trial-{:03}", result.trial));
            text.push_str(&row.join(","));
            text.push('\n');
        }
        text
    }

    /// One chart per swept key: the metric of each finished trial against the key's value
    /// (values that are not numbers by their place in the key's list).
    fn charts(&self, results: &[TrialResult]) -> Vec<LineChart> {
        let (metric, _) = self.sweep.ranking(results);
        self.sweep
            .keys
            .iter()
            .map(|key| {
                let text: Vec<String> = self
                    .sweep
                    .trials
                    .iter()
                    .map(|trial| trial.value_texts().remove(key).unwrap_or_default())
                    .collect();
                let numbers: Option<Vec<f64>> = text.iter().map(|t| t.parse::<f64>().ok()).collect();
                let mut distinct = text.clone();
                distinct.sort();
                distinct.dedup();
                let x = |result: &TrialResult| {
                    let value = result.values.get(key).cloned().unwrap_or_default();
                    match &numbers {
                        Some(_) => value.parse::<f64>().ok(),
                        None => distinct.iter().position(|d| *d == value).map(|p| p as f64),
                    }
                };
                let mut points: Vec<(f64, f64)> = results
                    .iter()
                    .filter(|r| r.status == Status::Finished)
                    .filter_map(|r| Some((x(r)?, *r.figures.get(&metric)?)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let log_x = numbers.as_ref().is_some_and(|n| {
                    let (low, high) =
                        n.iter().fold((f64::INFINITY, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
                    low > 0.0 && high / low >= 100.0
                });
                let name = match &numbers {
                    Some(_) => key.clone(),
                    None => format!("{key} ({})", distinct.join(", ")),
                };
                LineChart {
                    title: format!("{metric} against {key}"),
                    x_label: name,
                    y_label: metric.clone(),
                    series: vec![Series { name: metric.clone(), points }],
                    log_x,
                    log_y: false,
                    marker: None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_grid_is_every_combination_with_the_first_key_slowest() {
        let grid: BTreeMap<String, Vec<toml::Value>> =
            toml::from_str("a = [1, 2]\nb = [\"x\", \"y\", \"z\"]").unwrap();
        let rows = grid_rows(&grid).unwrap();
        let text: Vec<String> = rows
            .iter()
            .map(|row| row.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            text,
            ["a=1 b=\"x\"", "a=1 b=\"y\"", "a=1 b=\"z\"", "a=2 b=\"x\"", "a=2 b=\"y\"", "a=2 b=\"z\""]
        );
        let empty: BTreeMap<String, Vec<toml::Value>> = toml::from_str("a = []").unwrap();
        assert!(grid_rows(&empty).unwrap_err().contains("grid.\"a\" lists no values"));
    }

    /// Log-uniform draws are uniform in the logarithm: a quarter of them in each quarter of
    /// [ln low, ln high].
    #[test]
    fn random_draws_repeat_from_the_seed_and_learning_rates_are_log_uniform() {
        let spec = table(
            "trials = 4000\nseed = 3\n\"optimizer.lr\" = { log_uniform = [1e-4, 1e-0] }\nbatch = [16, 32]",
        );
        let rows = random_rows(&spec).unwrap();
        assert_eq!(rows, random_rows(&spec).unwrap(), "the seed decides");
        let lrs: Vec<f64> = rows.iter().map(|row| row[1].1.as_float().unwrap()).collect();
        assert!(lrs.iter().all(|&lr| (1e-4..=1.0).contains(&lr)));
        for quarter in 0..4 {
            let (low, high) = (1e-4 * 10f64.powi(quarter), 1e-4 * 10f64.powi(quarter + 1));
            let share = lrs.iter().filter(|&&lr| lr >= low && lr < high).count() as f64 / 4000.0;
            assert!((share - 0.25).abs() < 0.03, "decade {quarter}: {share}");
        }
        let sixteen = rows.iter().filter(|row| row[0].1.as_integer() == Some(16)).count();
        assert!((1800..2200).contains(&sixteen), "{sixteen}");
        for bad in
            ["x = { log_uniform = [0, 1] }", "x = { uniform = [2, 1] }", "x = 3", "x = { normal = [0, 1] }"]
        {
            let spec = table(&format!("trials = 2\nseed = 1\n{bad}"));
            assert!(random_rows(&spec).unwrap_err().contains("random.\"x\""), "{bad}");
        }
        assert!(random_rows(&table("seed = 1\nx = [1]")).unwrap_err().contains("random.trials is missing"));
    }
}
