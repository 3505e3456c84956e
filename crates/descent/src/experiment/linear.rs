//! The linear model's task: the lesson's points (generated or from a file) or a CSV table
//! (`descent fit`), full-batch or in mini-batches, with every reported loss a metrics row.

use std::ops::{ControlFlow, Deref};
use std::sync::Arc;

use crate::config::{ConfigError, DataConfig, ModelConfig, RunConfig};
use burn::prelude::Device;

use crate::data::{FullBatch, LessonData, MiniBatches, RegressionBatch, Table, read_points};
use crate::device::Access;
use crate::model::summary::summarize;
use crate::model::{Layer, LinearModel, ModelSummary};
use crate::ols::{LeastSquares, Moments, OlsError, least_squares};
use crate::optim::InvalidValue;
use crate::regression::RegressionData;
use crate::report::MetricsRow;
use crate::report::RunFolder;
use crate::report::plots;
use crate::train::{
    BatchSource, EpochEnd, Hooks, Length, LossRecord, Plan, Report, TrainError, Trained, train_observed,
};

use super::{
    EpochVerdict, LESSON_BYTES_PER_ROW, Prepared, RunError, RunShape, TaskEvents, TrainOptions, TrainedRun,
    check_memory_for, total_steps_of,
};

/// A run of the linear model, ready to train: its configuration checked, its device open, its
/// data loaded. It dereferences to [`Prepared`]: `config`, `device`, `devices`, `plan()`, ...
pub struct Experiment {
    prepared: Prepared,
    /// The rows trained on.
    pub rows: LinearRows,
    /// With CSV data (`descent fit`): the table's columns, its scaling, the validation rows and
    /// the closed-form solution.
    pub regression: Option<RegressionData>,
}

/// Where a linear experiment's rows are.
pub enum LinearRows {
    /// On the host: rows read from a file, and rows trained on in mini-batches (the loader
    /// gathers each epoch's order from the host table).
    Host(Arc<Table>),
    /// The lesson's generated rows for full-batch descent: only on the device, with what the
    /// closed form, the reported errors and the figures need. A host copy would double the
    /// memory of a large run (10 million rows are 120 MB each way).
    Device(Box<DeviceRows>),
}

/// Rows held only on the device, and what was kept of them on the host.
pub struct DeviceRows {
    /// Every row, on the device.
    pub batch: FullBatch,
    /// `XᵀX`, `Xᵀy`, `yᵀy`: the closed form and the mean squared error of any parameters.
    pub moments: Moments,
    /// The first rows (at most [`HEAD_ROWS`]), row-major: the notebook's printout of `x[:5]`.
    pub head: Vec<f32>,
    /// Column 0 and the target of the rows a scatter draws ([`plots::scatter_rows`]).
    pub scatter: Vec<(f64, f64)>,
}

/// Rows of the data kept on the host for printing when the data itself lives on the device.
pub const HEAD_ROWS: usize = 5;

impl LinearRows {
    /// `table`'s rows on `device` only, keeping its moments, head and scatter on the host.
    pub fn on_device(table: Table, device: &Device) -> Self {
        let moments = Moments::of(&table);
        let head = table.x()[..HEAD_ROWS.min(table.len()) * table.features()].to_vec();
        let scatter = scatter_points(&table);
        Self::Device(Box::new(DeviceRows {
            batch: FullBatch::from_owned(table, device),
            moments,
            head,
            scatter,
        }))
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Host(table) => table.len(),
            Self::Device(rows) => rows.moments.rows,
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feature columns per row.
    pub fn features(&self) -> usize {
        match self {
            Self::Host(table) => table.features(),
            Self::Device(rows) => rows.moments.features(),
        }
    }

    /// The host table, when the rows are on the host.
    pub fn table(&self) -> Option<&Arc<Table>> {
        match self {
            Self::Host(table) => Some(table),
            Self::Device(_) => None,
        }
    }

    /// The closed-form least-squares fit, and its mean squared error.
    pub fn least_squares(&self) -> Result<LeastSquares, OlsError> {
        match self {
            Self::Host(table) => least_squares(table),
            Self::Device(rows) => rows.moments.least_squares(),
        }
    }

    /// The mean squared error of the parameters `a` over every row, in `f64`.
    pub fn mse(&self, a: &[f64]) -> f64 {
        match self {
            Self::Host(table) => table.mse(a),
            Self::Device(rows) => rows.moments.mse(a),
        }
    }

    /// The first `count` rows (at most [`HEAD_ROWS`] when the rows are on the device).
    pub fn head(&self, count: usize) -> Vec<&[f32]> {
        let (values, features) = match self {
            Self::Host(table) => (table.x(), table.features()),
            Self::Device(rows) => (&rows.head[..], rows.moments.features()),
        };
        values.chunks(features.max(1)).take(count).collect()
    }

    /// Column 0 and the target of the rows a scatter draws.
    pub fn scatter(&self) -> Vec<(f64, f64)> {
        match self {
            Self::Host(table) => scatter_points(table),
            Self::Device(rows) => rows.scatter.clone(),
        }
    }

    /// Every row as one batch on `device` (the device's own when the rows are there already).
    pub fn full_batch(&self, device: &Device) -> FullBatch {
        match self {
            Self::Host(table) => FullBatch::new(table, device),
            Self::Device(rows) => rows.batch.clone(),
        }
    }
}

/// Column 0 and the target of the rows of `table` a scatter draws.
fn scatter_points(table: &Table) -> Vec<(f64, f64)> {
    plots::scatter_rows(table.len()).map(|i| (f64::from(table.row(i)[0]), f64::from(table.y()[i]))).collect()
}

impl Deref for Experiment {
    type Target = Prepared;

    fn deref(&self) -> &Prepared {
        &self.prepared
    }
}

impl Experiment {
    /// Check the configuration, open the device, load or generate the data, seed the backend.
    pub fn prepare(config: RunConfig) -> Result<Self, RunError> {
        Self::prepare_with(config, &Access::default())
    }

    /// [`Self::prepare`], reaching remote devices with `access` (the token of `--token-file`).
    pub fn prepare_with(config: RunConfig, access: &Access) -> Result<Self, RunError> {
        if config.model.is_image_model() {
            return Err(RunError::WrongModel(format!(
                "this configuration trains the {} model: run it with `descent cnn --config FILE`",
                config.model.name()
            )));
        }
        let mut prepared = Prepared::open(config, access)?;
        let (rows, regression) = read_rows(&mut prepared.config, &prepared.device.device)?;
        let config = &prepared.config;
        if let ModelConfig::Linear { init: Some(init) } = &config.model
            && init.len() != rows.features()
        {
            return Err(RunError::Config(ConfigError::Invalid(InvalidValue {
                field: "model.init".into(),
                message: config.init_length_message(init.len(), rows.features()),
            })));
        }
        let experiment = Self { prepared, rows, regression };
        experiment.check_plan(experiment.batches_per_epoch())?;
        Ok(experiment)
    }

    /// Batches per epoch: 1 with full batches.
    pub fn batches_per_epoch(&self) -> usize {
        match self.config.training.batch_size {
            None => 1,
            Some(size) => self.rows.len().div_ceil(size),
        }
    }

    /// Whether every step uses all the rows.
    pub fn full_batch(&self) -> bool {
        self.config.training.batch_size.is_none()
    }

    /// The model at its initial parameters, on the autodiff device.
    pub fn model(&self) -> LinearModel {
        let init: Vec<f32> =
            self.config.linear_init(self.rows.features()).into_iter().map(|v| v as f32).collect();
        LinearModel::new(&init, &self.device.device.clone().autodiff())
    }

    /// The linear model, as `descent summary` shows it: one layer, `x·a`.
    pub fn summary(&self) -> Result<ModelSummary, RunError> {
        let features = self.rows.features();
        let kind = format!("Linear {features}→1 (x·a, the ones column the intercept)");
        let layer = Layer::new("a", kind, vec![1], features as u64);
        summarize("linear", vec![features], &self.model(), Some(vec![layer]), None)
            .map_err(RunError::WrongModel)
    }

    /// The batches: the whole table once on the device, or Burn's `DataLoader` over shuffled
    /// mini-batches.
    pub fn batches(&self) -> Box<dyn BatchSource<RegressionBatch>> {
        let device = &self.device.device;
        match (self.config.training.batch_size, &self.rows) {
            (Some(size), LinearRows::Host(table)) => {
                Box::new(MiniBatches::new(table.clone(), size, self.config.seed, device))
            }
            _ => Box::new(self.rows.full_batch(device)),
        }
    }

    /// The number of updates the plan makes.
    pub fn total_steps(&self) -> usize {
        total_steps_of(&self.config, self.batches_per_epoch())
    }

    /// Train from the initial parameters; `on_loss` sees each reported loss.
    pub fn train(
        &self,
        on_loss: &mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
    ) -> Result<Trained<LinearModel>, RunError> {
        self.train_with(self.batches().as_ref(), TrainOptions::default(), on_loss)
    }

    /// [`Self::train`] on `source` (batches made with [`Self::batches`]) with checkpoints, or
    /// resumed from one. The returned losses start with
    /// the checkpoint's; its seconds include the checkpoint's.
    pub fn train_with(
        &self,
        source: &dyn BatchSource<RegressionBatch>,
        options: TrainOptions<'_>,
        on_loss: &mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
    ) -> Result<Trained<LinearModel>, RunError> {
        Ok(self.train_run_with(source, options, on_loss)?.trained)
    }

    /// [`Self::train_with`], with the metrics rows and where early stopping ended. With early
    /// stopping (a table's validation rows), every epoch measures the validation loss, and each
    /// best epoch's model is saved into `options.folder` on the original scale.
    pub fn train_run_with(
        &self,
        source: &dyn BatchSource<RegressionBatch>,
        options: TrainOptions<'_>,
        on_loss: &mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
    ) -> Result<TrainedRun<LinearModel>, RunError> {
        let earlier = options.resume.map(|c| c.state.metrics.clone()).unwrap_or_default();
        let folder = options.folder;
        let mut task = LinearEvents { experiment: self, folder, on_loss };
        let length = RunShape { kind: "linear", total_steps: self.total_steps(), report: None, head: None };
        let mut run = self.train_run(self.model(), source, length, options, &mut task)?;
        let mut losses: Vec<LossRecord> = earlier
            .iter()
            .map(|row| LossRecord { step: row.step, epoch: row.epoch, lr: row.lr, loss: row.train_loss })
            .collect();
        losses.append(&mut run.trained.losses);
        run.trained.losses = losses;
        Ok(run)
    }

    /// The notebook's animation: from the initial parameters, `steps` full-batch updates with the
    /// run's optimizer (its schedule spread over `steps`); after each update, the parameters
    /// (slope, intercept) and the loss computed before it.
    pub fn trajectory(&self, steps: usize) -> Result<Vec<([f64; 2], f64)>, RunError> {
        let source = self.rows.full_batch(&self.device.device);
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
        let mut hooks = Hooks { on_epoch: Some(&mut on_epoch), ..Hooks::default() };
        let trained =
            train_observed(self.model(), &mut optimizer, &mut schedule, &source, &plan, &mut hooks)?;
        if let Some(error) = failure {
            return Err(TrainError::Device(error.to_string()).into());
        }
        Ok(parameters.into_iter().zip(trained.losses.iter().map(|r| r.loss)).collect())
    }
}

/// The model's parameters as f64, read back from the device.
/// The linear model's events: every reported loss is a metrics row; with early stopping on a
/// table's validation rows, each epoch measures the validation loss, and a best epoch's model is
/// saved on the original scale.
struct LinearEvents<'a, 'c> {
    experiment: &'a Experiment,
    folder: Option<&'a RunFolder>,
    on_loss: &'c mut dyn FnMut(&LossRecord) -> ControlFlow<()>,
}

impl TaskEvents<LinearModel> for LinearEvents<'_, '_> {
    fn loss(&mut self, record: &LossRecord, rows: &mut Vec<MetricsRow>) -> ControlFlow<()> {
        rows.push(MetricsRow::from(record));
        (self.on_loss)(record)
    }

    /// Every reported loss is a row already: an epoch's end adds only what early stopping
    /// watches.
    fn epoch(
        &mut self,
        end: &EpochEnd<'_, LinearModel>,
        _: &mut Vec<MetricsRow>,
    ) -> Result<EpochVerdict, RunError> {
        let watched = self.experiment.config.training.early_stop.is_some();
        let valid_loss = match (&self.experiment.regression, watched) {
            (Some(regression), true) => Some(regression.valid.mse(&parameters(end.model)?)),
            _ => None,
        };
        Ok(EpochVerdict { valid_loss, ..EpochVerdict::go_on() })
    }

    fn best(&mut self, model: &LinearModel) -> Result<(), RunError> {
        let (Some(folder), Some(regression)) = (self.folder, &self.experiment.regression) else {
            return Ok(());
        };
        let fit = regression.report(&parameters(model)?);
        let original: Vec<f32> = fit.coefficients.iter().chain([&fit.intercept]).map(|&v| v as f32).collect();
        folder.save_model(LinearModel::new(&original, &self.experiment.device.device))?;
        Ok(())
    }
}

fn parameters(model: &LinearModel) -> Result<Vec<f64>, RunError> {
    let a = model.parameters().map_err(|error| TrainError::Device(error.to_string()))?;
    Ok(a.into_iter().map(f64::from).collect())
}

/// The rows of a linear configuration: generated, read from a points file, or a CSV table
/// prepared as a regression (whose columns the configuration then names). Generated rows for
/// full-batch descent go to `device` and leave the host.
fn read_rows(
    config: &mut RunConfig,
    device: &Device,
) -> Result<(LinearRows, Option<RegressionData>), RunError> {
    let seed = config.seed;
    let full_batch = config.training.batch_size.is_none();
    match &mut config.data {
        DataConfig::Lesson { n, true_a, noise } => {
            let bytes = (*n as u64).checked_mul(LESSON_BYTES_PER_ROW);
            check_memory_for("data.n", || format!("{n} rows (--n)"), bytes)?;
            let table = LessonData { n: *n, true_a: *true_a, noise: *noise, seed }.generate();
            let rows = if full_batch {
                LinearRows::on_device(table, device)
            } else {
                LinearRows::Host(Arc::new(table))
            };
            Ok((rows, None))
        }
        DataConfig::Points { path, .. } => Ok((LinearRows::Host(Arc::new(read_points(path)?)), None)),
        DataConfig::Csv(source) => {
            let regression = RegressionData::prepare(source, seed)?;
            // The saved configuration names the columns it used, whatever the file gains later.
            source.features = Some(regression.features.clone());
            Ok((LinearRows::Host(regression.train.clone()), Some(regression)))
        }
        DataConfig::Digits { .. }
        | DataConfig::Mnist { .. }
        | DataConfig::FashionMnist { .. }
        | DataConfig::Folder { .. } => Err(RunError::Config(ConfigError::Invalid(InvalidValue {
            field: "model.name".into(),
            message: "the linear model fits points or tables; images need `cnn`".into(),
        }))),
    }
}
