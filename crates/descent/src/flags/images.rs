//! `descent cnn`'s flags: the image data (the digits, a digits file, MNIST or Fashion-MNIST
//! from IDX files), and the shared ones.

use std::path::PathBuf;

use clap::Args;

use super::values::positive_finite;
use super::{CommonArgs, FlagError};
use crate::config::{DataConfig, RunConfig};

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
}

impl CnnArgs {
    /// The effective configuration: the cnn's defaults, then `--config`, `--optim`,
    /// `--schedule`, the data flags, the single flags, and `--set`.
    pub fn config(&self) -> Result<RunConfig, FlagError> {
        let args = self;
        let fashion = args.data.as_deref() == Some(FASHION_MNIST);
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
        args.common.finish(config)
    }
}

/// `--data`'s name for Fashion-MNIST.
const FASHION_MNIST: &str = "fashion-mnist";
