//! `descent sweep`: a 2×2 grid on the lesson against four separate runs, a diverging trial
//! recorded and passed over, an interrupted sweep resumed, and the bad sweep files refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{descent, rejects, run_ok, sigint, summary};

/// A folder for `name` under the test's temporary directory, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sweep").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A sweep file over the lesson of `steps` steps and `n` points in `dir`, with `values`.
fn sweep_file(dir: &Path, n: usize, steps: usize, values: &str) -> PathBuf {
    let base = run_ok(&["config", "show", "--steps", &steps.to_string(), "--n", &n.to_string()]);
    std::fs::write(dir.join("base.toml"), &base.stdout).unwrap();
    let path = dir.join("sweep.toml");
    std::fs::write(&path, format!("base = \"base.toml\"\n{values}")).unwrap();
    path
}

/// sweep.csv as rows of fields, without the header.
fn csv_rows(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    text.lines().skip(1).map(|line| line.split(',').map(String::from).collect()).collect()
}

#[test]
fn a_grid_of_four_equals_four_separate_runs_and_best_toml_names_the_best() {
    let dir = scratch("grid");
    let file = sweep_file(&dir, 100, 40, "[grid]\n\"optimizer.lr\" = [0.05, 0.1]\nseed = [1, 2]\n");
    let out = dir.join("out");
    let output =
        run_ok(&["sweep", "--config", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"]);
    let json = summary(&output);
    assert_eq!((json["trials"].as_u64(), json["finished"].as_u64()), (Some(4), Some(4)), "{json}");
    let header = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert!(header.starts_with("trial,optimizer.lr,seed,status,loss,"), "{header}");
    let rows = csv_rows(&out);
    let mut best = (f64::INFINITY, String::new(), String::new());
    for (row, (lr, seed)) in rows.iter().zip([("0.05", "1"), ("0.05", "2"), ("0.1", "1"), ("0.1", "2")]) {
        assert_eq!((row[1].as_str(), row[2].as_str(), row[3].as_str()), (lr, seed, "finished"));
        // The same run by hand: the base configuration, the two values set.
        let base = dir.join("base.toml");
        let alone = run_ok(&[
            "train",
            "--config",
            base.to_str().unwrap(),
            "--set",
            &format!("optimizer.lr={lr}"),
            "--seed",
            seed,
            "--json",
            "-q",
            "--out",
            dir.join(format!("alone-{lr}-{seed}")).to_str().unwrap(),
        ]);
        let loss = summary(&alone)["loss"].as_f64().unwrap();
        assert_eq!(row[4].parse::<f64>().unwrap(), loss, "trial {} against its run alone", row[0]);
        assert!(out.join(&row[row.len() - 1]).join("summary.json").exists(), "each trial is a run folder");
        if loss < best.0 {
            best = (loss, lr.to_string(), seed.to_string());
        }
    }
    let chosen = std::fs::read_to_string(out.join("best.toml")).unwrap();
    let config = descent::config::RunConfig::load(&out.join("best.toml")).unwrap();
    assert_eq!(config.seed.to_string(), best.2, "{chosen}");
    assert_eq!(config.optimizer.lr().to_string(), best.1, "{chosen}");
    assert_eq!(json["best"]["figures"]["loss"].as_f64(), Some(best.0));
    assert!(std::fs::read(out.join("sweep.png")).unwrap().starts_with(b"\x89PNG"));
    // Two at a time, each with half the cores: the same trials, the same figures.
    let side_by_side = dir.join("parallel");
    run_ok(&[
        "sweep",
        "--config",
        file.to_str().unwrap(),
        "--out",
        side_by_side.to_str().unwrap(),
        "--parallel",
        "2",
        "-q",
    ]);
    let losses = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter().map(|row| row[..5].to_vec()).collect()
    };
    assert_eq!(losses(csv_rows(&side_by_side)), losses(rows));
}

#[test]
fn a_diverging_trial_is_recorded_and_the_sweep_goes_on() {
    let dir = scratch("diverge");
    let file = sweep_file(&dir, 100, 40, "[grid]\n\"optimizer.lr\" = [10.0, 0.1]\n");
    let out = dir.join("out");
    let output =
        run_ok(&["sweep", "--config", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"]);
    let json = summary(&output);
    assert_eq!((json["diverged"].as_u64(), json["finished"].as_u64()), (Some(1), Some(1)), "{json}");
    let rows = csv_rows(&out);
    assert_eq!(rows[0][2], "diverged");
    assert_eq!(rows[1][2], "finished");
    assert_eq!(json["best"]["trial"], 2);
}

#[test]
fn an_interrupted_sweep_resumes_where_it_stopped() {
    let dir = scratch("resume");
    let values = "[random]\ntrials = 4\nseed = 7\n\"optimizer.lr\" = { log_uniform = [0.01, 0.2] }\n";
    let file = sweep_file(&dir, 1_000_000, 100, values);
    let (straight, interrupted) = (dir.join("straight"), dir.join("interrupted"));
    run_ok(&["sweep", "--config", file.to_str().unwrap(), "--out", straight.to_str().unwrap(), "-q"]);
    let child = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["sweep", "--config", file.to_str().unwrap(), "--out", interrupted.to_str().unwrap(), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = interrupted.join("trial-001").join("summary.json");
    let start = std::time::Instant::now();
    while !first.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sigint(&child);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("resume it with `descent sweep --config"), "{stderr}");
    let ended = csv_rows(&interrupted).len();
    assert!((1..4).contains(&ended), "{ended} trials ended before the interruption");
    let kept = std::fs::metadata(&first).unwrap().modified().unwrap();
    run_ok(&["sweep", "--config", file.to_str().unwrap(), "--out", interrupted.to_str().unwrap(), "-q"]);
    assert_eq!(
        std::fs::metadata(&first).unwrap().modified().unwrap(),
        kept,
        "an ended trial is not run again"
    );
    // The same trials, the same losses (everything but the seconds).
    let figures = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter().map(|row| row[..4].to_vec()).collect()
    };
    assert_eq!(figures(csv_rows(&interrupted)), figures(csv_rows(&straight)));
    // Another sweep file in the same folder is refused.
    let other = sweep_file(&dir, 100, 10, "[grid]\n\"optimizer.lr\" = [0.3]\n");
    rejects(
        &["sweep", "--config", other.to_str().unwrap(), "--out", interrupted.to_str().unwrap()],
        &["another sweep"],
    );
}

#[test]
fn bad_sweep_files_are_refused_with_the_file_and_the_key() {
    let dir = scratch("bad");
    for (values, expected) in [
        ("", "[grid] or as [random]"),
        ("[grid]\n\"optimizer.lr\" = [-1.0]\n", "trial 1 (optimizer.lr = -1.0)"),
        ("[grid]\n\"optimizer.nonsense\" = [1]\n", "optimizer.nonsense"),
        ("[random]\ntrials = 2\nseed = 1\nx = { log_uniform = [0, 1] }\n", "random.\"x\""),
        ("[grid]\na = [1]\n[random]\ntrials = 1\nseed = 1\n", "one of the two"),
    ] {
        let file = sweep_file(&dir, 100, 10, values);
        rejects(
            &["sweep", "--config", file.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap()],
            &["sweep.toml", expected],
        );
    }
    rejects(&["sweep", "--config", "no-such-sweep.toml"], &["no-such-sweep.toml"]);
    let _ = descent(&["sweep", "--help"]);
}
