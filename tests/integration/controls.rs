//! Issue 18's training controls through the binary: Fashion-MNIST by name, early stopping and
//! the best model (surviving a resume), augmentation that repeats exactly, prediction on PNG and
//! IDX files, and their bad input.

use std::path::{Path, PathBuf};

use descent::config::RunConfig;
use descent::data::images::{read_digit_rows, read_digits, split};
use descent::experiment::ImageExperiment;
use descent::inference::{SavedModel, load_saved};

use crate::common::{reference_device, rejects, run_ok, same_bits, saved_tensors, summary};

/// Where Debian's `dataset-fashion-mnist` installs the files; `.ci/run` installs it.
const FASHION: &str = descent::defaults::FASHION_MNIST_DIR;
const DIGITS_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv");

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch_in("controls", name)
}

/// The `valid_loss` column of a run's metrics.csv.
fn valid_losses(dir: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header.iter().position(|name| *name == "valid_loss").unwrap();
    lines.map(|line| line.split(',').nth(column).unwrap().parse().unwrap()).collect()
}

#[test]
fn fashion_mnist_by_name_trains_names_its_classes_and_says_what_to_install() {
    let out = scratch("fashion");
    let missing = scratch("no-fashion-here");
    rejects(
        &[
            "cnn",
            "--data",
            "fashion-mnist",
            "--mnist",
            missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["dataset-fashion-mnist", "--mnist DIR"],
    );
    assert!(!out.exists(), "a refused run writes nothing");
    if !crate::common::fashion_mnist(FASHION) {
        return;
    }
    let args =
        ["cnn", "--data", "fashion-mnist", "--train-limit", "10000", "--epochs", "1", "--device", "flex"];
    let output = run_ok(&[&args[..], &["--json", "--out", out.to_str().unwrap()]].concat());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("data: Fashion-MNIST from"), "{stdout}");
    assert!(stdout.contains("classes: 0 T-shirt/top, 1 Trouser"), "{stdout}");
    let json = summary(&output);
    assert_eq!(json["n_train"], 10_000);
    assert_eq!(json["n_valid"], 10_000);
    assert_eq!(json["classes"][9], "Ankle boot");
    let accuracy = json["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "Fashion-MNIST test accuracy after 1 epoch on 10,000 images: {accuracy}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("source = \"fashion-mnist\""), "{config}");
}

/// A run made to overfit: a few digits, plain SGD at a large rate, small batches.
const OVERFIT: [&str; 12] = [
    "--device",
    "flex",
    "--set",
    "data.valid_fraction=0.5",
    "--optim",
    "sgd",
    "--lr",
    "0.5",
    "--batch-size",
    "8",
    "--early-stop",
    "3",
];

#[test]
fn early_stopping_stops_at_the_right_epoch_keeps_the_best_model_and_survives_a_resume() {
    let straight = scratch("early-straight");
    let output = run_ok(
        &[&["cnn", "--epochs", "40", "--json", "--out", straight.to_str().unwrap()][..], &OVERFIT].concat(),
    );
    let json = summary(&output);
    let losses = valid_losses(&straight);
    // The oracle: the first epoch that is 3 past the best so far.
    let mut best = 0;
    let mut stop = losses.len();
    for (i, &loss) in losses.iter().enumerate() {
        if loss < losses[best] {
            best = i;
        }
        if i - best == 3 {
            stop = i + 1;
            break;
        }
    }
    assert!(stop < 40, "the validation loss never stopped improving for 3 epochs: {losses:?}");
    assert_eq!(losses.len(), stop, "trained exactly to the stopping epoch: {losses:?}");
    assert_eq!(json["early_stop"]["best_epoch"], best + 1);
    assert_eq!(json["early_stop"]["stopped_early"], true);
    assert_eq!(json["early_stop"]["monitor"], "valid_loss");

    // model.bpk is the best epoch's: its validation loss is that epoch's.
    let config = RunConfig::load(&straight.join("config.toml")).unwrap();
    let experiment = ImageExperiment::prepare(config).unwrap();
    let device = reference_device();
    let SavedModel::Classifier(saved) = load_saved(&straight, &device.device).unwrap().1 else { panic!() };
    let evaluation = saved.evaluate(&experiment.valid_set, &experiment.valid, &device.device).unwrap();
    assert!((evaluation.loss - losses[best]).abs() < 1e-5, "{} vs {}", evaluation.loss, losses[best]);

    // Stopped part of the way to the best + 3, then resumed: the same stop, the same model.
    let resumed = scratch("early-resumed");
    let first = (best + 2).to_string();
    run_ok(&[&["cnn", "--epochs", &first, "-q", "--out", resumed.to_str().unwrap()][..], &OVERFIT].concat());
    run_ok(&["train", "--resume", resumed.to_str().unwrap(), "--epochs", "40", "-q"]);
    assert_eq!(valid_losses(&resumed), losses, "the patience count survives the resume");
    assert!(same_bits(&saved_tensors(&resumed), &saved_tensors(&straight)), "the same model");
    // A run early stopping ended is not resumed further.
    rejects(
        &["train", "--resume", straight.to_str().unwrap(), "--epochs", "50"],
        &["early stopping ended this run"],
    );
}

#[test]
fn augmented_runs_repeat_exactly_and_resume_bit_for_bit() {
    let (a, b, resumed) = (scratch("augment-a"), scratch("augment-b"), scratch("augment-resumed"));
    let common = ["--device", "flex", "--augment", "-q"];
    run_ok(&[&["cnn", "--epochs", "3", "--out", a.to_str().unwrap()][..], &common].concat());
    run_ok(&[&["cnn", "--epochs", "3", "--out", b.to_str().unwrap()][..], &common].concat());
    let metrics = |dir: &Path| std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(metrics(&a), metrics(&b), "same seed, same augmented batches");
    run_ok(&[&["cnn", "--epochs", "1", "--out", resumed.to_str().unwrap()][..], &common].concat());
    run_ok(&["train", "--resume", resumed.to_str().unwrap(), "--epochs", "3", "-q"]);
    assert_eq!(metrics(&resumed), metrics(&a));
    assert!(same_bits(&saved_tensors(&resumed), &saved_tensors(&a)), "the same model");
    // Not augmenting trains on other batches.
    let plain = scratch("augment-none");
    run_ok(&["cnn", "--epochs", "3", "--device", "flex", "-q", "--out", plain.to_str().unwrap()]);
    assert_ne!(metrics(&plain), metrics(&a));
}

#[test]
fn mixup_trains_repeats_resumes_bit_for_bit_and_is_refused_where_it_means_nothing() {
    let (a, resumed, plain) = (scratch("mixup-a"), scratch("mixup-resumed"), scratch("mixup-none"));
    let common = ["--device", "flex", "--mixup", "0.4", "--augment", "-q"];
    let output =
        run_ok(&[&["cnn", "--epochs", "3", "--json", "--out", a.to_str().unwrap()][..], &common].concat());
    let accuracy = summary(&output)["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "MixUp still learns the digits: {accuracy}");
    let config = std::fs::read_to_string(a.join("config.toml")).unwrap();
    assert!(config.contains("mixup = 0.4"), "{config}");
    // The blends are drawn from the seed, the epoch and the batch: a resume draws them again.
    run_ok(&[&["cnn", "--epochs", "1", "--out", resumed.to_str().unwrap()][..], &common].concat());
    run_ok(&["train", "--resume", resumed.to_str().unwrap(), "--epochs", "3", "-q"]);
    let metrics = |dir: &Path| std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(metrics(&resumed), metrics(&a));
    assert!(same_bits(&saved_tensors(&resumed), &saved_tensors(&a)), "the same model");
    // Without MixUp the same batches train another model.
    run_ok(&[
        "cnn",
        "--epochs",
        "3",
        "--device",
        "flex",
        "--augment",
        "-q",
        "--out",
        plain.to_str().unwrap(),
    ]);
    assert_ne!(metrics(&plain), metrics(&a));
    let dir = a.to_str().unwrap();
    rejects(&["lesson2", "--mixup", "0.4"], &["training.mixup", "not images"]);
    rejects(&["cnn", "--mixup", "0"], &["--mixup"]);
    rejects(&["train", "--resume", dir, "--mixup", "0.2"], &["--mixup"]);
}

/// `--tta N` at the end of a run and on `predict`, against averaging the probabilities of the
/// image and its N moved copies, each predicted separately.
#[test]
fn test_time_augmentation_is_the_average_of_separate_predictions() {
    let dir = scratch("tta");
    let output = run_ok(&[
        "cnn",
        "--epochs",
        "2",
        "--device",
        "flex",
        "--augment",
        "--tta",
        "3",
        "--json",
        "-q",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let json = summary(&output);
    let config = RunConfig::load(&dir.join("config.toml")).unwrap();
    assert_eq!(config.training.tta, Some(3));
    let flex = descent::device::select("flex").unwrap();
    let SavedModel::Classifier(saved) = load_saved(&dir, &flex.device).unwrap().1 else {
        panic!("a classifier")
    };
    let tta = config.tta(3);
    assert_eq!((tta.shift, tta.flip), (2, false), "the digits are shifted, never mirrored");
    // The summary's figure is the saved model's, validated with the same copies.
    let experiment = ImageExperiment::prepare(config.clone()).unwrap();
    let saved = saved.with_tta(tta);
    let evaluation = saved.evaluate(&experiment.valid_set, &experiment.valid, &flex.device).unwrap();
    assert_eq!(json["tta_accuracy"].as_f64(), Some(evaluation.accuracy), "{json}");
    assert!(json["tta_valid_loss"].as_f64().is_some());

    // predict --tta 3 on the first 40 digit rows, against the four predictions by hand.
    let rows = dir.join("rows.csv");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv")).unwrap();
    std::fs::write(&rows, text.lines().take(41).collect::<Vec<_>>().join("\n")).unwrap();
    let output = run_ok(&[
        "predict",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        rows.to_str().unwrap(),
        "--tta",
        "3",
    ]);
    let csv = String::from_utf8_lossy(&output.stdout).to_string();
    let (set, _) = read_digit_rows(&rows).unwrap();
    let images = |copy: Option<usize>| -> Vec<f32> {
        let values: Vec<f32> = (0..set.len()).flat_map(|i| set.image(i).to_vec()).collect();
        let tensor = burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(values, [set.len(), 1, 8, 8]),
            &flex.device,
        );
        let Some(copy) = copy else { return tensor.into_data().try_to_vec::<f32>().unwrap() };
        let moves: Vec<_> = (0..set.len()).map(|i| tta.moved(copy, i)).collect();
        descent::data::augment::apply(tensor, &moves).into_data().try_to_vec::<f32>().unwrap()
    };
    let mut mean = vec![vec![0.0f64; 10]; set.len()];
    for copy in [None, Some(0), Some(1), Some(2)] {
        let probabilities = saved.probabilities(images(copy), set.len(), &flex.device).unwrap();
        for (sum, row) in mean.iter_mut().zip(probabilities) {
            sum.iter_mut().zip(row).for_each(|(s, p)| *s += f64::from(p) / 4.0);
        }
    }
    for (line, expected) in csv.lines().skip(1).zip(&mean) {
        let fields: Vec<&str> = line.split(',').collect();
        let best = expected.iter().cloned().fold(0.0, f64::max);
        assert_eq!(
            fields[1].parse::<usize>().unwrap(),
            expected.iter().position(|&p| p == best).unwrap(),
            "{line}"
        );
        assert!((fields[2].parse::<f64>().unwrap() - best).abs() < 1e-5, "{line}: {best}");
    }
    assert_eq!(csv.lines().count(), 41);
    // Where it means nothing, it is refused.
    rejects(&["lesson2", "--tta", "2"], &["training.tta", "not images"]);
    rejects(&["cnn", "--tta", "0"], &["--tta"]);
    let lesson = scratch("tta-lesson");
    run_ok(&["lesson2", "-q", "--out", lesson.to_str().unwrap()]);
    rejects(
        &["predict", "--model", lesson.to_str().unwrap(), "--input", rows.to_str().unwrap(), "--tta", "2"],
        &["--tta", "linear model"],
    );
}

/// Write `images` (8x8, values in [0, 1]) as an IDX images file and its labels file beside it.
fn write_idx(dir: &Path, images: &[Vec<f32>], labels: &[u8]) -> PathBuf {
    let path = dir.join("digits-images-idx3-ubyte");
    let mut bytes = vec![0, 0, 8, 3];
    for value in [images.len(), 8, 8] {
        bytes.extend_from_slice(&(value as u32).to_be_bytes());
    }
    for image in images {
        bytes.extend(image.iter().map(|&v| (v * 255.0).round() as u8));
    }
    std::fs::write(&path, bytes).unwrap();
    let mut label_bytes = vec![0, 0, 8, 1];
    label_bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    label_bytes.extend_from_slice(labels);
    std::fs::write(dir.join("digits-labels-idx1-ubyte"), label_bytes).unwrap();
    path
}

/// Write an 8x8 image as a PNG: gray, or RGB, and light on dark or (inverted) dark on light.
fn write_png(path: &Path, image: &[f32], rgb: bool, invert: bool) {
    let gray: Vec<u8> =
        image.iter().map(|&v| (v * 255.0).round() as u8).map(|b| if invert { 255 - b } else { b }).collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, 8, 8);
    encoder.set_color(if rgb { png::ColorType::Rgb } else { png::ColorType::Grayscale });
    encoder.set_depth(png::BitDepth::Eight);
    let data: Vec<u8> = if rgb { gray.iter().flat_map(|&g| [g, g, g]).collect() } else { gray };
    encoder.write_header().unwrap().write_image_data(&data).unwrap();
}

#[test]
fn predict_reads_png_files_and_idx_files_and_agrees_with_itself() {
    let run = scratch("predict-images");
    run_ok(&["cnn", "--epochs", "3", "--device", "flex", "-q", "--out", run.to_str().unwrap()]);
    let digits = read_digits(Path::new(DIGITS_CSV)).unwrap();
    let valid = split(digits.len(), 0.2, 42).valid;
    let chosen: Vec<usize> = valid.iter().copied().take(6).collect();
    let images: Vec<Vec<f32>> = chosen.iter().map(|&i| digits.image(i).to_vec()).collect();
    let labels: Vec<u8> = chosen.iter().map(|&i| digits.label(i)).collect();
    let files = scratch("predict-inputs");
    std::fs::create_dir_all(&files).unwrap();
    let idx = write_idx(&files, &images, &labels);
    let pngs = files.join("pngs");
    std::fs::create_dir_all(&pngs).unwrap();
    for (i, image) in images.iter().enumerate() {
        write_png(&pngs.join(format!("{i}.png")), image, i % 2 == 1, i % 3 == 2);
    }
    let rows = |args: &[&str]| -> Vec<Vec<String>> {
        let output = run_ok(args);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.lines().skip(1).map(|line| line.split(',').map(String::from).collect()).collect()
    };
    let model = run.to_str().unwrap();
    let by_idx = rows(&["predict", "--model", model, "--input", idx.to_str().unwrap()]);
    let by_png = rows(&["predict", "--model", model, "--input", pngs.to_str().unwrap()]);
    assert_eq!(by_idx.len(), 6);
    assert_eq!(by_png.len(), 6);
    for (i, (idx_row, png_row)) in by_idx.iter().zip(&by_png).enumerate() {
        // row,predicted,name,confidence,label and file,predicted,name,confidence
        assert_eq!(idx_row[4], labels[i].to_string());
        assert!(png_row[0].ends_with(&format!("{i}.png")));
        assert_eq!(idx_row[1], png_row[1], "the same class for image {i}");
        assert_eq!(idx_row[2], png_row[2], "the same name for image {i}");
        assert_eq!(
            idx_row[3], png_row[3],
            "the same confidence for image {i} (gray or RGB, dark or light background)"
        );
    }
    // One file alone gives the same as in the folder.
    let one = rows(&["predict", "--model", model, "--input", pngs.join("2.png").to_str().unwrap()]);
    assert_eq!(one[0][1..], by_png[2][1..]);

    // Bad pictures: one sentence naming the file, exit 2.
    let empty = files.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    rejects(&["predict", "--model", model, "--input", empty.to_str().unwrap()], &["empty.png", "empty"]);
    let fake = files.join("fake.png");
    std::fs::write(&fake, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    rejects(
        &["predict", "--model", model, "--input", fake.to_str().unwrap()],
        &["fake.png", "not a PNG image"],
    );
    let big = scratch("predict-idx-28");
    std::fs::create_dir_all(&big).unwrap();
    let mut bytes = vec![0, 0, 8, 3];
    for value in [1u32, 28, 28] {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    bytes.extend(std::iter::repeat_n(0u8, 28 * 28));
    let wrong = big.join("wrong-images-idx3-ubyte");
    std::fs::write(&wrong, bytes).unwrap();
    rejects(&["predict", "--model", model, "--input", wrong.to_str().unwrap()], &["28x28", "takes 8x8"]);
}

#[test]
fn bad_controls_are_refused_naming_the_flag_and_write_nothing() {
    let out = scratch("bad-controls");
    let dir = out.to_str().unwrap();
    rejects(&["cnn", "--early-stop", "0", "--out", dir], &["--early-stop"]);
    rejects(&["cnn", "--early-stop", "2", "--monitor", "loss", "--out", dir], &["--monitor", "valid_loss"]);
    rejects(&["cnn", "--monitor", "accuracy", "--out", dir], &["training.monitor", "--early-stop"]);
    rejects(&["lesson2", "--augment", "--out", dir], &["training.augment", "not images"]);
    rejects(&["lesson2", "--early-stop", "2", "--out", dir], &["training.early_stop", "no validation set"]);
    rejects(&["cnn", "--train-limit", "5", "--out", dir], &["--train-limit", "--mnist"]);
    rejects(&["cnn", "--data", "digits", "--mnist", "/tmp", "--out", dir], &["two data sets"]);
    assert!(!out.exists(), "nothing was written");
}

/// A lesson configuration of 100 rows in mini-batches on Flex, with `settings` applied.
fn lesson_config(settings: &[&str]) -> RunConfig {
    let mut config = RunConfig { device: "flex".into(), ..RunConfig::default() };
    for setting in settings {
        config.set(setting).unwrap();
    }
    config
}

#[test]
fn four_batches_of_16_accumulated_make_the_update_of_one_batch_of_64() {
    use descent::experiment::Experiment;
    use std::ops::ControlFlow;

    // 100 rows: batches of 16 in groups of 4 (64 rows, then 36 in three batches) against
    // batches of 64 (64 rows, then 36): the last group is weighted by its true size.
    for optimizer in ["sgd-momentum", "adam"] {
        let parameters = |settings: &[&str]| {
            let mut config = lesson_config(settings);
            config.optimizer = descent::config::optimizer_from(optimizer).unwrap();
            config.schedule = descent::config::schedule_from("cosine").unwrap();
            let experiment = Experiment::prepare(config).unwrap();
            let trained = experiment.train(&mut |_| ControlFlow::Continue(())).unwrap();
            (trained.steps, trained.model.parameters().unwrap())
        };
        let (steps_64, whole) = parameters(&["training.batch_size=64", "training.epochs=5"]);
        let (steps_16x4, accumulated) =
            parameters(&["training.batch_size=16", "training.accumulate=4", "training.epochs=5"]);
        // The same on two devices, each batch split between them.
        let (_, on_two) = parameters(&[
            "training.batch_size=16",
            "training.accumulate=4",
            "training.epochs=5",
            "device=flex",
            "devices=[\"flex\", \"ndarray\"]",
        ]);
        assert_eq!(steps_64, 10, "two updates an epoch");
        assert_eq!(steps_16x4, steps_64, "a step is an update");
        for (a, b) in accumulated.iter().chain(&on_two).zip(whole.iter().chain(&whole)) {
            assert!((a - b).abs() < 1e-5, "{optimizer}: {accumulated:?} and {on_two:?} vs {whole:?}");
        }
    }
}

#[test]
fn a_run_interrupted_part_way_through_a_group_resumes_bit_for_bit() {
    use descent::experiment::{Experiment, TrainOptions};
    use descent::observe::Observer;
    use descent::report::RunFolder;
    use descent::train::{BatchEnd, CHECKPOINT_FILE, Checkpoint, Interrupter};
    use std::ops::ControlFlow;

    /// Ctrl-C after the given update's batch.
    struct StopAt(usize, usize, Interrupter);
    impl Observer for StopAt {
        fn batch(&mut self, end: &BatchEnd) {
            if (end.epoch, end.batch) == (self.0, self.1) {
                self.2.stop();
            }
        }
    }

    let settings = ["training.batch_size=16", "training.accumulate=3", "training.epochs=4"];
    let mut config = lesson_config(&settings);
    config.optimizer = descent::config::optimizer_from("adam").unwrap();
    let experiment = Experiment::prepare(config.clone()).unwrap();
    let whole = experiment.train(&mut |_| ControlFlow::Continue(())).unwrap();

    let out = scratch("accumulate-resume");
    let folder = RunFolder::create(Some(&out), "test").unwrap();
    // Epoch 2, batch 5: the second batch of the group of batches 4 to 6.
    let interrupter = Interrupter::new();
    let mut stop = StopAt(2, 5, interrupter.clone());
    let options = TrainOptions {
        folder: Some(&folder),
        observers: vec![&mut stop],
        interrupter: Some(&interrupter),
        ..TrainOptions::default()
    };
    let interrupted =
        experiment.train_with(experiment.batches().as_ref(), options, &mut |_| ControlFlow::Continue(()));
    assert!(matches!(interrupted, Err(descent::experiment::RunError::Interrupted { .. })));
    let checkpoint = Checkpoint::read(&out.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!((checkpoint.state.epoch, checkpoint.state.batch), (1, 5), "part-way through a group");

    let experiment = Experiment::prepare(config).unwrap();
    let options =
        TrainOptions { folder: Some(&folder), resume: Some(&checkpoint), ..TrainOptions::default() };
    let resumed = experiment
        .train_with(experiment.batches().as_ref(), options, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(bits(resumed.model.parameters().unwrap()), bits(whole.model.parameters().unwrap()));
    assert_eq!(resumed.steps, whole.steps);
}

#[test]
fn early_stopping_watches_a_tables_validation_rows() {
    let houses = concat!(env!("CARGO_MANIFEST_DIR"), "/data/houses.csv");
    let out = scratch("fit-early");
    let args = ["fit", "--data", houses, "--target", "price_k", "--steps", "300", "--early-stop", "5"];
    let output = run_ok(&[&args[..], &["--json", "-q", "--out", out.to_str().unwrap()]].concat());
    let json = summary(&output);
    let stop = &json["early_stop"];
    assert_eq!(stop["monitor"], "valid_loss");
    let best = stop["best_epoch"].as_u64().unwrap();
    assert!((1..=300).contains(&best), "{stop}");
    // The reported validation MSE is the best epoch's, the one early stopping kept.
    assert!((json["mse_valid"].as_f64().unwrap() - stop["best"].as_f64().unwrap()).abs() < 1e-6, "{json}");
    let dir = out.to_str().unwrap();
    let refused = scratch("fit-early-refused");
    let table = [
        "fit",
        "--data",
        houses,
        "--target",
        "price_k",
        "--early-stop",
        "5",
        "--out",
        refused.to_str().unwrap(),
    ];
    rejects(&[&table[..], &["--valid-fraction", "0"]].concat(), &["training.early_stop", "valid_fraction"]);
    rejects(&[&table[..], &["--monitor", "accuracy"]].concat(), &["training.monitor", "no accuracy"]);
    assert!(Path::new(dir).join("model.bpk").is_file());
}
