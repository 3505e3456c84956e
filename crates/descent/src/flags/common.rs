//! The flags every training command shares, and how they override a configuration.

use std::path::{Path, PathBuf};

use clap::Args;

use super::FlagError;
use super::values::{non_negative_finite, positive_count, positive_finite};
use crate::config::{Monitor, RunConfig, optimizer_from, schedule_from};
use crate::data::augment::AugmentConfig;
use crate::device::Access;
use crate::run::Resumable;

/// Flags shared by every training command. Each one overrides the configuration file
/// (`--config`), which overrides the command's defaults; `--set` is applied last.
#[derive(Args, Debug, Default)]
pub struct CommonArgs {
    /// A run configuration file (TOML, as `descent config show` prints it) [default: the
    /// command's own defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[arg(help = super::help::optim(), long, value_name = "NAME|FILE")]
    pub optim: Option<String>,

    #[arg(help = super::help::schedule(), long, value_name = "NAME|FILE")]
    pub schedule: Option<String>,

    /// Learning rate: the gradient is multiplied by it before being subtracted from the
    /// parameters; with a schedule, its peak [default: the optimizer's].
    #[arg(long, value_parser = positive_finite, allow_hyphen_values = true)]
    pub lr: Option<f64>,

    /// Momentum of the sgd or rmsprop optimizer, in [0, 1) [default: 0].
    #[arg(long, value_parser = non_negative_finite, allow_hyphen_values = true)]
    pub momentum: Option<f64>,

    /// Set any field of the configuration: KEY=VALUE with a dotted KEY, e.g.
    /// optimizer.beta_2=0.99 or training.epochs=5 (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,

    #[arg(help = super::help::seed(), long, value_parser = super::values::seed, allow_hyphen_values = true)]
    pub seed: Option<u64>,

    /// Device: auto, a backend (flex, ndarray, wgpu, vulkan, metal, cuda, rocm), a GPU adapter
    /// such as wgpu:discrete or cuda:1, or remote:ws://HOST:PORT (a `descent serve`, with
    /// --features remote); `descent devices` lists them [default: auto].
    #[arg(long)]
    pub device: Option<String>,

    /// Data-parallel training over several devices, comma-separated, e.g. flex,ndarray or
    /// cuda:0,cuda:1: each batch is split across them, the gradients are summed on the first
    /// (which holds the model and the optimizer), and one update is made, as on one device.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<String>,

    #[arg(help = super::help::batch_size(), long, value_parser = positive_count, allow_hyphen_values = true)]
    pub batch_size: Option<usize>,

    #[arg(help = super::help::steps(), long, value_parser = positive_count, allow_hyphen_values = true, conflicts_with = "epochs")]
    pub steps: Option<usize>,

    #[arg(help = super::help::epochs(), long, value_parser = positive_count, allow_hyphen_values = true)]
    pub epochs: Option<usize>,

    #[arg(help = super::help::print_every(), long, value_parser = positive_count, allow_hyphen_values = true)]
    pub print_every: Option<usize>,

    /// Stop when the monitored validation metric (--monitor) has not improved for PATIENCE
    /// epochs; model.bpk then holds the best epoch's parameters, and the summary says which
    /// epoch that was. Needs a validation set (image data, or a table with validation rows).
    #[arg(long, value_name = "PATIENCE", value_parser = positive_count, allow_hyphen_values = true)]
    pub early_stop: Option<usize>,

    /// What --early-stop watches: valid_loss (lower is better) or accuracy (classifiers; higher
    /// is better) [default: valid_loss].
    #[arg(long, value_name = "METRIC", value_parser = Monitor::NAMES)]
    pub monitor: Option<String>,

    /// Gradient accumulation: one update every K mini-batches, each batch's loss weighted by its
    /// share of the group's examples, so K batches of B make the update of one batch of K·B (a
    /// last shorter group by its true size). --steps and schedules count updates.
    #[arg(long, value_name = "K", value_parser = positive_count, allow_hyphen_values = true)]
    pub accumulate: Option<usize>,

    /// Label smoothing for classifiers: the training loss is the cross-entropy against
    /// (1 − EPS)·one-hot + EPS/K over the K classes (PyTorch's label_smoothing; fastai's
    /// LabelSmoothingCrossEntropy), from 0 up to 1; valid_loss stays the plain cross-entropy.
    #[arg(long, value_name = "EPS", value_parser = super::values::non_negative_finite, allow_hyphen_values = true)]
    pub label_smoothing: Option<f64>,

    /// MixUp for classifiers: blend each training batch with a shuffled copy of itself by a
    /// weight drawn from Beta(ALPHA, ALPHA), and the loss the same way (fastai's MixUp; 0.4 is
    /// usual). The draws come from the seed, so runs and resumes repeat exactly.
    #[arg(long, value_name = "ALPHA", value_parser = super::values::positive_finite, allow_hyphen_values = true)]
    pub mixup: Option<f64>,

    /// Test-time augmentation after training: also validate the run's model on each image's
    /// class probabilities averaged over the image and N copies moved as --augment moves training
    /// images, reported as tta_accuracy (fastai's learn.tta).
    #[arg(long, value_name = "N", value_parser = positive_count, allow_hyphen_values = true)]
    pub tta: Option<usize>,

    /// Augment the training images: seeded random shifts of up to 2 pixels each way, and for
    /// Fashion-MNIST horizontal flips (training.augment.flip decides elsewhere), drawn per batch
    /// from the seed, so runs and resumes repeat exactly.
    #[arg(long)]
    pub augment: bool,

    /// Under mpirun or srun with several processes: batch norm uses the whole global batch's
    /// statistics, summed across the processes (PyTorch's SyncBatchNorm), so N processes train
    /// as one would; without it each process normalises its own share (stored as
    /// training.sync_batch_norm = true; needs the flex device).
    #[arg(long)]
    pub sync_bn: bool,

    /// Folder for the run's outputs: its effective configuration (config.toml), metrics.csv,
    /// summary.json, the model, the plots and the checkpoint [default: runs/<command>-<UTC
    /// time>]. A folder with files in it is refused.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also write a checkpoint (model, optimizer and schedule state, position, metrics) every
    /// this many epochs; one is always written at the end. A full-batch epoch is one step.
    #[arg(long, value_parser = positive_count, allow_hyphen_values = true, value_name = "N")]
    pub checkpoint_every: Option<usize>,

    /// Continue the run in DIR from its checkpoint, writing into DIR. With --epochs (or
    /// --steps) N, train to N in total: that also extends a finished run. The configuration
    /// comes from the checkpoint: flags that would change it are refused.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "config", "optim", "schedule", "lr", "momentum", "sets", "seed", "batch_size", "print_every", "out",
        "early_stop", "monitor", "augment", "accumulate", "no_tensorboard", "sync_bn", "label_smoothing", "mixup", "tta",
    ])]
    pub resume: Option<PathBuf>,

    /// Also write every figure as SVG (PNG is always written).
    #[arg(long)]
    pub svg: bool,

    /// Do not write TensorBoard event files (events.out.tfevents.*) into the run folder; by
    /// default every run logs its metrics.csv columns per step and epoch, and its configuration,
    /// for `tensorboard --logdir runs` (stored as training.tensorboard = false).
    #[arg(long)]
    pub no_tensorboard: bool,

    /// With --device remote:ws://HOST:PORT: a file whose first line is the server's token
    /// [default: the environment variable DESCENT_REMOTE_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Print only the summary: no header, no progress lines.
    #[arg(long, short)]
    pub quiet: bool,

    /// Also print the model layer by layer before training (as `descent summary` does): each
    /// layer's output shape, parameters and multiply-adds, and the totals.
    #[arg(long, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Also print a one-line JSON summary as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

impl CommonArgs {
    /// The configuration file, or `defaults` when there is none, with `--optim` and `--schedule`
    /// applied.
    pub fn base(&self, defaults: RunConfig) -> Result<RunConfig, FlagError> {
        let mut config = match &self.config {
            Some(path) => RunConfig::load(path).map_err(|e| FlagError::new(format!("--config: {e}")))?,
            None => defaults,
        };
        if let Some(optim) = &self.optim {
            config.optimizer = optimizer_from(optim).map_err(|e| FlagError::new(format!("--optim: {e}")))?;
        }
        if let Some(schedule) = &self.schedule {
            config.schedule =
                schedule_from(schedule).map_err(|e| FlagError::new(format!("--schedule: {e}")))?;
        }
        Ok(config)
    }

    /// How this run reaches remote devices: the token of `--token-file`, read per run and never
    /// part of the configuration.
    pub fn access(&self) -> Result<Access, FlagError> {
        let token = self.token_file.as_deref().map(crate::device::read_token_file).transpose();
        Ok(Access { token: token.map_err(|e| FlagError::new(format!("--token-file {e}")))? })
    }

    /// Apply the single flags and `--set`, then check the result.
    pub fn finish(&self, mut config: RunConfig) -> Result<RunConfig, FlagError> {
        self.access()?;
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        if let Some(device) = &self.device {
            (config.device, config.devices) = (device.clone(), Vec::new());
        }
        if !self.devices.is_empty() {
            let devices: Vec<String> = self.devices.iter().map(|name| name.trim().to_string()).collect();
            crate::config::check_devices(&devices)
                .map_err(|error| FlagError::new(format!("--devices {}: {error}", self.devices.join(","))))?;
            (config.device, config.devices) = (devices[0].clone(), devices);
        }
        let training = &mut config.training;
        if self.batch_size.is_some() {
            training.batch_size = self.batch_size;
        }
        if self.steps.is_some() {
            (training.steps, training.epochs) = (self.steps, None);
        }
        if self.epochs.is_some() {
            (training.steps, training.epochs) = (None, self.epochs);
        }
        if self.print_every.is_some() {
            training.print_every = self.print_every;
        }
        if self.checkpoint_every.is_some() {
            training.checkpoint_every = self.checkpoint_every;
        }
        if self.early_stop.is_some() {
            training.early_stop = self.early_stop;
        }
        if let Some(name) = &self.monitor {
            training.monitor = Monitor::from_name(name);
        }
        if self.accumulate.is_some() {
            training.accumulate = self.accumulate;
        }
        if self.label_smoothing.is_some() {
            training.label_smoothing = self.label_smoothing;
        }
        if self.mixup.is_some() {
            training.mixup = self.mixup;
        }
        if self.tta.is_some() {
            training.tta = self.tta;
        }
        if self.augment && training.augment.is_none() {
            training.augment = Some(AugmentConfig::default());
        }
        if self.no_tensorboard {
            training.tensorboard = Some(false);
        }
        if self.sync_bn {
            training.sync_batch_norm = Some(true);
        }
        if let Some(lr) = self.lr {
            config.optimizer.set_lr(lr);
        }
        if let Some(momentum) = self.momentum {
            let set = config.optimizer.set_momentum(momentum).and_then(|()| config.optimizer.validate());
            set.map_err(|e| FlagError::new(format!("--momentum: {e}")))?;
        }
        for assignment in &self.sets {
            config.set(assignment).map_err(FlagError::new)?;
        }
        config.validate().map_err(FlagError::new)?;
        Ok(config)
    }

    /// The configuration a `--resume DIR` run continues with (the checkpoint's, with the flags
    /// a resumed run accepts: --epochs, --steps, --checkpoint-every, --device), and the run to
    /// continue. To train (`lock`), the folder is locked first: a run still going in it is
    /// refused.
    pub fn resumed(&self, dir: &Path, lock: bool) -> Result<(RunConfig, Resumable), FlagError> {
        let resumable = Resumable::open(dir, lock).map_err(FlagError::new)?;
        // The flags that would change the run conflict with --resume, so `finish` applies only
        // those.
        let config = self.finish(resumable.config.clone())?;
        Ok((config, resumable))
    }
}
