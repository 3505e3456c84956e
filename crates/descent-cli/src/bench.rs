//! `descent bench`: the speed workloads of BENCHMARKS.md, through the same experiments the
//! training commands run, on every compiled CPU backend (and wgpu when it finds an adapter).
//!
//! | workload | what is timed | figure |
//! |---|---|---|
//! | `lesson` | the lesson's full-batch loop, n = 100, 100 and 10,000 steps | µs per step |
//! | `minibatch` | one epoch of mini-batch SGD over n = 1,000,000 rows, batch 32, 256, 4096 | samples per second |
//! | `fullbatch` | full-batch steps (forward, backward, update) at n = 10,000,000 | ms per step |
//! | `cnn` | the CNN of `bench/pytorch/cnn.py` on the digits (Conv5x5 1→32, pool, Conv5x5 32→64, pool, Linear; Adam 1e-3, batch 64) | training images per second |
//! | `fashion` | the default CNN (batch norm and dropout on) on Fashion-MNIST, 28x28, as `bench/pytorch/fashion.py` (Adam 1e-3, batch 64, one epoch of 60,000 images) | training images per second |
//!
//! | `--config FILE` | that run configuration's training, any model (your own included) | images per second (image models), rows per second (mini-batches), µs per step (full batch) |
//!
//! Each figure is the median of `--repeats` runs, each timed by the engine around the training
//! loop only (data generation, device set-up and validation are outside it), as the PyTorch
//! scripts time theirs.

use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use descent::config::{DataConfig, ModelConfig, RunConfig};
use descent::device::{Backend, select};
use descent::experiment::{Experiment, ImageExperiment};
use descent::model::{CnnConfig, ImageModel, ImageModelVisitor};
use descent::report::write_atomic;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::positive_count;

/// Run the speed workloads and print a table.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workloads, comma-separated [default: all five; fashion only when its files are there].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub workloads: Vec<Workload>,

    /// Devices, comma-separated, as for --device [default: every compiled CPU backend, and wgpu
    /// when it finds an adapter].
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,

    /// Runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = positive_count, allow_hyphen_values = true)]
    pub repeats: usize,

    /// Smaller sizes for a quick look: 100,000 rows for minibatch, 1,000,000 for fullbatch, one
    /// CNN epoch, 10,000 Fashion-MNIST images. Not the sizes of BENCHMARKS.md.
    #[arg(long)]
    pub quick: bool,

    /// The Fashion-MNIST IDX files for the fashion workload (Debian's package
    /// `dataset-fashion-mnist` installs them here).
    #[arg(long, value_name = "DIR", default_value = FASHION_DIR)]
    pub fashion: PathBuf,

    /// Time the training of this run configuration (any model, your own included) instead of
    /// the built-in workloads: images per second for image models, rows per second with
    /// mini-batches, µs per step with full batches. Its device is replaced by --devices'.
    #[arg(long, value_name = "FILE", conflicts_with = "workloads")]
    pub config: Option<PathBuf>,

    /// Also write the results as JSON to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Print the JSON as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// The workloads of BENCHMARKS.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// The lesson's loop, n = 100: µs per step.
    Lesson,
    /// Mini-batch SGD, one epoch over 1,000,000 rows: samples per second.
    Minibatch,
    /// One full-batch step at 10,000,000 rows: ms per step.
    Fullbatch,
    /// The CNN on the digits: training images per second.
    Cnn,
    /// The default CNN on Fashion-MNIST: training images per second.
    Fashion,
    /// The configuration of `--config`.
    #[value(skip)]
    Config,
}

/// Where Debian's `dataset-fashion-mnist` puts the IDX files.
pub const FASHION_DIR: &str = descent::defaults::FASHION_MNIST_DIR;

impl Workload {
    const ALL: [Workload; 5] =
        [Workload::Lesson, Workload::Minibatch, Workload::Fullbatch, Workload::Cnn, Workload::Fashion];

    fn name(self) -> &'static str {
        match self {
            Workload::Lesson => "lesson",
            Workload::Minibatch => "minibatch",
            Workload::Fullbatch => "fullbatch",
            Workload::Cnn => "cnn",
            Workload::Fashion => "fashion",
            Workload::Config => "config",
        }
    }
}

/// One measured case: its runs and their median.
struct Measurement {
    workload: Workload,
    case: String,
    device: String,
    unit: &'static str,
    runs: Vec<f64>,
}

impl Measurement {
    fn median(&self) -> f64 {
        let mut sorted = self.runs.clone();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 }
    }
}

/// `descent bench`.
pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    if let Some(path) = &args.out {
        // Before the benchmark, not after minutes of it.
        descent::report::check_writable(path).map_err(|e| Failure::input(format!("--out: {e}")))?;
    }
    let fashion_there = descent::data::images::mnist_files_present(&args.fashion);
    let workloads: Vec<Workload> = if args.config.is_some() {
        vec![Workload::Config]
    } else if args.workloads.is_empty() {
        Workload::ALL.into_iter().filter(|w| *w != Workload::Fashion || fashion_there).collect()
    } else {
        args.workloads.clone()
    };
    if workloads.contains(&Workload::Fashion) && !fashion_there {
        return Err(Failure::input(format!(
            "--fashion: {} does not hold the Fashion-MNIST IDX files; install Debian's package \
             dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass the folder \
             that holds them",
            args.fashion.display()
        )));
    }
    if args.workloads.is_empty() && args.config.is_none() && !fashion_there {
        out!(
            "(fashion skipped: no Fashion-MNIST files in {}; apt-get install dataset-fashion-mnist)",
            args.fashion.display()
        );
    }
    let devices: Vec<String> = if args.devices.is_empty() {
        Backend::compiled()
            .into_iter()
            .filter(|backend| !backend.is_gpu() || (*backend == Backend::Wgpu && select("wgpu").is_ok()))
            .map(|backend| backend.name().to_string())
            .collect()
    } else {
        args.devices.clone()
    };
    for device in &devices {
        select(device).map_err(|e| Failure::input(format!("--devices: {e}")))?;
    }
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset (all cores)".into());
    out!(
        "descent bench: {} on {} ({} cores, RAYON_NUM_THREADS {threads}), median of {} runs{}",
        workloads.iter().map(|w| w.name()).collect::<Vec<_>>().join(", "),
        devices.join(", "),
        cores(),
        args.repeats,
        if args.quick { ", quick sizes" } else { "" }
    );
    out!("{:<10} {:<26} {:<8} {:>14}  {:<10} runs", "workload", "case", "device", "median", "unit");
    let configured = match &args.config {
        Some(path) => Some(RunConfig::load(path).map_err(|e| Failure::input(format!("--config: {e}")))?),
        None => None,
    };
    let results = measure_all(&workloads, &devices, configured.as_ref(), args)?;
    let summary = summary(&results, args);
    if let Some(path) = &args.out {
        write_atomic(path, format!("{summary:#}\n").as_bytes())
            .map_err(|e| Failure::input(format!("--out: {e}")))?;
        out!("wrote {}", path.display());
    }
    if args.json {
        out!("{summary}");
    }
    Ok(())
}

/// Every case of every workload on every device, `--repeats` times each, a line per case.
fn measure_all(
    workloads: &[Workload],
    devices: &[String],
    configured: Option<&RunConfig>,
    args: &BenchArgs,
) -> Result<Vec<Measurement>, Failure> {
    let mut results = Vec::new();
    for &workload in workloads {
        for device in devices {
            let cases = match configured {
                Some(config) => vec![configured_case(config, device)],
                None => cases(workload, device, args),
            };
            for (case, config, unit, figure) in cases {
                let mut runs = Vec::with_capacity(args.repeats);
                for _ in 0..args.repeats {
                    runs.push(measure(config.clone(), figure)?);
                }
                let measurement = Measurement { workload, case, device: device.clone(), unit, runs };
                let shown: Vec<String> = measurement.runs.iter().map(|v| format_figure(*v)).collect();
                out!(
                    "{:<10} {:<26} {:<8} {:>14}  {:<10} {}",
                    workload.name(),
                    measurement.case,
                    measurement.device,
                    format_figure(measurement.median()),
                    measurement.unit,
                    shown.join(" ")
                );
                results.push(measurement);
            }
        }
    }
    Ok(results)
}

/// The `--json` object (and `--out` file) of a benchmark.
fn summary(results: &[Measurement], args: &BenchArgs) -> Value {
    json!({
        "command": "bench",
        "version": env!("CARGO_PKG_VERSION"),
        "machine": {"cores": cores(), "cpu": descent::device::cpu_name(), "os": std::env::consts::OS, "arch": std::env::consts::ARCH},
        "rayon_num_threads": std::env::var("RAYON_NUM_THREADS").ok(),
        "repeats": args.repeats,
        "quick": args.quick,
        "results": results.iter().map(|m| json!({
            "workload": m.workload.name(),
            "case": m.case,
            "device": m.device,
            "unit": m.unit,
            "median": m.median(),
            "runs": m.runs,
        })).collect::<Vec<Value>>(),
    })
}

/// How a run's timing becomes the figure.
#[derive(Clone, Copy)]
enum Figure {
    /// Microseconds per update.
    MicrosPerStep,
    /// Milliseconds per update.
    MillisPerStep,
    /// Rows trained on per second, for a table of this many rows (one epoch).
    RowsPerSecond(usize),
    /// Training images per second, over every epoch.
    ImagesPerSecond,
}

/// The cases of a workload on `device`: name, configuration, unit, and how to compute the figure.
fn cases(
    workload: Workload,
    device: &str,
    args: &BenchArgs,
) -> Vec<(String, RunConfig, &'static str, Figure)> {
    let quick = args.quick;
    let base = RunConfig { device: device.to_string(), ..RunConfig::default() };
    let cnn = RunConfig { device: device.to_string(), ..RunConfig::cnn() };
    let lesson = |n: usize| DataConfig::Lesson { n, true_a: [3.0, 2.0], noise: 0.25 };
    match workload {
        Workload::Lesson => [100, 10_000]
            .into_iter()
            .map(|steps| {
                let mut config = base.clone();
                config.training.steps = Some(steps);
                (format!("n=100, {steps} steps"), config, "µs/step", Figure::MicrosPerStep)
            })
            .collect(),
        Workload::Minibatch => {
            let n = if quick { 100_000 } else { 1_000_000 };
            [32, 256, 4096]
                .into_iter()
                .map(|batch| {
                    let mut config = RunConfig { data: lesson(n), ..base.clone() };
                    config.training.batch_size = Some(batch);
                    config.training.epochs = Some(1);
                    (format!("n={n}, batch {batch}, 1 epoch"), config, "samples/s", Figure::RowsPerSecond(n))
                })
                .collect()
        }
        Workload::Fullbatch => {
            let n = if quick { 1_000_000 } else { 10_000_000 };
            let mut config = RunConfig { data: lesson(n), ..base };
            config.training.steps = Some(5);
            vec![(format!("n={n}, 5 steps"), config, "ms/step", Figure::MillisPerStep)]
        }
        Workload::Cnn => {
            let epochs = if quick { 1 } else { 3 };
            let mut config = cnn;
            config.model = ModelConfig::Cnn(CnnConfig {
                channels: vec![32, 64],
                kernel: 5,
                batch_norm: false,
                dropout: 0.0,
            });
            config.training.epochs = Some(epochs);
            vec![(format!("digits, batch 64, {epochs} epochs"), config, "images/s", Figure::ImagesPerSecond)]
        }
        Workload::Fashion => {
            let mut config = cnn;
            let train_limit = quick.then_some(10_000);
            config.data =
                DataConfig::FashionMnist { dir: args.fashion.clone(), train_limit, side: None, sha256: None };
            config.training.epochs = Some(1);
            let images = if quick { "10,000" } else { "60,000" };
            vec![(format!("28x28, batch 64, {images} images"), config, "images/s", Figure::ImagesPerSecond)]
        }
        // Measured through `configured_case`.
        Workload::Config => Vec::new(),
    }
}

/// The case of a `--config` file on `device`: its model and length, and its figure.
fn configured_case(config: &RunConfig, device: &str) -> (String, RunConfig, &'static str, Figure) {
    let config = RunConfig { device: device.to_string(), devices: Vec::new(), ..config.clone() };
    let training = &config.training;
    let length = match (training.steps, training.epochs) {
        (Some(steps), _) => format!("{steps} steps"),
        (None, Some(epochs)) => format!("{epochs} epochs"),
        (None, None) => "default length".to_string(),
    };
    let case = format!("{}, {length}", config.model.name());
    let (unit, figure) = match (config.model.is_image_model(), training.batch_size, &config.data) {
        (true, _, _) => ("images/s", Figure::ImagesPerSecond),
        (false, Some(_), DataConfig::Lesson { n, .. }) => ("samples/s", Figure::RowsPerSecond(*n)),
        (false, _, _) => ("µs/step", Figure::MicrosPerStep),
    };
    (case, config, unit, figure)
}

/// Times an image model's training, its type known: (seconds, steps, training images seen).
struct TimeImageModel<'a>(&'a ImageExperiment);

impl ImageModelVisitor for TimeImageModel<'_> {
    type Output = Result<(f64, usize, usize), Failure>;

    fn visit<T: ImageModel>(self, model: &T) -> Self::Output {
        let experiment = self.0;
        let trained = experiment
            .train(experiment.network(model), &mut |_| ControlFlow::Continue(()))
            .map_err(crate::session::train_failure)?;
        let seen = trained.trained.epochs * experiment.train.len();
        Ok((trained.trained.seconds, trained.trained.steps, seen))
    }
}

/// Run one configuration and return its figure.
fn measure(config: RunConfig, figure: Figure) -> Result<f64, Failure> {
    let quiet = &mut |_: &_| ControlFlow::Continue(());
    let (seconds, steps, items) = if config.model.is_image_model() {
        let experiment = ImageExperiment::prepare(config).map_err(Failure::input)?;
        let model = experiment.config.model.clone();
        model.visit_image_model(TimeImageModel(&experiment)).unwrap_or(Ok((0.0, 0, 0)))?
    } else {
        let experiment = Experiment::prepare(config).map_err(Failure::input)?;
        let trained = experiment.train(quiet).map_err(crate::session::train_failure)?;
        (trained.seconds, trained.steps, 0)
    };
    Ok(match figure {
        Figure::MicrosPerStep => seconds / steps as f64 * 1e6,
        Figure::MillisPerStep => seconds / steps as f64 * 1e3,
        Figure::ImagesPerSecond => items as f64 / seconds,
        Figure::RowsPerSecond(rows) => rows as f64 / seconds,
    })
}

fn format_figure(value: f64) -> String {
    if value >= 1000.0 { format!("{value:.0}") } else { format!("{value:.2}") }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
