//! The run's curves and the exported models, checked by the tools people use them with:
//! TensorBoard's own event reader and onnx / onnxruntime, through `tests/interop/check.py`.
//!
//! The Python is `DESCENT_PYTHON` (CI points it at a virtual environment with tensorboard, onnx,
//! onnxruntime and numpy), else `python3`. Without those packages a test prints a notice and
//! skips, unless `DESCENT_REQUIRE_INTEROP` is set (CI sets it): then it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use descent::train::{CHECKPOINT_FILE, Checkpoint};

use crate::common::{rejects, run_ok};

const CHECK_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/check.py");
const MLP_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mlp.toml");
const DIGITS_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv");

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch_in("interop", name)
}

/// The Python interpreter with the tools, or `None` after a notice when it is missing (a failure
/// when `DESCENT_REQUIRE_INTEROP` is set).
pub(crate) fn python() -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let python =
            std::env::var_os("DESCENT_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
        match Command::new(&python).args([CHECK_PY, "probe"]).output() {
            Ok(output) if output.status.success() => Ok(python),
            Ok(output) => {
                Err(format!("{} lacks {}", python.display(), String::from_utf8_lossy(&output.stdout).trim()))
            }
            Err(error) => Err(format!("{} cannot run: {error}", python.display())),
        }
    });
    crate::common::require(
        crate::common::Tool::Interop,
        found.clone(),
        "pip install tensorboard onnx onnxruntime numpy into a virtual environment and set DESCENT_PYTHON to its python; docs/testing.md",
    )
}

/// `check.py`'s JSON answer to `args`.
fn check(python: &Path, args: &[&str]) -> serde_json::Value {
    let output = Command::new(python).arg(CHECK_PY).args(args).output().expect("run check.py");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "check.py {args:?}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("check.py {args:?}: {e}: {stderr}"))
}

/// The scalars of a run folder's event files as TensorBoard reads them: tag to (step, value).
struct Logged {
    scalars: BTreeMap<String, Vec<(u64, f64)>>,
    texts: BTreeMap<String, Vec<(u64, String)>>,
}

fn logged(python: &Path, dir: &Path) -> Logged {
    let json = check(python, &["events", dir.to_str().unwrap()]);
    let pairs = |values: &serde_json::Value| -> Vec<(u64, serde_json::Value)> {
        values.as_array().unwrap().iter().map(|pair| (pair[0].as_u64().unwrap(), pair[1].clone())).collect()
    };
    let scalars = json["scalars"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(tag, values)| {
            (tag.clone(), pairs(values).into_iter().map(|(step, v)| (step, v.as_f64().unwrap())).collect())
        })
        .collect();
    let texts = json["texts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(tag, values)| {
            (
                tag.clone(),
                pairs(values).into_iter().map(|(step, v)| (step, v.as_str().unwrap().to_string())).collect(),
            )
        })
        .collect();
    Logged { scalars, texts }
}

impl Logged {
    fn steps(&self, tag: &str) -> Vec<u64> {
        self.scalars.get(tag).map(|values| values.iter().map(|(step, _)| *step).collect()).unwrap_or_default()
    }

    /// The one value of `tag` at `step`.
    fn at(&self, tag: &str, step: u64) -> f64 {
        let found: Vec<f64> =
            self.scalars[tag].iter().filter(|(s, _)| *s == step).map(|(_, value)| *value).collect();
        assert_eq!(found.len(), 1, "{tag} at step {step}: {found:?}");
        found[0]
    }
}

/// `metrics.csv` as columns by name, one map per row (empty fields left out).
fn metrics(dir: &Path) -> Vec<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .filter(|(_, field)| !field.is_empty())
                .map(|(name, field)| (name.to_string(), field.parse().unwrap()))
                .collect()
        })
        .collect()
}

/// Every column of every row of `metrics.csv` is the logged value at its step (the rate of an
/// epoch row, its last update's, one step earlier), within 1e-6: values are logged as f32.
fn assert_logged_as_metrics(log: &Logged, dir: &Path, full_batch: bool) {
    let rows = metrics(dir);
    assert!(!rows.is_empty());
    for row in &rows {
        let step = row["step"] as u64;
        for (column, value) in row {
            let at = match column.as_str() {
                "step" | "epoch" => continue,
                "lr" if !full_batch => step - 1,
                _ => step,
            };
            let logged = log.at(column, at);
            assert!(
                (logged - value).abs() <= 1e-6,
                "{column} at step {step}: logged {logged}, metrics.csv {value}"
            );
        }
    }
}

fn unique_steps(steps: &[u64]) -> Vec<u64> {
    let mut sorted = steps.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

#[test]
fn tensorboard_reads_the_lessons_curves_as_metrics_csv_has_them() {
    let Some(python) = python() else { return };
    let dir = scratch("lesson");
    run_ok(&["lesson2", "--out", dir.to_str().unwrap(), "-q"]);
    let log = logged(&python, &dir);
    assert_eq!(log.scalars.keys().collect::<Vec<_>>(), ["lr", "train_loss"]);
    // Full-batch descent logs every step's loss and rate, each step once.
    let expected: Vec<u64> = (0..100).collect();
    assert_eq!(log.steps("train_loss"), expected);
    assert_eq!(log.steps("lr"), expected);
    assert_logged_as_metrics(&log, &dir, true);
    assert!((log.at("train_loss", 0) - 6.394_186_5).abs() < 1e-6, "the lesson's first loss");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert_eq!(log.texts["config"].len(), 1);
    assert!(log.texts["config"][0].1.contains(config.trim_end()), "{:?}", log.texts["config"]);

    // A diverged run keeps what it logged: every step before the one whose loss was not finite.
    let diverged = scratch("diverged");
    let output =
        crate::common::descent(&["lesson2", "--lr", "1.5", "--out", diverged.to_str().unwrap(), "-q"]);
    assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
    let log = logged(&python, &diverged);
    let steps = log.steps("train_loss");
    assert!(steps.len() > 50, "{steps:?}");
    assert_eq!(steps, (0..steps.len() as u64).collect::<Vec<_>>());
    assert_logged_as_metrics(&log, &diverged, true);
}

#[test]
fn tensorboard_reads_a_cnn_run_and_a_resumed_run_logs_each_step_once() {
    let Some(python) = python() else { return };
    let dir = scratch("cnn");
    let path = dir.to_str().unwrap();
    run_ok(&["cnn", "--epochs", "2", "--out", path, "-q"]);
    run_ok(&["train", "--resume", path, "--epochs", "3", "-q"]);
    let log = logged(&python, &dir);
    let tags: Vec<&String> = log.scalars.keys().collect();
    assert_eq!(tags, ["accuracy", "batch_loss", "error_rate", "lr", "train_loss", "valid_loss"]);
    assert_logged_as_metrics(&log, &dir, false);
    // 1,438 training digits in batches of 64: 23 updates an epoch, 69 in 3 epochs, each once.
    let expected: Vec<u64> = (0..69).collect();
    assert_eq!(log.steps("batch_loss"), expected);
    assert_eq!(log.steps("lr"), expected);
    assert_eq!(log.steps("train_loss"), [23, 46, 69]);
    // Each epoch's training loss is its batches' losses weighted by their rows.
    let sizes: Vec<f64> = (0..23).map(|batch| if batch < 22 { 64.0 } else { 30.0 }).collect();
    for (epoch, row) in metrics(&dir).iter().enumerate() {
        let losses = &log.scalars["batch_loss"][epoch * 23..(epoch + 1) * 23];
        let mean = losses.iter().zip(&sizes).map(|((_, loss), rows)| loss * rows).sum::<f64>() / 1438.0;
        assert!(
            (mean - row["train_loss"]).abs() < 1e-5,
            "epoch {}: {mean} vs {}",
            epoch + 1,
            row["train_loss"]
        );
    }
    // The configuration, as the run started and as it was resumed.
    let texts: Vec<u64> = log.texts["config"].iter().map(|(step, _)| *step).collect();
    assert_eq!(texts, [0, 46]);
}

#[cfg(unix)]
#[test]
fn an_interrupted_run_keeps_its_curves_and_its_resumption_repeats_no_step() {
    use crate::common::{sigint, spawn_until};
    let Some(python) = python() else { return };
    let dir = scratch("sigint");
    let path = dir.to_str().unwrap();
    let run = ["train", "--config", MLP_TOML, "--epochs", "1000", "--out", path, "--device", "flex"];
    let settings = ["--batch-size", "16", "--set", "model.hidden=512"];
    let (child, lines) = spawn_until(&[&run[..], &settings].concat(), "epoch 2/1000");
    sigint(&child);
    lines.for_each(drop);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));

    // What was logged up to the signal is there: every update up to the checkpoint's.
    let checkpoint = Checkpoint::read(&dir.join(CHECKPOINT_FILE)).unwrap();
    let step = checkpoint.state.step as u64;
    let log = logged(&python, &dir);
    assert_eq!(log.steps("batch_loss"), (0..step).collect::<Vec<_>>());
    assert_logged_as_metrics(&log, &dir, false);

    let epochs = (checkpoint.state.epoch + 2).to_string();
    run_ok(&["train", "--resume", path, "--epochs", &epochs, "-q"]);
    let log = logged(&python, &dir);
    let steps = log.steps("batch_loss");
    assert_eq!(steps, unique_steps(&steps), "a step logged twice");
    let last = metrics(&dir).last().unwrap()["step"] as u64;
    assert_eq!(steps, (0..last).collect::<Vec<_>>());
    assert_logged_as_metrics(&log, &dir, false);
}

/// Run `model` in onnxruntime (after onnx's checker) on `values` shaped `dims`: the output's
/// name, shape and values.
pub(crate) fn onnx_run(
    python: &Path,
    model: &Path,
    values: &[f32],
    dims: &[usize],
) -> (String, Vec<usize>, Vec<f64>) {
    let input = model.with_extension("input.f32");
    std::fs::write(&input, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
    let json = check(python, &["onnx", model.to_str().unwrap(), input.to_str().unwrap(), &dims.join(",")]);
    let shape = json["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let values = json["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    (json["output"].as_str().unwrap().to_string(), shape, values)
}

/// The CSV `descent predict` printed, as rows of fields.
fn predicted(output: &std::process::Output) -> Vec<Vec<String>> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1)
        .map(|line| line.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn the_linear_models_onnx_predicts_the_lessons_x_as_descent_predict_does() {
    let Some(python) = python() else { return };
    let dir = scratch("linear");
    run_ok(&["lesson2", "--out", dir.to_str().unwrap(), "-q"]);
    run_ok(&["export", "--model", dir.to_str().unwrap(), "--format", "onnx"]);
    // x over the lesson's range U(-1, 1), its ends included.
    let x: Vec<f32> = (0..=100).map(|i| -1.0 + i as f32 / 50.0).collect();
    let csv = dir.join("x.csv");
    let text: String = std::iter::once("x".to_string())
        .chain(x.iter().map(|v| v.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&csv, text + "\n").unwrap();
    let rows =
        predicted(&run_ok(&["predict", "--model", dir.to_str().unwrap(), "--input", csv.to_str().unwrap()]));
    let (name, shape, values) = onnx_run(&python, &dir.join("model.onnx"), &x, &[x.len(), 1]);
    assert_eq!((name.as_str(), shape), ("prediction", vec![x.len(), 1]));
    assert_eq!(rows.len(), x.len());
    for (row, onnx) in rows.iter().zip(&values) {
        let descent: f64 = row[1].parse().unwrap();
        assert!((descent - onnx).abs() <= 1e-6, "x = {}: descent {descent}, onnxruntime {onnx}", row[0]);
    }
}

/// The digits of `data/digits.csv` as the models take them: `[n, 1, 8, 8]`, 0..16 scaled to 0..1.
fn digit_images() -> (Vec<f32>, usize) {
    let text = std::fs::read_to_string(DIGITS_CSV).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let pixels: Vec<usize> = (0..header.len()).filter(|&i| header[i] != "label").collect();
    assert_eq!(pixels.len(), 64);
    let mut images = Vec::new();
    let mut count = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        images.extend(pixels.iter().map(|&i| fields[i].trim().parse::<f32>().unwrap() / 16.0));
        count += 1;
    }
    (images, count)
}

/// A classifier's ONNX export, with and without softmax, against `descent predict` on the
/// digits: the same class, the probability of it within 1e-5.
fn assert_classifier_exports(python: &Path, dir: &Path) {
    let path = dir.to_str().unwrap();
    let rows = predicted(&run_ok(&["predict", "--model", path, "--input", DIGITS_CSV]));
    let (images, count) = digit_images();
    assert_eq!(rows.len(), count);
    let probabilities_file = dir.with_extension("probabilities.onnx");
    let out = probabilities_file.to_str().unwrap();
    run_ok(&["export", "--model", path, "--format", "onnx", "--softmax", "--output", out]);
    run_ok(&["export", "--model", path, "--format", "onnx"]);
    let (name, shape, probabilities) = onnx_run(python, &probabilities_file, &images, &[count, 1, 8, 8]);
    assert_eq!((name.as_str(), shape), ("probabilities", vec![count, 10]));
    let (name, _, logits) = onnx_run(python, &dir.join("model.onnx"), &images, &[count, 1, 8, 8]);
    assert_eq!(name, "logits");
    for ((row, p), z) in rows.iter().zip(probabilities.chunks(10)).zip(logits.chunks(10)) {
        let (predicted, confidence): (usize, f64) = (row[1].parse().unwrap(), row[2].parse().unwrap());
        let best = (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        assert_eq!(best, predicted, "row {}: {p:?}", row[0]);
        assert!((p[best] - confidence).abs() <= 1e-5, "row {}: {} vs {confidence}", row[0], p[best]);
        // The logits' softmax is the probabilities.
        let top = z.iter().copied().fold(f64::MIN, f64::max);
        let total: f64 = z.iter().map(|v| (v - top).exp()).sum();
        for (class, &logit) in z.iter().enumerate() {
            assert!(((logit - top).exp() / total - p[class]).abs() <= 1e-5, "row {}, class {class}", row[0]);
        }
    }
}

#[test]
fn the_cnn_and_the_mlp_run_in_onnxruntime_as_descent_predict_says() {
    let Some(python) = python() else { return };
    let cnn = scratch("cnn-model");
    run_ok(&["cnn", "--epochs", "3", "--out", cnn.to_str().unwrap(), "-q"]);
    assert_classifier_exports(&python, &cnn);
    let mlp = scratch("mlp-model");
    run_ok(&["train", "--config", MLP_TOML, "--epochs", "2", "--out", mlp.to_str().unwrap(), "-q"]);
    assert_classifier_exports(&python, &mlp);
}

#[test]
fn export_refuses_bad_formats_targets_and_altered_models_and_writes_nothing() {
    let dir = scratch("refusals");
    let path = dir.to_str().unwrap();
    run_ok(&["lesson2", "--out", path, "-q", "--no-tensorboard"]);
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("tfevents"))
    );
    rejects(&["export", "--model", path, "--format", "tflite"], &["tflite", "onnx", "safetensors"]);
    rejects(&["export", "--model", path, "--format", "onnx", "--softmax"], &["--softmax", "linear"]);
    rejects(&["export", "--model", path, "--format", "safetensors", "--softmax"], &["--softmax", "onnx"]);
    let unwritable = dir.join("no-such-folder").join("model.onnx");
    rejects(
        &["export", "--model", path, "--format", "onnx", "--output", unwritable.to_str().unwrap()],
        &["--output"],
    );
    rejects(
        &[
            "export",
            "--model",
            path,
            "--format",
            "onnx",
            "--output",
            dir.join("config.toml").to_str().unwrap(),
        ],
        &["--output", "config.toml"],
    );
    // An altered model: the checksum no longer matches.
    let model = dir.join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&model, bytes).unwrap();
    rejects(&["export", "--model", path, "--format", "onnx"], &["model.bpk", "SHA-256"]);
    assert!(!dir.join("model.onnx").exists());
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("tmp") || name.ends_with(".onnx"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
