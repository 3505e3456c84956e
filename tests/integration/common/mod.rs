//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses a different subset

use std::process::{Command, Output};

use std::ops::ControlFlow;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::SgdConfig;
use descent::data::{FullBatch, RegressionBatch, Table};
use descent::device::{Backend, SelectedDevice, select};
use descent::model::LinearModel;
use descent::train::{BatchSource, Length, LossRecord, Plan, Report, Trained, train};

/// Train with plain SGD at a constant learning rate, as the lesson does.
pub fn train_sgd(
    model: LinearModel,
    source: &dyn BatchSource<RegressionBatch>,
    lr: f64,
    length: Length,
    report: Report,
) -> Trained<LinearModel> {
    let mut schedule = ModuleLrScheduler::new(lr);
    let plan = Plan::new(length, report);
    train(model, &mut SgdConfig::new().init(), &mut schedule, source, &plan, &mut |_| {
        ControlFlow::Continue(())
    })
    .expect("training runs")
}

/// What a test needs from outside the repository, and the variable that makes its absence a
/// failure instead of a skip (`.ci/run` sets each, so CI never skips silently).
#[derive(Clone, Copy, Debug)]
pub enum Tool {
    /// A GPU adapter for every GPU backend compiled in: `DESCENT_REQUIRE_GPU`.
    Gpu,
    /// Python with TensorBoard, onnx and onnxruntime: `DESCENT_REQUIRE_INTEROP`.
    Interop,
    /// The notebook executed on the evcxr kernel: `DESCENT_REQUIRE_NOTEBOOK`.
    Notebook,
    /// Debian's `dataset-fashion-mnist`: required wherever `CI` is set.
    FashionMnist,
    /// Debian's chromium and Playwright (in `DESCENT_PYTHON`'s environment), and a `descent`
    /// built with the feature `app` (a default): `DESCENT_REQUIRE_BROWSER`.
    Browser,
}

impl Tool {
    /// The environment variable that requires the tool.
    pub fn variable(self) -> &'static str {
        match self {
            Tool::Gpu => "DESCENT_REQUIRE_GPU",
            Tool::Interop => "DESCENT_REQUIRE_INTEROP",
            Tool::Notebook => "DESCENT_REQUIRE_NOTEBOOK",
            Tool::FashionMnist => "CI",
            Tool::Browser => "DESCENT_REQUIRE_BROWSER",
        }
    }
}

/// The one skip gate: `found` (what the test needs, or why it is missing). Missing, the test
/// fails when the tool's variable is set, else prints a notice saying how to get it (`how`)
/// and returns `None`, so the test returns early.
pub fn require<T>(tool: Tool, found: Result<T, String>, how: &str) -> Option<T> {
    let variable = tool.variable();
    let strict = std::env::var_os(variable).is_some_and(|v| !v.is_empty() && v != "0");
    match found {
        Ok(value) => Some(value),
        Err(why) if strict => panic!("{variable} is set and {why}"),
        Err(why) => {
            eprintln!("notice: skipping ({tool:?}): {why} ({how}; set {variable}=1 to make this an error)");
            None
        }
    }
}

/// Every backend compiled into this build, as devices: the CPU backends, and each GPU backend
/// that finds an adapter (a software one such as llvmpipe counts); one that finds none is a skip
/// or a failure as [`require`] says ([`Tool::Gpu`]).
pub fn devices() -> Vec<SelectedDevice> {
    let mut devices = Vec::new();
    for backend in Backend::compiled() {
        match select(backend.name()) {
            Ok(device) => devices.push(device),
            Err(error) if backend.is_gpu() => {
                let found = Err(format!("{backend} finds no adapter: {error}"));
                devices.extend(require(
                    Tool::Gpu,
                    found,
                    "install a Vulkan driver, e.g. mesa-vulkan-drivers",
                ));
            }
            Err(error) => panic!("{backend}: {error}"),
        }
    }
    assert!(!devices.is_empty(), "the tests need at least one backend compiled in");
    devices
}

/// The device the others are compared with: NdArray when compiled in, else the first CPU backend.
pub fn reference_device() -> SelectedDevice {
    let backend = if Backend::NdArray.is_compiled() {
        Backend::NdArray
    } else {
        *Backend::compiled().iter().find(|b| !b.is_gpu()).expect("a CPU backend")
    };
    select(backend.name()).expect("the reference CPU backend opens")
}

/// Full-batch gradient descent with Burn's SGD, as `descent lesson2` runs it; returns the final
/// parameters and the losses of every step (computed before each update).
pub fn full_batch(
    table: &Table,
    device: &SelectedDevice,
    init: [f32; 2],
    lr: f64,
    steps: usize,
) -> (Vec<f32>, Vec<LossRecord>) {
    let model = LinearModel::new(&init, &device.device.clone().autodiff());
    let source = FullBatch::new(table, &device.device);
    let trained = train_sgd(model, &source, lr, Length::Steps(steps), Report::EverySteps(1));
    (trained.model.parameters().expect("read parameters"), trained.losses)
}

/// Run the `descent` binary with `args`.
pub fn descent(args: &[&str]) -> Output {
    descent_with_env(args, &[])
}

/// Run the `descent` binary with `args` and extra environment variables.
pub fn descent_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_descent"));
    // Default run folders (runs/...) go under target/tmp, not into the repository.
    command.args(args).current_dir(env!("CARGO_TARGET_TMPDIR"));
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run the descent binary")
}

/// The JSON object on the last line of stdout.
pub fn summary(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|error| panic!("last line is not JSON ({error}): {stdout}"))
}

/// `values` of a JSON array of numbers.
pub fn numbers(value: &serde_json::Value) -> Vec<f64> {
    value.as_array().expect("an array").iter().map(|v| v.as_f64().expect("a number")).collect()
}

/// Run with bad arguments: exit code 2, no panic, and stderr names what was wrong.
pub fn rejects(args: &[&str], expected: &[&str]) {
    let output = descent(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    for needle in expected {
        assert!(stderr.contains(needle), "{args:?}: expected `{needle}` in: {stderr}");
    }
}

/// A fresh folder `name` under the tests' temporary directory, in `group` (one per module).
pub fn scratch_in(group: &str, name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    path
}

/// Run the binary and check that it succeeded.
pub fn run_ok(args: &[&str]) -> Output {
    let output = descent(args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The parameters of the model saved in a run folder.
pub fn saved_tensors(dir: &std::path::Path) -> Vec<descent::inference::export::NamedTensor> {
    descent::inference::load_saved(dir, &reference_device().device).unwrap().1.named_tensors().unwrap()
}

/// Whether two sets of parameters are the same, name for name and bit for bit.
pub fn same_bits(
    a: &[descent::inference::export::NamedTensor],
    b: &[descent::inference::export::NamedTensor],
) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.name == b.name
                && a.shape == b.shape
                && a.values.iter().map(|v| v.to_bits()).eq(b.values.iter().map(|v| v.to_bits()))
        })
}

/// The binary with `args`, its stdout read up to the first line that starts with `line`; the
/// child and the rest of its stdout, line by line.
#[cfg(unix)]
pub fn spawn_until(
    args: &[&str],
    line: &str,
) -> (std::process::Child, std::io::Lines<std::io::BufReader<std::process::ChildStdout>>) {
    use std::io::BufRead;
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(args)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for read in lines.by_ref() {
        if read.unwrap().starts_with(line) {
            break;
        }
    }
    (child, lines)
}

/// Send SIGINT (Ctrl-C) to `child`.
#[cfg(unix)]
pub fn sigint(child: &std::process::Child) {
    signal(child, libc::SIGINT);
}

/// Send `signal` to `child`.
#[cfg(unix)]
pub fn signal(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Whether Fashion-MNIST's files are in `dir` (a skip without them, a failure in CI).
pub fn fashion_mnist(dir: &str) -> bool {
    let found = match descent::data::images::mnist_files_present(std::path::Path::new(dir)) {
        true => Ok(()),
        false => Err(format!("{dir} lacks Fashion-MNIST's files")),
    };
    require(Tool::FashionMnist, found, "apt-get install dataset-fashion-mnist").is_some()
}

/// Every file under `dir` (in its subfolders too) whose name ends in `.extension`, sorted.
pub fn files_under(dir: &std::path::Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
            files.push(path);
        }
    }
    files.sort();
    files
}
