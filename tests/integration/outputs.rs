//! What a run leaves behind: the run folder's files, checkpoints and resume, predictions from the
//! saved model, and the refusals that leave an existing run folder as it was.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use crate::common::sigint;
use crate::common::{descent, rejects, run_ok, same_bits, saved_tensors, summary};
use burn::prelude::*;
use descent::config::RunConfig;
use descent::experiment::{Experiment, ImageExperiment, TrainOptions};
use descent::inference::export::{NamedTensor, named_tensors};
use descent::inference::{SavedModel, load_saved};
use descent::report::RunFolder;
use descent::train::{CHECKPOINT_FILE, Checkpoint};

/// A fresh folder under the test's temporary directory.
fn scratch(name: &str) -> PathBuf {
    crate::common::scratch_in("outputs", name)
}

/// Every file of a folder and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().into_string().unwrap(), std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

/// Decode a PNG file: its width and height, and how many of its pixels are not white.
fn decode_png(path: &Path) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let inked =
        buffer[..info.buffer_size()].chunks(channels).filter(|p| p.iter().take(3).any(|&c| c < 200)).count();
    (info.width, info.height, inked)
}

/// Every figure `names` is a valid 800x600 PNG with something drawn on it.
fn assert_figures(dir: &Path, names: &[&str]) {
    for name in names {
        let (width, height, inked) = decode_png(&dir.join(format!("{name}.png")));
        assert_eq!((width, height), (800, 600), "{name}.png");
        assert!(inked > 2_000, "{name}.png is nearly blank ({inked} inked pixels)");
    }
}

#[test]
fn a_lesson_run_writes_its_configuration_metrics_summary_model_and_checkpoint() {
    let out = scratch("lesson");
    let output = run_ok(&[
        "lesson2",
        "--device",
        "flex",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "--animate",
        "--svg",
    ]);
    assert_figures(&out, &["fit", "loss", "lr"]);
    for name in ["fit", "loss", "lr"] {
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{name}.svg");
    }
    // The animation: 100 frames of 480x360, 20 ms each.
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(std::fs::File::open(out.join("animation.gif")).unwrap()).unwrap();
    assert_eq!((decoder.width(), decoder.height()), (480, 360));
    let mut frames = 0;
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!(frame.delay, 2, "20 ms per frame, in GIF's hundredths of a second");
        frames += 1;
    }
    assert_eq!(frames, 100);
    let summary = summary(&output);
    for file in ["config.toml", "metrics.csv", "summary.json", "model.bpk", "model.sha256", CHECKPOINT_FILE] {
        assert!(out.join(file).is_file(), "{file} is missing");
    }
    // metrics.csv: a header and one row per printed step (0, 10, ..., 90).
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = metrics.lines().collect();
    assert_eq!(rows.len(), 11, "{metrics}");
    assert!(rows[1].starts_with("0,1,0.1,6.394"), "{}", rows[1]);
    // summary.json is the --json object.
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(written, summary);
    // The checkpoint is at the end of the run.
    let checkpoint = Checkpoint::read(&out.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!((checkpoint.state.epoch, checkpoint.state.step), (100, 100));
    assert_eq!(checkpoint.state.metrics.len(), 10);
}

#[test]
fn non_terminal_output_has_no_escape_codes_and_one_line_per_epoch() {
    let out = scratch("plain");
    let output = run_ok(&["cnn", "--device", "flex", "--epochs", "3", "--out", out.to_str().unwrap()]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!stdout.contains('\u{1b}') && !stdout.contains('\r'), "escape codes in: {stdout}");
    let epochs: Vec<&str> = stdout.lines().filter(|line| line.starts_with("epoch ")).collect();
    assert_eq!(epochs.len(), 3, "{stdout}");
    assert_figures(&out, &["loss", "accuracy", "results", "lr"]);
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 4, "a header and one row per epoch: {metrics}");
    assert!(metrics.lines().all(|line| line.split(',').count() == 7 && !line.ends_with(',')), "{metrics}");
    assert!(epochs[2].starts_with("epoch 3/3  train_loss "), "{}", epochs[2]);

    let quiet = run_ok(&[
        "cnn",
        "--device",
        "flex",
        "--epochs",
        "1",
        "--out",
        scratch("quiet").to_str().unwrap(),
        "-q",
    ]);
    let stdout = String::from_utf8(quiet.stdout).unwrap();
    assert!(!stdout.contains("epoch 1/1"), "--quiet printed progress: {stdout}");
}

/// Train `config`, stopping after `stop_after` epochs as an interrupted run would, with a
/// checkpoint every epoch in `out`; then resume from the checkpoint to the end of the plan.
fn interrupted_then_resumed_cnn(config: &RunConfig, out: &Path, stop_after: usize) -> Vec<NamedTensor> {
    let experiment = ImageExperiment::prepare(config.clone()).unwrap();
    let folder = RunFolder::create(Some(out), "test").unwrap();
    let options = TrainOptions { folder: Some(&folder), ..TrainOptions::default() };
    let stopped = experiment
        .train_with(experiment.model().unwrap(), options, &mut |epoch| {
            if epoch.epoch == stop_after { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert!(stopped.trained.stopped);

    // A new process would start here: a new experiment, the checkpoint read from disk.
    let experiment = ImageExperiment::prepare(config.clone()).unwrap();
    let checkpoint = Checkpoint::read(&out.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(checkpoint.state.epoch, stop_after);
    let options =
        TrainOptions { folder: Some(&folder), resume: Some(&checkpoint), ..TrainOptions::default() };
    let resumed = experiment
        .train_with(experiment.model().unwrap(), options, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(resumed.metrics.len(), 4);
    named_tensors(&resumed.trained.model).unwrap()
}

#[test]
fn a_resumed_cnn_run_ends_with_the_parameters_of_the_uninterrupted_run_bit_for_bit() {
    // Adam (moment estimates), a cosine schedule (its position), dropout (the device's
    // generator) and the shuffle: all of them must continue where the interrupted run stopped.
    let mut config = RunConfig::cnn();
    config.device = "flex".into();
    config.set("training.epochs=4").unwrap();
    config.set("training.checkpoint_every=1").unwrap();
    config.set("schedule.name=cosine").unwrap();

    let experiment = ImageExperiment::prepare(config.clone()).unwrap();
    let whole = experiment.train(experiment.model().unwrap(), &mut |_| ControlFlow::Continue(())).unwrap();
    let uninterrupted = named_tensors(&whole.trained.model).unwrap();

    let resumed = interrupted_then_resumed_cnn(&config, &scratch("resume-cnn"), 2);
    assert!(same_bits(&uninterrupted, &resumed), "the resumed run's parameters differ");
}

#[test]
fn a_resumed_mini_batch_linear_run_equals_the_uninterrupted_run_bit_for_bit() {
    let mut config = RunConfig { device: "flex".into(), ..RunConfig::default() };
    for setting in ["training.batch_size=16", "training.epochs=6", "training.checkpoint_every=1"] {
        config.set(setting).unwrap();
    }
    config.optimizer = descent::config::optimizer_from("sgd-momentum").unwrap();
    config.schedule = descent::config::schedule_from("one-cycle").unwrap();
    let experiment = Experiment::prepare(config.clone()).unwrap();
    let whole = experiment.train(&mut |_| ControlFlow::Continue(())).unwrap();

    let out = scratch("resume-linear");
    let folder = RunFolder::create(Some(&out), "test").unwrap();
    let options = TrainOptions { folder: Some(&folder), ..TrainOptions::default() };
    // Stopped while reporting epoch 4: the last checkpoint is epoch 3's.
    let stopped = experiment
        .train_with(experiment.batches().as_ref(), options, &mut |record| {
            if record.epoch == 4 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert!(stopped.stopped);

    let experiment = Experiment::prepare(config).unwrap();
    let checkpoint = Checkpoint::read(&out.join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(checkpoint.state.epoch, 3);
    let options =
        TrainOptions { folder: Some(&folder), resume: Some(&checkpoint), ..TrainOptions::default() };
    let resumed = experiment
        .train_with(experiment.batches().as_ref(), options, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(bits(resumed.model.parameters().unwrap()), bits(whole.model.parameters().unwrap()));
    let losses =
        |t: &descent::train::Trained<_>| t.losses.iter().map(|r| r.loss.to_bits()).collect::<Vec<_>>();
    assert_eq!(losses(&resumed), losses(&whole), "the resumed run reports every epoch's loss");
}

#[test]
fn descent_train_resume_extends_a_finished_run_as_if_it_had_been_asked_for_all_epochs() {
    let (once, twice) = (scratch("extend-once"), scratch("extend-twice"));
    run_ok(&["cnn", "--device", "flex", "--epochs", "3", "--out", once.to_str().unwrap(), "-q"]);
    run_ok(&["cnn", "--device", "flex", "--epochs", "2", "--out", twice.to_str().unwrap(), "-q"]);
    // Burn restores optimizer state on its default device: descent points that at a CPU backend,
    // so neither a GPU build on a machine without a GPU nor a stray BURN_DEVICE can break resume.
    let resumed = crate::common::descent_with_env(
        &["train", "--resume", twice.to_str().unwrap(), "--epochs", "3", "--json"],
        &[("BURN_DEVICE", "nonsense")],
    );
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let resumed = summary(&resumed);
    assert_eq!(resumed["resumed_from_epoch"], 2);
    assert_eq!(resumed["epochs"].as_array().unwrap().len(), 3);
    assert!(same_bits(&saved_tensors(&once), &saved_tensors(&twice)));
    assert_eq!(
        std::fs::read_to_string(once.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(twice.join("metrics.csv")).unwrap()
    );
    // Nothing left to do: refused, and the folder is unchanged.
    let before = snapshot(&twice);
    rejects(&["train", "--resume", twice.to_str().unwrap()], &["trained 3 epochs already", "--epochs N"]);
    assert_eq!(snapshot(&twice), before);
}

#[test]
fn predictions_of_the_saved_model_equal_those_of_the_model_in_memory() {
    let config = RunConfig { device: "flex".into(), ..RunConfig::default() };
    let experiment = Experiment::prepare(config).unwrap();
    let trained = experiment.train(&mut |_| ControlFlow::Continue(())).unwrap();
    let out = scratch("predict-library");
    let folder = RunFolder::create(Some(&out), "test").unwrap();
    folder.write("config.toml", experiment.config.to_toml().as_bytes()).unwrap();
    folder.save_model(trained.model.valid()).unwrap();

    let device = &experiment.device.device;
    let x = Tensor::<2>::from_data(TensorData::new(vec![-1.0f32, 1.0, 0.25, 1.0, 2.0, 1.0], [3, 2]), device);
    let in_memory = trained.model.valid().forward(x.clone()).into_data();
    let SavedModel::Linear(saved) = load_saved(&out, device).unwrap().1 else { panic!("a linear model") };
    assert_eq!(saved.forward(x).into_data(), in_memory);
}

#[test]
fn descent_predict_gives_y_for_x_and_classes_for_digits() {
    let out = scratch("predict-cli");
    let summary =
        summary(&run_ok(&["lesson2", "--device", "flex", "--out", out.to_str().unwrap(), "-q", "--json"]));
    let a = crate::common::numbers(&summary["a"]);
    let input = out.with_extension("csv");
    std::fs::write(&input, "id,x\n1,0\n2,1\n3,-2.5\n").unwrap();
    let predicted = String::from_utf8(
        run_ok(&["predict", "--model", out.to_str().unwrap(), "--input", input.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let values: Vec<f64> =
        predicted.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    for (x, y) in [0.0, 1.0, -2.5].iter().zip(&values) {
        let expected = (x * a[0] as f32 as f64) as f32 + a[1] as f32;
        assert!((y - f64::from(expected)).abs() < 1e-6, "x = {x}: {y} vs {expected}");
    }

    // The cnn on the shipped digits: the predicted classes give the accuracy the run reported.
    let cnn = scratch("predict-cnn");
    run_ok(&["cnn", "--device", "flex", "--epochs", "2", "--out", cnn.to_str().unwrap(), "-q"]);
    let written = scratch("predictions").with_extension("csv");
    let digits = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv");
    run_ok(&[
        "predict",
        "--model",
        cnn.to_str().unwrap(),
        "--input",
        digits,
        "--output",
        written.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&written).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(text.lines().next(), Some("row,predicted,confidence,label"));
    assert_eq!(rows.len(), 1797);
    let right = rows.iter().filter(|r| r[1] == r[3]).count();
    assert!(right as f64 / 1797.0 > 0.9, "{right} of 1797 right");
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r[2].parse::<f64>().unwrap())));
}

#[test]
fn lr_find_draws_its_curve() {
    let out = scratch("lr-find");
    run_ok(&["lr-find", "--device", "flex", "--out", out.to_str().unwrap(), "-q"]);
    assert_figures(&out, &["lr_find"]);
}

#[test]
fn descent_export_writes_safetensors_in_pytorch_layout() {
    let cnn = scratch("export");
    run_ok(&["cnn", "--device", "flex", "--epochs", "1", "--out", cnn.to_str().unwrap(), "-q"]);
    run_ok(&["export", "--model", cnn.to_str().unwrap(), "--format", "safetensors"]);
    let bytes = std::fs::read(cnn.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let burn = saved_tensors(&cnn);
    let head = burn.iter().find(|t| t.name == "head.weight").unwrap();
    let (inputs, classes) = (head.shape[0], head.shape[1]);
    let exported = file.tensor("head.weight").unwrap();
    assert_eq!(exported.shape(), &[classes, inputs], "PyTorch's Linear weight is [out, in]");
    let value = |bytes: &[u8], i: usize| f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    for (i, o) in [(0, 0), (3, 7), (inputs - 1, classes - 1)] {
        assert_eq!(value(exported.data(), o * inputs + i), head.values[i * classes + o]);
    }
    assert!(file.tensor("blocks.0.norm.weight").is_ok() && file.tensor("blocks.0.norm.running_var").is_ok());
    assert_eq!(file.tensor("blocks.0.conv.weight").unwrap().shape(), &[32, 1, 5, 5]);
}

#[test]
fn bad_resume_model_and_input_files_are_refused_and_change_nothing() {
    let run = scratch("bad-inputs");
    run_ok(&["lesson2", "--device", "flex", "--out", run.to_str().unwrap(), "-q"]);
    let original = snapshot(&run);
    let path = |name: &str| run.join(name).to_str().unwrap().to_string();

    // --out: an existing folder with files, or a path under a file.
    rejects(&["lesson2", "--out", run.to_str().unwrap()], &["already holds files"]);
    rejects(&["lesson2", "--out", &format!("{}/sub", path("summary.json"))], &["--out", "summary.json"]);
    // --resume: no folder, a folder without a checkpoint, a damaged checkpoint.
    rejects(&["train", "--resume", &path("nothing-here")], &["--resume", "nothing-here", "not a folder"]);
    let empty = scratch("bad-inputs-empty");
    std::fs::create_dir_all(&empty).unwrap();
    rejects(&["train", "--resume", empty.to_str().unwrap()], &["checkpoint.bin does not exist"]);
    assert_eq!(snapshot(&run), original);

    let copy = scratch("bad-inputs-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for (name, bytes) in &original {
        std::fs::write(copy.join(name), bytes).unwrap();
    }
    let checkpoint = &original[CHECKPOINT_FILE];
    std::fs::write(copy.join(CHECKPOINT_FILE), &checkpoint[..checkpoint.len() / 2]).unwrap();
    rejects(
        &["train", "--resume", copy.to_str().unwrap(), "--steps", "200"],
        &["checkpoint.bin", "cut short"],
    );
    // A checkpoint of another run (a cnn's) in this run's folder.
    let cnn = scratch("bad-inputs-cnn");
    run_ok(&["cnn", "--device", "flex", "--epochs", "1", "--out", cnn.to_str().unwrap(), "-q"]);
    std::fs::copy(cnn.join(CHECKPOINT_FILE), copy.join(CHECKPOINT_FILE)).unwrap();
    let before = snapshot(&copy);
    rejects(
        &["train", "--resume", copy.to_str().unwrap(), "--epochs", "5"],
        &["another run", "nothing was changed"],
    );
    assert_eq!(snapshot(&copy), before);

    // --model: a truncated or altered model file.
    let model = &original["model.bpk"];
    std::fs::write(copy.join("model.bpk"), &model[..model.len() - 10]).unwrap();
    let input = scratch("bad-inputs-x").with_extension("csv");
    std::fs::write(&input, "x\n1\n").unwrap();
    let predict = |dir: &Path| {
        vec![
            "predict".to_string(),
            "--model".into(),
            dir.to_str().unwrap().into(),
            "--input".into(),
            input.to_str().unwrap().into(),
        ]
    };
    let args = predict(&copy);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    rejects(&args, &["model.bpk"]);
    let mut altered = model.clone();
    let middle = altered.len() - 3;
    altered[middle] ^= 0x40;
    std::fs::write(copy.join("model.bpk"), &altered).unwrap();
    rejects(&args, &["model.bpk", "SHA-256", "altered or damaged"]);
    // --input with the wrong columns, and --output over the input.
    let wrong = scratch("bad-inputs-wrong").with_extension("csv");
    std::fs::write(&wrong, "a,b\n1,2\n").unwrap();
    rejects(
        &["predict", "--model", run.to_str().unwrap(), "--input", wrong.to_str().unwrap()],
        &["--input", "no column `x`"],
    );
    rejects(
        &[
            "predict",
            "--model",
            run.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            input.to_str().unwrap(),
        ],
        &["--output", "is the input file"],
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "x\n1\n");
    assert_eq!(snapshot(&run), original, "the run folder is as it was");
}

#[test]
fn a_diverging_run_stops_at_once_with_exit_code_3_and_keeps_its_finite_metrics_and_checkpoint() {
    // lr 1.5 is past the lesson's stability limit (lr < 1: the Hessian's largest eigenvalue is 2).
    let out = scratch("diverge");
    let output = descent(&[
        "lesson2",
        "--device",
        "flex",
        "--lr",
        "1.5",
        "--checkpoint-every",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let step: usize = stderr
        .split("at step ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step in: {stderr}"));
    assert!(stderr.contains("loss became inf") || stderr.contains("loss became NaN"), "{stderr}");
    assert!(stderr.contains("(lr 1.5)") && stderr.contains("descent lr-find"), "{stderr}");
    assert!(step < 100, "stopped at step {step}, not at the end");

    // The metrics up to the divergence, all finite; the last checkpoint is before it and loads.
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let losses: Vec<f64> =
        metrics.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
    assert_eq!(losses.len(), step.div_ceil(10), "{metrics}");
    assert!(losses.iter().all(|l| l.is_finite()) && losses.windows(2).all(|w| w[1] > w[0]), "{losses:?}");
    let checkpoint = Checkpoint::read(&out.join(CHECKPOINT_FILE)).unwrap();
    assert!(checkpoint.state.step < step && checkpoint.state.step.is_multiple_of(10));
    assert!(!out.join("model.bpk").exists(), "a diverged model is not saved as the run's model");
}

/// A 40-epoch `descent cnn` on Flex with `extra` flags, once it has printed its second epoch;
/// the rest of its stdout, line by line.
#[cfg(unix)]
fn cnn_after_epoch_2(
    extra: &[&str],
) -> (std::process::Child, std::io::Lines<std::io::BufReader<std::process::ChildStdout>>) {
    let args = [&["cnn", "--device", "flex", "--epochs", "40"][..], extra].concat();
    crate::common::spawn_until(&args, "epoch 2/40")
}

#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_mid_epoch_exits_130_and_the_run_resumes_bit_for_bit() {
    let (interrupted, straight) = (scratch("sigint"), scratch("sigint-straight"));
    // Send the signal once training is under way, as a user at the keyboard would.
    let (child, lines) = cnn_after_epoch_2(&["--out", interrupted.to_str().unwrap()]);
    sigint(&child);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("descent train --resume"), "{stderr}");
    assert!(rest.iter().all(|line| !line.starts_with("epoch 6/")), "the signal came too late: {rest:?}");

    let checkpoint = Checkpoint::read(&interrupted.join(CHECKPOINT_FILE)).unwrap();
    assert!(checkpoint.state.epoch >= 2 && checkpoint.state.epoch < 6, "{:?}", checkpoint.state.epoch);
    run_ok(&["train", "--resume", interrupted.to_str().unwrap(), "--epochs", "6", "-q"]);
    run_ok(&["cnn", "--device", "flex", "--epochs", "6", "--out", straight.to_str().unwrap(), "-q"]);
    assert_eq!(
        std::fs::read_to_string(interrupted.join("metrics.csv")).unwrap(),
        std::fs::read_to_string(straight.join("metrics.csv")).unwrap()
    );
    assert!(same_bits(&saved_tensors(&interrupted), &saved_tensors(&straight)));
}

#[cfg(unix)]
#[test]
fn a_second_ctrl_c_exits_at_once_and_leaves_every_file_whole() {
    let out = scratch("sigint-twice");
    let (child, lines) = cnn_after_epoch_2(&["--checkpoint-every", "1", "--out", out.to_str().unwrap()]);
    // Two signals back to back: the second must not wait for the step or the checkpoint.
    sigint(&child);
    sigint(&child);
    let _: Vec<String> = lines.map(Result::unwrap).collect();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));

    // Whatever was written is whole: the configuration parses, the checkpoint passes its
    // checksum, and the run resumes from it. It holds the end of epoch 1 at least: an epoch's
    // line is printed before its checkpoint is written (the epoch's observers, the TensorBoard
    // log's flush among them, come first), so the signals may beat epoch 2's checkpoint.
    RunConfig::load(&out.join("config.toml")).unwrap();
    let checkpoint = Checkpoint::read(&out.join(CHECKPOINT_FILE)).unwrap();
    assert!(checkpoint.state.epoch >= 1, "{}", checkpoint.state.epoch);
    let target = (checkpoint.state.epoch + 1).to_string();
    run_ok(&["train", "--resume", out.to_str().unwrap(), "--epochs", &target, "-q"]);
}
