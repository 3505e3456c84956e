//! The configuration of a run: data, model, training length, optimizer, schedule, seed and
//! device, as one serde struct that round-trips through TOML.
//!
//! Layers, lowest first: the defaults (the lesson), a `--config` file, `--optim` and
//! `--schedule` files or built-in names, single flags such as `--lr`, and `--set KEY=VALUE`.
//! Every layer is checked: unknown fields are errors, and values out of range name their field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::augment::AugmentConfig;
use crate::data::images::ImageShape;
use crate::limits::within_f32;
use crate::model::{CnnConfig, ImageModel, ImageModelVisitor};
use crate::optim::{Adam, InvalidValue, OptimizerConfig, ScheduleConfig};
use crate::regression::CsvSource;

/// Where the rows come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataConfig {
    /// The lesson's generator: `x = [U(-1, 1), 1]`, `y = x·true_a + noise·N(0, 1)`, from the
    /// run's seed.
    Lesson {
        /// Number of rows.
        #[serde(default = "default_n")]
        n: usize,
        /// The true slope and intercept.
        #[serde(default = "default_true_a")]
        true_a: [f64; 2],
        /// Standard deviation of the noise.
        #[serde(default = "default_noise")]
        noise: f64,
    },
    /// Points from a CSV file with the columns `x,y`.
    Points {
        /// The file (made absolute when a run starts, so the saved configuration finds it from
        /// any folder).
        path: PathBuf,
        /// SHA-256 of the data as it was first trained on, recorded by the run: a resumed run, or
        /// a run of this configuration, refuses data that has changed since. Absent: not checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// The UCI handwritten digits (8x8), split into training and validation images at random
    /// from the run's seed.
    Digits {
        /// A digits CSV file; absent: the copy shipped in `data/digits.csv`, compiled into the
        /// binary.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
        /// Fraction of the images held out for validation.
        #[serde(default = "default_valid_fraction")]
        valid_fraction: f64,
        /// SHA-256 of the data as it was first trained on, recorded by the run: a resumed run, or
        /// a run of this configuration, refuses data that has changed since. Absent: not checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Your own table (`descent fit`): numeric columns of a CSV file with a header, split into
    /// training and validation rows at random from the run's seed.
    Csv(CsvSource),
    /// MNIST from local IDX files (the four standard names, plain or gzipped): trains on the
    /// training set, validates on the test set.
    Mnist {
        /// The folder holding the files.
        dir: PathBuf,
        /// Train on the first this many training images only (all of them when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train_limit: Option<usize>,
        /// The images' side in pixels, recorded by the run from the files (28 for MNIST and
        /// Fashion-MNIST); absent: 28.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        side: Option<usize>,
        /// SHA-256 of the four files as they were first trained on, recorded by the run: a resumed
        /// run, or a run of this configuration, refuses data that has changed since. Absent: not
        /// checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Fashion-MNIST (Zalando, MIT licence): 60,000 training and 10,000 test images of clothes,
    /// 28x28, in ten named classes, from the folder Debian's package `dataset-fashion-mnist`
    /// installs (or another holding the four IDX files). Trains on the training set, validates
    /// on the test set. Nothing is downloaded.
    FashionMnist {
        /// The folder holding the four IDX files, plain or gzipped.
        #[serde(default = "default_fashion_dir")]
        dir: PathBuf,
        /// Train on the first this many training images only (all of them when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train_limit: Option<usize>,
        /// The images' side in pixels, recorded by the run from the files; absent: 28.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        side: Option<usize>,
        /// SHA-256 of the four files as they were first trained on (see `mnist`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// A folder of the user's own pictures, one sub-folder per class (`DIR/<class>/*.png`,
    /// `.jpg`, `.jpeg`, `.webp`, `.bmp`, `.gif`), the class names taken from the sub-folders in
    /// sorted order. With `DIR/train` and `DIR/valid` (or `DIR/test`), those are the training and
    /// validation pictures; otherwise `valid_fraction` of each class is held out, drawn from the
    /// run's seed. Each picture is resized to `side` pixels and normalised with the training
    /// pictures' per-channel mean and standard deviation (see `descent::data::folder`).
    Folder {
        /// The folder.
        dir: PathBuf,
        /// The side every picture is resized to, in pixels.
        #[serde(default = "default_picture_side")]
        side: usize,
        /// How a picture that is not square becomes square: `squash` (the whole picture,
        /// stretched: the default) or `crop` (its central square).
        #[serde(default)]
        resize: crate::data::folder::Resize,
        /// Colour channels: 1 (grey) or 3 (RGB); absent: 3 when any picture has colour, else 1
        /// (recorded by the run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channels: Option<usize>,
        /// Fraction of each class held out for validation when the folder has no
        /// `train`/`valid` split.
        #[serde(default = "default_valid_fraction")]
        valid_fraction: f64,
        /// The class names, recorded by the run from the sub-folders (a saved model names its
        /// classes with them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<Vec<String>>,
        /// The training pictures' mean per channel, recorded by the run (predictions and
        /// exports normalise with it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mean: Option<Vec<f64>>,
        /// The training pictures' standard deviation per channel, recorded by the run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        std: Option<Vec<f64>>,
        /// What identifies the pictures as first trained on (their names, sizes and times, and
        /// the settings), recorded by the run: a resumed run refuses a folder that has changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
}

fn default_picture_side() -> usize {
    defaults::PICTURE_SIDE
}

fn default_fashion_dir() -> PathBuf {
    PathBuf::from(defaults::FASHION_MNIST_DIR)
}

pub(crate) use crate::data::default_valid_fraction;
pub use crate::defaults;

fn default_n() -> usize {
    defaults::N
}
fn default_true_a() -> [f64; 2] {
    defaults::TRUE_A
}
fn default_noise() -> f64 {
    defaults::NOISE
}

/// The side of the UCI digits, in pixels.
pub const DIGITS_SIDE: usize = 8;
/// The side of MNIST-format images when the configuration records none, in pixels.
pub const MNIST_SIDE: usize = 28;

impl DataConfig {
    /// The side of the images in pixels, for image data: 8 for the digits, the recorded side (or
    /// 28) for MNIST-format files.
    pub fn image_side(&self) -> Option<usize> {
        match self {
            DataConfig::Digits { .. } => Some(DIGITS_SIDE),
            DataConfig::Mnist { side, .. } | DataConfig::FashionMnist { side, .. } => {
                Some(side.unwrap_or(MNIST_SIDE))
            }
            DataConfig::Folder { side, .. } => Some(*side),
            DataConfig::Lesson { .. } | DataConfig::Points { .. } | DataConfig::Csv(_) => None,
        }
    }

    /// The images' side, channels and classes, for image data: fixed for the built-in sets,
    /// recorded by the run for a folder (`None` before a run has read it).
    pub fn image_shape(&self) -> Option<ImageShape> {
        match self {
            DataConfig::Folder { side, channels, classes, .. } => {
                Some(ImageShape { side: *side, channels: (*channels)?, classes: classes.as_ref()?.len() })
            }
            _ => self.image_side().map(ImageShape::grey),
        }
    }

    /// How a folder's pictures become square (`squash` for other data, which are square).
    pub fn resize(&self) -> crate::data::folder::Resize {
        match self {
            DataConfig::Folder { resize, .. } => *resize,
            _ => crate::data::folder::Resize::Squash,
        }
    }

    /// The normalisation a run recorded for a folder of pictures: per channel (mean, standard
    /// deviation); `None` for the built-in sets, whose pixels are used as they are.
    pub fn normalisation(&self) -> Option<crate::data::folder::Normalisation> {
        match self {
            DataConfig::Folder { mean: Some(mean), std: Some(std), .. } => {
                Some(crate::data::folder::Normalisation { mean: mean.clone(), std: std.clone() })
            }
            _ => None,
        }
    }

    /// Whether the data are images (for a classifier).
    pub fn is_images(&self) -> bool {
        self.image_side().is_some()
    }

    /// The names of the classes, for image data: the digits `0`..`9`, Fashion-MNIST's clothes,
    /// or a folder's sub-folders (as recorded by its run).
    pub fn class_names(&self) -> Option<Vec<String>> {
        let names = |names: &[&str]| Some(names.iter().map(|name| name.to_string()).collect());
        match self {
            DataConfig::FashionMnist { .. } => names(&crate::data::images::FASHION_CLASS_NAMES),
            DataConfig::Digits { .. } | DataConfig::Mnist { .. } => {
                names(&crate::data::images::DIGIT_CLASS_NAMES)
            }
            DataConfig::Folder { classes, .. } => classes.clone(),
            DataConfig::Lesson { .. } | DataConfig::Points { .. } | DataConfig::Csv(_) => None,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Lesson { n: default_n(), true_a: default_true_a(), noise: default_noise() }
    }
}

/// The model registry: the image classifiers a configuration can name, one line each. The
/// macro writes [`ModelConfig`] (the linear model and one variant per line, named in kebab case
/// in `[model] name = "..."`) and [`ModelConfig::visit_image_model`], the one place where a
/// model's type is chosen from its name.
macro_rules! models {
    ($($(#[$doc:meta])* $variant:ident($settings:ty),)+) => {
        /// The model to fit.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
        pub enum ModelConfig {
            /// The lesson's `y_hat = x·a`; with CSV data, one parameter per feature and the
            /// intercept last.
            Linear {
                /// The initial parameters: (slope, intercept) for the lesson's points; for CSV
                /// data one per feature (on the scale trained on, standardised by default), then
                /// the intercept. Absent: (-1, 1) for points, zeros for CSV data.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                init: Option<Vec<f64>>,
            },
            $($(#[$doc])* $variant($settings),)+
        }

        impl ModelConfig {
            /// The names of the image models, as `[model] name` spells them.
            pub const IMAGE_MODELS: &[&str] = &[$(<$settings as ImageModel>::NAME),+];

            /// Call `visitor` with the image model's settings, its type known; `None` for the
            /// linear model.
            pub fn visit_image_model<V: ImageModelVisitor>(&self, visitor: V) -> Option<V::Output> {
                match self {
                    ModelConfig::Linear { .. } => None,
                    $(ModelConfig::$variant(settings) => Some(visitor.visit(settings)),)+
                }
            }
        }
    };
}

models! {
    /// A small convolutional network for digit images.
    Cnn(CnnConfig),
    /// A two-layer perceptron: the model of `examples/custom_model.rs`, one file
    /// (`model/mlp.rs`) and this line.
    Mlp(crate::model::MlpConfig),
}

impl ModelConfig {
    /// The model's name, as `[model] name` spells it.
    pub fn name(&self) -> &'static str {
        struct Name;
        impl ImageModelVisitor for Name {
            type Output = &'static str;
            fn visit<T: ImageModel>(self, _: &T) -> &'static str {
                T::NAME
            }
        }
        self.visit_image_model(Name).unwrap_or("linear")
    }

    /// Whether the model classifies images.
    pub fn is_image_model(&self) -> bool {
        !matches!(self, ModelConfig::Linear { .. })
    }
}

/// The lesson's initial guess, `a = (-1, 1)`.
pub const LESSON_INIT: [f64; 2] = defaults::LESSON_INIT;

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Linear { init: Some(LESSON_INIT.to_vec()) }
    }
}

/// How long to train and how often to report. Absent values take the defaults described on
/// each field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Start from the weights of a finished run's folder, or of a `.safetensors` file in the
    /// layout `descent export` writes (`--init-from`): the body is kept, and the head too when
    /// the class count is the same. Made absolute when a run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// With `init_from`: train the head alone for this many epochs, then every layer
    /// (`--freeze`, fastai's `fine_tune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<usize>,
    /// Rows per mini-batch; absent: every step uses all rows (full-batch descent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Number of updates; absent: 100 with full batches, else `epochs` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Passes over the data; absent: 10 with mini-batches. A full-batch epoch is one step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Report the loss every this many steps (full batch; default 10) or epochs (mini-batches;
    /// default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub print_every: Option<usize>,
    /// Write a checkpoint every this many epochs (a full-batch epoch is one step); absent: only
    /// at the end. `descent train --resume DIR` continues from the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    /// Stop when the monitored metric has not improved for this many epochs (`--early-stop`);
    /// `model.bpk` then holds the best epoch's parameters, whether or not the run stops early.
    /// Absent: train the whole plan, and save the last parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<usize>,
    /// What early stopping watches (`--monitor`); absent: `valid_loss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Monitor>,
    /// Gradient accumulation (`--accumulate`): one update every this many mini-batches, each
    /// weighted by its share of the group's examples, as one batch of them all would. Absent: an
    /// update per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accumulate: Option<usize>,
    /// Augment the training images (`--augment`): seeded random shifts, and flips where they
    /// make sense. Absent: the images as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<AugmentConfig>,
    /// Label smoothing ε (`--label-smoothing`): a classifier's training loss is the
    /// cross-entropy against `(1 − ε)·one-hot + ε/K` over its K classes, as PyTorch's
    /// `CrossEntropyLoss(label_smoothing=ε)`; `valid_loss` stays the plain cross-entropy.
    /// Absent: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    /// MixUp strength α (`--mixup`): each training batch is blended with a shuffled copy of
    /// itself by a weight λ ~ Beta(α, α) drawn from the run's seed, and the loss blended the
    /// same way (fastai's `MixUp`; 0.4 is its default). Absent: no MixUp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixup: Option<f64>,
    /// Test-time augmentation after training (`--tta N`): the run's model is also validated on
    /// the average of each image's class probabilities over the image and N moved copies, and
    /// the summary reports `tta_accuracy`. Absent: not done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tta: Option<usize>,
    /// Write TensorBoard event files into the run folder (`--no-tensorboard` sets `false`).
    /// Absent: written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<bool>,
    /// Under a launcher with several processes (MPI), batch norm normalises with the statistics
    /// of the whole global batch, summed across the processes (`--sync-bn`, PyTorch's
    /// `SyncBatchNorm`), so that N processes train as one would. Absent or `false`: each
    /// process's share has its own statistics (PyTorch's DDP without `SyncBatchNorm`). One
    /// process: no difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_batch_norm: Option<bool>,
}

impl TrainingConfig {
    /// Whether the run writes TensorBoard event files (it does unless `tensorboard = false`).
    pub fn tensorboard(&self) -> bool {
        self.tensorboard.unwrap_or(true)
    }

    /// Whether batch norm's statistics are summed across the processes of an MPI job.
    pub fn sync_batch_norm(&self) -> bool {
        self.sync_batch_norm.unwrap_or(false)
    }
}

/// A validation metric early stopping can watch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// The validation loss: lower is better.
    #[default]
    ValidLoss,
    /// The validation accuracy (classifiers): higher is better.
    Accuracy,
}

impl Monitor {
    /// The names `--monitor` takes, as `metrics.csv` spells the columns.
    pub const NAMES: [&str; 2] = ["valid_loss", "accuracy"];

    /// The metric's name, as `metrics.csv` spells its column.
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValidLoss => "valid_loss",
            Monitor::Accuracy => "accuracy",
        }
    }

    /// The monitor of `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [Monitor::ValidLoss, Monitor::Accuracy].into_iter().find(|monitor| monitor.name() == name)
    }

    /// The metric among an epoch's validation figures, when the epoch has it.
    pub fn pick(self, valid_loss: Option<f64>, accuracy: Option<f64>) -> Option<f64> {
        match self {
            Monitor::ValidLoss => valid_loss,
            Monitor::Accuracy => accuracy,
        }
    }

    /// Whether `value` is better than `best`.
    pub fn improves(self, value: f64, best: f64) -> bool {
        match self {
            Monitor::ValidLoss => value < best,
            Monitor::Accuracy => value > best,
        }
    }
}

/// Everything that decides a run. `descent config show` prints it; `descent train --config`
/// runs it; the same file gives the same losses, bit for bit, on the same device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of the data generator, the shuffle and the backend's own generator.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `auto`, a backend name or a GPU adapter (see `descent devices`).
    #[serde(default = "default_device")]
    pub device: String,
    /// Data-parallel training over these devices (`--devices A,B`): each batch is split across
    /// them and their gradients are summed on the first, which must be `device` (or `device` is
    /// left `auto`). Empty: train on `device` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// The rows.
    #[serde(default)]
    pub data: DataConfig,
    /// The model.
    #[serde(default)]
    pub model: ModelConfig,
    /// Length and reporting.
    #[serde(default)]
    pub training: TrainingConfig,
    /// The optimizer and its learning rate.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

fn default_seed() -> u64 {
    defaults::SEED
}
fn default_device() -> String {
    "auto".into()
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: default_seed(),
            device: default_device(),
            devices: Vec::new(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            training: TrainingConfig::default(),
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        message: String,
    },
    /// A file does not parse, has an unknown field or a value of the wrong type.
    #[error("{origin}{}: {message}", location.map(|(l, c)| format!(", line {l}, column {c}")).unwrap_or_default())]
    Parse {
        /// The file, or the built-in configuration.
        origin: String,
        /// Line and column, 1-based, when known.
        location: Option<(usize, usize)>,
        /// What is wrong.
        message: String,
    },
    /// A name that is neither a built-in configuration nor a file.
    #[error("unknown {kind} `{}`: not a file, and not one of the built-in names {}", crate::limits::printable(name, 80), valid.join(", "))]
    UnknownName {
        /// `optimizer` or `schedule`.
        kind: &'static str,
        /// What was given.
        name: String,
        /// The built-in names.
        valid: Vec<&'static str>,
    },
    /// A `--set` that is not `KEY=VALUE` or names no field.
    #[error("--set {}: {}", crate::limits::printable(assignment, 80), crate::limits::printable(message, 400))]
    Set {
        /// What was given.
        assignment: String,
        /// What is wrong.
        message: String,
    },
    /// A value out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
}

/// The built-in configuration files (the files in `configs/`, compiled into the binary so the
/// names work from any folder).
pub mod builtin {
    /// Optimizer files by name.
    pub const OPTIMIZERS: [(&str, &str); 7] = [
        ("sgd", include_str!("../../../configs/sgd.toml")),
        ("sgd-momentum", include_str!("../../../configs/sgd-momentum.toml")),
        ("adam", include_str!("../../../configs/adam.toml")),
        ("adamw", include_str!("../../../configs/adamw.toml")),
        ("rmsprop", include_str!("../../../configs/rmsprop.toml")),
        ("adagrad", include_str!("../../../configs/adagrad.toml")),
        ("lion", include_str!("../../../configs/lion.toml")),
    ];
    /// Schedule files by name.
    pub const SCHEDULES: [(&str, &str); 6] = [
        ("constant", include_str!("../../../configs/constant.toml")),
        ("step", include_str!("../../../configs/step.toml")),
        ("exponential", include_str!("../../../configs/exponential.toml")),
        ("cosine", include_str!("../../../configs/cosine.toml")),
        ("warmup-cosine", include_str!("../../../configs/warmup-cosine.toml")),
        ("one-cycle", include_str!("../../../configs/one-cycle.toml")),
    ];
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptimizerFile {
    optimizer: OptimizerConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    schedule: ScheduleConfig,
}

/// Check a data-parallel device list: no empty name, and no device named twice (names compare
/// without case and surrounding spaces). Whether each device exists is checked when it opens.
pub fn check_devices(devices: &[String]) -> Result<(), DeviceListError> {
    if let Some(position) = devices.iter().position(|name| name.trim().is_empty()) {
        return Err(DeviceListError::Empty { entry: position + 1 });
    }
    for (i, name) in devices.iter().enumerate() {
        if let Some(j) = devices[..i].iter().position(|other| same_device_name(other, name)) {
            return Err(DeviceListError::Repeated {
                name: name.trim().to_string(),
                first: j + 1,
                second: i + 1,
            });
        }
    }
    Ok(())
}

/// Why a data-parallel device list cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceListError {
    /// An entry names no device.
    #[error("entry {entry} is empty: name a device, e.g. flex,ndarray")]
    Empty {
        /// The 1-based entry.
        entry: usize,
    },
    /// A device is named twice.
    #[error("names `{name}` twice (entries {first} and {second}): each device holds one replica")]
    Repeated {
        /// The device.
        name: String,
        /// The 1-based entries naming it.
        first: usize,
        /// The second of them.
        second: usize,
    },
}

/// Whether two device names are the same name (without case and surrounding spaces).
fn same_device_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Parse TOML text into `T`, with errors that name `origin` and the line and column.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let message = error.message().trim().to_string();
        // Tagged sections (`[optimizer]`, `[schedule]`) are read through a buffer that loses
        // the position of an unknown key: find the key's own line instead.
        let location = unknown_key(&message)
            .and_then(|key| key_location(text, key))
            .or_else(|| error.span().map(|span| line_and_column(text, span.start)));
        ConfigError::Parse { origin: origin.to_string(), location, message }
    })
}

/// The key of an "unknown field `key`" message.
fn unknown_key(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// Line and column of the first line that assigns `key`.
fn key_location(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(index, line)| {
        let trimmed = line.trim_start();
        let rest = trimmed.strip_prefix(key)?;
        rest.trim_start().starts_with('=').then(|| (index + 1, line.len() - trimmed.len() + 1))
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Read a configuration file through [`crate::limits::MAX_CONFIG_BYTES`].
fn read(path: &Path) -> Result<String, ConfigError> {
    crate::limits::read_text(path, crate::limits::MAX_CONFIG_BYTES)
        .map_err(|error| ConfigError::Read { path: path.into(), message: error.to_string() })
}

/// A built-in name or a file path: the text and where it came from.
fn resolve(
    name_or_path: &str,
    builtins: &[(&'static str, &'static str)],
    kind: &'static str,
) -> Result<(String, String), ConfigError> {
    if let Some((name, text)) = builtins.iter().find(|(name, _)| *name == name_or_path) {
        return Ok((text.to_string(), format!("built-in {kind} `{name}`")));
    }
    let path = Path::new(name_or_path);
    if path.exists() {
        return Ok((read(path)?, path.display().to_string()));
    }
    Err(ConfigError::UnknownName {
        kind,
        name: name_or_path.into(),
        valid: builtins.iter().map(|(n, _)| *n).collect(),
    })
}

/// The optimizer of a built-in name (`sgd`, `sgd-momentum`, `adam`, ...) or of a file holding an
/// `[optimizer]` table.
pub fn optimizer_from(name_or_path: &str) -> Result<OptimizerConfig, ConfigError> {
    let (text, origin) = resolve(name_or_path, &builtin::OPTIMIZERS, "optimizer")?;
    let file: OptimizerFile = parse_toml(&text, &origin)?;
    file.optimizer.validate()?;
    Ok(file.optimizer)
}

/// The schedule of a built-in name (`constant`, `cosine`, `one-cycle`, ...) or of a file
/// holding a `[schedule]` table.
pub fn schedule_from(name_or_path: &str) -> Result<ScheduleConfig, ConfigError> {
    let (text, origin) = resolve(name_or_path, &builtin::SCHEDULES, "schedule")?;
    let file: ScheduleFile = parse_toml(&text, &origin)?;
    file.schedule.validate()?;
    Ok(file.schedule)
}

/// An out-of-range value of `field`, as the error of a check.
fn invalid(field: &str, message: String) -> Result<(), InvalidValue> {
    Err(InvalidValue { field: field.into(), message })
}

/// The sections whose kind is chosen by a tag field, and that field: setting it with `--set`
/// starts the section over from the new kind's defaults.
const TAGS: [(&str, &str); 4] =
    [("optimizer", "name"), ("schedule", "name"), ("model", "name"), ("data", "source")];

impl RunConfig {
    /// The CNN on the digits: batches of 64, 10 epochs, Adam at 1e-3 (the PyTorch reference's
    /// settings), seed 42.
    pub fn cnn() -> Self {
        Self {
            data: DataConfig::Digits { path: None, valid_fraction: default_valid_fraction(), sha256: None },
            model: ModelConfig::Cnn(CnnConfig::default()),
            training: TrainingConfig {
                batch_size: Some(defaults::CNN_BATCH_SIZE),
                epochs: Some(defaults::CNN_EPOCHS),
                ..TrainingConfig::default()
            },
            optimizer: OptimizerConfig::Adam(Adam::default()),
            ..Self::default()
        }
    }

    /// The CNN on Fashion-MNIST (`descent cnn --data fashion-mnist`): the CNN's settings, with
    /// Adam peaking at 3e-3 on fastai's one-cycle schedule.
    pub fn fashion_mnist() -> Self {
        let mut config = Self::cnn();
        config.data = DataConfig::FashionMnist {
            dir: default_fashion_dir(),
            train_limit: None,
            side: None,
            sha256: None,
        };
        config.optimizer = OptimizerConfig::Adam(Adam { lr: defaults::FASHION_LR, ..Adam::default() });
        // A built-in name, parsed and checked by the tests: the fallback is never taken.
        config.schedule = schedule_from(defaults::FASHION_SCHEDULE).unwrap_or_default();
        config
    }

    /// The CNN on a folder of the user's own pictures (`descent cnn --images DIR`): resized to
    /// 64x64, the CNN of [`CnnConfig::for_pictures`], batches of 64, 10 epochs of Adam peaking
    /// at 3e-3 on fastai's one-cycle schedule (`fit_one_cycle`).
    pub fn pictures(dir: &Path) -> Self {
        let mut config = Self::fashion_mnist();
        config.data = DataConfig::Folder {
            dir: dir.to_path_buf(),
            side: default_picture_side(),
            resize: crate::data::folder::Resize::Squash,
            channels: None,
            valid_fraction: default_valid_fraction(),
            classes: None,
            mean: None,
            std: None,
            fingerprint: None,
        };
        config.model = ModelConfig::Cnn(CnnConfig::for_pictures());
        config
    }

    /// Read a run configuration file (as `descent config show` writes it). Absent sections take
    /// the lesson's defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config: RunConfig = parse_toml(&read(path)?, &path.display().to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML, complete: every field with its value.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a run configuration always serialises")
    }

    /// Apply `KEY=VALUE`, where KEY is a dotted path (`optimizer.beta_2`, `training.epochs`,
    /// `seed`) and VALUE a TOML value (`0.99`, `true`, `[3, 2]`; bare words are strings).
    pub fn set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let fail = |message: String| ConfigError::Set { assignment: assignment.into(), message };
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| fail("expected KEY=VALUE, for example optimizer.momentum=0.9".into()))?;
        let (key, value) = (key.trim(), value.trim());
        let path: Vec<&str> = key.split('.').collect();
        if key.is_empty() || path.iter().any(|part| part.is_empty()) {
            return Err(fail(format!("`{key}` is not a dotted field name")));
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut table| table.remove("v"));
        let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
        if parsed.is_none() && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '_') {
            // A whole number TOML cannot hold would otherwise be taken as text ("invalid type").
            return Err(fail(format!(
                "{value} is beyond the whole numbers a setting can hold (at most {})",
                i64::MAX
            )));
        }
        let value = parsed.unwrap_or_else(|| toml::Value::String(value.to_string()));

        let mut document = toml::Value::try_from(&*self).map_err(|error| fail(error.to_string()))?;
        let mut table = document.as_table_mut().expect("a run configuration is a table");
        for part in &path[..path.len() - 1] {
            table = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| fail(format!("`{part}` is a value, not a section")))?;
        }
        let last = path[path.len() - 1];
        if TAGS.contains(&(path[..path.len() - 1].join(".").as_str(), last)) {
            // A new kind (`optimizer.name=adam`): the section starts over from that kind's
            // defaults, since the old kind's fields (sgd's `dampening`) mean nothing to it.
            table.clear();
        }
        table.insert(last.to_string(), value);
        let updated: RunConfig =
            document.try_into().map_err(|error: toml::de::Error| fail(error.message().to_string()))?;
        updated.validate()?;
        *self = updated;
        Ok(())
    }

    /// The number of parameters of the linear model on this data, when the configuration alone
    /// tells it: 2 for the lesson's points, one per feature and the intercept for CSV data with
    /// its features listed.
    pub fn linear_parameters(&self) -> Option<usize> {
        match &self.data {
            DataConfig::Lesson { .. } | DataConfig::Points { .. } => Some(2),
            DataConfig::Csv(csv) => csv.features.as_ref().map(|f| f.len() + 1),
            DataConfig::Digits { .. }
            | DataConfig::Mnist { .. }
            | DataConfig::FashionMnist { .. }
            | DataConfig::Folder { .. } => None,
        }
    }

    /// Why `model.init` with `found` values does not fit a model of `count` parameters.
    pub fn init_length_message(&self, found: usize, count: usize) -> String {
        match &self.data {
            DataConfig::Csv(_) => format!(
                "has {found} values; this table has {} features, so it needs {count} (one per feature, then the intercept), or leave it out to start from zeros",
                count - 1
            ),
            _ => format!("has {found} values; the lesson's model has {count} (slope, intercept)"),
        }
    }

    /// The linear model's initial parameters for `count` parameters: `model.init`, or its
    /// default ((-1, 1) for points, zeros for CSV data).
    pub fn linear_init(&self, count: usize) -> Vec<f64> {
        match (&self.model, &self.data) {
            (ModelConfig::Linear { init: Some(init) }, _) => init.clone(),
            (_, DataConfig::Csv(_)) => vec![0.0; count],
            _ => LESSON_INIT.to_vec(),
        }
    }

    /// Check every value, naming the field of the first one out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        self.validate_devices()?;
        self.validate_data()?;
        self.validate_model()?;
        self.validate_training()?;
        self.optimizer.validate()?;
        self.schedule.validate()
    }

    fn validate_devices(&self) -> Result<(), InvalidValue> {
        if let Err(error) = check_devices(&self.devices) {
            return invalid("devices", error.to_string());
        }
        if let Some(first) = self.devices.first()
            && !same_device_name(&self.device, "auto")
            && !same_device_name(&self.device, first)
        {
            return invalid(
                "devices",
                format!(
                    "the first device is the main one and must be `device` (`{}`), got `{}`",
                    self.device, first
                ),
            );
        }
        Ok(())
    }

    fn validate_data(&self) -> Result<(), InvalidValue> {
        match &self.data {
            DataConfig::Lesson { n, true_a, noise } => {
                if *n == 0 {
                    return invalid("data.n", "must be at least 1, got 0".into());
                }
                if !(within_f32(*noise) && *noise >= 0.0) {
                    return invalid(
                        "data.noise",
                        format!(
                            "must be a finite number from 0 to 3.4e38 (the f32 range), got {noise} (--noise)"
                        ),
                    );
                }
                if !true_a.iter().all(|v| within_f32(*v)) {
                    return invalid(
                        "data.true_a",
                        format!(
                            "must be finite and within the f32 range (±3.4e38), got {true_a:?} (--true-a)"
                        ),
                    );
                }
            }
            DataConfig::Points { .. }
            | DataConfig::Mnist { train_limit: None, .. }
            | DataConfig::FashionMnist { train_limit: None, .. } => {}
            DataConfig::Mnist { train_limit: Some(limit), .. }
            | DataConfig::FashionMnist { train_limit: Some(limit), .. } => {
                if *limit == 0 {
                    return invalid("data.train_limit", "must be at least 1 image, got 0".into());
                }
            }
            DataConfig::Csv(csv) => validate_csv(csv)?,
            DataConfig::Folder { side, channels, valid_fraction, .. } => {
                if !(crate::data::folder::SIDES).contains(side) {
                    return invalid(
                        "data.side",
                        format!(
                            "must be from {} to {} pixels, got {side} (--side)",
                            crate::data::folder::SIDES.start(),
                            crate::data::folder::SIDES.end()
                        ),
                    );
                }
                if let Some(channels) = channels
                    && !matches!(channels, 1 | 3)
                {
                    return invalid("data.channels", format!("must be 1 (grey) or 3 (RGB), got {channels}"));
                }
                if !(*valid_fraction > 0.0 && *valid_fraction < 1.0) {
                    return invalid(
                        "data.valid_fraction",
                        format!("must be in (0, 1), got {valid_fraction}"),
                    );
                }
            }
            DataConfig::Digits { valid_fraction, .. } => {
                if !(*valid_fraction > 0.0 && *valid_fraction < 1.0) {
                    return invalid(
                        "data.valid_fraction",
                        format!("must be in (0, 1), got {valid_fraction}"),
                    );
                }
            }
        }
        Ok(())
    }

    fn validate_model(&self) -> Result<(), InvalidValue> {
        let images = self.data.is_images();
        if let ModelConfig::Linear { init } = &self.model {
            if let Some(init) = init {
                if !init.iter().all(|v| within_f32(*v)) {
                    return invalid(
                        "model.init",
                        format!("must be finite and within the f32 range (±3.4e38), got {init:?} (--init)"),
                    );
                }
                if let Some(count) = self.linear_parameters()
                    && init.len() != count
                {
                    return invalid("model.init", self.init_length_message(init.len(), count));
                }
            }
            if images {
                return invalid(
                    "model.name",
                    "the linear model fits points or tables; images need `cnn`".into(),
                );
            }
            return Ok(());
        }
        struct Check(ImageShape);
        impl ImageModelVisitor for Check {
            type Output = Result<(), InvalidValue>;
            fn visit<T: ImageModel>(self, model: &T) -> Self::Output {
                model.validate(&self.0)
            }
        }
        // A folder not yet read has no recorded channels or classes: its side is checked here,
        // the whole shape when the pictures are read.
        let shape = self.data.image_shape().unwrap_or_else(|| {
            let side = self.data.image_side().unwrap_or(DIGITS_SIDE);
            ImageShape { side, channels: 3, classes: 2 }
        });
        self.model.visit_image_model(Check(shape)).unwrap_or(Ok(()))?;
        if !images {
            return invalid(
                "data.source",
                format!(
                    "the {} model needs images: `digits`, `mnist`, `fashion-mnist` or `folder`",
                    self.model.name()
                ),
            );
        }
        Ok(())
    }

    fn validate_training(&self) -> Result<(), InvalidValue> {
        let training = &self.training;
        for (field, value) in [
            ("training.batch_size", training.batch_size),
            ("training.steps", training.steps),
            ("training.epochs", training.epochs),
            ("training.print_every", training.print_every),
            ("training.checkpoint_every", training.checkpoint_every),
            ("training.early_stop", training.early_stop),
            ("training.accumulate", training.accumulate),
            ("training.freeze", training.freeze),
            ("training.tta", training.tta),
        ] {
            if value == Some(0) {
                return invalid(field, "must be at least 1, got 0".into());
            }
        }
        if training.steps.is_some() && training.epochs.is_some() {
            return invalid("training.steps", "set steps or epochs, not both".into());
        }
        if training.accumulate.is_some_and(|k| k > 1) && training.batch_size.is_none() {
            return invalid(
                "training.accumulate",
                "groups mini-batches into one update, and this run takes every row in each step: set a batch size (--batch-size)".into(),
            );
        }
        if training.freeze.is_some() && training.init_from.is_none() {
            return invalid(
                "training.freeze",
                "trains the head alone first, in a fine-tuning: give the weights to start from (--init-from RUN)".into(),
            );
        }
        if training.init_from.is_some() && !self.model.is_image_model() {
            return invalid(
                "training.init_from",
                "starts an image model from another's weights; this run fits the linear model".into(),
            );
        }
        if self.optimizer.body_lr_factor().is_some() && training.init_from.is_none() {
            return invalid(
                "optimizer.body_lr_factor",
                "gives the body a smaller rate in a fine-tuning: give the weights to start from (--init-from RUN)".into(),
            );
        }
        self.validate_early_stop()?;
        self.validate_image_only()?;
        self.validate_augment()?;
        self.validate_label_smoothing()?;
        self.validate_mixup()
    }

    /// Test-time augmentation of `copies` copies per image for this run's images, moved as its
    /// augmentation moves training images ([`Self::mirrors`]; shifts of up to 2 pixels without
    /// `training.augment`), drawn from the run's seed.
    pub fn tta(&self, copies: usize) -> crate::metrics::Tta {
        let shift =
            self.training.augment.as_ref().map_or_else(|| AugmentConfig::default().shift, |a| a.shift);
        crate::metrics::Tta { copies, seed: self.seed, shift, flip: self.mirrors() }
    }

    /// The settings that act on images and class labels (augmentation, label smoothing, MixUp,
    /// test-time augmentation) need image data: the first one set on a run of the linear model
    /// is refused.
    fn validate_image_only(&self) -> Result<(), InvalidValue> {
        if self.data.image_side().is_some() {
            return Ok(());
        }
        let training = &self.training;
        let settings = [
            (training.augment.is_some(), "training.augment", "--augment", "shifts and flips images"),
            (
                training.label_smoothing.is_some(),
                "training.label_smoothing",
                "--label-smoothing",
                "smooths a classifier's labels",
            ),
            (training.mixup.is_some(), "training.mixup", "--mixup", "blends images and their labels"),
            (
                training.tta.is_some(),
                "training.tta",
                "--tta",
                "averages predictions over moved copies of images",
            ),
        ];
        match settings.into_iter().find(|(set, ..)| *set) {
            Some((_, field, flag, what)) => invalid(
                field,
                format!(
                    "{what}, and this run's data are not images: it fits the linear model ({flag} is for image data: digits, mnist, fashion-mnist, picture folders)"
                ),
            ),
            None => Ok(()),
        }
    }

    /// MixUp's α is above 0.
    fn validate_mixup(&self) -> Result<(), InvalidValue> {
        let Some(alpha) = self.training.mixup else { return Ok(()) };
        if !(alpha.is_finite() && alpha > 0.0) {
            return invalid(
                "training.mixup",
                format!(
                    "is the α of the Beta(α, α) blending weights and must be above 0 (0.4 is usual), got {alpha}"
                ),
            );
        }
        Ok(())
    }

    /// Label smoothing spreads a share of each label over the classes: from 0 up to (not
    /// including) 1.
    fn validate_label_smoothing(&self) -> Result<(), InvalidValue> {
        let Some(epsilon) = self.training.label_smoothing else { return Ok(()) };
        if !(epsilon.is_finite() && (0.0..1.0).contains(&epsilon)) {
            return invalid(
                "training.label_smoothing",
                format!("must be from 0 up to (not including) 1, got {epsilon}"),
            );
        }
        Ok(())
    }

    /// Augmentation shifts images by less than their side.
    fn validate_augment(&self) -> Result<(), InvalidValue> {
        let Some(augment) = &self.training.augment else { return Ok(()) };
        // Without images, validate_image_only has refused it.
        let Some(side) = self.data.image_side() else { return Ok(()) };
        if augment.shift >= side {
            return invalid(
                "training.augment.shift",
                format!("must be less than the images' side ({side} pixels), got {}", augment.shift),
            );
        }
        Ok(())
    }

    /// Whether moved images (augmentation's, test-time augmentation's) are mirrored as well:
    /// as `training.augment.flip` says, or by default for Fashion-MNIST only (a mirrored shirt
    /// is a shirt; a mirrored digit is another glyph).
    pub fn mirrors(&self) -> bool {
        let default = matches!(self.data, DataConfig::FashionMnist { .. });
        self.training.augment.as_ref().and_then(|augment| augment.flip).unwrap_or(default)
    }

    /// Whether augmentation flips images: it is on, and [`Self::mirrors`].
    pub fn augment_flips(&self) -> bool {
        self.training.augment.is_some() && self.mirrors()
    }

    /// Early stopping needs a validation set to watch, and a metric the task has.
    fn validate_early_stop(&self) -> Result<(), InvalidValue> {
        let training = &self.training;
        if training.early_stop.is_none() {
            if let Some(monitor) = training.monitor {
                return invalid(
                    "training.monitor",
                    format!("watches `{}` for early stopping: set --early-stop PATIENCE too", monitor.name()),
                );
            }
            return Ok(());
        }
        let monitor = training.monitor.unwrap_or_default();
        match &self.data {
            DataConfig::Lesson { .. } | DataConfig::Points { .. } => invalid(
                "training.early_stop",
                "the lesson has no validation set to watch: early stopping needs one (image data, or a table with data.valid_fraction above 0)".into(),
            ),
            DataConfig::Csv(csv) if csv.valid_fraction == 0.0 => invalid(
                "training.early_stop",
                "this table holds no rows out for validation (data.valid_fraction is 0): early stopping needs some (--valid-fraction)".into(),
            ),
            DataConfig::Csv(_) if monitor == Monitor::Accuracy => invalid(
                "training.monitor",
                "a regression has no accuracy: monitor valid_loss".into(),
            ),
            _ => Ok(()),
        }
    }
}

/// Check a table's settings, naming the field of the first value out of range.
fn validate_csv(csv: &CsvSource) -> Result<(), InvalidValue> {
    let CsvSource { target, features, delimiter, valid_fraction, .. } = csv;
    if target.trim().is_empty() {
        return invalid("data.target", "must name a column, got an empty name".into());
    }
    if let Some(features) = features {
        if features.is_empty() {
            return invalid("data.features", "must name at least one column, got none".into());
        }
        if let Some(name) = features.iter().find(|name| name.trim().is_empty()) {
            return invalid("data.features", format!("holds an empty column name ({name:?})"));
        }
        if let Some((i, name)) = features.iter().enumerate().find(|(i, name)| features[..*i].contains(name)) {
            return invalid(
                "data.features",
                format!(
                    "names `{name}` twice (positions {} and {})",
                    features.iter().position(|f| f == name).unwrap_or(0) + 1,
                    i + 1
                ),
            );
        }
        if features.contains(target) {
            return invalid(
                "data.features",
                format!("holds the target `{target}`: a column cannot predict itself"),
            );
        }
    }
    if let Err(error) = crate::data::csv_table::parse_delimiter(delimiter) {
        return invalid("data.delimiter", error.to_string());
    }
    if !(*valid_fraction >= 0.0 && *valid_fraction < 1.0) {
        return invalid("data.valid_fraction", format!("must be in [0, 1), got {valid_fraction}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_round_trips() {
        let config = RunConfig::default();
        let text = config.to_toml();
        let back: RunConfig = parse_toml(&text, "test").unwrap();
        assert_eq!(config, back);
        assert!(text.contains("name = \"sgd\"") && text.contains("lr = 0.1"), "{text}");
    }

    #[test]
    fn every_builtin_parses() {
        // The built-in table and the kinds' names agree: a built-in file is of the kind it is
        // named after (`sgd-momentum` is sgd with momentum).
        for (name, _) in builtin::OPTIMIZERS {
            assert!(name.starts_with(optimizer_from(name).unwrap().name()), "{name}");
        }
        for (name, _) in builtin::SCHEDULES {
            assert_eq!(schedule_from(name).unwrap().name(), name);
        }
    }

    #[test]
    fn set_changes_one_field_and_checks_it() {
        let mut config = RunConfig::default();
        config.set("optimizer.momentum=0.9").unwrap();
        let OptimizerConfig::Sgd(sgd) = &config.optimizer else { panic!() };
        assert_eq!(sgd.momentum, 0.9);
        config.set("training.epochs = 3").unwrap();
        assert_eq!(config.training.epochs, Some(3));
        config.set("device=flex").unwrap();
        assert_eq!(config.device, "flex");

        let error = config.set("optimizer.momentum=1.5").unwrap_err().to_string();
        assert!(error.contains("optimizer.momentum") && error.contains("[0, 1)"), "{error}");
        let error = config.set("optimizer.beta_3=0.5").unwrap_err().to_string();
        assert!(error.contains("unknown field `beta_3`"), "{error}");
        let error = config.set("optimizer.lr=fast").unwrap_err().to_string();
        assert!(error.contains("optimizer.lr") || error.contains("invalid type"), "{error}");
        assert!(config.set("momentum").unwrap_err().to_string().contains("KEY=VALUE"));
    }

    #[test]
    fn setting_a_kind_starts_its_section_over() {
        let mut config = RunConfig::default();
        config.set("optimizer.name=adam").unwrap();
        assert_eq!(config.optimizer, OptimizerConfig::Adam(Adam::default()));
        config.set("optimizer.lr=0.01").unwrap();
        config.set("schedule.name=cosine").unwrap();
        assert_eq!(config.schedule.name(), "cosine");
        let error = config.set("optimizer.name=adamx").unwrap_err().to_string();
        assert!(error.contains("unknown variant `adamx`"), "{error}");
    }

    #[test]
    fn parse_errors_have_line_and_column() {
        let error =
            parse_toml::<RunConfig>("seed = 1\n[optimizer]\nname = \"sgd\"\nmomentun = 0.9\n", "run.toml")
                .unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("run.toml, line 4"), "{text}");
        assert!(text.contains("unknown field `momentun`"), "{text}");
        let error = parse_toml::<RunConfig>("seed = \"x\"\n", "run.toml").unwrap_err().to_string();
        assert!(error.contains("line 1") && error.contains("invalid type"), "{error}");
        let error =
            parse_toml::<RunConfig>("[optimizer]\nname = \"sdg\"\n", "run.toml").unwrap_err().to_string();
        assert!(error.contains("unknown variant `sdg`") && error.contains("adam"), "{error}");
        let error = parse_toml::<RunConfig>("seed = [", "run.toml").unwrap_err().to_string();
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn every_registered_model_is_named_as_its_section_spells_it() {
        for name in ModelConfig::IMAGE_MODELS {
            let text = format!("[data]\nsource = \"digits\"\n[model]\nname = \"{name}\"\n");
            let config: RunConfig = parse_toml(&text, "test").unwrap();
            assert_eq!(config.model.name(), *name);
            assert!(config.model.is_image_model());
            config.validate().unwrap();
            assert_eq!(parse_toml::<RunConfig>(&config.to_toml(), "again").unwrap(), config);
        }
        assert_eq!(ModelConfig::default().name(), "linear");
        let mut config = RunConfig::cnn();
        config.set("model.name=mlp").unwrap();
        assert_eq!(config.model, ModelConfig::Mlp(crate::model::MlpConfig::default()));
    }

    #[test]
    fn unknown_names_list_the_builtins() {
        let error = optimizer_from("adamx").unwrap_err().to_string();
        assert!(error.contains("unknown optimizer `adamx`") && error.contains("sgd-momentum"), "{error}");
        let error = schedule_from("linear").unwrap_err().to_string();
        assert!(error.contains("one-cycle"), "{error}");
    }
}
