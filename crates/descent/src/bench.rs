//! The speed workloads of BENCHMARKS.md, through the same experiments the training commands
//! run (`descent bench` prints them).
//!
//! | workload | what is timed | figure |
//! |---|---|---|
//! | `lesson` | the lesson's full-batch loop, n = 100, 100 and 10,000 steps | µs per step |
//! | `minibatch` | one epoch of mini-batch SGD over n = 1,000,000 rows, batch 32, 256, 4096 | samples per second |
//! | `fullbatch` | full-batch steps (forward, backward, update) at n = 10,000,000 | ms per step |
//! | `cnn` | the CNN of `bench/pytorch/cnn.py` on the digits (Conv5x5 1→32, pool, Conv5x5 32→64, pool, Linear; Adam 1e-3, batch 64) | training images per second |
//! | `fashion` | the default CNN (batch norm and dropout on) on Fashion-MNIST, 28x28, as `bench/pytorch/fashion.py` (Adam 1e-3, batch 64, one epoch of 60,000 images) | training images per second |
//! | `inference` | the default CNN (untrained: the weights do not change the work) classifying Fashion-MNIST's 10,000 test images through the evaluation `predict` and validation use (batch norm on its running statistics, dropout off, log-softmax read back), as `bench/pytorch/inference.py` does under `model.eval()` and `torch.no_grad()` | images classified per second |
//! | `allreduce` | under `mpirun`/`srun` (feature `mpi`): the sum across the processes of one step's gradients, for each built-in model's size (not in the default set) | ms per all-reduce |
//! | a configuration | that run configuration's training, any model (your own included) | images per second (image models), rows per second (mini-batches), µs per step (full batch) |
//!
//! Each figure is the median of several runs, each timed by the engine around the training loop
//! only (data generation, device set-up and validation are outside it), as the PyTorch scripts
//! time theirs.

use std::ops::ControlFlow;
use std::path::PathBuf;

use burn::module::Module;
use serde::Serialize;

use crate::config::{DataConfig, ModelConfig, RunConfig};
use crate::experiment::{Experiment, ImageExperiment, RunError, TrainOptions};
use crate::model::{CnnConfig, ImageModel, ImageModelVisitor};
use crate::run::Task;
use crate::task::classify::ImageClassification;

/// The workloads of BENCHMARKS.md, and a configuration of the user's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The default CNN classifying Fashion-MNIST's test set: images per second.
    Inference,
    /// A run configuration's training.
    Config,
    /// The gradient all-reduce of a data-parallel step (MPI), for each built-in model's size:
    /// ms per all-reduce. Not among the defaults: it needs a launcher's processes.
    Allreduce,
}

impl Workload {
    /// The six built-in workloads.
    pub const ALL: [Workload; 6] = [
        Workload::Lesson,
        Workload::Minibatch,
        Workload::Fullbatch,
        Workload::Cnn,
        Workload::Fashion,
        Workload::Inference,
    ];

    /// Their names, as `--workloads` takes them.
    pub const NAMES: [&'static str; 6] = ["lesson", "minibatch", "fullbatch", "cnn", "fashion", "inference"];

    /// Whether the workload reads Fashion-MNIST's files.
    pub fn needs_fashion(self) -> bool {
        matches!(self, Workload::Fashion | Workload::Inference)
    }

    /// The workload's name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Config => "config",
            Workload::Allreduce => "allreduce",
            built_in => Self::NAMES[Self::ALL.iter().position(|w| *w == built_in).unwrap_or_default()],
        }
    }

    /// The built-in workload of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "allreduce" {
            return Some(Workload::Allreduce);
        }
        Self::NAMES.iter().position(|n| *n == name).map(|i| Self::ALL[i])
    }
}

/// How the cases are sized, and where Fashion-MNIST is.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Smaller sizes for a quick look (not BENCHMARKS.md's).
    pub quick: bool,
    /// The folder of Fashion-MNIST's IDX files.
    pub fashion: PathBuf,
}

/// How a run's timing becomes the figure.
#[derive(Clone, Copy, Debug)]
pub enum Figure {
    /// Microseconds per update.
    MicrosPerStep,
    /// Milliseconds per update.
    MillisPerStep,
    /// Rows trained on per second, for a table of this many rows (one epoch).
    RowsPerSecond(usize),
    /// Training images per second, over every epoch.
    ImagesPerSecond,
    /// Validation images classified per second, by the untrained network.
    ClassifiedPerSecond,
    /// Milliseconds per sum of this many `f32` values across the job's processes.
    MillisPerAllReduce(usize),
}

/// One case of a workload on one device: what it trains and how it is measured.
#[derive(Clone, Debug)]
pub struct Case {
    /// The workload.
    pub workload: Workload,
    /// The case in a few words (`n=100, 100 steps`).
    pub name: String,
    /// The run it times.
    pub config: RunConfig,
    /// The figure's unit.
    pub unit: &'static str,
    /// How the figure is computed.
    pub figure: Figure,
}

/// The cases of a built-in `workload` on `device`.
pub fn cases(workload: Workload, device: &str, sizes: &Sizes) -> Vec<Case> {
    let quick = sizes.quick;
    let base = RunConfig { device: device.to_string(), ..RunConfig::default() };
    let cnn = RunConfig { device: device.to_string(), ..RunConfig::cnn() };
    let lesson = |n: usize| DataConfig::Lesson { n, true_a: [3.0, 2.0], noise: 0.25 };
    let case = |name: String, config: RunConfig, unit, figure| Case { workload, name, config, unit, figure };
    match workload {
        Workload::Lesson => [100, 10_000]
            .into_iter()
            .map(|steps| {
                let mut config = base.clone();
                config.training.steps = Some(steps);
                case(format!("n=100, {steps} steps"), config, "µs/step", Figure::MicrosPerStep)
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
                    case(
                        format!("n={n}, batch {batch}, 1 epoch"),
                        config,
                        "samples/s",
                        Figure::RowsPerSecond(n),
                    )
                })
                .collect()
        }
        Workload::Fullbatch => {
            let n = if quick { 1_000_000 } else { 10_000_000 };
            let mut config = RunConfig { data: lesson(n), ..base };
            config.training.steps = Some(5);
            vec![case(format!("n={n}, 5 steps"), config, "ms/step", Figure::MillisPerStep)]
        }
        Workload::Cnn => {
            let epochs = if quick { 1 } else { 3 };
            let mut config = cnn;
            let settings = CnnConfig {
                channels: vec![32, 64],
                kernel: 5,
                batch_norm: false,
                dropout: 0.0,
                global_pool: false,
            };
            config.model = ModelConfig::Cnn(settings);
            config.training.epochs = Some(epochs);
            vec![case(
                format!("digits, batch 64, {epochs} epochs"),
                config,
                "images/s",
                Figure::ImagesPerSecond,
            )]
        }
        Workload::Fashion => {
            let mut config = cnn;
            config.data = fashion(sizes, quick.then_some(10_000));
            config.training.epochs = Some(1);
            let images = if quick { "10,000" } else { "60,000" };
            vec![case(
                format!("28x28, batch 64, {images} images"),
                config,
                "images/s",
                Figure::ImagesPerSecond,
            )]
        }
        Workload::Inference => {
            // Only the test set is classified; one training image keeps the loading short.
            let config = RunConfig { data: fashion(sizes, Some(1)), ..cnn };
            vec![case("28x28, 10,000 test images".into(), config, "images/s", Figure::ClassifiedPerSecond)]
        }
        // A configuration's case is `configured_case`'s.
        Workload::Config => Vec::new(),
        Workload::Allreduce => all_reduce_cases(base),
    }
}

/// Fashion-MNIST from `sizes`' folder, its first `train_limit` training images.
fn fashion(sizes: &Sizes, train_limit: Option<usize>) -> DataConfig {
    DataConfig::FashionMnist { dir: sizes.fashion.clone(), train_limit, side: None, sha256: None }
}

/// The case of a run configuration on `device`: its model and length, and its figure.
pub fn configured_case(config: &RunConfig, device: &str) -> Case {
    let config = RunConfig { device: device.to_string(), devices: Vec::new(), ..config.clone() };
    let training = &config.training;
    let length = match (training.steps, training.epochs) {
        (Some(steps), _) => format!("{steps} steps"),
        (None, Some(epochs)) => format!("{epochs} epochs"),
        (None, None) => "default length".to_string(),
    };
    let name = format!("{}, {length}", config.model.name());
    let (unit, figure) = match (config.model.is_image_model(), training.batch_size, &config.data) {
        (true, _, _) => ("images/s", Figure::ImagesPerSecond),
        (false, Some(_), DataConfig::Lesson { n, .. }) => ("samples/s", Figure::RowsPerSecond(*n)),
        (false, _, _) => ("µs/step", Figure::MicrosPerStep),
    };
    Case { workload: Workload::Config, name, config, unit, figure }
}

/// Train the case once and return its figure.
pub fn measure(case: &Case) -> Result<f64, RunError> {
    if let Figure::MillisPerAllReduce(values) = case.figure {
        return Ok(all_reduce_millis(values));
    }
    let config = case.config.clone();
    if let Figure::ClassifiedPerSecond = case.figure {
        return classified_per_second(config);
    }
    let (seconds, steps, images) = if config.model.is_image_model() {
        let experiment = ImageExperiment::prepare(config)?;
        let mut task = ImageClassification::of(&experiment)?;
        let trained = task.train(TrainOptions::default())?.trained;
        (trained.seconds, trained.steps, trained.epochs * experiment.train.len())
    } else {
        let experiment = Experiment::prepare(config)?;
        let trained = experiment.train(&mut |_| ControlFlow::Continue(()))?;
        (trained.seconds, trained.steps, 0)
    };
    Ok(match case.figure {
        Figure::MicrosPerStep => seconds / steps as f64 * 1e6,
        Figure::MillisPerStep => seconds / steps as f64 * 1e3,
        Figure::ImagesPerSecond => images as f64 / seconds,
        Figure::RowsPerSecond(rows) => rows as f64 / seconds,
        Figure::MillisPerAllReduce(_) | Figure::ClassifiedPerSecond => unreachable!("measured above"),
    })
}

/// The validation images of `config`'s experiment classified per second by its network at its
/// initial weights, through [`crate::metrics::evaluate`] (what `predict` and validation run).
fn classified_per_second(config: RunConfig) -> Result<f64, RunError> {
    struct Time<'a>(&'a ImageExperiment);
    impl ImageModelVisitor for Time<'_> {
        type Output = Result<f64, RunError>;
        fn visit<T: ImageModel>(self, settings: &T) -> Self::Output {
            let experiment = self.0;
            // `valid()`: off the autodiff device, dropout off, batch norm on running statistics.
            let model = experiment.start_network(settings)?.0.valid();
            let (set, indices) = (&experiment.valid_set, &experiment.valid);
            let start = std::time::Instant::now();
            crate::metrics::evaluate(&model, set, indices, &experiment.device.device)
                .map_err(|error| crate::train::TrainError::Device(format!("inference failed: {error}")))?;
            Ok(indices.len() as f64 / start.elapsed().as_secs_f64())
        }
    }
    let experiment = ImageExperiment::prepare(config)?;
    let visit = experiment.config.model.visit_image_model(Time(&experiment));
    visit.unwrap_or_else(|| Err(RunError::WrongModel("inference is timed for image models".into())))
}

/// A case per built-in model: the sum of its gradient across the job's processes.
fn all_reduce_cases(base: RunConfig) -> Vec<Case> {
    gradient_sizes(&base.device)
        .into_iter()
        .map(|(model, values)| Case {
            workload: Workload::Allreduce,
            name: format!("{model}: {values} values ({:.0} KB)", values as f64 * 4.0 / 1e3),
            config: base.clone(),
            unit: "ms",
            figure: Figure::MillisPerAllReduce(values),
        })
        .collect()
}

/// Each built-in model and the values of its gradient (one `f32` per parameter), as a
/// data-parallel step sums them: the lesson's line, the digits and Fashion-MNIST CNN, the CNN
/// for 64x64 colour pictures (10 classes), and the MLP of `examples/mlp.toml`.
pub fn gradient_sizes(device: &str) -> Vec<(String, usize)> {
    use crate::data::images::ImageShape;
    use crate::model::{ImageModel, ImageModelVisitor};
    struct Count<'a>(&'a ImageShape, burn::prelude::Device);
    impl ImageModelVisitor for Count<'_> {
        type Output = usize;
        fn visit<T: ImageModel>(self, settings: &T) -> usize {
            crate::train::gradient_values(&settings.init(self.0, &self.1))
        }
    }
    let Ok(selected) = crate::device::select(device) else { return Vec::new() };
    let grey = |side| ImageShape { side, channels: 1, classes: 10 };
    let models = [
        ("cnn, digits 8x8", RunConfig::cnn().model, grey(8)),
        ("cnn, Fashion-MNIST 28x28", RunConfig::fashion_mnist().model, grey(28)),
        (
            "cnn, pictures 64x64 RGB, 10 classes",
            RunConfig::pictures(std::path::Path::new(".")).model,
            ImageShape { side: 64, channels: 3, classes: 10 },
        ),
        ("mlp, digits 8x8", ModelConfig::Mlp(crate::model::MlpConfig::default()), grey(8)),
    ];
    let mut sizes = vec![("linear, the lesson".to_string(), 2)];
    for (name, model, shape) in models {
        if let Some(values) = model.visit_image_model(Count(&shape, selected.device.clone().autodiff())) {
            sizes.push((name.to_string(), values));
        }
    }
    sizes
}

/// The mean time of one sum of `values` `f32`s across the job's processes, in milliseconds
/// (after a few unmeasured ones), or 0 in a world of one, where nothing is sent.
fn all_reduce_millis(values: usize) -> f64 {
    let world = crate::world::World::current();
    let mut buffer = vec![1.0f32; values];
    for _ in 0..5 {
        world.sum_f32(&mut buffer);
        buffer.fill(1.0);
    }
    let repeats = 50;
    let start = std::time::Instant::now();
    for _ in 0..repeats {
        world.sum_f32(&mut buffer);
    }
    start.elapsed().as_secs_f64() * 1e3 / repeats as f64
}

/// A case's runs and their median, as the summary lists them.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// The workload's name.
    pub workload: &'static str,
    /// The case.
    pub case: String,
    /// The device it ran on.
    pub device: String,
    /// The figure's unit.
    pub unit: &'static str,
    /// The median of the runs.
    pub median: f64,
    /// Every run's figure.
    pub runs: Vec<f64>,
}

impl Measurement {
    /// The measurement of `case` on `device` from its runs' figures.
    pub fn new(case: &Case, device: &str, runs: Vec<f64>) -> Self {
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[mid],
            _ => (sorted[mid - 1] + sorted[mid]) / 2.0,
        };
        let (workload, unit) = (case.workload.name(), case.unit);
        Self { workload, case: case.name.clone(), device: device.into(), unit, median, runs }
    }
}

/// The machine a benchmark ran on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Cores available to the process.
    pub cores: usize,
    /// The CPU's model name.
    pub cpu: String,
    /// The operating system.
    pub os: &'static str,
    /// The architecture.
    pub arch: &'static str,
}

impl Machine {
    /// This machine.
    pub fn here() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: crate::device::cpu_name(),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}

/// A benchmark's summary: `descent bench --json` and `--out FILE`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchSummary {
    /// `bench`.
    pub command: &'static str,
    /// descent's version.
    pub version: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// `RAYON_NUM_THREADS`, when set.
    pub rayon_num_threads: Option<String>,
    /// Runs per case.
    pub repeats: usize,
    /// Whether the quick sizes were used.
    pub quick: bool,
    /// Every case measured.
    pub results: Vec<Measurement>,
}

impl BenchSummary {
    /// The summary of `results`, of `repeats` runs each at `sizes`.
    pub fn new(results: Vec<Measurement>, repeats: usize, sizes: &Sizes) -> Self {
        Self {
            command: "bench",
            version: env!("CARGO_PKG_VERSION"),
            machine: Machine::here(),
            rayon_num_threads: std::env::var("RAYON_NUM_THREADS").ok(),
            repeats,
            quick: sizes.quick,
            results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_median_is_the_middle_run() {
        for workload in Workload::ALL {
            assert_eq!(Workload::from_name(workload.name()), Some(workload));
        }
        let sizes = Sizes { quick: true, fashion: PathBuf::new() };
        let case = &cases(Workload::Lesson, "flex", &sizes)[0];
        assert_eq!(Measurement::new(case, "flex", vec![3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(Measurement::new(case, "flex", vec![4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }
}
