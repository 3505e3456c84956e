//! `descent cnn`'s flags: the image data (the digits, a digits file, MNIST or Fashion-MNIST
//! from IDX files, a folder of the user's own pictures), and the shared ones.

use std::path::PathBuf;

use clap::Args;

use super::values::positive_finite;
use super::{CommonArgs, FlagError};
use crate::config::{DataConfig, RunConfig};
use crate::data::folder::Resize;

/// Train a small CNN (convolutions, batch norm, max pooling, ReLU, dropout, a linear head) to
/// classify handwritten digits, printing train loss, validation loss, accuracy and error_rate
/// every epoch, then the confusion matrix and the worst predictions.
#[derive(Args, Debug)]
pub struct CnnArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The data: `digits` (the UCI digits shipped in data/digits.csv, compiled in), a digits CSV
    /// file (64 pixel columns 0..16 and a label), or `fashion-mnist` (Fashion-MNIST from Debian's
    /// package dataset-fashion-mnist, or from --mnist DIR) [default: digits].
    #[arg(long, value_name = "digits|fashion-mnist|FILE", conflicts_with = "resume")]
    pub data: Option<String>,

    /// Train on MNIST from a folder holding the four standard IDX files (plain or .gz); the
    /// test set is the validation set; with --data fashion-mnist, the folder of Fashion-MNIST's
    /// files. Nothing is downloaded.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub mnist: Option<PathBuf>,

    /// With --mnist or --data fashion-mnist: train on the first N training images only
    /// (validation still uses the whole test set) [default: all].
    #[arg(long, value_name = "N", value_parser = super::values::positive_count, allow_hyphen_values = true)]
    pub train_limit: Option<usize>,

    #[arg(help = super::help::digits_valid_fraction(), long, value_parser = positive_finite, allow_hyphen_values = true, conflicts_with = "resume")]
    pub valid_fraction: Option<f64>,

    /// Train on your own pictures: a folder with one sub-folder per class (DIR/<class>/*.png,
    /// .jpg, .jpeg, .webp, .bmp, .gif), or DIR/train and DIR/valid (or DIR/test) laid out so.
    /// Pictures that do not decode are skipped and listed in the run's skipped.txt.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["resume", "data", "mnist", "train_limit"])]
    pub images: Option<PathBuf>,

    /// With --images: the side pictures are resized to, in pixels [default: 64].
    #[arg(long, value_name = "PIXELS", value_parser = super::values::positive_count, allow_hyphen_values = true, requires = "images")]
    pub side: Option<usize>,

    /// With --images: how a picture that is not square becomes square: squash (the whole
    /// picture, stretched) or crop (its central square) [default: squash].
    #[arg(long, value_name = "HOW", value_parser = Resize::NAMES, requires = "images")]
    pub resize: Option<String>,

    /// With --images: 1 (grey) or 3 (RGB) channels [default: 3 when any picture has colour].
    #[arg(long, value_name = "1|3", value_parser = ["1", "3"], requires = "images")]
    pub channels: Option<String>,

    /// Fine-tune: start from a finished run's weights (its folder), or from a .safetensors file
    /// in the layout `descent export` writes (so a PyTorch model with the same layers loads).
    /// With another class count the head is new and the body is kept.
    #[arg(long, value_name = "RUN|FILE", conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,

    /// With --init-from: train the head alone for this many epochs, then every layer
    /// (fastai's fine_tune). `optimizer.body_lr_factor` (--set) gives the body a smaller rate.
    #[arg(long, value_name = "EPOCHS", value_parser = super::values::positive_count, allow_hyphen_values = true, requires = "init_from")]
    pub freeze: Option<usize>,
}

impl CnnArgs {
    /// The effective configuration: the cnn's defaults, then `--config`, `--optim`,
    /// `--schedule`, the data flags, the single flags, and `--set`.
    pub fn config(&self) -> Result<RunConfig, FlagError> {
        let mut config = self.data_config()?;
        if let Some(path) = &self.init_from {
            config.training.init_from = Some(path.clone());
        }
        if let Some(epochs) = self.freeze {
            config.training.freeze = Some(epochs);
        }
        self.common.finish(config)
    }

    /// The configuration with the data flags applied.
    fn data_config(&self) -> Result<RunConfig, FlagError> {
        let args = self;
        let fashion = args.data.as_deref() == Some(FASHION_MNIST);
        if let Some(dir) = &args.images {
            let mut config = args.common.base(RunConfig::pictures(dir))?;
            match &mut config.data {
                DataConfig::Folder { dir: configured, .. } => configured.clone_from(dir),
                // A --config file for other data: its settings, on these pictures.
                other => *other = RunConfig::pictures(dir).data,
            }
            if let DataConfig::Folder { side, resize, channels, valid_fraction, .. } = &mut config.data {
                *side = args.side.unwrap_or(*side);
                *resize = args.resize.as_deref().and_then(Resize::from_name).unwrap_or(*resize);
                *channels = args.channels.as_deref().and_then(|c| c.parse().ok()).or(*channels);
                *valid_fraction = args.valid_fraction.unwrap_or(*valid_fraction);
            }
            return Ok(config);
        }
        let defaults = if fashion { RunConfig::fashion_mnist() } else { RunConfig::cnn() };
        let mut config = args.common.base(defaults)?;
        match (&args.mnist, fashion) {
            (Some(dir), false) if args.data.is_some() => {
                return Err(FlagError::new(format!(
                    "--data {} and --mnist {} name two data sets: pass one (--data fashion-mnist --mnist DIR reads Fashion-MNIST from DIR)",
                    args.data.as_deref().unwrap_or_default(),
                    dir.display()
                )));
            }
            (dir, true) => {
                config.data = DataConfig::FashionMnist {
                    dir: dir.clone().unwrap_or_else(|| PathBuf::from(crate::defaults::FASHION_MNIST_DIR)),
                    train_limit: args.train_limit,
                    side: None,
                    sha256: None,
                };
            }
            (Some(dir), false) => {
                config.data = DataConfig::Mnist {
                    dir: dir.clone(),
                    train_limit: args.train_limit,
                    side: None,
                    sha256: None,
                };
            }
            (None, false) => {}
        }
        if args.valid_fraction.is_some() && (args.mnist.is_some() || fashion) {
            return Err(FlagError::new(
                "--valid-fraction splits the digits: MNIST-format data sets validate on their own test set",
            ));
        }
        if args.train_limit.is_some() && args.mnist.is_none() && !fashion {
            return Err(FlagError::new(
                "--train-limit limits MNIST-format training sets: pass --mnist DIR or --data fashion-mnist",
            ));
        }
        if !fashion && (args.data.is_some() || args.valid_fraction.is_some()) {
            let (path, valid_fraction) = match &config.data {
                DataConfig::Digits { path, valid_fraction, .. } => (path.clone(), *valid_fraction),
                _ => (None, crate::defaults::VALID_FRACTION),
            };
            let path = match args.data.as_deref() {
                Some("digits") => None,
                Some(file) => Some(PathBuf::from(file)),
                None => path,
            };
            config.data = DataConfig::Digits {
                path,
                valid_fraction: args.valid_fraction.unwrap_or(valid_fraction),
                sha256: None,
            };
        }
        Ok(config)
    }
}

/// `--data`'s name for Fashion-MNIST.
const FASHION_MNIST: &str = "fashion-mnist";
