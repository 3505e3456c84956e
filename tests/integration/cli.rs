//! The `descent` binary as users run it: the lesson's output, its JSON summary, reproducibility,
//! and clear errors with exit code 2 for bad input.

use std::io::Write;

use burn::module::Module;

use crate::common::{descent, descent_with_env, numbers, rejects, summary};

#[test]
fn the_lesson_fits_the_line_and_matches_least_squares() {
    let output = descent(&["lesson2", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("first rows of x"), "{stdout}");
    let json = summary(&output);

    // Ten losses, at steps 0, 10, ..., 90, falling.
    let losses = json["losses"].as_array().unwrap();
    let steps: Vec<u64> = losses.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (0..100).step_by(10).collect::<Vec<u64>>());
    let values: Vec<f64> = losses.iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[1] < w[0]), "{values:?}");
    assert_eq!(json["steps"], 100);

    let a = numbers(&json["a"]);
    let a_ols = numbers(&json["a_ols"]);
    assert!((a[0] - 3.0).abs() < 0.15 && (a[1] - 2.0).abs() < 0.15, "a = {a:?}");
    let gap = a.iter().zip(&a_ols).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
    assert!(gap < 0.01, "a = {a:?}, a_ols = {a_ols:?}");
    assert!((json["gap_a"].as_f64().unwrap() - gap).abs() < 1e-12);
    let (loss, loss_ols) = (json["loss"].as_f64().unwrap(), json["loss_ols"].as_f64().unwrap());
    assert!(loss >= loss_ols && loss - loss_ols < 1e-3, "{loss} vs {loss_ols}");
    assert!(json["device"].as_str().unwrap().contains("Device"), "{}", json["device"]);
    assert!(json["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn same_seed_same_losses_different_seed_different_data() {
    let losses = |seed: &str| {
        let output = descent(&["lesson2", "--json", "--seed", seed, "--device", "auto"]);
        assert!(output.status.success());
        let json = summary(&output);
        json["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["loss"].as_f64().unwrap().to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(losses("7"), losses("7"));
    assert_ne!(losses("7"), losses("8"));
}

#[test]
fn every_device_flag_runs_the_lesson() {
    for backend in descent::device::Backend::compiled() {
        let output = descent(&["lesson2", "--json", "--device", backend.name()]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(summary(&output)["backend"], backend.name());
    }
}

#[test]
fn mini_batches_print_one_line_per_epoch() {
    let output =
        descent(&["lesson2", "--json", "--batch-size", "16", "--epochs", "12", "--print-every", "4"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = summary(&output);
    let epochs: Vec<u64> =
        json["losses"].as_array().unwrap().iter().map(|r| r["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![4, 8, 12]);
    assert_eq!(json["steps"], 12 * 7); // 100 rows in batches of 16: 7 per epoch
    assert_eq!(json["batch_size"], 16);
}

#[test]
fn points_from_a_csv_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    // y = 3x + 2 exactly: least squares recovers it and gradient descent gets close.
    writeln!(file, "x,y").unwrap();
    for i in 0..50 {
        let x = -1.0 + 2.0 * f64::from(i) / 49.0;
        writeln!(file, "{x},{}", 3.0 * x + 2.0).unwrap();
    }
    let path = file.path().to_str().unwrap();
    let output = descent(&["lesson2", "--json", "--data", path, "--steps", "2000"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json = summary(&output);
    let a_ols = numbers(&json["a_ols"]);
    assert!((a_ols[0] - 3.0).abs() < 1e-5 && (a_ols[1] - 2.0).abs() < 1e-5, "{a_ols:?}");
    let a = numbers(&json["a"]);
    assert!((a[0] - 3.0).abs() < 1e-3 && (a[1] - 2.0).abs() < 1e-3, "{a:?}");
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    rejects(&["lesson2", "--n", "0"], &["--n", "at least 1"]);
    rejects(&["lesson2", "--lr", "0"], &["--lr", "greater than 0"]);
    rejects(&["lesson2", "--lr", "-0.1"], &["--lr"]);
    rejects(&["lesson2", "--lr", "inf"], &["--lr", "finite"]);
    rejects(&["lesson2", "--lr", "NaN"], &["--lr"]);
    rejects(&["lesson2", "--lr", "fast"], &["--lr", "fast"]);
    rejects(&["lesson2", "--init", "1,2,3"], &["--init", "got 3 values"]);
    rejects(&["lesson2", "--init", "-1"], &["--init", "got 1 value"]);
    rejects(&["lesson2", "--batch-size", "0"], &["--batch-size", "at least 1"]);
    rejects(&["lesson2", "--steps", "5", "--epochs", "5"], &["--steps", "--epochs"]);
    rejects(&["lesson2", "--device", "tpu"], &["unknown device `tpu`", "auto"]);
}

#[test]
fn bad_data_files_exit_2_naming_the_file_and_line() {
    rejects(&["lesson2", "--data", "/no/such/points.csv"], &["/no/such/points.csv"]);

    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(file, "x,y\n0.5,3.5\n0.1,not-a-number\n").unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    rejects(&["lesson2", "--data", &path], &[&path, "line 3", "not-a-number"]);

    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(file, "a,b\n1,2\n").unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    rejects(&["lesson2", "--data", &path], &[&path, "no column `x`"]);

    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "x,y").unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    rejects(&["lesson2", "--data", &path], &[&path, "no rows"]);
}

#[test]
fn devices_lists_the_compiled_backends() {
    let output = descent(&["devices"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for backend in descent::device::Backend::compiled() {
        assert!(stdout.contains(backend.name()), "{backend} missing from: {stdout}");
    }
    assert!(stdout.contains("--device auto picks:"), "{stdout}");

    let json = summary(&descent(&["devices", "--json"]));
    let names: Vec<&str> =
        json["compiled"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    let expected: Vec<&str> = descent::device::Backend::compiled().iter().map(|b| b.name()).collect();
    assert_eq!(names, expected);
    assert!(json["auto"].is_string());
    let remote = descent::device::Backend::Remote.is_compiled();
    assert_eq!(json["remote"].as_bool(), Some(remote));
    assert!(
        stdout.contains(if remote { "--device remote:ws://HOST:PORT" } else { "--features remote" }),
        "{stdout}"
    );
}

#[test]
fn device_errors_exit_2_and_say_what_to_do() {
    for backend in descent::device::Backend::ALL.iter().filter(|b| !b.is_compiled()) {
        let feature = format!("rebuild with `--features {}`", backend.name());
        rejects(&["lesson2", "--device", backend.name()], &[&feature]);
    }
    rejects(
        &["lesson2", "--device", "gpu"],
        &["unknown device `gpu`", "auto, cuda, rocm, metal, vulkan, wgpu, flex, ndarray"],
    );
    rejects(&["lesson2", "--device", "flex:1"], &["takes no adapter"]);
    if descent::device::Backend::Wgpu.is_compiled() {
        rejects(&["lesson2", "--device", "wgpu:tpu"], &["unknown adapter kind `tpu`"]);
        // A kind of adapter this machine lacks: a clear error, not the panic of Burn's lazy init.
        let missing = ["discrete", "integrated", "virtual", "cpu"].into_iter().find(|kind| {
            !descent::device::adapters(descent::device::Backend::Wgpu).iter().any(|a| a.kind.name() == *kind)
        });
        if let Some(kind) = missing {
            let spec = format!("wgpu:{kind}:7");
            rejects(&["lesson2", "--device", &spec], &["no usable adapter"]);
        }
    }
}

#[test]
fn the_device_flag_wins_over_burn_device() {
    // Burn's `Device::default()` follows BURN_DEVICE (and panics on a backend not compiled in);
    // descent never uses it, so the environment variable changes nothing.
    for burn_device in ["ndarray", "flex", "cuda", "nonsense"] {
        for backend in descent::device::Backend::compiled().into_iter().filter(|b| !b.is_gpu()) {
            let output = descent_with_env(
                &["lesson2", "--json", "--device", backend.name()],
                &[("BURN_DEVICE", burn_device)],
            );
            assert!(
                output.status.success(),
                "BURN_DEVICE={burn_device}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let json = summary(&output);
            assert_eq!(json["backend"], backend.name());
            let device = json["device"].as_str().unwrap().to_lowercase();
            assert!(device.contains(&format!("{}(", backend.name())), "{device}");
        }
    }
}

#[test]
fn a_run_leaves_its_configuration_and_summary_in_its_folder() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    let out_text = out.to_str().unwrap();
    let output =
        descent(&["lesson2", "--json", "--optim", "sgd-momentum", "--steps", "50", "--out", out_text]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = summary(&output);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(printed, saved);
    // metrics.csv: a header and one row per printed loss (steps 0, 10, ..., 40).
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = metrics.lines().collect();
    assert_eq!(lines[0], "step,epoch,lr,train_loss,valid_loss,accuracy,error_rate");
    assert_eq!(lines.len(), 1 + printed["losses"].as_array().unwrap().len());
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first[0], "0");
    assert_eq!(first[3].parse::<f64>().unwrap(), printed["losses"][0]["loss"].as_f64().unwrap());

    // The saved model holds the fitted parameters.
    let device = descent::device::select("auto").unwrap().device;
    let reloaded = descent::model::LinearModel::new(&[0.0, 0.0], &device)
        .try_load_file(out.join("model.bpk"))
        .expect("model.bpk loads");
    let a: Vec<f64> = reloaded.parameters().unwrap().into_iter().map(f64::from).collect();
    assert_eq!(serde_json::json!(a), printed["a"]);

    // The saved configuration repeats the run exactly.
    let config = out.join("config.toml");
    let again = root.path().join("again");
    let repeat =
        descent(&["train", "--json", "--config", config.to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert!(repeat.status.success(), "{}", String::from_utf8_lossy(&repeat.stderr));
    assert_eq!(summary(&repeat)["losses"], printed["losses"]);
    assert_eq!(summary(&repeat)["a"], printed["a"]);

    // A folder that holds a run is never written over.
    let before = std::fs::read(out.join("summary.json")).unwrap();
    rejects(&["lesson2", "--out", out_text], &["--out", out_text, "already holds files"]);
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), before);

    // A folder that cannot be created.
    let file = root.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let inside_a_file = file.join("run");
    rejects(&["lesson2", "--out", inside_a_file.to_str().unwrap()], &["--out", "cannot write"]);
}

#[test]
fn quiet_prints_only_the_summary_and_no_output_has_escape_codes() {
    let root = tempfile::tempdir().unwrap();
    let full = descent(&["lesson2", "--out", root.path().join("full").to_str().unwrap()]);
    let quiet = descent(&["lesson2", "--quiet", "--out", root.path().join("quiet").to_str().unwrap()]);
    assert!(full.status.success() && quiet.status.success());
    let (full, quiet) = (String::from_utf8_lossy(&full.stdout), String::from_utf8_lossy(&quiet.stdout));
    // Not a terminal: plain lines, one per printed step, never an escape code.
    assert!(!full.contains('\u{1b}'));
    assert_eq!(full.lines().filter(|l| l.starts_with("step ")).count(), 10);
    assert_eq!(quiet.lines().filter(|l| l.starts_with("step ")).count(), 0);
    assert!(quiet.lines().count() <= 5, "{quiet}");
    assert!(quiet.contains("fitted a:") && quiet.contains("outputs:"), "{quiet}");
}

#[test]
fn a_closed_pipe_ends_the_program_without_a_panic() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // `descent lesson2 ... | head -1`: the reader goes away after one line, while the program
    // still has megabytes to print (more than a pipe buffers), so its next write fails.
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args([
            "lesson2",
            "--steps",
            "100000",
            "--print-every",
            "1",
            "--out",
            root.path().join("run").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    drop(reader);
    assert!(first.starts_with("descent lesson2"), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bench_prints_a_table_and_its_json() {
    let output =
        descent(&["bench", "--workloads", "lesson", "--devices", "flex", "--repeats", "1", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = summary(&output);
    let results = summary["results"].as_array().unwrap();
    let cases: Vec<&str> = results.iter().map(|r| r["case"].as_str().unwrap()).collect();
    assert_eq!(cases, ["n=100, 100 steps", "n=100, 10000 steps"]);
    for result in results {
        assert_eq!((result["workload"].as_str(), result["unit"].as_str()), (Some("lesson"), Some("µs/step")));
        let median = result["median"].as_f64().unwrap();
        assert!(median.is_finite() && median > 0.0, "{result}");
    }
    assert!(summary["machine"]["cores"].as_u64().unwrap() >= 1);
    rejects(&["bench", "--devices", "nonsense"], &["--devices", "nonsense"]);
    rejects(&["bench", "--workloads", "everything"], &["--workloads"]);
}

#[test]
fn help_quotes_the_defaults_the_configuration_uses() {
    use descent::config::{DataConfig, RunConfig};
    use descent::defaults::{CNN_BATCH_SIZE, CNN_EPOCHS, EPOCHS, N, NOISE, SEED, STEPS, VALID_FRACTION};

    let help = |command: &str| {
        let output = descent(&[command, "--help"]);
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let lesson = help("lesson2");
    for quoted in [
        format!("[default: {N}]"),
        format!("[default: {NOISE}]"),
        format!("[default: {SEED}]"),
        format!("[default: {STEPS} with full batches"),
        format!("[default: {EPOCHS} with mini-batches"),
        format!("[default: {CNN_BATCH_SIZE} for the cnn]"),
    ] {
        assert!(lesson.contains(&quoted), "lesson2 --help lacks {quoted}: {lesson}");
    }
    assert!(help("cnn").contains(&format!("held out for validation [default: {VALID_FRACTION}]")));
    // The values quoted are the ones the configuration takes.
    let config = RunConfig::default();
    assert_eq!(config.seed, SEED);
    assert_eq!(config.data, DataConfig::Lesson { n: N, true_a: [3.0, 2.0], noise: NOISE });
    let cnn = RunConfig::cnn();
    assert_eq!((cnn.training.batch_size, cnn.training.epochs), (Some(CNN_BATCH_SIZE), Some(CNN_EPOCHS)));
}
