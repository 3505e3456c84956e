//! A run, from its configuration: the device, the data, the model, the batches, the optimizer
//! and the schedule, ready for the training engine. Every training command goes through here:
//! [`Experiment`] for the linear model on points, [`ImageExperiment`] for the CNN on images.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::ModuleOptimizer;

use crate::config::{ConfigError, DataConfig, ModelConfig, RunConfig};
use crate::data::images::{Split, parse_digits, read_digits, read_mnist, split};
use crate::data::{
    DataError, FullBatch, ImageBatches, ImageSet, LessonData, MiniBatches, RegressionBatch, Table,
    read_points,
};
use crate::device::{self, DeviceError, SelectedDevice};
use crate::metrics::{Classifier, Evaluation, evaluate};
use crate::model::{Cnn, CnnConfig, ImageModel, ImageModelVisitor, LinearModel};
use crate::optim::InvalidValue;
use crate::regression::RegressionData;
use crate::report::{MetricsRow, RunFolder, RunFolderError};
use crate::train::{
    BatchHook, BatchSource, CHECKPOINT_FILE, Checkpoint, CheckpointError, CheckpointState, EpochEnd, Hooks,
    Length, LossRecord, Objective, Plan, Position, Report, TrainError, Trained, train_observed,
};

/// Steps of full-batch descent when the configuration sets no length (the notebook's 100).
pub const DEFAULT_STEPS: usize = 100;
/// Epochs of mini-batch training when the configuration sets no length.
pub const DEFAULT_EPOCHS: usize = 10;
/// Steps between printed losses with full batches (the notebook's 10).
pub const DEFAULT_PRINT_EVERY_STEPS: usize = 10;

/// The shipped digits (`data/digits.csv`), compiled in so that `descent cnn` works anywhere.
const SHIPPED_DIGITS: &str = include_str!("../../../data/digits.csv");

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The device cannot be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The data cannot be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The configuration is for another kind of model than the command trains.
    #[error("{0}")]
    WrongModel(String),
    /// An `on_batch` hook interrupted the run (Ctrl-C); its checkpoint is written when a folder
    /// was given.
    #[error("interrupted at step {step} (epoch {epoch})")]
    Interrupted {
        /// Updates made.
        step: usize,
        /// The epoch that was in progress (1-based).
        epoch: usize,
        /// The metrics rows so far.
        metrics: Vec<MetricsRow>,
    },
    /// The loss or a parameter became NaN or infinite; `metrics` are the rows up to then.
    #[error("{message}")]
    Diverged {
        /// What became non-finite, where, and what to try.
        message: String,
        /// The metrics rows before the divergence.
        metrics: Vec<MetricsRow>,
    },
    /// A checkpoint cannot be written or used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A checkpoint cannot be written into the run folder.
    #[error(transparent)]
    Folder(#[from] RunFolderError),
}

/// Checkpoints and resumption of one training call.
#[derive(Default)]
pub struct TrainOptions<'a> {
    /// Write `checkpoint.bin` here after every `training.checkpoint_every` epochs and after the
    /// last epoch.
    pub folder: Option<&'a RunFolder>,
    /// Continue from this checkpoint (its parameters, optimizer and schedule state, position and
    /// metrics) instead of starting from the initial parameters.
    pub resume: Option<&'a Checkpoint>,
    /// Called after every update (a progress bar); `Break` interrupts the run there (Ctrl-C),
    /// writing a checkpoint to continue from.
    pub on_batch: Option<BatchHook<'a>>,
}

/// Writes checkpoints at the end of epochs, as the configuration and [`TrainOptions`] say.
struct Checkpointer<'a> {
    folder: Option<&'a RunFolder>,
    every: Option<usize>,
    model: &'static str,
    config: String,
    earlier_seconds: f64,
}

impl<'a> Checkpointer<'a> {
    fn new(config: &RunConfig, options: &TrainOptions<'a>, model: &'static str) -> Self {
        Self {
            folder: options.folder,
            every: config.training.checkpoint_every,
            model,
            config: config.to_toml(),
            earlier_seconds: options.resume.map_or(0.0, |c| c.state.seconds),
        }
    }

    /// Write a checkpoint if this epoch is due one.
    fn epoch_end<M: burn::module::Module>(
        &self,
        end: &EpochEnd<'_, M>,
        metrics: &[MetricsRow],
    ) -> Result<(), RunError> {
        let Some(folder) = self.folder else { return Ok(()) };
        let due =
            end.last || end.interrupted || self.every.is_some_and(|every| end.epoch.is_multiple_of(every));
        if !due {
            return Ok(());
        }
        let state = CheckpointState {
            model: self.model.into(),
            epoch: end.position.epoch,
            step: end.position.step,
            batch: end.position.batch,
            partial_loss: end.position.partial_loss,
            partial_rows: end.position.partial_rows,
            seconds: self.earlier_seconds + end.seconds,
            metrics: metrics.to_vec(),
            config: self.config.clone(),
        };
        // A checkpoint is the point to come back to: never save parameters that are not numbers.
        let tensors = crate::report::export::named_tensors(end.model)
            .map_err(|error| TrainError::Device(error.to_string()))?;
        if let Some(tensor) = tensors.iter().find(|t| t.values.iter().any(|v| !v.is_finite())) {
            return Err(RunError::Diverged {
                message: format!(
                    "parameter `{}` became NaN or infinite by step {} (epoch {}): try a smaller --lr, or `descent lr-find`",
                    tensor.name, end.step, end.epoch
                ),
                metrics: metrics.to_vec(),
            });
        }
        let checkpoint = Checkpoint::capture(state, end.model, end.optimizer, end.schedule)?;
        folder.write(CHECKPOINT_FILE, &checkpoint.to_bytes()?)?;
        Ok(())
    }
}

/// The engine's result, with a divergence carrying the metrics rows up to it.
fn diverged_with<M>(
    result: Result<Trained<M>, TrainError>,
    metrics: impl FnOnce() -> Vec<MetricsRow>,
) -> Result<Trained<M>, RunError> {
    match result {
        Err(error @ TrainError::Diverged { .. }) => {
            Err(RunError::Diverged { message: error.to_string(), metrics: metrics() })
        }
        other => Ok(other?),
    }
}

/// The batch hook, borrowed for as long as the engine runs.
fn shorter<'b>(hook: &'b mut Option<BatchHook<'_>>) -> Option<BatchHook<'b>> {
    match hook {
        Some(hook) => Some(&mut **hook),
        None => None,
    }
}

/// The model, optimizer and schedule to start from, and where: the checkpoint's, or as given.
fn starting_point<M: burn::module::Module>(
    model: M,
    optimizer: ModuleOptimizer,
    schedule: ModuleLrScheduler,
    plan: &mut Plan,
    resume: Option<&Checkpoint>,
    kind: &str,
) -> Result<(M, ModuleOptimizer, ModuleLrScheduler), RunError> {
    let Some(checkpoint) = resume else { return Ok((model, optimizer, schedule)) };
    if checkpoint.state.model != kind {
        return Err(CheckpointError::Mismatch {
            path: checkpoint.path.clone(),
            message: format!("it holds a {} model, this run trains a {kind} model", checkpoint.state.model),
        }
        .into());
    }
    let state = &checkpoint.state;
    plan.start = Position {
        step: state.step,
        epoch: state.epoch,
        batch: state.batch,
        partial_loss: state.partial_loss,
        partial_rows: state.partial_rows,
    };
    Ok(checkpoint.restore(model, optimizer, schedule)?)
}

impl From<InvalidValue> for RunError {
    fn from(error: InvalidValue) -> Self {
        RunError::Config(ConfigError::Invalid(error))
    }
}

/// Check the configuration, open every device the run trains on (`devices`, or `device` alone),
/// main first, and seed the main one's generator.
fn open_devices(config: &RunConfig) -> Result<Vec<SelectedDevice>, RunError> {
    config.validate()?;
    let names =
        if config.devices.is_empty() { std::slice::from_ref(&config.device) } else { &config.devices };
    let devices = names.iter().map(|name| device::select(name)).collect::<Result<Vec<_>, _>>()?;
    // Two names can open one device (`auto` and `flex`): a device holds one replica.
    for (i, device) in devices.iter().enumerate() {
        if let Some(j) = devices[..i].iter().position(|other| other.device == device.device) {
            return Err(InvalidValue {
                field: "devices".into(),
                message: format!(
                    "`{}` and `{}` are the same device ({}): each device holds one replica",
                    names[j].trim(),
                    names[i].trim(),
                    device.describe()
                ),
            }
            .into());
        }
    }
    // Seed the backend's own generator too (initial weights, dropout), so that nothing on the
    // device is left unseeded; a data-parallel step reseeds every device.
    devices[0].device.seed(config.seed);
    Ok(devices)
}

/// Length and reporting cadence, with the defaults filled in.
fn plan_of(config: &RunConfig) -> Plan {
    let training = &config.training;
    let full_batch = training.batch_size.is_none();
    let length = match (training.steps, training.epochs) {
        (Some(steps), _) => Length::Steps(steps),
        (None, Some(epochs)) => Length::Epochs(epochs),
        (None, None) if full_batch => Length::Steps(DEFAULT_STEPS),
        (None, None) => Length::Epochs(DEFAULT_EPOCHS),
    };
    let report = if full_batch {
        Report::EverySteps(training.print_every.unwrap_or(DEFAULT_PRINT_EVERY_STEPS))
    } else {
        Report::EveryEpochs(training.print_every.unwrap_or(1))
    };
    Plan { seed: Some(config.seed), ..Plan::new(length, report) }
}

/// The number of updates `config` makes with `batches_per_epoch` batches per epoch (saturating:
/// [`check_length`] refuses a length that overflows).
fn total_steps_of(config: &RunConfig, batches_per_epoch: usize) -> usize {
    match plan_of(config).length {
        Length::Steps(steps) => steps,
        Length::Epochs(epochs) => epochs.saturating_mul(batches_per_epoch),
    }
}

/// The `metrics.csv` row of an epoch with its validation figures.
fn validated_row(result: &EpochResult<'_>) -> MetricsRow {
    MetricsRow {
        step: result.step,
        epoch: result.epoch,
        lr: result.lr,
        train_loss: result.train_loss,
        valid_loss: Some(result.evaluation.loss),
        accuracy: Some(result.evaluation.accuracy),
        error_rate: Some(result.evaluation.error_rate),
    }
}

/// Pin the data a run reads: make its paths absolute (the saved configuration then finds them
/// from any folder), and record the SHA-256 of the files, or, when the configuration recorded one
/// (a resumed run, or a rerun of a saved configuration), refuse files that have changed since.
fn pin_data(data: &mut DataConfig) -> Result<(), DataError> {
    let (path, sha256, files) = match data {
        DataConfig::Points { path, sha256 } | DataConfig::Digits { path: Some(path), sha256, .. } => {
            let files = vec![path.clone()];
            (path, sha256, files)
        }
        DataConfig::Csv(source) => {
            let files = vec![source.path.clone()];
            (&mut source.path, &mut source.sha256, files)
        }
        DataConfig::Mnist { dir, sha256, .. } => {
            let files = crate::data::images::mnist_paths(dir);
            (dir, sha256, files)
        }
        DataConfig::Lesson { .. } | DataConfig::Digits { path: None, .. } => return Ok(()),
    };
    if let Ok(absolute) = std::path::absolute(&*path) {
        *path = absolute;
    }
    let Some(files) =
        files.into_iter().map(|file| file.is_file().then_some(file)).collect::<Option<Vec<_>>>()
    else {
        return Ok(()); // the reader reports the missing file
    };
    let found = sha256_of_files(&files)?;
    match sha256 {
        Some(recorded) if *recorded != found => Err(DataError::Rows {
            path: path.clone(),
            message: format!(
                "the data changed since this run's configuration was written (its SHA-256 is {found}, the configuration recorded {recorded}): a resumed run must read the same data; to train on it as it is now, start a new run (or remove data.sha256 from the configuration file)"
            ),
        }),
        Some(_) => Ok(()),
        None => {
            *sha256 = Some(found);
            Ok(())
        }
    }
}

/// The SHA-256 of the files' bytes, one after another, read in blocks.
fn sha256_of_files(files: &[std::path::PathBuf]) -> Result<String, DataError> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for file in files {
        std::fs::File::open(file)
            .and_then(|mut reader| std::io::copy(&mut reader, &mut hasher))
            .map_err(|source| DataError::Open { path: file.clone(), source })?;
    }
    Ok(crate::report::saved_model::hex(&hasher.finalize()))
}

/// Refuse a number of epochs whose updates overflow a count.
fn check_length(config: &RunConfig, batches_per_epoch: usize) -> Result<(), RunError> {
    if let Length::Epochs(epochs) = plan_of(config).length
        && epochs.checked_mul(batches_per_epoch).is_none()
    {
        return Err(RunError::Config(ConfigError::Invalid(InvalidValue {
            field: "training.epochs".into(),
            message: format!(
                "{epochs} epochs of {batches_per_epoch} batches are more updates than can be counted (--epochs)"
            ),
        })));
    }
    Ok(())
}

/// About how many bytes a lesson run needs per row: the generated rows and their noise on the
/// host, the rows on the device, and the step's intermediate values (10 million rows peak at
/// about 380 MB; see BENCHMARKS.md).
pub const LESSON_BYTES_PER_ROW: u64 = 48;

/// Refuse a size from the configuration that needs more memory than the process may allocate,
/// naming the field and what asked for it (`what`), before anything is allocated.
fn check_memory_for(field: &str, what: impl FnOnce() -> String, bytes: Option<u64>) -> Result<(), RunError> {
    crate::limits::check_memory(bytes).map_err(|message| {
        RunError::Config(ConfigError::Invalid(InvalidValue {
            field: field.into(),
            message: format!("{} {message}", what()),
        }))
    })
}

/// Burn's optimizer and scheduler for a run of `total_steps` updates.
fn optimization_of(
    config: &RunConfig,
    total_steps: usize,
) -> Result<(ModuleOptimizer, ModuleLrScheduler), RunError> {
    let optimizer = config.optimizer.build();
    let schedule = config.schedule.build(config.optimizer.lr(), total_steps)?;
    Ok((optimizer, schedule))
}

/// The training and validation images of an image configuration, and which of each to use.
type ImageSplit = (Arc<ImageSet>, Vec<usize>, Arc<ImageSet>, Vec<usize>);

/// Read (and for the digits, split) the images a configuration names.
fn read_images(config: &RunConfig) -> Result<ImageSplit, RunError> {
    match &config.data {
        DataConfig::Digits { path, valid_fraction, .. } => {
            let set = Arc::new(match path {
                Some(path) => read_digits(path)?,
                None => parse_digits(SHIPPED_DIGITS, Path::new("data/digits.csv"))?,
            });
            let Split { train, valid } = split(set.len(), *valid_fraction, config.seed);
            if valid.is_empty() || train.is_empty() {
                let (part, advice) =
                    if valid.is_empty() { ("validation", "raise") } else { ("training", "lower") };
                return Err(RunError::Config(ConfigError::Invalid(InvalidValue {
                    field: "data.valid_fraction".into(),
                    message: format!(
                        "{valid_fraction} of {} images leaves no {part} images: {advice} it (--valid-fraction)",
                        set.len()
                    ),
                })));
            }
            Ok((set.clone(), train, set, valid))
        }
        DataConfig::Mnist { dir, train_limit, .. } => {
            let mnist = read_mnist(dir)?;
            let train = (0..mnist.train.len().min(train_limit.unwrap_or(usize::MAX))).collect();
            let valid = (0..mnist.test.len()).collect();
            Ok((Arc::new(mnist.train), train, Arc::new(mnist.test), valid))
        }
        DataConfig::Lesson { .. } | DataConfig::Points { .. } | DataConfig::Csv(_) => {
            Err(RunError::Config(ConfigError::Invalid(InvalidValue {
                field: "data.source".into(),
                message: format!("the {} model needs images: `digits` or `mnist`", config.model.name()),
            })))
        }
    }
}

/// An image model's settings checked against the images' side, and its memory against what the
/// process may allocate.
struct SizeCheck {
    side: usize,
    batch: usize,
}

impl ImageModelVisitor for SizeCheck {
    type Output = Result<(), RunError>;

    fn visit<T: ImageModel>(self, model: &T) -> Self::Output {
        let SizeCheck { side, batch } = self;
        model.validate(side)?;
        check_memory_for(
            "model",
            || format!("a {} with {} on {side}x{side} images in batches of {batch}", T::NAME, model.size()),
            model.memory_bytes(side, batch),
        )
    }
}

/// A run of the linear model, ready to train: its configuration checked, its device open, its
/// data loaded.
pub struct Experiment {
    /// The effective configuration.
    pub config: RunConfig,
    /// The device it runs on: the first of `devices`, which holds the model.
    pub device: SelectedDevice,
    /// Every device it trains on, main first: one, or several for data-parallel training.
    pub devices: Vec<SelectedDevice>,
    /// The rows trained on.
    pub table: Arc<Table>,
    /// With CSV data (`descent fit`): the table's columns, its scaling, the validation rows and
    /// the closed-form solution.
    pub regression: Option<RegressionData>,
}

impl Experiment {
    /// Check the configuration, open the device, load or generate the data, seed the backend.
    pub fn prepare(config: RunConfig) -> Result<Self, RunError> {
        if config.model.is_image_model() {
            return Err(RunError::WrongModel(format!(
                "this configuration trains the {} model: run it with `descent cnn --config FILE`",
                config.model.name()
            )));
        }
        let mut config = config;
        let devices = open_devices(&config)?;
        let device = devices[0].clone();
        pin_data(&mut config.data)?;
        let (table, regression) = match &mut config.data {
            DataConfig::Lesson { n, true_a, noise } => {
                let bytes = (*n as u64).checked_mul(LESSON_BYTES_PER_ROW);
                check_memory_for("data.n", || format!("{n} rows (--n)"), bytes)?;
                let data = LessonData { n: *n, true_a: *true_a, noise: *noise, seed: config.seed };
                (Arc::new(data.generate()), None)
            }
            DataConfig::Points { path, .. } => (Arc::new(read_points(path)?), None),
            DataConfig::Csv(source) => {
                let regression = RegressionData::prepare(source, config.seed)?;
                // The saved configuration names the columns it used, whatever the file gains later.
                source.features = Some(regression.features.clone());
                (regression.train.clone(), Some(regression))
            }
            DataConfig::Digits { .. } | DataConfig::Mnist { .. } => {
                unreachable!("validation pairs image data with the cnn model")
            }
        };
        if let ModelConfig::Linear { init: Some(init) } = &config.model
            && init.len() != table.features()
        {
            return Err(RunError::Config(ConfigError::Invalid(InvalidValue {
                field: "model.init".into(),
                message: config.init_length_message(init.len(), table.features()),
            })));
        }
        let experiment = Self { config, device, devices, table, regression };
        check_length(&experiment.config, experiment.batches_per_epoch())?;
        // Build the schedule once now, so that a value Burn rejects is reported before training.
        experiment.optimization(experiment.total_steps())?;
        Ok(experiment)
    }

    /// Batches per epoch: 1 with full batches.
    pub fn batches_per_epoch(&self) -> usize {
        match self.config.training.batch_size {
            None => 1,
            Some(size) => self.table.len().div_ceil(size),
        }
    }

    /// Whether every step uses all the rows.
    pub fn full_batch(&self) -> bool {
        self.config.training.batch_size.is_none()
    }

    /// The model at its initial parameters, on the autodiff device.
    pub fn model(&self) -> LinearModel {
        let init: Vec<f32> =
            self.config.linear_init(self.table.features()).into_iter().map(|v| v as f32).collect();
        LinearModel::new(&init, &self.device.device.clone().autodiff())
    }

    /// The batches: the whole table once on the device, or Burn's `DataLoader` over shuffled
    /// mini-batches.
    pub fn batches(&self) -> Box<dyn BatchSource<RegressionBatch>> {
        match self.config.training.batch_size {
            None => Box::new(FullBatch::new(&self.table, &self.device.device)),
            Some(size) => {
                Box::new(MiniBatches::new(self.table.clone(), size, self.config.seed, &self.device.device))
            }
        }
    }

    /// Length, reporting cadence and devices, with the defaults filled in.
    pub fn plan(&self) -> Plan {
        Plan { replicas: self.devices.iter().map(|d| d.device.clone()).collect(), ..plan_of(&self.config) }
    }

    /// Where the run trains, for summaries: the device, or every device of a data-parallel run.
    pub fn describe_device(&self) -> String {
        device::describe_all(&self.devices)
    }

    /// Every device the run trains on, described, main first (one for a one-device run).
    pub fn device_names(&self) -> Vec<String> {
        self.devices.iter().map(SelectedDevice::describe).collect()
    }

    /// The number of updates the plan makes.
    pub fn total_steps(&self) -> usize {
        total_steps_of(&self.config, self.batches_per_epoch())
    }

    /// Burn's optimizer and scheduler for a run of `total_steps` updates.
    pub fn optimization(&self, total_steps: usize) -> Result<(ModuleOptimizer, ModuleLrScheduler), RunError> {
        optimization_of(&self.config, total_steps)
    }

    /// Train from the initial parameters; `on_loss` sees each reported loss.
    pub fn train(
        &self,
        on_loss: &mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
    ) -> Result<Trained<LinearModel>, RunError> {
        self.train_on(self.batches().as_ref(), on_loss)
    }

    /// [`Self::train`] on batches already made with [`Self::batches`] (so that a caller who
    /// needs the source too does not put the data on the device twice).
    pub fn train_on(
        &self,
        source: &dyn BatchSource<RegressionBatch>,
        on_loss: &mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
    ) -> Result<Trained<LinearModel>, RunError> {
        self.train_with(source, TrainOptions::default(), on_loss)
    }

    /// [`Self::train_on`] with checkpoints, or resumed from one. The returned losses start with
    /// the checkpoint's; its seconds include the checkpoint's.
    pub fn train_with(
        &self,
        source: &dyn BatchSource<RegressionBatch>,
        options: TrainOptions<'_>,
        on_loss: &mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
    ) -> Result<Trained<LinearModel>, RunError> {
        let (optimizer, schedule) = self.optimization(self.total_steps())?;
        let mut plan = self.plan();
        let (model, mut optimizer, mut schedule) =
            starting_point(self.model(), optimizer, schedule, &mut plan, options.resume, "linear")?;
        let checkpointer = Checkpointer::new(&self.config, &options, "linear");
        let mut on_batch = options.on_batch;
        let earlier: Vec<MetricsRow> = options.resume.map(|c| c.state.metrics.clone()).unwrap_or_default();
        let metrics = std::cell::RefCell::new(earlier.clone());
        let mut failure = None;
        let mut on_record = |record: &LossRecord| {
            metrics.borrow_mut().push(MetricsRow::from(record));
            on_loss(record)
        };
        let mut on_epoch =
            |end: &EpochEnd<'_, LinearModel>| match checkpointer.epoch_end(end, &metrics.borrow()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(error) => {
                    failure = Some(error);
                    ControlFlow::Break(())
                }
            };
        let hooks = Hooks {
            on_loss: Some(&mut on_record),
            on_batch: shorter(&mut on_batch),
            on_epoch: Some(&mut on_epoch),
        };
        let trained = train_observed(model, &mut optimizer, &mut schedule, source, &plan, hooks);
        let mut trained = diverged_with(trained, || metrics.take())?;
        if let Some(error) = failure {
            return Err(error);
        }
        if trained.interrupted {
            return Err(RunError::Interrupted {
                step: trained.steps,
                epoch: trained.epochs,
                metrics: metrics.take(),
            });
        }
        let mut losses: Vec<LossRecord> = earlier
            .iter()
            .map(|row| LossRecord { step: row.step, epoch: row.epoch, lr: row.lr, loss: row.train_loss })
            .collect();
        losses.append(&mut trained.losses);
        trained.losses = losses;
        trained.seconds += checkpointer.earlier_seconds;
        Ok(trained)
    }
}

impl Experiment {
    /// The notebook's animation: from the initial parameters, `steps` full-batch updates with the
    /// run's optimizer (its schedule spread over `steps`); after each update, the parameters
    /// (slope, intercept) and the loss computed before it.
    pub fn trajectory(&self, steps: usize) -> Result<Vec<([f64; 2], f64)>, RunError> {
        let source = FullBatch::new(&self.table, &self.device.device);
        let (mut optimizer, mut schedule) = self.optimization(steps)?;
        let plan = Plan::new(Length::Steps(steps), Report::EverySteps(1));
        let mut parameters = Vec::with_capacity(steps);
        let mut failure = None;
        let mut on_epoch = |end: &EpochEnd<'_, LinearModel>| match end.model.parameters() {
            Ok(a) => {
                parameters.push([f64::from(a[0]), a.get(1).copied().map_or(0.0, f64::from)]);
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        };
        let hooks = Hooks { on_epoch: Some(&mut on_epoch), ..Hooks::default() };
        let trained = train_observed(self.model(), &mut optimizer, &mut schedule, &source, &plan, hooks)?;
        if let Some(error) = failure {
            return Err(TrainError::Device(error.to_string()).into());
        }
        Ok(parameters.into_iter().zip(trained.losses.iter().map(|r| r.loss)).collect())
    }
}

/// The end of an epoch of a classifier's training, with its validation results.
pub struct EpochResult<'a> {
    /// The epoch that ended (1-based).
    pub epoch: usize,
    /// Updates made so far.
    pub step: usize,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    /// The mean training loss over the epoch's examples.
    pub train_loss: f64,
    /// The model on the validation images.
    pub evaluation: &'a Evaluation,
}

/// A classifier trained by [`ImageExperiment::train`], and its results after the last epoch.
pub struct TrainedClassifier<M> {
    /// The model and what happened on the way.
    pub trained: Trained<M>,
    /// The validation results after the last epoch.
    pub evaluation: Evaluation,
    /// One row per epoch, from the first (a resumed run's include the checkpoint's).
    pub metrics: Vec<MetricsRow>,
}

/// A classification run on images, ready to train: configuration checked, device open, images
/// loaded and split.
pub struct ImageExperiment {
    /// The effective configuration.
    pub config: RunConfig,
    /// The device it runs on: the first of `devices`, which holds the model.
    pub device: SelectedDevice,
    /// Every device it trains on, main first: one, or several for data-parallel training.
    pub devices: Vec<SelectedDevice>,
    /// The images trained on (the digits, or MNIST's training set).
    pub train_set: Arc<ImageSet>,
    /// Which of `train_set` to train on.
    pub train: Vec<usize>,
    /// The images validated on (the digits again, or MNIST's test set).
    pub valid_set: Arc<ImageSet>,
    /// Which of `valid_set` to validate on.
    pub valid: Vec<usize>,
}

impl ImageExperiment {
    /// Check the configuration, open the device, read and split the images.
    pub fn prepare(config: RunConfig) -> Result<Self, RunError> {
        if !config.model.is_image_model() {
            return Err(RunError::WrongModel(
                "this configuration fits the linear model: run it with `descent train --config FILE`".into(),
            ));
        }
        let mut config = config;
        let devices = open_devices(&config)?;
        let device = devices[0].clone();
        pin_data(&mut config.data)?;
        let (train_set, train, valid_set, valid) = read_images(&config)?;
        if let DataConfig::Mnist { side, .. } = &mut config.data {
            // Recorded, so that the saved model is rebuilt at the size it was trained at.
            *side = Some(train_set.side());
        }
        let experiment = Self { config, device, devices, train_set, train, valid_set, valid };
        let side = experiment.train_set.side();
        let batch = experiment.batch_size().min(experiment.train.len().max(1));
        experiment.config.model.visit_image_model(SizeCheck { side, batch }).unwrap_or(Ok(()))?;
        check_length(&experiment.config, experiment.train.len().div_ceil(experiment.batch_size()))?;
        experiment.optimization(experiment.total_steps())?;
        Ok(experiment)
    }

    /// Images per batch (all training images when the configuration sets none).
    pub fn batch_size(&self) -> usize {
        self.config.training.batch_size.unwrap_or(self.train.len()).max(1)
    }

    /// The CNN of the configuration (the default CNN when it names another model) at its seeded
    /// initial weights, on the autodiff device. [`Self::network`] makes any image model.
    pub fn model(&self) -> Cnn {
        let default = CnnConfig::default();
        let settings = match &self.config.model {
            ModelConfig::Cnn(cnn) => cnn,
            _ => &default,
        };
        self.network(settings)
    }

    /// The network of `settings` for this run's images at its seeded initial weights, on the
    /// autodiff device.
    pub fn network<T: ImageModel>(&self, settings: &T) -> T::Network {
        settings.init(self.train_set.side(), &self.device.device.clone().autodiff())
    }

    /// Batches of the training images through Burn's `DataLoader`, reshuffled every epoch.
    pub fn batches(&self) -> ImageBatches {
        ImageBatches::new(
            self.train_set.clone(),
            self.train.clone(),
            self.batch_size(),
            self.config.seed,
            &self.device.device,
        )
    }

    /// Length, reporting cadence and devices, with the defaults filled in.
    pub fn plan(&self) -> Plan {
        Plan { replicas: self.devices.iter().map(|d| d.device.clone()).collect(), ..plan_of(&self.config) }
    }

    /// Where the run trains, for summaries: the device, or every device of a data-parallel run.
    pub fn describe_device(&self) -> String {
        device::describe_all(&self.devices)
    }

    /// Every device the run trains on, described, main first (one for a one-device run).
    pub fn device_names(&self) -> Vec<String> {
        self.devices.iter().map(SelectedDevice::describe).collect()
    }

    /// The number of updates the plan makes.
    pub fn total_steps(&self) -> usize {
        total_steps_of(&self.config, self.train.len().div_ceil(self.batch_size()))
    }

    /// Burn's optimizer and scheduler for a run of `total_steps` updates.
    pub fn optimization(&self, total_steps: usize) -> Result<(ModuleOptimizer, ModuleLrScheduler), RunError> {
        optimization_of(&self.config, total_steps)
    }

    /// Train `model` (the CNN from [`Self::model`], or a model of your own) and validate it on
    /// the validation images after every epoch; `on_epoch` sees each epoch's results and may
    /// stop the run. Validation time is not counted in [`Trained::seconds`].
    pub fn train<M>(
        &self,
        model: M,
        on_epoch: &mut dyn FnMut(&EpochResult<'_>) -> ControlFlow<()>,
    ) -> Result<TrainedClassifier<M>, RunError>
    where
        M: Objective<crate::data::ImageBatch> + Classifier + 'static,
    {
        self.train_with(model, TrainOptions::default(), on_epoch)
    }

    /// [`Self::train`] with checkpoints, or resumed from one (`model` is then a freshly made
    /// model of the same configuration, whose parameters the checkpoint replaces). `on_epoch`
    /// sees the epochs this call trains; the returned metrics start with the checkpoint's.
    pub fn train_with<M>(
        &self,
        model: M,
        options: TrainOptions<'_>,
        on_epoch: &mut dyn FnMut(&EpochResult<'_>) -> ControlFlow<()>,
    ) -> Result<TrainedClassifier<M>, RunError>
    where
        M: Objective<crate::data::ImageBatch> + Classifier + 'static,
    {
        let (optimizer, schedule) = self.optimization(self.total_steps())?;
        // Every epoch's mean training loss is needed, whatever is printed.
        let mut plan = Plan { report: Report::EveryEpochs(1), ..self.plan() };
        let (model, mut optimizer, mut schedule) =
            starting_point(model, optimizer, schedule, &mut plan, options.resume, self.config.model.name())?;
        let checkpointer = Checkpointer::new(&self.config, &options, self.config.model.name());
        let mut on_batch = options.on_batch;
        let mut metrics: Vec<MetricsRow> =
            options.resume.map(|c| c.state.metrics.clone()).unwrap_or_default();
        // The last reported (train loss, lr), shared by the two callbacks.
        let last_loss = std::cell::Cell::new((f64::NAN, f64::NAN));
        let mut last: Option<Evaluation> = None;
        let mut failure: Option<RunError> = None;
        let mut on_loss = |record: &LossRecord| {
            last_loss.set((record.loss, record.lr));
            ControlFlow::Continue(())
        };
        let mut on_end = |end: &EpochEnd<'_, M>| {
            if end.interrupted {
                // Part-way through an epoch: nothing to validate, only a checkpoint to write.
                if let Err(error) = checkpointer.epoch_end(end, &metrics) {
                    failure = Some(error);
                }
                return ControlFlow::Break(());
            }
            // `valid()`: off the autodiff device, dropout off, batch norm on running stats.
            match evaluate(&end.model.valid(), &self.valid_set, &self.valid, &self.device.device) {
                Ok(evaluation) => {
                    let (train_loss, lr) = last_loss.get();
                    let result = EpochResult {
                        epoch: end.epoch,
                        step: end.step,
                        lr,
                        train_loss,
                        evaluation: &evaluation,
                    };
                    metrics.push(validated_row(&result));
                    if let Err(error) = checkpointer.epoch_end(end, &metrics) {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                    let flow = on_epoch(&result);
                    last = Some(evaluation);
                    flow
                }
                Err(error) => {
                    failure = Some(TrainError::Device(format!("validation failed: {error}")).into());
                    ControlFlow::Break(())
                }
            }
        };
        let hooks = Hooks {
            on_loss: Some(&mut on_loss),
            on_batch: shorter(&mut on_batch),
            on_epoch: Some(&mut on_end),
        };
        let trained = train_observed(model, &mut optimizer, &mut schedule, &self.batches(), &plan, hooks);
        let trained = diverged_with(trained, || std::mem::take(&mut metrics))?;
        if let Some(error) = failure {
            return Err(error);
        }
        if trained.interrupted {
            return Err(RunError::Interrupted { step: trained.steps, epoch: trained.epochs, metrics });
        }
        let mut trained = trained;
        trained.seconds += checkpointer.earlier_seconds;
        let evaluation = last.ok_or(TrainError::NoBatches)?;
        Ok(TrainedClassifier { trained, evaluation, metrics })
    }
}
