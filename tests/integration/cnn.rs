//! The CNN on the digits and the image readers: accuracy far above chance in 3 epochs,
//! reproducible metrics, a disjoint split, MNIST IDX files (plain and gzipped) and their
//! corruptions, and a model added in one file through the same engine.

#[path = "../../examples/custom_model.rs"]
mod custom_model;

use std::io::Write;
use std::path::Path;

use crate::common::{descent, rejects, summary};
use burn::module::Module;
use descent::config::{DataConfig, RunConfig};
use descent::data::images::{MNIST_FILES, read_digits, read_mnist, split};
use descent::experiment::ImageExperiment;

#[test]
fn three_epochs_beat_chance_by_far_and_repeat_exactly() {
    // Each run in its own process: Burn's CPU backends keep one global random generator (initial
    // weights, dropout), which tests running in parallel threads of one process would share.
    let run = || {
        let out = tempfile::tempdir().unwrap();
        let output =
            descent(&["cnn", "--epochs", "3", "--json", "--out", out.path().join("run").to_str().unwrap()]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        summary(&output)
    };
    let first = run();
    let epochs = first["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 3);
    let accuracy = epochs[2]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "validation accuracy after 3 epochs: {accuracy} (chance is 0.1)");
    assert_eq!(first["epochs"], run()["epochs"], "same seed, same device: identical metrics");
}

#[test]
fn the_split_is_disjoint_covers_every_image_and_keeps_every_class() {
    let digits = read_digits(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv")).unwrap();
    assert_eq!(digits.len(), 1797);
    assert_eq!(digits.side(), 8);
    let split = split(digits.len(), 0.2, 42);
    assert_eq!(split.valid.len(), 359);
    let mut all: Vec<usize> = split.train.iter().chain(&split.valid).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1797).collect::<Vec<_>>());
    let (train, valid) = (digits.class_counts(&split.train), digits.class_counts(&split.valid));
    assert_eq!(train.iter().sum::<usize>(), 1438);
    assert!(valid.iter().all(|&n| n > 15), "every class is validated: {valid:?}");
    let total = digits.class_counts(&(0..1797).collect::<Vec<_>>());
    assert_eq!(total, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
}

#[test]
fn a_model_added_in_one_file_trains_through_the_same_engine() {
    let history = custom_model::train_mlp(5).unwrap();
    assert_eq!(history.len(), 5);
    let last = history.last().unwrap();
    assert!(last.accuracy > 0.8, "MLP accuracy after 5 epochs: {}", last.accuracy);
    assert!(last.loss < history[0].loss);
}

/// Write an IDX image file and its labels: `count` square images of `side` pixels.
fn idx_files(dir: &Path, images_name: &str, labels_name: &str, count: usize, side: usize, gzip: bool) {
    let mut images = vec![0, 0, 8, 3];
    for value in [count, side, side] {
        images.extend_from_slice(&(value as u32).to_be_bytes());
    }
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&(count as u32).to_be_bytes());
    for i in 0..count {
        let label = (i % 10) as u8;
        // A bright square whose position depends on the label, so the classes are learnable.
        for row in 0..side {
            for column in 0..side {
                let lit =
                    row / (side / 2) == usize::from(label) % 2 && column * 5 / side == usize::from(label) / 2;
                images.push(if lit { 255 } else { 0 });
            }
        }
        labels.push(label);
    }
    let write = |name: &str, bytes: &[u8]| {
        if gzip {
            let file = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
            let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    write(images_name, &images);
    write(labels_name, &labels);
}

fn mnist_fixture(gzip_train: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    idx_files(dir.path(), MNIST_FILES[0], MNIST_FILES[1], 40, 28, gzip_train);
    idx_files(dir.path(), MNIST_FILES[2], MNIST_FILES[3], 20, 28, false);
    dir
}

#[test]
fn idx_fixtures_load_with_their_shapes_and_labels() {
    for gzip in [false, true] {
        let dir = mnist_fixture(gzip);
        let mnist = read_mnist(dir.path()).unwrap();
        assert_eq!((mnist.train.len(), mnist.train.side()), (40, 28));
        assert_eq!(mnist.test.len(), 20);
        assert_eq!(
            (0..12).map(|i| mnist.train.label(i)).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
        );
        assert!(mnist.train.image(3).iter().all(|&p| p == 0.0 || p == 1.0));
        assert!(mnist.train.image(3).contains(&1.0));
    }
}

/// `descent cnn --mnist DIR EXTRA... --json` into a fresh run folder (`run` in the returned
/// temporary folder): its summary, after checking that it succeeded.
fn cnn_on_mnist(dir: &str, extra: &[&str]) -> (tempfile::TempDir, serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("run");
    let args = [&["cnn", "--mnist", dir][..], extra, &["--json", "--out", folder.to_str().unwrap()]].concat();
    let output = descent(&args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (out, summary(&output))
}

#[test]
fn descent_cnn_trains_on_mnist_files() {
    let dir = mnist_fixture(true);
    let (out, json) = cnn_on_mnist(dir.path().to_str().unwrap(), &["--epochs", "2", "--batch-size", "8"]);
    assert_eq!(json["n_train"], 40);
    assert_eq!(json["n_valid"], 20);
    let epochs = json["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    for key in ["epoch", "train_loss", "valid_loss", "accuracy", "error_rate"] {
        assert!(epochs[1][key].is_number(), "{key} in {}", epochs[1]);
    }
    let (accuracy, error_rate) = (json["accuracy"].as_f64().unwrap(), json["error_rate"].as_f64().unwrap());
    assert!((accuracy + error_rate - 1.0).abs() < 1e-12);
    assert!(json["images_per_second"].as_f64().unwrap() > 0.0);
    assert!(json["device"].is_string() && json["seconds"].is_number());
    let metrics = std::fs::read_to_string(out.path().join("run/metrics.csv")).unwrap();
    let rows: Vec<Vec<&str>> = metrics.lines().skip(1).map(|line| line.split(',').collect()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][6].parse::<f64>().unwrap(), epochs[1]["error_rate"].as_f64().unwrap());
}

#[test]
fn corrupted_idx_files_are_errors_naming_the_file_and_byte() {
    let truncate = |name: &str, keep: usize| {
        let dir = mnist_fixture(false);
        let path = dir.path().join(name);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..keep]).unwrap();
        dir
    };
    let dir = truncate(MNIST_FILES[0], 5_000);
    let path = dir.path().to_str().unwrap();
    rejects(&["cnn", "--mnist", path], &[MNIST_FILES[0], "byte 5000", "truncated"]);

    let dir = truncate(MNIST_FILES[1], 6);
    rejects(&["cnn", "--mnist", dir.path().to_str().unwrap()], &[MNIST_FILES[1], "header"]);

    let dir = mnist_fixture(false);
    let images = dir.path().join(MNIST_FILES[2]);
    let mut bytes = std::fs::read(&images).unwrap();
    bytes[3] = 0x01;
    std::fs::write(&images, &bytes).unwrap();
    rejects(&["cnn", "--mnist", dir.path().to_str().unwrap()], &[MNIST_FILES[2], "byte 0", "magic number"]);

    let dir = mnist_fixture(false);
    let labels = dir.path().join(MNIST_FILES[1]);
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes[8 + 5] = 12;
    std::fs::write(&labels, &bytes).unwrap();
    rejects(&["cnn", "--mnist", dir.path().to_str().unwrap()], &[MNIST_FILES[1], "byte 13", "label 12"]);

    let dir = mnist_fixture(false);
    std::fs::remove_file(dir.path().join(MNIST_FILES[3])).unwrap();
    rejects(&["cnn", "--mnist", dir.path().to_str().unwrap()], &[MNIST_FILES[3], "no such file"]);
}

#[test]
fn malformed_digits_are_errors_naming_the_file_line_and_column() {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv")).unwrap();
    let mut lines: Vec<String> = shipped.lines().take(6).map(String::from).collect();
    let with_line = |lines: &[String]| {
        let mut file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        file.write_all(lines.join("\n").as_bytes()).unwrap();
        file
    };

    let mut short = lines.clone();
    short[3] = short[3].rsplit_once(',').unwrap().0.to_string();
    let file = with_line(&short);
    rejects(&["cnn", "--data", file.path().to_str().unwrap()], &["line 4", "found 64 fields"]);

    let mut bright = lines.clone();
    bright[2] = format!("17{}", &bright[2][bright[2].find(',').unwrap()..]);
    let file = with_line(&bright);
    rejects(&["cnn", "--data", file.path().to_str().unwrap()], &["line 3", "column 1", "`17`", "0..16"]);

    let last = lines.len() - 1;
    lines[last] = format!("{},11", lines[last].rsplit_once(',').unwrap().0);
    let file = with_line(&lines);
    let path = file.path().to_str().unwrap().to_owned();
    rejects(&["cnn", "--data", &path], &[&path, "line 6", "label", "`11`"]);

    rejects(&["cnn", "--data", "/no/such/digits.csv"], &["/no/such/digits.csv"]);
    rejects(&["cnn", "--valid-fraction", "1.5"], &["data.valid_fraction"]);
    rejects(&["cnn", "--set", "model.kernel=4"], &["model.kernel", "odd"]);
    rejects(&["cnn", "--set", "model.channels=[8, 8, 8, 8]"], &["model.channels"]);
}

/// Save `config` to a file, run `descent COMMAND --config FILE --json` on it, and return the
/// summary.
fn run_from_file(command: &str, config: &RunConfig) -> serde_json::Value {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(config.to_toml().as_bytes()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = descent(&[
        command,
        "--config",
        file.path().to_str().unwrap(),
        "--json",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    summary(&output)
}

#[test]
fn a_cnn_configuration_round_trips_and_runs_through_train() {
    let mut config = RunConfig::cnn();
    config.training.epochs = Some(1);
    config.data = DataConfig::Digits { path: None, valid_fraction: 0.25, sha256: None };
    let json = run_from_file("train", &config);
    assert_eq!(json["n_valid"], 449);
    assert_eq!(json["epochs"].as_array().unwrap().len(), 1);
    let model = ImageExperiment::prepare(config).unwrap().model().unwrap();
    assert_eq!(json["parameters"], model.num_params());
}

#[test]
fn lr_find_works_for_the_cnn_too() {
    let mut config = RunConfig::cnn();
    config.training.epochs = Some(1);
    let json = run_from_file("lr-find", &config);
    assert_eq!(json["optimizer"], "adam");
    let suggestion = json["suggestion"].as_f64().expect("a suggestion");
    // Adam on this CNN trains well at 1e-3; the suggestion lies within a decade or so of it.
    assert!((1e-4..=3e-2).contains(&suggestion), "{suggestion}");
}

#[test]
fn a_saved_cnn_predicts_exactly_as_the_trained_one() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = descent(&["cnn", "--epochs", "2", "--json", "--out", run.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = summary(&output);

    let config = RunConfig::load(&run.join("config.toml")).unwrap();
    let experiment = ImageExperiment::prepare(config).unwrap();
    let model = experiment.model().unwrap().try_load_file(run.join("model.bpk")).expect("model.bpk loads");
    let valid = model.valid();
    let result = descent::metrics::evaluate(
        &valid,
        &experiment.valid_set,
        &experiment.valid,
        &experiment.device.device,
    )
    .unwrap();
    assert_eq!(result.accuracy, json["accuracy"].as_f64().unwrap());
    assert!((result.loss - json["valid_loss"].as_f64().unwrap()).abs() < 1e-12);
    assert_eq!(serde_json::json!(result.confusion), json["confusion"]);
}

/// Where Debian's `dataset-fashion-mnist` installs the IDX files; `.ci/run` installs it.
const FASHION: &str = "/usr/share/datasets/fashion-mnist";

#[test]
fn fashion_mnist_one_epoch_on_10000_images_passes_80_percent() {
    if !crate::common::fashion_mnist(FASHION) {
        return;
    }
    let extra = ["--train-limit", "10000", "--epochs", "1", "--device", "flex", "--quiet"];
    let (out, json) = cnn_on_mnist(FASHION, &extra);
    assert_eq!(json["n_train"], 10_000);
    assert_eq!(json["n_valid"], 10_000, "validated on the whole test set");
    let accuracy = json["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "Fashion-MNIST test accuracy after 1 epoch on 10,000 images: {accuracy}");
    let config = std::fs::read_to_string(out.path().join("run/config.toml")).unwrap();
    assert!(
        config.contains("train_limit = 10000"),
        "the limit is part of the saved configuration:\n{config}"
    );
}

#[test]
fn train_limit_needs_mnist_and_a_positive_count() {
    rejects(&["cnn", "--train-limit", "10"], &["--mnist"]);
    let dir = mnist_fixture(false);
    rejects(&["cnn", "--mnist", dir.path().to_str().unwrap(), "--train-limit", "0"], &["--train-limit"]);
}

#[test]
fn label_smoothing_trains_is_saved_and_is_refused_where_it_means_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let args = [&["cnn", "--epochs", "2", "--json", "--out", out.to_str().unwrap()][..], extra].concat();
        let output = descent(&args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        (summary(&output), out)
    };
    let (plain, _) = run("plain", &[]);
    let (smoothed, out) = run("smoothed", &["--label-smoothing", "0.1"]);
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("label_smoothing = 0.1"), "{config}");
    let last = |s: &serde_json::Value, key: &str| s["epochs"][1][key].as_f64().unwrap();
    assert!(last(&smoothed, "accuracy") > 0.8, "{smoothed}");
    // The same seed, batches and dropout: only the loss differs, and with it the training.
    assert_ne!(last(&plain, "train_loss"), last(&smoothed, "train_loss"));
    // It is refused where it means nothing, with the field named, and on a resume.
    rejects(&["lesson2", "--label-smoothing", "0.1"], &["training.label_smoothing", "linear model"]);
    rejects(&["cnn", "--label-smoothing", "1"], &["training.label_smoothing", "up to (not including) 1"]);
    rejects(&["cnn", "--label-smoothing", "-0.1"], &["--label-smoothing"]);
    rejects(&["cnn", "--resume", out.to_str().unwrap(), "--label-smoothing", "0.2"], &["--label-smoothing"]);
}

/// `descent summary` on the digits CNN, against a count by hand: conv 1→32 and 32→64 (5×5),
/// batch norm (four values per channel, two of them running statistics), 2×2 pooling from 8 to 4
/// to 2 pixels, and the head from 64·2·2 features to 10 classes.
#[test]
fn the_summary_counts_the_digits_cnn_as_by_hand_and_training_prints_it_with_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = descent(&["cnn", "--epochs", "1", "-q", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let config = out.join("config.toml");
    let output = descent(&["summary", "--config", config.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = summary(&output);
    let (conv1, conv2, head) = ((25 + 1) * 32, (32 * 25 + 1) * 64, (64 * 2 * 2 + 1) * 10);
    assert_eq!(json["parameters"], conv1 + 4 * 32 + conv2 + 4 * 64 + head);
    assert_eq!(json["trainable_parameters"], conv1 + 2 * 32 + conv2 + 2 * 64 + head);
    assert_eq!(json["bytes"], 4 * 55_050);
    assert_eq!(json["mult_adds"], 32 * 8 * 8 * 25 + 64 * 4 * 4 * 32 * 25 + 256 * 10);
    assert_eq!(json["input"], serde_json::json!([1, 8, 8]));
    let layers = json["layers"].as_array().unwrap();
    let row = |path: &str| {
        layers.iter().find(|row| row["path"] == path).unwrap_or_else(|| panic!("{path}: {json}"))
    };
    assert_eq!(row("blocks.1.pool")["output"], serde_json::json!([64, 2, 2]));
    assert_eq!(row("head")["parameters"], head);
    assert_eq!(row("blocks.0.norm")["type"], "BatchNorm2d");
    // The MLP example's configuration: 64→128→10.
    let mlp = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mlp.toml");
    let output = descent(&["summary", "--config", mlp, "--json"]);
    assert_eq!(summary(&output)["parameters"], 64 * 128 + 128 + 128 * 10 + 10);
    // The table, and the same table at the start of a run with --verbose.
    let table = descent(&["summary", "--config", config.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(table.contains("parameters: 55,050 (215.0 KiB), trainable 54,858, not trainable 192"), "{table}");
    assert!(table.contains("multiply-adds per image: 872,960"), "{table}");
    let verbose =
        descent(&["cnn", "--epochs", "1", "--verbose", "--out", dir.path().join("v").to_str().unwrap()]);
    let printed = String::from_utf8_lossy(&verbose.stdout);
    assert!(printed.contains(&table), "{printed}");
    rejects(&["summary", "--config", "no-such.toml"], &["no-such.toml"]);
    rejects(&["cnn", "--verbose", "-q"], &["--verbose"]);
}
