//! A model added in one file and one registration line — the MLP of
//! `crates/descent/src/model/mlp.rs`, named by `examples/mlp.toml` — gets what the built-in CNN
//! gets, through `descent train --config` and no other edit: the run folder and its files,
//! Ctrl-C and a bit-for-bit resume, predict, export, lr-find and bench.

use std::path::{Path, PathBuf};

use descent::config::{ModelConfig, RunConfig};
use descent::data::images::read_digit_rows;
use descent::inference::{SavedModel, load_saved};
use descent::model::MlpConfig;
use descent::train::{CHECKPOINT_FILE, Checkpoint};

use crate::common::{reference_device, rejects, run_ok, same_bits, saved_tensors, summary};
#[cfg(unix)]
use crate::common::{sigint, spawn_until};

/// The configuration of the example.
const MLP_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mlp.toml");
/// The digits shipped with the project, as `descent predict --input` reads them.
const DIGITS_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv");

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch_in("own-model", name)
}

#[test]
fn the_mlp_trains_from_its_configuration_into_a_run_folder_and_predicts_and_exports() {
    let out = scratch("train");
    let dir = out.to_str().unwrap();
    let output =
        run_ok(&["train", "--config", MLP_TOML, "--device", "flex", "--epochs", "5", "--json", "--out", dir]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // 64 pixels → 128 hidden units → 10 classes, each layer with its bias.
    let parameters = 64 * 128 + 128 + 128 * 10 + 10;
    assert!(stdout.contains(&format!("model: mlp, hidden 128: {parameters} parameters")), "{stdout}");
    let summary = summary(&output);
    assert_eq!(summary["command"], "train");
    assert_eq!(summary["parameters"], parameters);
    let epochs = summary["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 5);
    let accuracy = summary["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "MLP accuracy after 5 epochs: {accuracy} (chance is 0.1)");
    for file in ["config.toml", "model.bpk", "model.sha256", "checkpoint.bin", "metrics.csv", "summary.json"]
    {
        assert!(out.join(file).is_file(), "{file} is missing");
    }
    for figure in ["loss", "accuracy", "results", "lr"] {
        assert!(out.join(format!("{figure}.png")).is_file(), "{figure}.png is missing");
    }
    let config = RunConfig::load(&out.join("config.toml")).unwrap();
    assert_eq!(config.model, ModelConfig::Mlp(MlpConfig { hidden: 128 }));
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 5, "{metrics}");

    // predict: the saved model's classes, as the library computes them from model.bpk.
    let predicted = run_ok(&["predict", "--model", dir, "--input", DIGITS_CSV]);
    let stdout = String::from_utf8_lossy(&predicted.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("row,predicted,confidence,label"));
    let classes: Vec<u8> = lines.map(|line| line.split(',').nth(1).unwrap().parse().unwrap()).collect();
    let device = reference_device();
    let SavedModel::Classifier(saved) = load_saved(&out, &device.device).unwrap().1 else {
        panic!("an image classifier")
    };
    assert_eq!(saved.kind(), "mlp");
    let (set, _) = read_digit_rows(Path::new(DIGITS_CSV)).unwrap();
    let indices: Vec<usize> = (0..set.len()).collect();
    let evaluation = saved.evaluate(&set, &indices, &device.device).unwrap();
    let expected: Vec<u8> = evaluation.predictions.iter().map(|p| p.predicted).collect();
    assert_eq!(classes, expected);
    assert!(String::from_utf8_lossy(&predicted.stderr).contains("accuracy on the 1797 labelled rows"));

    // export: PyTorch's names and layout, the values of model.bpk.
    run_ok(&["export", "--model", dir, "--format", "safetensors"]);
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(metadata.metadata().as_ref().unwrap()["model"], "mlp");
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let burn = saved_tensors(&out);
    let hidden = burn.iter().find(|t| t.name == "hidden.weight").unwrap();
    assert_eq!(hidden.shape, [64, 128], "Burn's Linear weight is [in, out]");
    let exported = file.tensor("hidden.weight").unwrap();
    assert_eq!(exported.shape(), &[128, 64], "PyTorch's Linear weight is [out, in]");
    let value = |bytes: &[u8], i: usize| f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    for (i, o) in [(0, 0), (5, 17), (63, 127)] {
        assert_eq!(value(exported.data(), o * 64 + i), hidden.values[i * 128 + o]);
    }
    assert_eq!(file.tensor("output.weight").unwrap().shape(), &[10, 128]);
    assert_eq!(file.tensor("output.bias").unwrap().shape(), &[10]);
}

#[cfg(unix)]
#[test]
fn ctrl_c_then_resume_equals_the_uninterrupted_run_bit_for_bit() {
    let (interrupted, straight) = (scratch("sigint"), scratch("straight"));
    // Small batches and a wide layer, so that an epoch lasts long enough to be interrupted in.
    let settings = ["--device", "flex", "--batch-size", "16", "--set", "model.hidden=512"];
    let run = ["train", "--config", MLP_TOML, "--epochs", "1000", "--out", interrupted.to_str().unwrap()];
    let (child, lines) = spawn_until(&[&run[..], &settings].concat(), "epoch 2/1000");
    sigint(&child);
    lines.for_each(drop);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("descent train --resume"), "{stderr}");

    // Two epochs past the one the signal fell in, with the resumed run and without a break.
    let checkpoint = Checkpoint::read(&interrupted.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(checkpoint.state.model, "mlp");
    let epochs = (checkpoint.state.epoch + 2).to_string();
    run_ok(&["train", "--resume", interrupted.to_str().unwrap(), "--epochs", &epochs, "-q"]);
    let mut args = vec!["train", "--config", MLP_TOML, "--epochs", &epochs, "-q"];
    args.extend(["--out", straight.to_str().unwrap()]);
    args.extend(settings);
    run_ok(&args);
    assert_eq!(
        std::fs::read_to_string(interrupted.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(straight.join("metrics.csv")).unwrap()
    );
    assert!(same_bits(&saved_tensors(&interrupted), &saved_tensors(&straight)));
}

#[test]
fn lr_find_and_bench_take_the_model_from_the_configuration() {
    let out = scratch("lr-find");
    let output = run_ok(&[
        "lr-find",
        "--config",
        MLP_TOML,
        "--device",
        "flex",
        "--sweep-steps",
        "30",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary = summary(&output);
    assert_eq!(summary["command"], "lr-find");
    assert!(!summary["points"].as_array().unwrap().is_empty());
    assert!(out.join("lr_find.png").is_file());

    let output = run_ok(&["bench", "--config", MLP_TOML, "--devices", "flex", "--repeats", "1", "--json"]);
    let results = &crate::common::summary(&output)["results"];
    assert_eq!(results[0]["workload"], "config");
    assert_eq!(results[0]["case"], "mlp, 10 epochs");
    assert_eq!(results[0]["unit"], "images/s");
}

#[test]
fn a_bad_model_section_is_refused_naming_the_field() {
    let dir = scratch("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let unknown = write("unknown.toml", "[data]\nsource = \"digits\"\n[model]\nname = \"mlpx\"\n");
    let run = dir.join("run");
    let out = run.to_str().unwrap();
    rejects(&["train", "--config", &unknown, "--out", out], &["unknown variant `mlpx`", "cnn", "mlp"]);
    let zero = write("zero.toml", "[data]\nsource = \"digits\"\n[model]\nname = \"mlp\"\nhidden = 0\n");
    rejects(&["train", "--config", &zero, "--out", out], &["model.hidden", "got 0"]);
    let typo = write("typo.toml", "[data]\nsource = \"digits\"\n[model]\nname = \"mlp\"\nhiden = 64\n");
    rejects(&["train", "--config", &typo, "--out", out], &["unknown field `hiden`"]);
    let points = write("points.toml", "[model]\nname = \"mlp\"\n");
    rejects(&["train", "--config", &points, "--out", out], &["data.source", "the mlp model needs images"]);
    assert!(!run.exists(), "nothing was written");
}
