//! A run, from its configuration: the device, the data, the model, the batches, the optimizer
//! and the schedule, ready for the training engine. Every training command goes through here.

use std::ops::ControlFlow;
use std::sync::Arc;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::ModuleOptimizer;

use crate::config::{ConfigError, DataConfig, ModelConfig, RunConfig};
use crate::data::{
    DataError, FullBatch, LessonData, MiniBatches, RegressionBatch, Table, read_points,
};
use crate::device::{self, DeviceError, SelectedDevice};
use crate::model::LinearModel;
use crate::optim::InvalidValue;
use crate::train::{BatchSource, Length, LossRecord, Plan, Report, TrainError, Trained, train};

/// Steps of full-batch descent when the configuration sets no length (the notebook's 100).
pub const DEFAULT_STEPS: usize = 100;
/// Epochs of mini-batch training when the configuration sets no length.
pub const DEFAULT_EPOCHS: usize = 10;
/// Steps between printed losses with full batches (the notebook's 10).
pub const DEFAULT_PRINT_EVERY_STEPS: usize = 10;

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
}

impl From<InvalidValue> for RunError {
    fn from(error: InvalidValue) -> Self {
        RunError::Config(ConfigError::Invalid(error))
    }
}

/// A run ready to train: its configuration checked, its device open, its data loaded.
pub struct Experiment {
    /// The effective configuration.
    pub config: RunConfig,
    /// The device it runs on.
    pub device: SelectedDevice,
    /// The rows.
    pub table: Arc<Table>,
}

impl Experiment {
    /// Check the configuration, open the device, load or generate the data, seed the backend.
    pub fn prepare(config: RunConfig) -> Result<Self, RunError> {
        config.validate()?;
        let device = device::select(&config.device)?;
        let table = match &config.data {
            DataConfig::Lesson { n, true_a, noise } => LessonData {
                n: *n,
                true_a: *true_a,
                noise: *noise,
                seed: config.seed,
            }
            .generate(),
            DataConfig::Points { path } => read_points(path)?,
        };
        // Seed the backend's own generator too, so that nothing on the device is left unseeded.
        device.device.seed(config.seed);
        let experiment = Self {
            config,
            device,
            table: Arc::new(table),
        };
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
        let ModelConfig::Linear { init } = &self.config.model;
        let init: Vec<f32> = init.iter().map(|&v| v as f32).collect();
        LinearModel::new(&init, &self.device.device.clone().autodiff())
    }

    /// The batches: the whole table once on the device, or Burn's `DataLoader` over shuffled
    /// mini-batches.
    pub fn batches(&self) -> Box<dyn BatchSource<RegressionBatch>> {
        match self.config.training.batch_size {
            None => Box::new(FullBatch::new(&self.table, &self.device.device)),
            Some(size) => Box::new(MiniBatches::new(
                self.table.clone(),
                size,
                self.config.seed,
                &self.device.device,
            )),
        }
    }

    /// Length and reporting cadence, with the defaults filled in.
    pub fn plan(&self) -> Plan {
        let training = &self.config.training;
        let full_batch = self.full_batch();
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
        Plan { length, report }
    }

    /// The number of updates the plan makes.
    pub fn total_steps(&self) -> usize {
        match self.plan().length {
            Length::Steps(steps) => steps,
            Length::Epochs(epochs) => epochs * self.batches_per_epoch(),
        }
    }

    /// Burn's optimizer and scheduler for a run of `total_steps` updates.
    pub fn optimization(
        &self,
        total_steps: usize,
    ) -> Result<(ModuleOptimizer, ModuleLrScheduler), RunError> {
        let optimizer = self.config.optimizer.build();
        let schedule = self
            .config
            .schedule
            .build(self.config.optimizer.lr(), total_steps)?;
        Ok((optimizer, schedule))
    }

    /// Train from the initial parameters; `on_loss` sees each reported loss.
    pub fn train(
        &self,
        on_loss: &mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
    ) -> Result<Trained<LinearModel>, RunError> {
        let source = self.batches();
        let (mut optimizer, mut schedule) = self.optimization(self.total_steps())?;
        Ok(train(
            self.model(),
            &mut optimizer,
            &mut schedule,
            source.as_ref(),
            &self.plan(),
            on_loss,
        )?)
    }
}
