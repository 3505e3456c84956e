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
use crate::model::{Cnn, CnnConfig, LinearModel};
use crate::optim::InvalidValue;
use crate::train::{
    BatchSource, EpochEnd, Length, LossRecord, Objective, Plan, Report, TrainError, Trained, train,
    train_with_epochs,
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
}

impl From<InvalidValue> for RunError {
    fn from(error: InvalidValue) -> Self {
        RunError::Config(ConfigError::Invalid(error))
    }
}

/// Check the configuration, open the device and seed its generator.
fn open_device(config: &RunConfig) -> Result<SelectedDevice, RunError> {
    config.validate()?;
    let device = device::select(&config.device)?;
    // Seed the backend's own generator too (initial weights, dropout), so that nothing on the
    // device is left unseeded.
    device.device.seed(config.seed);
    Ok(device)
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
    Plan { length, report }
}

/// The number of updates `config` makes with `batches_per_epoch` batches per epoch.
fn total_steps_of(config: &RunConfig, batches_per_epoch: usize) -> usize {
    match plan_of(config).length {
        Length::Steps(steps) => steps,
        Length::Epochs(epochs) => epochs * batches_per_epoch,
    }
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

/// A run of the linear model, ready to train: its configuration checked, its device open, its
/// data loaded.
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
        if let ModelConfig::Cnn(_) = config.model {
            return Err(RunError::WrongModel(
                "this configuration trains the cnn model: run it with `descent cnn --config FILE`".into(),
            ));
        }
        let device = open_device(&config)?;
        let table = match &config.data {
            DataConfig::Lesson { n, true_a, noise } => {
                LessonData { n: *n, true_a: *true_a, noise: *noise, seed: config.seed }.generate()
            }
            DataConfig::Points { path } => read_points(path)?,
            DataConfig::Digits { .. } | DataConfig::Mnist { .. } => {
                unreachable!("validation pairs image data with the cnn model")
            }
        };
        let experiment = Self { config, device, table: Arc::new(table) };
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
        let init: Vec<f32> = match &self.config.model {
            ModelConfig::Linear { init } => init.iter().map(|&v| v as f32).collect(),
            ModelConfig::Cnn(_) => unreachable!("prepare refuses the cnn model"),
        };
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

    /// Length and reporting cadence, with the defaults filled in.
    pub fn plan(&self) -> Plan {
        plan_of(&self.config)
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
        let (mut optimizer, mut schedule) = self.optimization(self.total_steps())?;
        Ok(train(self.model(), &mut optimizer, &mut schedule, source, &self.plan(), on_loss)?)
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
}

/// A classification run on images, ready to train: configuration checked, device open, images
/// loaded and split.
pub struct ImageExperiment {
    /// The effective configuration.
    pub config: RunConfig,
    /// The device it runs on.
    pub device: SelectedDevice,
    /// The network's sizes.
    pub cnn: CnnConfig,
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
        let ModelConfig::Cnn(cnn) = &config.model else {
            return Err(RunError::WrongModel(
                "this configuration fits the linear model: run it with `descent train --config FILE`".into(),
            ));
        };
        let cnn = cnn.clone();
        let device = open_device(&config)?;
        let (train_set, train, valid_set, valid) = match &config.data {
            DataConfig::Digits { path, valid_fraction } => {
                let set = Arc::new(match path {
                    Some(path) => read_digits(path)?,
                    None => parse_digits(SHIPPED_DIGITS, Path::new("data/digits.csv"))?,
                });
                let Split { train, valid } = split(set.len(), *valid_fraction, config.seed);
                (set.clone(), train, set, valid)
            }
            DataConfig::Mnist { dir } => {
                let mnist = read_mnist(dir)?;
                let train = (0..mnist.train.len()).collect();
                let valid = (0..mnist.test.len()).collect();
                (Arc::new(mnist.train), train, Arc::new(mnist.test), valid)
            }
            DataConfig::Lesson { .. } | DataConfig::Points { .. } => {
                unreachable!("validation pairs the cnn model with image data")
            }
        };
        cnn.validate(train_set.side())?;
        let experiment = Self { config, device, cnn, train_set, train, valid_set, valid };
        experiment.optimization(experiment.total_steps())?;
        Ok(experiment)
    }

    /// Images per batch (all training images when the configuration sets none).
    pub fn batch_size(&self) -> usize {
        self.config.training.batch_size.unwrap_or(self.train.len()).max(1)
    }

    /// The network at its seeded initial weights, on the autodiff device.
    pub fn model(&self) -> Cnn {
        self.cnn.init(self.train_set.side(), &self.device.device.clone().autodiff())
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

    /// Length and reporting cadence, with the defaults filled in.
    pub fn plan(&self) -> Plan {
        plan_of(&self.config)
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
        M: Objective<crate::data::ImageBatch> + Classifier,
    {
        let (mut optimizer, mut schedule) = self.optimization(self.total_steps())?;
        // Every epoch's mean training loss is needed, whatever is printed.
        let plan = Plan { report: Report::EveryEpochs(1), ..self.plan() };
        // The last reported (train loss, lr), shared by the two callbacks.
        let last_loss = std::cell::Cell::new((f64::NAN, f64::NAN));
        let mut last: Option<Evaluation> = None;
        let mut failure: Option<String> = None;
        let trained = train_with_epochs(
            model,
            &mut optimizer,
            &mut schedule,
            &self.batches(),
            &plan,
            &mut |record| {
                last_loss.set((record.loss, record.lr));
                ControlFlow::Continue(())
            },
            &mut |end: &EpochEnd<'_, M>| {
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
                        let flow = on_epoch(&result);
                        last = Some(evaluation);
                        flow
                    }
                    Err(error) => {
                        failure = Some(error);
                        ControlFlow::Break(())
                    }
                }
            },
        )?;
        if let Some(error) = failure {
            return Err(TrainError::Device(format!("validation failed: {error}")).into());
        }
        let evaluation = last.ok_or(TrainError::NoBatches)?;
        Ok(TrainedClassifier { trained, evaluation })
    }
}
