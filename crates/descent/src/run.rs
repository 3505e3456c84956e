//! A run's lifecycle, from its configuration to the files it leaves behind.
//!
//! - **Start.** [`Run::create`] makes a new run folder and writes the configuration into it
//!   before anything trains. [`Resumable::open`] reads a run folder to continue: its checkpoint,
//!   and the configuration it was trained with, checked to belong to the folder. [`Run::resume`]
//!   then continues it once the plan has steps left.
//! - **Training.** [`Run::train_options`] points the engine at the folder (checkpoints) and the
//!   checkpoint (where to continue).
//! - **End.** [`Run::save_model`] and [`Run::finish`] write what a finished run leaves: the
//!   model and its checksum, `metrics.csv` and `summary.json`. [`Run::failed`] writes what a
//!   failed run leaves (the metrics up to the failure; the last checkpoint stays) and says what
//!   happened and what to do next, with the [`FailureKind`] that decides the exit code.
//!
//! Nothing here prints: the command line says what the run tells it.

use std::path::{Path, PathBuf};

use burn::module::Module;

use crate::config::{ConfigError, RunConfig, parse_toml};
use crate::device::SelectedDevice;
use crate::experiment::{Prepared, RunError, TrainOptions};
use crate::observe::Observer;
use crate::report::figures::{FigureError, Figures};
use crate::report::run_folder::is_stillborn;
use crate::report::tensorboard::EventLog;
use crate::report::{
    CONFIG_FILE, METRICS_FILE, MetricsRow, RunFolder, RunFolderError, RunPlace, SUMMARY_FILE, metrics_csv,
};
use crate::train::{CHECKPOINT_FILE, Checkpoint, CheckpointError, Interrupter, Length, Plan, TrainError};
use crate::world::World;

/// A run under way: the folder it writes into, and the checkpoint it continues from when it
/// was resumed.
pub struct Run {
    folder: RunFolder,
    checkpoint: Option<Checkpoint>,
    /// The TensorBoard log, unless the configuration turns it off.
    events: Option<EventLog>,
    /// The command that runs it (`lesson2`, `train`, `fit`, `cnn`, or a program's own name), for
    /// the summary.
    command: String,
    /// Also write every figure as SVG.
    svg: bool,
}

/// What [`Run::execute`] gives back: the task's outcome, the summary written as `summary.json`,
/// and the names of the files in the run folder.
pub struct Executed<O> {
    /// What training gave (the model, its results).
    pub outcome: O,
    /// The summary, as written into the folder.
    pub summary: serde_json::Value,
    /// The files in the run folder, sorted.
    pub files: Vec<String>,
}

/// A run folder to continue (`--resume DIR`): its checkpoint, locked folder and the
/// configuration the checkpoint was trained with.
pub struct Resumable {
    /// The configuration the run was trained with (from its checkpoint).
    pub config: RunConfig,
    folder: RunFolder,
    checkpoint: Checkpoint,
}

/// Why a run cannot start. Each message names the flag or file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunStartError {
    /// The new run folder cannot be made.
    #[error("--out: {0}")]
    Out(RunFolderError),
    /// A file of the run folder cannot be written.
    #[error(transparent)]
    Write(RunFolderError),
    /// The folder to resume cannot be opened (missing, or another run is using it).
    #[error("--resume: {0}")]
    ResumeFolder(RunFolderError),
    /// The folder's checkpoint cannot be read.
    #[error("--resume {}: {error}", dir.display())]
    Checkpoint {
        /// The folder.
        dir: PathBuf,
        /// What is wrong with its checkpoint.
        error: CheckpointError,
    },
    /// The folder's run stopped before its first checkpoint: there is nothing to continue.
    #[error("--resume {}: the run in this folder stopped before its first checkpoint, so there is nothing to continue; start it again with --out {} (the files of its start are replaced)", dir.display(), dir.display())]
    Stillborn {
        /// The folder.
        dir: PathBuf,
    },
    /// The configuration inside the checkpoint does not parse.
    #[error(transparent)]
    Config(ConfigError),
    /// In a job of several processes, rank 0 could not open the run to continue (it says why).
    #[error("--resume {}: rank 0 could not continue this run (its own error says why)", dir.display())]
    RootCannotResume {
        /// The folder.
        dir: PathBuf,
    },
    /// The folder's own `config.toml` cannot be read.
    #[error("--resume: {0}")]
    FolderConfig(ConfigError),
    /// The checkpoint is another run's (copied in): resuming would write over this run's model.
    #[error("--resume: {} is from another run than {} (its model, data or seed differ): nothing was changed", checkpoint.display(), config.display())]
    OtherRun {
        /// The checkpoint.
        checkpoint: PathBuf,
        /// The folder's configuration.
        config: PathBuf,
    },
    /// Early stopping has ended the run: its monitored metric stopped improving.
    #[error("--resume {}: early stopping ended this run after epoch {epoch}: {monitor} has not improved since epoch {best_epoch} (model.bpk holds it); start a new run to train with another patience", dir.display())]
    StoppedEarly {
        /// The folder.
        dir: PathBuf,
        /// The metric watched.
        monitor: &'static str,
        /// The best epoch.
        best_epoch: usize,
        /// The epoch the run stopped after.
        epoch: usize,
    },
    /// The run has trained as long as its plan says.
    #[error("--resume {}: the run has trained {done} {unit} already and its plan is {total}: pass {flag} N with N > {done} to train further", dir.display())]
    NothingLeft {
        /// The folder.
        dir: PathBuf,
        /// Epochs or steps trained.
        done: usize,
        /// The plan's length.
        total: usize,
        /// `epochs` or `steps`.
        unit: &'static str,
        /// The flag that sets the length.
        flag: &'static str,
    },
}

impl Resumable {
    /// Read the run in `dir` to continue it. To train (`lock`), the folder is locked first: a
    /// run still going in it is refused; `descent config show --resume` reads without locking.
    ///
    /// In a job of several processes (MPI) only rank 0 needs the folder on its disk: rank 0 reads
    /// it and sends the checkpoint to the others, which continue from it without a folder of
    /// their own (they write nothing).
    pub fn open(dir: &Path, lock: bool) -> Result<Self, RunStartError> {
        let world = World::current();
        if !world.is_parallel() {
            return Self::open_here(dir, lock);
        }
        if world.is_root() {
            let opened = Self::open_here(dir, lock);
            let bytes = match &opened {
                Ok(resumable) => resumable.checkpoint.to_bytes().unwrap_or_default(),
                Err(_) => Vec::new(), // rank 0 says what went wrong
            };
            world.broadcast(bytes);
            return opened;
        }
        let bytes = world.broadcast(Vec::new());
        if bytes.is_empty() {
            return Err(RunStartError::RootCannotResume { dir: dir.into() });
        }
        let checkpoint = Checkpoint::from_bytes(&bytes, &dir.join(CHECKPOINT_FILE))
            .map_err(|error| RunStartError::Checkpoint { dir: dir.into(), error })?;
        let origin = format!("the configuration in {}", checkpoint.path.display());
        let config: RunConfig =
            parse_toml(&checkpoint.state.config, &origin).map_err(RunStartError::Config)?;
        Ok(Self { config, folder: RunFolder::discarding(dir), checkpoint })
    }

    /// [`Self::open`] from this machine's disk.
    fn open_here(dir: &Path, lock: bool) -> Result<Self, RunStartError> {
        let folder = if lock { RunFolder::open(dir) } else { RunFolder::open_unlocked(dir) };
        let folder = folder.map_err(RunStartError::ResumeFolder)?;
        let checkpoint = Checkpoint::read(&dir.join(CHECKPOINT_FILE)).map_err(|error| match error {
            CheckpointError::Missing { .. } if is_stillborn(dir) => {
                RunStartError::Stillborn { dir: dir.into() }
            }
            error => RunStartError::Checkpoint { dir: dir.into(), error },
        })?;
        let origin = format!("the configuration in {}", checkpoint.path.display());
        let config: RunConfig =
            parse_toml(&checkpoint.state.config, &origin).map_err(RunStartError::Config)?;
        // The folder's own configuration must describe the checkpoint's run: a checkpoint copied
        // in from another run would otherwise write over this run's model.
        let folder_config = dir.join(CONFIG_FILE);
        if folder_config.exists() {
            let described = RunConfig::load(&folder_config).map_err(RunStartError::FolderConfig)?;
            if described.model != config.model
                || described.data != config.data
                || described.seed != config.seed
            {
                return Err(RunStartError::OtherRun {
                    checkpoint: checkpoint.path.clone(),
                    config: folder_config,
                });
            }
        }
        Ok(Self { config, folder, checkpoint })
    }
}

impl Run {
    /// A new run folder (`out`, or `runs/<command>-<UTC time>`), with `config` written into it
    /// before anything trains.
    pub fn create(out: Option<&Path>, command: &str, config: &RunConfig) -> Result<Self, RunStartError> {
        // In a job of several processes, only rank 0 has a folder.
        let folder = match World::current().is_root() {
            true => RunFolder::create(out, command).map_err(RunStartError::Out)?,
            false => RunFolder::discarding(out.unwrap_or(Path::new("runs"))),
        };
        let mut run = Self { folder, checkpoint: None, events: None, command: command.into(), svg: false };
        run.write_config(config).map_err(RunStartError::Write)?;
        if config.training.tensorboard() && !run.folder.discards() {
            run.events = Some(EventLog::create(&run.folder, config).map_err(RunStartError::Write)?);
        }
        Ok(run)
    }

    /// Continue `resumable` under `plan`, once it is clear that the plan has steps left, as
    /// `command`.
    pub fn resume(resumable: Resumable, plan: &Plan, command: &str) -> Result<Self, RunStartError> {
        let Resumable { folder, checkpoint, config } = resumable;
        let state = &checkpoint.state;
        if let (Some(patience), Some(watch)) = (config.training.early_stop, state.early_stop)
            && watch.stale >= patience
        {
            return Err(RunStartError::StoppedEarly {
                dir: folder.path().into(),
                monitor: config.training.monitor.unwrap_or_default().name(),
                best_epoch: watch.best_epoch,
                epoch: state.epoch,
            });
        }
        let (done, total, unit, flag) = match plan.length {
            Length::Epochs(total) => (state.epoch, total, "epochs", "--epochs"),
            Length::Steps(total) => (state.step, total, "steps", "--steps"),
        };
        if done >= total {
            return Err(RunStartError::NothingLeft { dir: folder.path().into(), done, total, unit, flag });
        }
        let at = (state.step, state.metrics.len());
        let events = match config.training.tensorboard() && !folder.discards() {
            true => Some(EventLog::resume(&folder, &config, at).map_err(RunStartError::Write)?),
            false => None,
        };
        Ok(Self { folder, checkpoint: Some(checkpoint), events, command: command.into(), svg: false })
    }

    /// Also write every figure as SVG (PNG is always written).
    pub fn with_svg(mut self, svg: bool) -> Self {
        self.svg = svg;
        self
    }

    /// Train `task` as this run, and write what it leaves: the one way a run goes, from the
    /// command line and from Rust alike. The run's own observers (the TensorBoard log; the
    /// checkpoints, metrics rows and early stopping of [`crate::experiment::Prepared::train_run`])
    /// come first, then `observers` (progress, printed lines, anything); `interrupter` stops the
    /// run between two updates, with a checkpoint to continue from.
    ///
    /// A finished run leaves its model, figures, `metrics.csv` and `summary.json` (see
    /// [`Run::complete`]); a failed one its metrics so far, with what happened and what to do
    /// next in the [`RunFailure`] (see [`Run::failed`]).
    pub fn execute<T: Task>(
        &mut self,
        task: &mut T,
        observers: Vec<&mut dyn Observer>,
        interrupter: &Interrupter,
    ) -> Result<Executed<T::Outcome>, RunFailure> {
        // The run's borrow of the observers ends with the training, not with the caller's.
        let mut observers = observers;
        let mut borrowed: Vec<&mut dyn Observer> = Vec::with_capacity(observers.len());
        for observer in observers.iter_mut() {
            borrowed.push(&mut **observer);
        }
        let mut options = self.train_options(borrowed);
        options.interrupter = Some(interrupter);
        let trained = task.train(options);
        let prepared = task.prepared();
        let outcome = trained.map_err(|error| self.failed(&prepared.config, error))?;
        let command = self.command.clone();
        let place = self.place(&command, &prepared.config, &prepared.device, prepared.device_names());
        let (summary, files) = self.complete(task, &outcome, place).map_err(|error| RunFailure {
            kind: error.kind(),
            message: error.to_string(),
            warnings: Vec::new(),
        })?;
        Ok(Executed { outcome, summary, files })
    }

    /// The folder the run writes into.
    pub fn folder(&self) -> &RunFolder {
        &self.folder
    }

    /// The checkpoint a resumed run continues from.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }

    /// The run's TensorBoard log, unless the configuration turns it off.
    pub fn events(&self) -> Option<&EventLog> {
        self.events.as_ref()
    }

    /// The run's TensorBoard log, to log more than training does (lr-find's sweep).
    pub fn events_mut(&mut self) -> Option<&mut EventLog> {
        self.events.as_mut()
    }

    /// What the engine needs of the run: the folder for checkpoints, the checkpoint to continue
    /// from, and what observes the training: the run's TensorBoard log, then `observers`
    /// (progress, printed lines; Ctrl-C).
    pub fn train_options<'a>(&'a mut self, observers: Vec<&'a mut dyn Observer>) -> TrainOptions<'a> {
        let Self { folder, checkpoint, events, .. } = self;
        let own = events.as_mut().map(|log| log as &mut dyn Observer);
        let observers = own.into_iter().chain(observers).collect();
        TrainOptions { folder: Some(folder), resume: checkpoint.as_ref(), observers, interrupter: None }
    }

    /// Where the run trained, for its summary.
    pub fn place<'a>(
        &self,
        command: &'a str,
        config: &'a RunConfig,
        device: &'a SelectedDevice,
        devices: Vec<String>,
    ) -> RunPlace<'a> {
        RunPlace {
            command,
            config,
            device,
            devices,
            folder: self.folder.path().to_path_buf(),
            resumed_from_epoch: self.checkpoint.as_ref().map(|c| c.state.epoch),
        }
    }

    /// Save the trained model (`model.bpk` and its checksum); a resumed run also writes its
    /// effective configuration again (a longer plan).
    pub fn save_model<M: Module>(&self, model: M, config: &RunConfig) -> Result<(), RunFolderError> {
        self.folder.save_model(model)?;
        if self.checkpoint.is_some() {
            self.write_config(config)?;
        }
        Ok(())
    }

    /// Write what a finished `task` leaves: its model (and a resumed run's configuration,
    /// `place.config`), its figures (SVG too [`Self::with_svg`]), `metrics.csv`, and
    /// `summary.json` with `place`'s fields and the task's. Returns the summary and the names of
    /// the files in the folder.
    pub fn complete<T: Task>(
        &mut self,
        task: &T,
        outcome: &T::Outcome,
        place: RunPlace<'_>,
    ) -> Result<(serde_json::Value, Vec<String>), OutputError> {
        task.save_model(outcome, &self.folder)?;
        if self.checkpoint.is_some() {
            self.write_config(place.config)?;
        }
        if !self.folder.discards() {
            task.figures(outcome, &Figures::new(&self.folder, self.svg))?;
        }
        let summary = task.summary(outcome, place);
        let files = self.finish(&summary, task.metrics(outcome).as_deref())?;
        Ok((summary, files))
    }

    /// Write the effective configuration into the folder.
    fn write_config(&self, config: &RunConfig) -> Result<(), RunFolderError> {
        self.folder.write(CONFIG_FILE, config.to_toml().as_bytes()).map(drop)
    }

    /// Write the metrics (one row per reported step or epoch) and the summary; the names of
    /// the files now in the folder, sorted.
    pub fn finish(
        &mut self,
        summary: &serde_json::Value,
        metrics: Option<&[MetricsRow]>,
    ) -> Result<Vec<String>, RunFolderError> {
        if let Some(log) = &mut self.events {
            log.flush()?;
        }
        if let Some(rows) = metrics {
            self.folder.write(METRICS_FILE, metrics_csv(rows).as_bytes())?;
        }
        self.folder.write(SUMMARY_FILE, format!("{summary:#}\n").as_bytes())?;
        let mut files: Vec<String> = std::fs::read_dir(self.folder.path())
            .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        files.retain(|name| !name.starts_with('.'));
        files.sort();
        Ok(files)
    }

    /// A run that failed: the metrics up to the failure written into the folder (its last
    /// checkpoint, if any, stays: it was finite), and what to tell the user. A device failure
    /// says whether the last checkpoint can be resumed, and names the server when one of the
    /// run's devices is remote.
    pub fn failed(&mut self, config: &RunConfig, error: RunError) -> RunFailure {
        let mut warnings = Vec::new();
        if let Some(Err(write)) = self.events.as_mut().map(EventLog::flush) {
            warnings.push(write.to_string());
        }
        if let RunError::Interrupted { metrics, .. } | RunError::Diverged { metrics, .. } = &error
            && let Err(write) = self.folder.write(METRICS_FILE, metrics_csv(metrics).as_bytes())
        {
            warnings.push(write.to_string());
        }
        let dir = self.folder.path().display();
        if let RunError::Interrupted { step, epoch, .. } = &error {
            return RunFailure {
                kind: FailureKind::Interrupted,
                message: format!(
                    "interrupted at step {step} (epoch {epoch}); a checkpoint is in {dir}: continue with `descent train --resume {dir}`"
                ),
                warnings,
            };
        }
        let kind = FailureKind::of(&error);
        let mut message = error.to_string();
        match kind {
            FailureKind::Diverged => message.push_str(&format!(" (metrics up to then are in {dir})")),
            FailureKind::Device => {
                message = on_remote_device(config, message);
                if self.folder.path().join(CHECKPOINT_FILE).exists() {
                    message.push_str(&format!(
                        "; the last checkpoint in {dir} is whole: `descent train --resume {dir}` continues from it"
                    ));
                }
            }
            FailureKind::Input | FailureKind::Interrupted => {}
        }
        RunFailure { kind, message, warnings }
    }
}

/// `message` of a device failure, saying which server stopped answering when the run trains on
/// remote devices.
fn on_remote_device(config: &RunConfig, message: String) -> String {
    let mut servers: Vec<&str> = std::iter::once(&config.device)
        .chain(&config.devices)
        .filter_map(|device| device.trim().strip_prefix("remote:"))
        .collect();
    servers.dedup();
    match servers.as_slice() {
        [] => message,
        [url] => format!("the remote device at {url} stopped answering ({message})"),
        urls => format!("a remote device ({}) stopped answering ({message})", urls.join(", ")),
    }
}

/// A kind of training, as the run sees it once the training is done: what it leaves in the run
/// folder. The lesson, a table regression and an image classifier are tasks
/// (`crate::task`); [`Run::complete`] writes what they give.
pub trait Task {
    /// What training gave: the trained model and its results.
    type Outcome;

    /// The prepared run: its configuration and devices.
    fn prepared(&self) -> &Prepared;

    /// Train through the engine with `options` (the run's folder, checkpoint, observers and
    /// interrupter), and say what it gave; an interruption or a divergence is its error, with
    /// the metrics rows up to it.
    fn train(&mut self, options: TrainOptions<'_>) -> Result<Self::Outcome, RunError>;

    /// Save the trained model (`model.bpk` and its checksum).
    fn save_model(&self, outcome: &Self::Outcome, folder: &RunFolder) -> Result<(), RunFolderError>;

    /// Draw the task's figures.
    fn figures(&self, outcome: &Self::Outcome, figures: &Figures) -> Result<(), OutputError>;

    /// The rows of `metrics.csv`, if the task writes one.
    fn metrics(&self, outcome: &Self::Outcome) -> Option<Vec<MetricsRow>>;

    /// The summary: the fields every run has (`place`) and the task's own.
    fn summary(&self, outcome: &Self::Outcome, place: RunPlace<'_>) -> serde_json::Value;
}

/// Why a finished run's outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A figure could not be drawn or written.
    #[error(transparent)]
    Figure(#[from] FigureError),
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] RunFolderError),
    /// Training for an output failed (the lesson's animation trains its own 100 steps).
    #[error(transparent)]
    Training(#[from] RunError),
}

impl OutputError {
    /// The kind of failure: a figure that cannot be drawn is the machine's, a file that cannot
    /// be written the input's (the folder), training as [`FailureKind::of`] says.
    pub fn kind(&self) -> FailureKind {
        match self {
            OutputError::Figure(FigureError::Draw(_)) => FailureKind::Device,
            OutputError::Figure(_) | OutputError::Write(_) => FailureKind::Input,
            OutputError::Training(error) => FailureKind::of(error),
        }
    }
}

/// How a run ended without success; each kind is one exit code of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Bad input or usage (a checkpoint or folder that does not fit, a wrong value).
    Input,
    /// A failure of the machine rather than of the input (a device error).
    Device,
    /// The loss or a parameter became NaN or infinite.
    Diverged,
    /// Stopped by a signal (Ctrl-C) or a hook, with a checkpoint to continue from.
    Interrupted,
}

impl FailureKind {
    /// The process exit code of a run that ended this way, the same for every command and for
    /// programs that follow descent's: 2 input, 1 device, 3 diverged, 130 interrupted.
    pub fn exit_code(self) -> u8 {
        match self {
            FailureKind::Input => 2,
            FailureKind::Device => 1,
            FailureKind::Diverged => 3,
            FailureKind::Interrupted => 130,
        }
    }

    /// The kind of a training error: a checkpoint or folder that does not fit is input, a
    /// divergence is a divergence, an interruption an interruption, anything else the device.
    pub fn of(error: &RunError) -> Self {
        match error {
            RunError::Checkpoint(_) | RunError::Folder(_) | RunError::Config(_) | RunError::Data(_) => {
                FailureKind::Input
            }
            RunError::WrongModel(_) => FailureKind::Input,
            RunError::Diverged { .. } | RunError::Train(TrainError::Diverged { .. }) => FailureKind::Diverged,
            RunError::Interrupted { .. } => FailureKind::Interrupted,
            RunError::Device(_) | RunError::Train(_) => FailureKind::Device,
        }
    }
}

/// What a failed run tells the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFailure {
    /// Which kind of failure: it decides the exit code.
    pub kind: FailureKind,
    /// One sentence: what happened, where the outputs are, how to continue.
    pub message: String,
    /// Outputs that could not be written on the way (the metrics so far).
    pub warnings: Vec<String>,
}
