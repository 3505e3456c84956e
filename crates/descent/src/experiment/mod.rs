//! A run, from its configuration: the device, the data, the model, the batches, the optimizer
//! and the schedule, ready for the training engine. Every training command goes through here.
//!
//! [`Prepared`] is what every run has, whatever it trains: the effective configuration, its
//! devices, its plan and optimizer, and [`Prepared::train_run`], the one way a model goes
//! through the engine with checkpoints, resumption, Ctrl-C and divergence handled. The tasks
//! add their data and what they do at the end of an epoch: [`Experiment`] for the linear model
//! on points or a table (`linear.rs`), [`ImageExperiment`] for any image model (`images.rs`).

mod images;
mod job;
mod linear;

pub use images::{EpochResult, FolderFiles, ImageExperiment, TrainedClassifier};

pub use linear::Experiment;

use std::ops::ControlFlow;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::ModuleOptimizer;

use crate::config::{ConfigError, DataConfig, Monitor, RunConfig};
use crate::data::DataError;
use crate::device::{self, Access, DeviceError, SelectedDevice};
use crate::observe::Observer;
use crate::optim::InvalidValue;
use crate::report::{MetricsRow, RunFolder, RunFolderError};
use crate::train::{
    BatchEnd, BatchRows, BatchSource, CHECKPOINT_FILE, Checkpoint, CheckpointError, CheckpointState,
    EarlyStopState, EpochEnd, Events, Interrupter, Length, LossRecord, Objective, Plan, Position, Report,
    TrainError, Trained, train_observed,
};

pub use crate::defaults::{
    EPOCHS as DEFAULT_EPOCHS, PRINT_EVERY_STEPS as DEFAULT_PRINT_EVERY_STEPS, STEPS as DEFAULT_STEPS,
};

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
    /// The run's outputs (a progress bar, printed lines, logs), told of every event in order.
    pub observers: Vec<&'a mut dyn Observer>,
    /// Checked after every update: a stop asked for interrupts the run there, writing a
    /// checkpoint to continue from (Ctrl-C on the command line).
    pub interrupter: Option<&'a Interrupter>,
}

/// What a run has recorded so far, as a checkpoint keeps it.
struct History<'a> {
    metrics: &'a [MetricsRow],
    batch_losses: &'a [(usize, f64)],
    rates: &'a [(usize, f64)],
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

    /// Whether this epoch's end writes a checkpoint: into a folder, at the last epoch, an
    /// interrupted one, every `checkpoint_every`, or the one early stopping ends the run at.
    fn due<M>(&self, end: &EpochEnd<'_, M>, watch: Option<&Watch>) -> bool {
        let stopping = watch.is_some_and(|watch| watch.stopped);
        self.folder.is_some()
            && (end.last
                || end.interrupted
                || stopping
                || self.every.is_some_and(|every| end.epoch.is_multiple_of(every)))
    }

    /// Write a checkpoint if this epoch is due one ([`Self::due`]).
    fn epoch_end<M: burn::module::Module>(
        &self,
        end: &EpochEnd<'_, M>,
        history: History<'_>,
        watch: Option<&Watch>,
    ) -> Result<(), RunError> {
        let Some(folder) = self.folder.filter(|_| self.due(end, watch)) else { return Ok(()) };
        let early_stop = watch.and_then(|watch| watch.state);
        let state = CheckpointState {
            model: self.model.into(),
            epoch: end.position.epoch,
            step: end.position.step,
            batch: end.position.batch,
            partial_loss: end.position.partial_loss,
            partial_rows: end.position.partial_rows,
            seconds: self.earlier_seconds + end.seconds,
            metrics: history.metrics.to_vec(),
            config: self.config.clone(),
            early_stop,
            batch_losses: history.batch_losses.to_vec(),
            rates: history.rates.to_vec(),
        };
        // A checkpoint is the point to come back to: never save parameters that are not numbers.
        let tensors = crate::inference::export::named_tensors(end.model)
            .map_err(|error| TrainError::Device(error.to_string()))?;
        if let Some(tensor) = tensors.iter().find(|t| t.values.iter().any(|v| !v.is_finite())) {
            return Err(RunError::Diverged {
                message: format!(
                    "parameter `{}` became NaN or infinite by step {} (epoch {}): try a smaller --lr, or `descent lr-find`",
                    tensor.name, end.step, end.epoch
                ),
                metrics: history.metrics.to_vec(),
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
/// main first.
fn open_devices(config: &RunConfig, access: &Access) -> Result<Vec<SelectedDevice>, RunError> {
    config.validate()?;
    let names =
        if config.devices.is_empty() { std::slice::from_ref(&config.device) } else { &config.devices };
    let devices =
        names.iter().map(|name| device::select_with(name, access)).collect::<Result<Vec<_>, _>>()?;
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
    Ok(devices)
}

/// Length and reporting cadence, with the defaults filled in.
fn plan_of(config: &RunConfig) -> Plan {
    let training = &config.training;
    let full_batch = training.batch_size.is_none();
    // Real tables have correlated columns, which the lesson's 100 steps do not fit: full-batch
    // runs on a table that set no length take 1,000 steps, printed every 100 (`descent fit`,
    // and `descent train --config` with the same file).
    let table =
        matches!(config.data, DataConfig::Csv(_)) && (training.steps, training.epochs) == (None, None);
    let length = match (training.steps, training.epochs) {
        (Some(steps), _) => Length::Steps(steps),
        (None, Some(epochs)) => Length::Epochs(epochs),
        _ if full_batch && table => Length::Steps(crate::defaults::FIT_STEPS),
        (None, None) if full_batch => Length::Steps(DEFAULT_STEPS),
        (None, None) => Length::Epochs(DEFAULT_EPOCHS),
    };
    let report = if full_batch {
        let every = if table { crate::defaults::FIT_PRINT_EVERY } else { DEFAULT_PRINT_EVERY_STEPS };
        Report::EverySteps(training.print_every.unwrap_or(every))
    } else {
        Report::EveryEpochs(training.print_every.unwrap_or(1))
    };
    Plan {
        seed: Some(config.seed),
        accumulate: training.accumulate.unwrap_or(1),
        world: crate::world::World::current(),
        sync_batch_norm: training.sync_batch_norm(),
        ..Plan::new(length, report)
    }
}

/// Synchronised batch norm lives in descent's Flex kernels, and sums across processes from the
/// thread that trains: in a job of several processes it needs one Flex device per process.
fn check_sync_batch_norm(
    config: &RunConfig,
    devices: &[SelectedDevice],
    world: &crate::world::World,
) -> Result<(), RunError> {
    if !config.training.sync_batch_norm() || !world.is_parallel() {
        return Ok(());
    }
    let message = match devices {
        [one] if one.backend == device::Backend::Flex => return Ok(()),
        [one] => format!(
            "synchronised batch norm runs on descent's Flex kernels, and this run trains on {}: use --device flex, or leave --sync-bn out (each process then normalises its own share)",
            one.describe()
        ),
        _ => {
            "synchronised batch norm takes one device per process: use --device flex, or leave --sync-bn out"
                .into()
        }
    };
    Err(InvalidValue { field: "training.sync_batch_norm".into(), message }.into())
}

/// The number of updates `config` makes with `batches_per_epoch` batches per epoch (saturating:
/// [`check_length`] refuses a length that overflows).
fn total_steps_of(config: &RunConfig, batches_per_epoch: usize) -> usize {
    let plan = plan_of(config);
    match plan.length {
        Length::Steps(steps) => steps,
        Length::Epochs(epochs) => epochs.saturating_mul(batches_per_epoch.div_ceil(plan.accumulate.max(1))),
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
        DataConfig::Mnist { dir, sha256, .. } | DataConfig::FashionMnist { dir, sha256, .. } => {
            let files = crate::data::images::mnist_paths(dir);
            (dir, sha256, files)
        }
        DataConfig::Folder { dir, .. } => {
            // The pictures are fingerprinted as they are read (`data::folder`).
            if let Ok(absolute) = std::path::absolute(&*dir) {
                *dir = absolute;
            }
            return Ok(());
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
    Ok(crate::report::hex(&hasher.finalize()))
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

/// About how many bytes a lesson run needs per row, at most: 12 for the row itself, twice over
/// while it is uploaded to a device other than Flex (or kept on the host for mini-batches), and
/// the step's temporaries on devices without the fused loss. On Flex, full-batch, 10 million rows
/// peak at about 150 MB (see BENCHMARKS.md).
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

/// Early stopping during a run: its patience, what it watches, where it stands, and whether it
/// has stopped the run.
struct Watch {
    patience: usize,
    monitor: Monitor,
    state: Option<EarlyStopState>,
    stopped: bool,
}

impl Watch {
    /// Early stopping as `config` asks (none without `training.early_stop`), continuing a resumed
    /// run's.
    fn start(config: &RunConfig, resume: Option<&Checkpoint>) -> Option<Self> {
        let patience = config.training.early_stop?;
        let monitor = config.training.monitor.unwrap_or_default();
        Some(Self { patience, monitor, state: resume.and_then(|c| c.state.early_stop), stopped: false })
    }

    /// How it ended, once it has watched an epoch.
    fn ended(self) -> Option<EarlyStopped> {
        Some(EarlyStopped { monitor: self.monitor, state: self.state?, stopped: self.stopped })
    }
}

/// After a task's `verdict` on an epoch: update early stopping (when on), keep the parameters of
/// a new best epoch (`task.best`), and stop the run once the monitored metric has not improved for
/// `patience` epochs.
fn watch_epoch<M>(
    watch: &mut Option<Watch>,
    end: &EpochEnd<'_, M>,
    verdict: EpochVerdict,
    task: &mut dyn TaskEvents<M>,
    best_model: &mut Option<M>,
) -> Result<ControlFlow<()>, RunError>
where
    M: burn::module::Module,
{
    let flow = verdict.flow;
    let Some(watch) = watch else { return Ok(flow) };
    let Some(value) = watch.monitor.pick(verdict.valid_loss, verdict.accuracy) else { return Ok(flow) };
    let monitor = watch.monitor;
    let (state, best) = EarlyStopState::after(watch.state, end.epoch, value, |v, b| monitor.improves(v, b));
    watch.state = Some(state);
    if best {
        let model = end.model.valid();
        task.best(&model)?;
        *best_model = Some(model);
    }
    if state.stale >= watch.patience && !end.last {
        watch.stopped = true;
        return Ok(ControlFlow::Break(()));
    }
    Ok(flow)
}

/// What every prepared run has, whatever it trains: the effective configuration (its data
/// pinned) and the devices it trains on. The experiments dereference to it.
pub struct Prepared {
    /// The effective configuration.
    pub config: RunConfig,
    /// The device it runs on: the first of `devices`, which holds the model.
    pub device: SelectedDevice,
    /// Every device it trains on, main first: one, or several for data-parallel training.
    pub devices: Vec<SelectedDevice>,
}

/// What a kind of training does at the engine's events, beside what every run does (the
/// observers, checkpoints and early stopping of [`Prepared::train_run`]): the metrics rows it
/// keeps, its verdict on each epoch, and where a new best model goes. The value that implements
/// it holds its own state (the last loss, the last evaluation). Each method sees the metrics
/// rows so far (a resumed run's start with its checkpoint's).
pub trait TaskEvents<M> {
    /// Each reported loss.
    fn loss(&mut self, record: &LossRecord, rows: &mut Vec<MetricsRow>) -> ControlFlow<()>;

    /// The end of a whole epoch, before its checkpoint: evaluate, add the epoch's row, and say
    /// whether to go on.
    fn epoch(&mut self, end: &EpochEnd<'_, M>, rows: &mut Vec<MetricsRow>) -> Result<EpochVerdict, RunError>;

    /// With early stopping: the model (off the autodiff device) of an epoch whose monitored
    /// metric is the best so far, to keep (the run's `model.bpk`).
    fn best(&mut self, model: &M) -> Result<(), RunError>;
}

/// What [`Prepared::train_run`] trains: the kind of model (`linear`, `cnn`, ...: the
/// checkpoint's model kind), how many updates the schedule spans, and the reporting cadence
/// (the plan's when `None`).
#[derive(Clone, Copy, Debug)]
pub struct RunShape {
    /// The model's kind.
    pub kind: &'static str,
    /// The updates of the whole run.
    pub total_steps: usize,
    /// Which losses to report, when not the plan's.
    pub report: Option<Report>,
    /// The model's head layer (`ImageModel::HEAD`), which a fine-tuning (`training.init_from`)
    /// trains apart from the body; `None` for models without one.
    pub head: Option<&'static str>,
}

/// What [`Prepared::train_run`] gives: the model, the metrics rows of the whole run, and where
/// early stopping ended.
pub struct TrainedRun<M> {
    /// The model and what happened on the way.
    pub trained: Trained<M>,
    /// One row per reported loss or epoch, from the first (a resumed run's include the
    /// checkpoint's).
    pub metrics: Vec<MetricsRow>,
    /// With early stopping: the best epoch and whether the run stopped before its plan's end.
    pub early_stop: Option<EarlyStopped>,
    /// With early stopping: the best epoch's model (off the autodiff device), when this call
    /// trained it (a resumed run's earlier best is in its folder's `model.bpk`).
    pub best: Option<M>,
    /// Every update's loss, as (step, loss), from the first (a resumed run's include the
    /// checkpoint's).
    pub batch_losses: Vec<(usize, f64)>,
    /// Every update's learning rate, as (updates made before it, rate), from the first (a
    /// resumed run's include the checkpoint's): what `lr.png` draws.
    pub rates: Vec<(usize, f64)>,
}

/// How early stopping ended a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopped {
    /// What it watched.
    pub monitor: Monitor,
    /// The best epoch and its value, and the epochs after it without improvement.
    pub state: EarlyStopState,
    /// Whether it stopped the run before the plan's end.
    pub stopped: bool,
}

/// What a task says at the end of an epoch.
#[derive(Clone, Copy, Debug)]
pub struct EpochVerdict {
    /// Whether to go on.
    pub flow: ControlFlow<()>,
    /// The epoch's validation loss, when the task measured one.
    pub valid_loss: Option<f64>,
    /// The epoch's validation accuracy, when the task measured one.
    pub accuracy: Option<f64>,
}

impl EpochVerdict {
    /// Go on, with nothing measured.
    pub fn go_on() -> Self {
        Self { flow: ControlFlow::Continue(()), valid_loss: None, accuracy: None }
    }
}

impl Prepared {
    /// Check the configuration, open the devices (remote ones with `access`), pin the data.
    fn open(config: RunConfig, access: &Access) -> Result<Self, RunError> {
        let mut config = config;
        let devices = open_devices(&config, access)?;
        pin_data(&mut config.data)?;
        let world = crate::world::World::current();
        job::check_agreement(&config, &world)?;
        check_sync_batch_norm(&config, &devices, &world)?;
        Ok(Self { device: devices[0].clone(), devices, config })
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

    /// Burn's optimizer and scheduler for a run of `total_steps` updates.
    pub fn optimization(&self, total_steps: usize) -> Result<(ModuleOptimizer, ModuleLrScheduler), RunError> {
        optimization_of(&self.config, total_steps)
    }

    /// Refuse a length that overflows, and build the schedule once, so that a value Burn
    /// rejects is reported before training.
    fn check_plan(&self, batches_per_epoch: usize) -> Result<(), RunError> {
        check_length(&self.config, batches_per_epoch)?;
        self.optimization(total_steps_of(&self.config, batches_per_epoch))?;
        Ok(())
    }

    /// Train `model` (`shape`: a `kind` model, `linear`, `cnn`, ...) on `source` through the
    /// engine for `total_steps` updates, reporting as `report` says (the plan's cadence when
    /// `None`):
    /// from its initial parameters or from `options.resume`, with checkpoints into
    /// `options.folder`, and `task` at each loss and epoch. Returns the model and the metrics
    /// rows of the whole run; an interruption or a divergence comes back as its error, with the
    /// rows up to it. The seconds include the checkpoint's.
    pub fn train_run<M, B>(
        &self,
        model: M,
        source: &dyn BatchSource<B>,
        shape: RunShape,
        options: TrainOptions<'_>,
        task: &mut dyn TaskEvents<M>,
    ) -> Result<TrainedRun<M>, RunError>
    where
        M: Objective<B> + 'static,
        B: BatchRows + Send + 'static,
    {
        let RunShape { kind, total_steps, report, head } = shape;
        let (optimizer, schedule) = self.optimization(total_steps)?;
        let mut plan = self.plan();
        plan.report = report.unwrap_or(plan.report);
        let training = &self.config.training;
        plan.head = head.filter(|_| training.init_from.is_some()).map(|head| crate::train::HeadTraining {
            head: head.to_string(),
            freeze_epochs: training.freeze.unwrap_or(0),
            body_lr_factor: self.config.optimizer.body_lr_factor().unwrap_or(1.0),
        });
        let (model, mut optimizer, mut schedule) =
            starting_point(model, optimizer, schedule, &mut plan, options.resume, kind)?;
        let checkpointer = Checkpointer::new(&self.config, &options, kind);
        let resume = options.resume.map(|checkpoint| &checkpoint.state);
        let mut events = RunEvents {
            task,
            observers: options.observers,
            interrupter: options.interrupter,
            checkpointer,
            metrics: resume.map(|state| state.metrics.clone()).unwrap_or_default(),
            batch_losses: resume.map(|state| state.batch_losses.clone()).unwrap_or_default(),
            rates: resume.map(|state| state.rates.clone()).unwrap_or_default(),
            watch: Watch::start(&self.config, options.resume),
            best: None,
            failure: None,
        };
        let trained = train_observed(model, &mut optimizer, &mut schedule, source, &plan, &mut events);
        let mut trained = diverged_with(trained, || std::mem::take(&mut events.metrics))?;
        let RunEvents { metrics, batch_losses, rates, watch, best, failure, checkpointer, .. } = events;
        if let Some(error) = failure {
            return Err(error);
        }
        if trained.interrupted {
            return Err(RunError::Interrupted { step: trained.steps, epoch: trained.epochs, metrics });
        }
        trained.seconds += checkpointer.earlier_seconds;
        let early_stop = watch.and_then(Watch::ended);
        Ok(TrainedRun { trained, metrics, early_stop, best, batch_losses, rates })
    }
}

/// What a run does at the engine's events, with the state it keeps: the task's events, the
/// observers, the interrupter, the checkpoints, the metrics rows and every update's loss, early
/// stopping and the best model, and the error that stopped the run, if one did.
struct RunEvents<'a, 'h, M> {
    task: &'h mut dyn TaskEvents<M>,
    observers: Vec<&'a mut dyn Observer>,
    interrupter: Option<&'a Interrupter>,
    checkpointer: Checkpointer<'a>,
    metrics: Vec<MetricsRow>,
    batch_losses: Vec<(usize, f64)>,
    rates: Vec<(usize, f64)>,
    watch: Option<Watch>,
    best: Option<M>,
    failure: Option<RunError>,
}

impl<M: burn::module::Module> Events<M> for RunEvents<'_, '_, M> {
    fn loss(&mut self, record: &LossRecord) -> ControlFlow<()> {
        self.observers.iter_mut().for_each(|observer| observer.loss(record));
        self.task.loss(record, &mut self.metrics)
    }

    /// Every observer is told; then the interrupter says whether to stop here.
    fn batch(&mut self, end: &BatchEnd) -> ControlFlow<()> {
        self.batch_losses.push((end.step, end.loss));
        if let Some(update) = end.update {
            self.rates.push((end.step - 1, update.lr));
        }
        self.observers.iter_mut().for_each(|observer| observer.batch(end));
        match self.interrupter.is_some_and(Interrupter::should_stop) {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    }

    fn epoch(&mut self, end: &EpochEnd<'_, M>) -> ControlFlow<()> {
        self.end_epoch(end).unwrap_or_else(|error| {
            self.failure = Some(error);
            ControlFlow::Break(())
        })
    }
}

impl<M: burn::module::Module> RunEvents<'_, '_, M> {
    /// The task's verdict on the epoch, early stopping, the observers, then the checkpoint;
    /// part-way through an epoch (Ctrl-C), only the checkpoint to continue from. The observers
    /// write out what they hold first (the TensorBoard log's buffered scalars): a run killed
    /// once the checkpoint is written and resumed from it has every figure up to it.
    fn end_epoch(&mut self, end: &EpochEnd<'_, M>) -> Result<ControlFlow<()>, RunError> {
        if end.interrupted {
            self.flush_before_checkpoint(end);
            self.checkpoint(end)?;
            return Ok(ControlFlow::Break(()));
        }
        let verdict = self.task.epoch(end, &mut self.metrics)?;
        let flow = watch_epoch(&mut self.watch, end, verdict, &mut *self.task, &mut self.best)?;
        self.observers.iter_mut().for_each(|observer| observer.epoch(end.epoch, &self.metrics));
        self.flush_before_checkpoint(end);
        self.checkpoint(end)?;
        Ok(flow)
    }

    /// The observers write out what they hold when a checkpoint follows.
    fn flush_before_checkpoint(&mut self, end: &EpochEnd<'_, M>) {
        if self.checkpointer.due(end, self.watch.as_ref()) {
            self.observers.iter_mut().for_each(|observer| observer.flush());
        }
    }

    fn checkpoint(&self, end: &EpochEnd<'_, M>) -> Result<(), RunError> {
        let history =
            History { metrics: &self.metrics, batch_losses: &self.batch_losses, rates: &self.rates };
        self.checkpointer.epoch_end(end, history, self.watch.as_ref())
    }
}
