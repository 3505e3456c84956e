//! Image classification: the digits or MNIST-format files, split or paired, and any image
//! model of the registry (`crate::model::ImageModel`), validated after every epoch.

use std::ops::{ControlFlow, Deref};
use std::path::Path;
use std::sync::Arc;

use burn::module::Module;

use crate::config::{ConfigError, DataConfig, ModelConfig, RunConfig};
use crate::data::augment::augmented;
use crate::data::folder::{FolderSet, FolderSettings, Skipped, read_folder};
use crate::data::images::{
    ImageShape, Split, mnist_files_present, parse_digits, read_digits, read_mnist, split,
};
use crate::data::mixup::mixed_up;
use crate::data::{DataError, ImageBatch, ImageBatches, ImageSet};
use crate::device::Access;
use crate::inference::init_from::{InitReport, InitSource, init_from};
use crate::metrics::{Classifier, Evaluation, evaluate_across};
use crate::model::summary::summarize;
use crate::model::{Cnn, ImageModel, ImageModelVisitor, ModelSummary};
use crate::optim::InvalidValue;
use crate::report::MetricsRow;
use crate::report::RunFolder;
use crate::train::{BatchSource, EpochEnd, LossRecord, Objective, Report, TrainError, Trained};

use super::{
    EarlyStopped, EpochVerdict, Prepared, RunError, RunShape, TaskEvents, TrainOptions, TrainedRun,
    check_memory_for, total_steps_of,
};

/// The shipped digits (`data/digits.csv`), compiled in so that `descent cnn` works anywhere.
const SHIPPED_DIGITS: &str = include_str!("../../../../data/digits.csv");

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

/// A classifier trained by [`ImageExperiment::train`], and its results.
pub struct TrainedClassifier<M> {
    /// The model and what happened on the way.
    pub trained: Trained<M>,
    /// The validation results of the run's model: after the last epoch, or with early stopping
    /// after the best epoch this call trained.
    pub evaluation: Evaluation,
    /// One row per epoch, from the first (a resumed run's include the checkpoint's).
    pub metrics: Vec<MetricsRow>,
    /// With early stopping: the best epoch's model (off the autodiff device), when this call
    /// trained it (a resumed run's earlier best is in its folder's `model.bpk`).
    pub best: Option<M>,
    /// With early stopping: the best epoch and whether the run stopped early.
    pub early_stop: Option<EarlyStopped>,
    /// Every update's loss, as (step, loss), from the first.
    pub batch_losses: Vec<(usize, f64)>,
    /// Every update's learning rate, as (updates made before it, rate), from the first.
    pub rates: Vec<(usize, f64)>,
    /// With `training.tta`: the run's model validated with test-time augmentation.
    pub tta: Option<Evaluation>,
}

/// A classification run on images, ready to train: configuration checked, device open, images
/// loaded and split. It trains any image model (the CNN, the MLP, one of your own), and
/// dereferences to [`Prepared`]: `config`, `device`, `devices`, `plan()`, ...
pub struct ImageExperiment {
    prepared: Prepared,
    /// The images trained on (the digits, or MNIST's training set).
    pub train_set: Arc<ImageSet>,
    /// Which of `train_set` to train on.
    pub train: Vec<usize>,
    /// The images validated on (the digits again, or MNIST's test set).
    pub valid_set: Arc<ImageSet>,
    /// Which of `valid_set` to validate on.
    pub valid: Vec<usize>,
    /// For a folder of pictures: each picture's file (relative to the folder), the files that
    /// were skipped, and where the decoded pictures are cached.
    pub folder: Option<FolderFiles>,
}

/// What reading a folder of pictures found besides the pictures.
#[derive(Clone, Debug)]
pub struct FolderFiles {
    /// The folder.
    pub dir: std::path::PathBuf,
    /// Each image's file, relative to the folder, in the order of the image set.
    pub files: Vec<std::path::PathBuf>,
    /// The files that were not read, and why.
    pub skipped: Vec<Skipped>,
    /// The cache file, and whether this run's pictures came from it.
    pub cache: Option<(std::path::PathBuf, bool)>,
    /// Seconds spent decoding the pictures (or reading them from the cache).
    pub seconds: f64,
    /// Whether the folder had its own `train`/`valid` split.
    pub presplit: bool,
}

impl Deref for ImageExperiment {
    type Target = Prepared;

    fn deref(&self) -> &Prepared {
        &self.prepared
    }
}

impl ImageExperiment {
    /// Check the configuration, open the device, read and split the images.
    pub fn prepare(config: RunConfig) -> Result<Self, RunError> {
        Self::prepare_with(config, &Access::default())
    }

    /// [`Self::prepare`], reaching remote devices with `access` (the token of `--token-file`).
    pub fn prepare_with(config: RunConfig, access: &Access) -> Result<Self, RunError> {
        Self::prepare_observed(config, access, &|_, _| {})
    }

    /// [`Self::prepare_with`], telling `progress` (done, total) as a folder's pictures are
    /// decoded (not called when they come from the cache).
    pub fn prepare_observed(
        config: RunConfig,
        access: &Access,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self, RunError> {
        if !config.model.is_image_model() {
            return Err(RunError::WrongModel(
                "this configuration fits the linear model: run it with `descent train --config FILE`".into(),
            ));
        }
        let mut prepared = Prepared::open(config, access)?;
        if let Some(path) = &mut prepared.config.training.init_from
            && let Ok(absolute) = std::path::absolute(&*path)
        {
            *path = absolute;
        }
        let (train_set, train, valid_set, valid, folder) = match &prepared.config.data {
            DataConfig::Folder { .. } => read_pictures(&mut prepared.config, progress)?,
            _ => {
                let (train_set, train, valid_set, valid) = read_images(&prepared.config)?;
                (train_set, train, valid_set, valid, None)
            }
        };
        if folder.is_some() {
            // A folder's fingerprint is known once its pictures are read.
            super::job::check_agreement(&prepared.config, &crate::world::World::current())?;
        }
        if let DataConfig::Mnist { side, .. } | DataConfig::FashionMnist { side, .. } =
            &mut prepared.config.data
        {
            // Recorded, so that the saved model is rebuilt at the size it was trained at.
            *side = Some(train_set.side());
        }
        let experiment = Self { prepared, train_set, train, valid_set, valid, folder };
        let shape = experiment.train_set.shape();
        let batch = experiment.batch_size().min(experiment.train.len().max(1));
        experiment.config.model.visit_image_model(SizeCheck { shape, batch }).unwrap_or(Ok(()))?;
        experiment.check_plan(experiment.batches_per_epoch())?;
        Ok(experiment)
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.batch_size())
    }

    /// Images per batch: all training images when the configuration sets none or more.
    pub fn batch_size(&self) -> usize {
        let all = self.train.len().max(1);
        self.config.training.batch_size.unwrap_or(all).clamp(1, all)
    }

    /// The CNN of the configuration at its seeded initial weights, on the autodiff device; a
    /// configuration naming another model is refused ([`Self::network`] makes any image model,
    /// [`crate::task::classify::ImageClassification::of`] the configured one).
    pub fn model(&self) -> Result<Cnn, RunError> {
        match &self.config.model {
            ModelConfig::Cnn(settings) => Ok(self.network(settings)),
            other => Err(RunError::WrongModel(format!(
                "the configuration names the {} model, not the cnn: make it with ImageExperiment::network",
                other.name()
            ))),
        }
    }

    /// The network of `settings` for this run's images at its seeded initial weights, on the
    /// autodiff device.
    /// Its weights are drawn from the run's seed alone (see [`crate::device::init_seeded`]).
    pub fn network<T: ImageModel>(&self, settings: &T) -> T::Network {
        let device = &self.device.device;
        crate::device::init_seeded(std::slice::from_ref(device), self.config.seed, || {
            settings.init(&self.train_set.shape(), &device.clone().autodiff())
        })
    }

    /// The configured model for this run's images, layer by layer (`descent summary`): each
    /// layer's path, type, output shape, parameters and multiply-adds, and the totals, read from
    /// the network at its initial weights.
    pub fn summary(&self) -> Result<ModelSummary, RunError> {
        struct Summary<'a>(&'a ImageExperiment);
        impl ImageModelVisitor for Summary<'_> {
            type Output = Result<ModelSummary, String>;
            fn visit<T: ImageModel>(self, settings: &T) -> Self::Output {
                let (experiment, shape) = (self.0, self.0.train_set.shape());
                let network = experiment.network(settings);
                let layers = settings.layers(&network, &shape);
                let frozen = experiment.config.training.freeze.map(|_| T::HEAD);
                let input = vec![shape.channels, shape.side, shape.side];
                summarize(T::NAME, input, &network, layers, frozen)
            }
        }
        let summary = self.config.model.visit_image_model(Summary(self));
        summary
            .unwrap_or_else(|| Err("the configuration names no image model".into()))
            .map_err(RunError::WrongModel)
    }

    /// The network of `settings` to train: [`Self::network`], then with `training.init_from`
    /// the weights of that run or file (the head kept only when it fits), and what was loaded.
    pub fn start_network<T: ImageModel>(
        &self,
        settings: &T,
    ) -> Result<(T::Network, Option<InitReport>), RunError> {
        let network = self.network(settings);
        let Some(path) = &self.config.training.init_from else { return Ok((network, None)) };
        let source = InitSource::of(path);
        let classes = self.class_names();
        let (network, report) = init_from(network, &source, T::HEAD, &classes, &self.device.device)
            .map_err(|error| RunError::Data(DataError::Rows { path: error.path, message: error.message }))?;
        Ok((network, Some(report)))
    }

    /// The names of the classes (the digits `0`..`9` unless the data names them).
    pub fn class_names(&self) -> Vec<String> {
        self.config
            .data
            .class_names()
            .unwrap_or_else(|| (0..self.train_set.classes()).map(|class| class.to_string()).collect())
    }

    /// The configured model's head layer (`ImageModel::HEAD`).
    pub fn head_name(&self) -> Option<&'static str> {
        struct Head;
        impl ImageModelVisitor for Head {
            type Output = &'static str;
            fn visit<T: ImageModel>(self, _: &T) -> &'static str {
                T::HEAD
            }
        }
        self.config.model.visit_image_model(Head)
    }

    /// Batches of the training images through Burn's `DataLoader`, reshuffled every epoch,
    /// augmented on the device and then blended by MixUp when the configuration says so.
    pub fn batches(&self) -> Box<dyn BatchSource<ImageBatch>> {
        let batches = ImageBatches::new(
            self.train_set.clone(),
            self.train.clone(),
            self.batch_size(),
            self.config.seed,
            self.config.training.label_smoothing.unwrap_or(0.0) as f32,
            &self.device.device,
        );
        let moved: Box<dyn BatchSource<ImageBatch>> = match &self.config.training.augment {
            Some(augment) => Box::new(augmented(
                Box::new(batches),
                self.config.seed,
                augment.shift,
                self.config.augment_flips(),
            )),
            None => Box::new(batches),
        };
        match self.config.training.mixup {
            Some(alpha) => Box::new(mixed_up(moved, self.config.seed, alpha)),
            None => moved,
        }
    }

    /// The number of updates the plan makes.
    pub fn total_steps(&self) -> usize {
        total_steps_of(&self.config, self.batches_per_epoch())
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
        M: Objective<ImageBatch> + Classifier + 'static,
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
        M: Objective<ImageBatch> + Classifier + 'static,
    {
        let folder = options.folder;
        let mut task = Validation {
            experiment: self,
            folder,
            on_epoch,
            last_loss: (f64::NAN, f64::NAN),
            last: None,
            best: None,
        };
        let length = RunShape {
            kind: self.config.model.name(),
            total_steps: self.total_steps(),
            report: Some(Report::EveryEpochs(1)),
            head: self.head_name(),
        };
        let run = self.train_run(model, self.batches().as_ref(), length, options, &mut task)?;
        let Validation { last, best, .. } = task;
        let evaluation = best.or(last).ok_or(TrainError::NoBatches)?;
        let TrainedRun { trained, metrics, early_stop, best, batch_losses, rates } = run;
        let tta = self.test_time_augmentation(best.as_ref(), &trained.model)?;
        Ok(TrainedClassifier { trained, evaluation, metrics, best, early_stop, batch_losses, rates, tta })
    }

    /// With `training.tta`: the run's model (the best epoch's with early stopping, else the
    /// last) validated with test-time augmentation.
    fn test_time_augmentation<M: Classifier + Module>(
        &self,
        best: Option<&M>,
        last: &M,
    ) -> Result<Option<Evaluation>, RunError> {
        let Some(copies) = self.config.training.tta else { return Ok(None) };
        let model = best.cloned().unwrap_or_else(|| last.valid());
        let (set, indices, device) = (&self.valid_set, &self.valid, &self.device.device);
        let tta = self.config.tta(copies);
        let evaluation =
            evaluate_across(&crate::world::World::current(), &model, set, indices, device, Some(&tta))
                .map_err(|error| TrainError::Device(format!("test-time augmentation failed: {error}")))?;
        Ok(Some(evaluation))
    }
}

/// An image classifier's events: every epoch's mean training loss is reported, and each epoch
/// ends with a validation of the model (off the autodiff device), its metrics row and the
/// caller's `on_epoch`; the best epoch's model is the run's model, saved as soon as it is the
/// best.
struct Validation<'a, 'c> {
    experiment: &'a ImageExperiment,
    folder: Option<&'a RunFolder>,
    on_epoch: &'c mut dyn FnMut(&EpochResult<'_>) -> ControlFlow<()>,
    /// The last reported (train loss, lr).
    last_loss: (f64, f64),
    /// The last epoch's validation, and the best epoch's.
    last: Option<Evaluation>,
    best: Option<Evaluation>,
}

impl<M> TaskEvents<M> for Validation<'_, '_>
where
    M: Objective<ImageBatch> + Classifier + 'static,
{
    fn loss(&mut self, record: &LossRecord, _: &mut Vec<MetricsRow>) -> ControlFlow<()> {
        self.last_loss = (record.loss, record.lr);
        ControlFlow::Continue(())
    }

    fn epoch(&mut self, end: &EpochEnd<'_, M>, rows: &mut Vec<MetricsRow>) -> Result<EpochVerdict, RunError> {
        let experiment = self.experiment;
        // `valid()`: off the autodiff device, dropout off, batch norm on running stats.
        // In a job of several processes, each validates a share and all get the whole.
        let (model, world) = (end.model.valid(), crate::world::World::current());
        let (set, indices, device) = (&experiment.valid_set, &experiment.valid, &experiment.device.device);
        let evaluation = evaluate_across(&world, &model, set, indices, device, None)
            .map_err(|error| TrainError::Device(format!("validation failed: {error}")))?;
        let (train_loss, lr) = self.last_loss;
        let result =
            EpochResult { epoch: end.epoch, step: end.step, lr, train_loss, evaluation: &evaluation };
        rows.push(validated_row(&result));
        let flow = (self.on_epoch)(&result);
        let verdict =
            EpochVerdict { flow, valid_loss: Some(evaluation.loss), accuracy: Some(evaluation.accuracy) };
        self.last = Some(evaluation);
        Ok(verdict)
    }

    fn best(&mut self, model: &M) -> Result<(), RunError> {
        if let Some(folder) = self.folder {
            folder.save_model(model.clone())?;
        }
        self.best = self.last.clone();
        Ok(())
    }
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
        DataConfig::FashionMnist { dir, .. } if !mnist_files_present(dir) => {
            Err(RunError::Data(DataError::Missing {
                path: dir.clone(),
                message: format!(
                    "Fashion-MNIST is not there: install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), which puts its four IDX files in {}, or pass the folder that holds them (--mnist DIR, or data.dir)",
                    crate::defaults::FASHION_MNIST_DIR
                ),
            }))
        }
        DataConfig::Mnist { dir, train_limit, .. } | DataConfig::FashionMnist { dir, train_limit, .. } => {
            let mnist = read_mnist(dir)?;
            let train = (0..mnist.train.len().min(train_limit.unwrap_or(usize::MAX))).collect();
            let valid = (0..mnist.test.len()).collect();
            Ok((Arc::new(mnist.train), train, Arc::new(mnist.test), valid))
        }
        DataConfig::Lesson { .. }
        | DataConfig::Points { .. }
        | DataConfig::Csv(_)
        | DataConfig::Folder { .. } => Err(RunError::Config(ConfigError::Invalid(InvalidValue {
            field: "data.source".into(),
            message: format!(
                "the {} model needs images: `digits`, `mnist`, `fashion-mnist` or `folder`",
                config.model.name()
            ),
        }))),
    }
}

/// An image model's settings checked against the images' shape, and its memory against what
/// the process may allocate.
struct SizeCheck {
    shape: ImageShape,
    batch: usize,
}

impl ImageModelVisitor for SizeCheck {
    type Output = Result<(), RunError>;

    fn visit<T: ImageModel>(self, model: &T) -> Self::Output {
        let SizeCheck { shape, batch } = self;
        model.validate(&shape)?;
        check_memory_for(
            "model",
            || format!("a {} with {} on {shape} in batches of {batch}", T::NAME, model.size()),
            model.memory_bytes(&shape, batch),
        )
    }
}

/// The training and validation images, and what reading a folder found besides.
type PictureSplit = (Arc<ImageSet>, Vec<usize>, Arc<ImageSet>, Vec<usize>, Option<FolderFiles>);

/// Read a folder of pictures, and record in the configuration what a saved model needs to be
/// rebuilt and fed as in training: the channels, the class names, the normalisation, and the
/// fingerprint that a resumed run checks.
fn read_pictures(
    config: &mut RunConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<PictureSplit, RunError> {
    let seed = config.seed;
    // A fine-tuned model sees its pictures as the model it starts from saw its own.
    let pretrained = config
        .training
        .init_from
        .as_ref()
        .filter(|path| path.is_dir())
        .and_then(|run| RunConfig::load(&run.join(crate::report::files::CONFIG_FILE)).ok())
        .and_then(|source| source.data.normalisation());
    let recorded = config.data.normalisation();
    let DataConfig::Folder { dir, side, resize, channels, valid_fraction, classes, mean, std, fingerprint } =
        &mut config.data
    else {
        unreachable!("read_pictures reads folders");
    };
    let settings = FolderSettings {
        side: *side,
        resize: *resize,
        channels: *channels,
        valid_fraction: *valid_fraction,
        seed,
        normalisation: recorded.or(pretrained),
    };
    let found: FolderSet = read_folder(dir, &settings, progress)?;
    let changed = |what: &str, recorded: String, now: String| {
        RunError::Data(DataError::Rows {
            path: dir.clone(),
            message: format!(
                "the folder's {what} changed since this run's configuration was written ({now}; recorded: {recorded}): a resumed run must read the same pictures; start a new run to train on them as they are now"
            ),
        })
    };
    if let Some(recorded) = fingerprint.as_ref().filter(|recorded| **recorded != found.fingerprint) {
        return Err(changed("pictures", recorded.clone(), found.fingerprint.clone()));
    }
    if let Some(recorded) = classes.as_ref().filter(|recorded| **recorded != found.classes) {
        return Err(changed("classes", recorded.join(", "), found.classes.join(", ")));
    }
    *channels = Some(found.set.channels());
    *classes = Some(found.classes.clone());
    *mean = Some(found.normalisation.mean.clone());
    *std = Some(found.normalisation.std.clone());
    *fingerprint = Some(found.fingerprint.clone());
    let files = FolderFiles {
        dir: dir.clone(),
        files: found.files,
        skipped: found.skipped,
        cache: found.cache,
        seconds: found.seconds,
        presplit: found.presplit,
    };
    let set = Arc::new(found.set);
    Ok((set.clone(), found.train, set, found.valid, Some(files)))
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
