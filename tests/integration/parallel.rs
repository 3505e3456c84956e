//! Data-parallel training over two CPU devices (`--devices flex,ndarray`): the update is the one
//! device's update (the shares' weighted gradients add up to the batch's), so models without
//! batch statistics follow the one-device trajectory; the CNN with batch norm and dropout lands
//! in the one-device accuracy band; checkpoints move between device sets; bad lists are refused.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::common::{descent, numbers, rejects, summary};
use descent::config::RunConfig;
use descent::experiment::Experiment;

/// Far above the rounding of summing two shares' gradients in f32 over these runs, far below
/// any difference a wrong weighting or a lost share makes (those are above 1e-2).
const SAME: f64 = 1e-5;

fn scratch(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("parallel").join(name);
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    path
}

fn run_json(args: &[&str]) -> serde_json::Value {
    let output = descent(args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    summary(&output)
}

fn assert_close(found: &[f64], expected: &[f64], what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}: {found:?} vs {expected:?}");
    for (f, e) in found.iter().zip(expected) {
        assert!((f - e).abs() <= SAME * e.abs().max(1.0), "{what}: {found:?} vs {expected:?}");
    }
}

/// Mini-batches of 33 rows out of 100: shares of 17 and 16 rows, and a last batch of one row
/// that only the main device trains on. Momentum and a one-cycle schedule make every step's
/// gradient count.
fn uneven_mini_batches(devices: &[&str]) -> RunConfig {
    let mut config = RunConfig { device: devices[0].into(), ..RunConfig::default() };
    config.devices =
        if devices.len() > 1 { devices.iter().map(|d| d.to_string()).collect() } else { Vec::new() };
    for setting in ["training.batch_size=33", "training.epochs=8"] {
        config.set(setting).unwrap();
    }
    config.optimizer = descent::config::optimizer_from("sgd-momentum").unwrap();
    config.schedule = descent::config::schedule_from("one-cycle").unwrap();
    config
}

#[test]
fn two_devices_follow_the_one_device_trajectory_on_uneven_mini_batches() {
    let train = |devices: &[&str]| {
        let experiment = Experiment::prepare(uneven_mini_batches(devices)).unwrap();
        assert_eq!(experiment.device_names().len(), devices.len());
        let trained = experiment.train(&mut |_| ControlFlow::Continue(())).unwrap();
        let parameters: Vec<f64> = trained.model.parameters().unwrap().into_iter().map(f64::from).collect();
        let losses: Vec<f64> = trained.losses.iter().map(|r| r.loss).collect();
        (parameters, losses, trained.steps)
    };
    let (one, one_losses, one_steps) = train(&["flex"]);
    let (two, two_losses, two_steps) = train(&["flex", "ndarray"]);
    assert_eq!(two_steps, one_steps);
    assert_eq!(two_losses.len(), 8);
    assert_close(&two, &one, "parameters");
    assert_close(&two_losses, &one_losses, "epoch losses");
    // Training moved far from the start, (-1, 1), towards the true slope 3.
    assert!(one[0] > 2.0, "slope {}", one[0]);
}

#[test]
fn the_lesson_on_two_devices_ends_at_the_one_device_fit() {
    let one = run_json(&[
        "lesson2",
        "--device",
        "flex",
        "--json",
        "--out",
        scratch("lesson-one").to_str().unwrap(),
    ]);
    let two = run_json(&[
        "lesson2",
        "--devices",
        "flex, ndarray",
        "--json",
        "--out",
        scratch("lesson-two").to_str().unwrap(),
    ]);
    assert_close(&numbers(&two["a"]), &numbers(&one["a"]), "a");
    let losses = |summary: &serde_json::Value| -> Vec<f64> {
        summary["losses"].as_array().unwrap().iter().map(|r| r["loss"].as_f64().unwrap()).collect()
    };
    assert_close(&losses(&two), &losses(&one), "printed losses");
    assert_eq!(losses(&one).len(), 10);
    assert_eq!(two["devices"].as_array().unwrap().len(), 2, "{}", two["devices"]);
    assert_eq!(one["devices"].as_array().unwrap().len(), 1);
    // The saved configuration reproduces the run on the same devices.
    let saved = std::fs::read_to_string(scratch_path("lesson-two").join("config.toml")).unwrap();
    assert!(saved.contains("devices = [\"flex\", \"ndarray\"]"), "{saved}");
}

fn scratch_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("parallel").join(name)
}

/// Each CNN run in its own process: Burn's CPU backends keep one global generator.
fn cnn(name: &str, extra: &[&str]) -> serde_json::Value {
    let out = scratch(name);
    let mut args = vec!["cnn", "--json", "-q", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_json(&args)
}

fn epoch_numbers(summary: &serde_json::Value, key: &str) -> Vec<f64> {
    summary["epochs"].as_array().unwrap().iter().map(|e| e[key].as_f64().unwrap()).collect()
}

#[test]
fn a_cnn_without_batch_statistics_trains_on_two_devices_as_on_one() {
    // No batch norm and no dropout: nothing depends on how the batch is cut, so the two-device
    // run makes the one-device updates (from the same seeded initial weights).
    let plain = ["--epochs", "2", "--set", "model.batch_norm=false", "--set", "model.dropout=0"];
    let one = cnn("plain-one", &[&plain[..], &["--device", "flex"]].concat());
    let two = cnn("plain-two", &[&plain[..], &["--devices", "flex,ndarray"]].concat());
    for key in ["train_loss", "valid_loss", "accuracy"] {
        assert_close(&epoch_numbers(&two, key), &epoch_numbers(&one, key), key);
    }
    assert!(epoch_numbers(&one, "accuracy")[1] > 0.5, "{}", one["epochs"]);
}

#[test]
fn the_cnn_on_two_devices_reaches_the_one_device_accuracy_band_and_repeats_exactly() {
    // Batch norm sees each device's share of the batch, and each device draws its own dropout
    // masks, so the run differs from one device's; it must land in the same band (the one-device
    // test asks for more than 0.8 after 3 epochs; it reaches 0.97) and repeat itself exactly.
    let two = cnn("band-two", &["--epochs", "3", "--devices", "flex,ndarray"]);
    let accuracy = epoch_numbers(&two, "accuracy");
    assert!(accuracy[2] > 0.8, "validation accuracy after 3 epochs on two devices: {accuracy:?}");
    let losses = epoch_numbers(&two, "train_loss");
    assert!(losses[2] < losses[0], "training loss did not fall: {losses:?}");
    assert_eq!(two["devices"].as_array().unwrap().len(), 2);

    let small = ["--epochs", "1", "--set", "model.channels=[8,16]", "--devices", "flex,ndarray"];
    let first = cnn("repeat-a", &small);
    let second = cnn("repeat-b", &small);
    assert_eq!(first["epochs"], second["epochs"], "same seed, same devices: identical metrics");
}

#[test]
fn a_two_device_checkpoint_resumes_on_one_device() {
    // Train 2 of 4 epochs on two devices, resume on one: the end equals 4 epochs on one device.
    let common = ["train", "--batch-size", "33", "--optim", "sgd-momentum", "--json", "-q"];
    let out = scratch("resume");
    let straight = scratch("straight");
    let whole = run_json(
        &[&common[..], &["--epochs", "4", "--device", "flex", "--out", straight.to_str().unwrap()]].concat(),
    );
    run_json(
        &[&common[..], &["--epochs", "2", "--devices", "flex,ndarray", "--out", out.to_str().unwrap()]]
            .concat(),
    );
    let resumed =
        descent(&["train", "--resume", out.to_str().unwrap(), "--epochs", "4", "--device", "flex", "--json"]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let resumed = summary(&resumed);
    assert_eq!(resumed["resumed_from_epoch"], 2);
    assert_eq!(resumed["devices"].as_array().unwrap().len(), 1);
    assert_close(&numbers(&resumed["a"]), &numbers(&whole["a"]), "a after resuming on one device");
}

#[test]
fn bad_device_lists_are_refused_before_anything_is_written() {
    let out = scratch("refused");
    let out = out.to_str().unwrap();
    rejects(&["lesson2", "--devices", "flex,,ndarray", "--out", out], &["--devices", "entry 2 is empty"]);
    rejects(
        &["lesson2", "--devices", "flex,FLEX", "--out", out],
        &["--devices", "names `FLEX` twice", "entries 1 and 2"],
    );
    // `auto` is Flex where no hardware GPU is found (as in CI): the same device as `flex`.
    if descent::device::select("auto").unwrap().backend == descent::device::Backend::Flex {
        rejects(
            &["lesson2", "--devices", "flex,auto", "--out", out],
            &["devices", "`flex` and `auto` are the same device"],
        );
    }
    rejects(
        &["lesson2", "--devices", "flex", "--device", "ndarray", "--out", out],
        &["--devices", "--device"],
    );
    rejects(
        &["lesson2", "--devices", "flex,cuda", "--out", out],
        &["cuda", "not compiled", "--features cuda"],
    );
    rejects(&["lesson2", "--devices", "flex,tpu", "--out", out], &["unknown device `tpu`"]);
    assert!(!Path::new(out).exists(), "a refused run wrote {out}");
}

#[test]
fn lr_find_on_two_devices_suggests_what_it_suggests_on_one() {
    let sweep = |flag: &str, devices: &str, out: &str| {
        run_json(&["lr-find", flag, devices, "--json", "-q", "--out", scratch(out).to_str().unwrap()])
    };
    let one = sweep("--device", "flex", "lr-find-one");
    let two = sweep("--devices", "flex,ndarray", "lr-find-two");
    let smoothed = |summary: &serde_json::Value| -> Vec<f64> {
        summary["points"].as_array().unwrap().iter().map(|p| p["smoothed"].as_f64().unwrap()).collect()
    };
    let (one_curve, two_curve) = (smoothed(&one), smoothed(&two));
    // The sweep ends where the loss blows up: compare the curve up to its minimum's neighbourhood.
    let finite = one_curve.iter().take_while(|v| v.is_finite()).count().min(two_curve.len()) - 1;
    assert_close(&two_curve[..finite], &one_curve[..finite], "smoothed loss");
    assert_close(
        &[two["suggestion"].as_f64().unwrap()],
        &[one["suggestion"].as_f64().unwrap()],
        "suggestion",
    );
    assert_eq!(two["devices"].as_array().unwrap().len(), 2);
}
