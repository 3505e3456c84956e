//! Optimizers, schedules and run configurations: every shipped file trains the lesson, the update
//! rules agree with independent f64 implementations, configurations round-trip, and bad input is
//! refused with the field named.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::common::{descent, rejects, summary};
use descent::config::{RunConfig, optimizer_from, parse_toml, schedule_from};
use descent::data::{LessonData, Table};
use descent::experiment::Experiment;
use descent::optim::{OptimizerConfig, ScheduleConfig};
use descent::train::{LrFindSettings, lr_find};

fn config_files() -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("configs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 11, "configs/ has {files:?}");
    files
}

/// Train the lesson (full batch) with `config` and return the gap to least squares.
fn gap_after_training(config: RunConfig) -> f64 {
    let experiment = Experiment::prepare(config).expect("the configuration prepares");
    let trained = experiment.train(&mut |_| ControlFlow::Continue(())).expect("training runs");
    let a = trained.model.parameters().unwrap();
    let ols = experiment.rows.least_squares().unwrap();
    a.iter().zip(&ols.a).map(|(p, q)| (f64::from(*p) - q).abs()).fold(0.0, f64::max)
}

#[test]
fn every_shipped_file_parses_and_trains_the_lesson() {
    // The documented settings: each optimizer file at a constant learning rate, each schedule
    // file with the lesson's SGD (lr 0.1 at its peak), 2,000 full-batch steps.
    for path in config_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let origin = path.display().to_string();
        let mut config = RunConfig::default();
        config.training.steps = Some(2_000);
        if text.contains("[optimizer]") {
            config.optimizer = optimizer_from(&origin).unwrap_or_else(|e| panic!("{e}"));
        } else {
            config.schedule = schedule_from(&origin).unwrap_or_else(|e| panic!("{e}"));
        }
        let gap = gap_after_training(config);
        assert!(gap < 1e-2, "{origin}: max |a - a_ols| = {gap}");
    }
}

#[test]
fn built_in_names_are_the_shipped_files() {
    for path in config_files() {
        let name = path.file_stem().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("[optimizer]") {
            assert_eq!(
                optimizer_from(name).unwrap(),
                optimizer_from(path.to_str().unwrap()).unwrap(),
                "{name}"
            );
        } else {
            assert_eq!(
                schedule_from(name).unwrap(),
                schedule_from(path.to_str().unwrap()).unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn configurations_round_trip_through_toml() {
    for path in config_files() {
        let path = path.to_str().unwrap();
        let mut config = RunConfig::default();
        if let Ok(optimizer) = optimizer_from(path) {
            config.optimizer = optimizer;
        } else {
            config.schedule = schedule_from(path).unwrap();
        }
        config.training.batch_size = Some(16);
        config.training.epochs = Some(3);
        config.seed = 7;
        let text = config.to_toml();
        let back: RunConfig = parse_toml(&text, "round trip").unwrap();
        assert_eq!(back, config, "{path}");
        assert_eq!(back.to_toml(), text, "{path}");
    }
}

#[test]
fn config_show_fed_to_train_reproduces_the_run_bit_for_bit() {
    let flags = [
        "--optim",
        "adam",
        "--schedule",
        "one-cycle",
        "--lr",
        "0.2",
        "--batch-size",
        "20",
        "--epochs",
        "15",
        "--seed",
        "3",
    ];
    let shown = descent(&[&["config", "show"][..], &flags].concat());
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&shown.stdout).unwrap();

    let direct = summary(&descent(&[&["train", "--json"][..], &flags].concat()));
    let from_file = summary(&descent(&["train", "--json", "--config", file.path().to_str().unwrap()]));
    let bits = |json: &serde_json::Value| -> Vec<u64> {
        json["losses"].as_array().unwrap().iter().map(|r| r["loss"].as_f64().unwrap().to_bits()).collect()
    };
    assert_eq!(bits(&direct).len(), 15);
    assert_eq!(bits(&direct), bits(&from_file));
    assert_eq!(direct["a"], from_file["a"]);
    assert_eq!(from_file["optimizer"], "adam");
    assert_eq!(from_file["schedule"], "one-cycle");
}

/// The gradient (2/n)·Xᵀ(Xa − y) in f64.
fn gradient(table: &Table, a: [f64; 2]) -> [f64; 2] {
    let n = table.len() as f64;
    let mut g = [0.0; 2];
    for i in 0..table.len() {
        let row = table.row(i);
        let residual = f64::from(row[0]) * a[0] + f64::from(row[1]) * a[1] - f64::from(table.y()[i]);
        g[0] += 2.0 / n * residual * f64::from(row[0]);
        g[1] += 2.0 / n * residual * f64::from(row[1]);
    }
    g
}

/// Parameters after `steps` full-batch steps of the lesson with `optimizer`, through the trainer.
fn trained_parameters(optimizer: OptimizerConfig, steps: usize) -> [f64; 2] {
    let mut config = RunConfig { optimizer, schedule: ScheduleConfig::Constant, ..RunConfig::default() };
    config.training.steps = Some(steps);
    let experiment = Experiment::prepare(config).unwrap();
    let trained = experiment.train(&mut |_| ControlFlow::Continue(())).unwrap();
    let a = trained.model.parameters().unwrap();
    [f64::from(a[0]), f64::from(a[1])]
}

fn assert_close(label: &str, got: [f64; 2], expected: [f64; 2]) {
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-5, "{label}: trainer {got:?}, f64 reference {expected:?}");
    }
}

#[test]
fn momentum_sgd_matches_pytorchs_update_rule() {
    // PyTorch: buf = momentum·buf + (1 - dampening)·g (buf = g at the first step); a -= lr·buf.
    let table = LessonData::default().generate();
    for nesterov in [false, true] {
        let (lr, momentum) = (0.05, 0.9);
        let (mut a, mut buf) = ([-1.0, 1.0], [0.0; 2]);
        for step in 0..20 {
            let g = gradient(&table, a);
            for k in 0..2 {
                buf[k] = if step == 0 { g[k] } else { momentum * buf[k] + g[k] };
                let direction = if nesterov { g[k] + momentum * buf[k] } else { buf[k] };
                a[k] -= lr * direction;
            }
        }
        let optimizer: OptimizerConfig = parse_toml(
            &format!("name = \"sgd\"\nlr = {lr}\nmomentum = {momentum}\nnesterov = {nesterov}"),
            "test",
        )
        .unwrap();
        assert_close(&format!("sgd momentum, nesterov {nesterov}"), trained_parameters(optimizer, 20), a);
    }
}

#[test]
fn adam_matches_pytorchs_update_rule() {
    // PyTorch: m = b1·m + (1-b1)·g; v = b2·v + (1-b2)·g²; a -= lr·m̂ / (sqrt(v̂) + eps), with the
    // bias corrections m̂ = m / (1 - b1^t), v̂ = v / (1 - b2^t), and eps = 1e-8.
    let table = LessonData::default().generate();
    let (lr, b1, b2, eps) = (0.05, 0.9, 0.999, 1e-8);
    let (mut a, mut m, mut v) = ([-1.0, 1.0], [0.0; 2], [0.0; 2]);
    for t in 1..=20 {
        let g = gradient(&table, a);
        for k in 0..2 {
            m[k] = b1 * m[k] + (1.0 - b1) * g[k];
            v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
            let m_hat = m[k] / (1.0 - b1.powi(t));
            let v_hat = v[k] / (1.0 - b2.powi(t));
            a[k] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
    let optimizer: OptimizerConfig = parse_toml(&format!("name = \"adam\"\nlr = {lr}"), "test").unwrap();
    assert_close("adam", trained_parameters(optimizer, 20), a);
}

#[test]
fn rmsprop_matches_pytorchs_update_rule() {
    // PyTorch (momentum 0, not centered): v = alpha·v + (1-alpha)·g²; a -= lr·g / (sqrt(v) + eps).
    let table = LessonData::default().generate();
    let (lr, alpha, eps) = (0.01, 0.99, 1e-8);
    let (mut a, mut v) = ([-1.0, 1.0], [0.0; 2]);
    for _ in 0..20 {
        let g = gradient(&table, a);
        for k in 0..2 {
            v[k] = alpha * v[k] + (1.0 - alpha) * g[k] * g[k];
            a[k] -= lr * g[k] / (v[k].sqrt() + eps);
        }
    }
    let optimizer: OptimizerConfig = parse_toml(&format!("name = \"rmsprop\"\nlr = {lr}"), "test").unwrap();
    assert_close("rmsprop", trained_parameters(optimizer, 20), a);
}

#[test]
fn lr_find_suggests_a_stable_learning_rate_for_the_lesson() {
    // Gradient descent on the lesson is stable below lr 1.0 (Hessian eigenvalues ~2/3 and 2).
    for batch_size in [None, Some(10), Some(32)] {
        let mut config = RunConfig::default();
        config.training.batch_size = batch_size;
        let experiment = Experiment::prepare(config).unwrap();
        let source = experiment.batches();
        let mut optimizer = experiment.config.optimizer.build();
        let finding =
            lr_find(experiment.model(), &mut optimizer, source.as_ref(), &LrFindSettings::default(), &[])
                .unwrap();
        let suggestion = finding.suggestion.expect("a suggestion");
        assert!((0.01..=1.0).contains(&suggestion), "batch size {batch_size:?}: suggested {suggestion}");
        // The sweep starts at 1e-7, grows geometrically, and stops once the loss blows up.
        assert!((finding.points[0].lr - 1e-7).abs() < 1e-15);
        assert!(finding.points.windows(2).all(|w| w[1].lr > w[0].lr));
        assert!(finding.points.len() <= 100);
    }
    let output = descent(&["lr-find", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let suggestion = summary(&output)["suggestion"].as_f64().unwrap();
    assert!((0.01..=1.0).contains(&suggestion), "{suggestion}");
}

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn bad_configurations_exit_2_naming_the_field() {
    rejects(&["train", "--optim", "adamx"], &["unknown optimizer `adamx`", "sgd-momentum"]);
    rejects(&["train", "--schedule", "linear"], &["unknown schedule `linear`", "one-cycle"]);
    rejects(&["train", "--momentum", "1.5"], &["optimizer.momentum", "[0, 1)"]);
    rejects(&["train", "--optim", "adam", "--momentum", "0.9"], &["--momentum", "adam"]);
    rejects(&["train", "--optim", "adam", "--set", "optimizer.beta_1=1.0"], &["optimizer.beta_1", "[0, 1)"]);
    rejects(&["train", "--optim", "adam", "--set", "optimizer.beta_2=-0.1"], &["optimizer.beta_2"]);
    rejects(&["train", "--set", "optimizer.lr=-1"], &["optimizer.lr", "greater than 0"]);
    rejects(&["train", "--set", "optimizer.lr=inf"], &["optimizer.lr"]);
    rejects(&["train", "--set", "optimizer.lr=fast"], &["optimizer.lr=fast"]);
    rejects(&["train", "--set", "optimizer.momentun=0.9"], &["unknown field `momentun`"]);
    rejects(&["train", "--set", "momentum"], &["KEY=VALUE"]);
    rejects(&["train", "--schedule", "cosine", "--lr", "2"], &["optimizer.lr", "cosine"]);

    let unknown_field = file_with("[optimizer]\nname = \"sgd\"\nlr = 0.1\nmomentun = 0.9\n");
    let path = unknown_field.path().to_str().unwrap().to_owned();
    rejects(&["train", "--optim", &path], &[&path, "line 4", "unknown field `momentun`"]);

    let wrong_type = file_with("seed = \"forty-two\"\n");
    let path = wrong_type.path().to_str().unwrap().to_owned();
    rejects(&["train", "--config", &path], &[&path, "line 1", "invalid type"]);

    let broken = file_with("[optimizer\nname = \"sgd\"\n");
    let path = broken.path().to_str().unwrap().to_owned();
    rejects(&["train", "--config", &path], &[&path, "line 1"]);

    let zero_lr = file_with("[optimizer]\nname = \"sgd\"\nlr = 0.0\n");
    let path = zero_lr.path().to_str().unwrap().to_owned();
    rejects(&["train", "--config", &path], &["optimizer.lr", "greater than 0"]);

    rejects(&["train", "--config", "/no/such/run.toml"], &["/no/such/run.toml"]);
    rejects(&["lr-find", "--start-lr", "1", "--end-lr", "0.1"], &["--end-lr"]);
}
