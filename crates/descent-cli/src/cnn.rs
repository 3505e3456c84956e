//! `descent cnn`: the convolutional network on handwritten digits, through the same training
//! engine, optimizer configurations and devices as the lesson.

use std::path::PathBuf;

use clap::Args;
use descent::config::{DataConfig, RunConfig};
use descent::experiment::ImageExperiment;
use descent::observe::Observer;
use descent::report::MetricsRow;

use crate::Failure;
use crate::args::positive_finite;
use crate::session::{CommonArgs, execute, say_early_stop, say_lines, say_outputs, start_run};
use descent::run::Resumable;
use descent::task::classify::ImageClassification;
use descent::task::text;

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
    #[arg(long, value_name = "N", value_parser = crate::args::positive_count, allow_hyphen_values = true)]
    pub train_limit: Option<usize>,

    #[arg(help = crate::help::digits_valid_fraction(), long, value_parser = positive_finite, allow_hyphen_values = true, conflicts_with = "resume")]
    pub valid_fraction: Option<f64>,
}

impl CnnArgs {
    /// The effective configuration: the cnn's defaults, then `--config`, `--optim`,
    /// `--schedule`, the data flags, the single flags, and `--set`.
    pub fn config(&self) -> Result<RunConfig, Failure> {
        let args = self;
        let fashion = args.data.as_deref() == Some(FASHION_MNIST);
        let defaults = if fashion { RunConfig::fashion_mnist() } else { RunConfig::cnn() };
        let mut config = args.common.base(defaults)?;
        match (&args.mnist, fashion) {
            (Some(dir), false) if args.data.is_some() => {
                return Err(Failure::input(format!(
                    "--data {} and --mnist {} name two data sets: pass one (--data fashion-mnist --mnist DIR reads Fashion-MNIST from DIR)",
                    args.data.as_deref().unwrap_or_default(),
                    dir.display()
                )));
            }
            (dir, true) => {
                config.data = DataConfig::FashionMnist {
                    dir: dir.clone().unwrap_or_else(|| PathBuf::from(descent::defaults::FASHION_MNIST_DIR)),
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
            return Err(Failure::input(
                "--valid-fraction splits the digits: MNIST-format data sets validate on their own test set",
            ));
        }
        if args.train_limit.is_some() && args.mnist.is_none() && !fashion {
            return Err(Failure::input(
                "--train-limit limits MNIST-format training sets: pass --mnist DIR or --data fashion-mnist",
            ));
        }
        if !fashion && (args.data.is_some() || args.valid_fraction.is_some()) {
            let (path, valid_fraction) = match &config.data {
                DataConfig::Digits { path, valid_fraction, .. } => (path.clone(), *valid_fraction),
                _ => (None, descent::defaults::VALID_FRACTION),
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

/// Train an image configuration (from `descent cnn`, or `descent train --config` with a file
/// naming an image model: the cnn, the mlp, ...), from the start into a new run folder, or
/// resumed into its own: the first lines, training, the confusion matrix and worst predictions,
/// and what the run leaves (the model, the figures, the summary).
pub fn run_config(
    command: &str,
    config: RunConfig,
    common: &CommonArgs,
    resumed: Option<Resumable>,
) -> Result<(), Failure> {
    let experiment = ImageExperiment::prepare_with(config, &common.access()?).map_err(Failure::input)?;
    let mut task = ImageClassification::of(&experiment).map_err(Failure::input)?;
    let (plan, quiet) = (experiment.plan(), common.quiet);
    say_lines(quiet, [text::heading(command, &experiment)]);
    say_lines(quiet, text::image_setup(&task));
    // The folder is created once the first lines are out: a run whose output is lost already
    // (`> /dev/full`) writes nothing.
    let mut run = start_run(common, command, &experiment.config, &plan, resumed)?;
    let mut lines = EpochLines {
        quiet,
        total_epochs: plan.length.epochs().map_or_else(|| "?".to_string(), |epochs| epochs.to_string()),
        print_every: experiment.config.training.print_every.unwrap_or(1),
    };
    let done = execute(&mut run, &mut task, &mut lines, common, plan.length.epochs())?;
    let (outcome, names) = (&done.outcome, text::class_names(&experiment));
    say_lines(quiet, text::confusion_matrix(&outcome.evaluation, names));
    say_lines(quiet, text::worst_predictions(&outcome.worst, names));
    say_early_stop(outcome.early_stop.as_ref(), outcome.trained.epochs);
    say_lines(false, [text::classifier_result(&experiment, outcome)]);
    say_outputs(&run, &done.files, &done.summary, common.json);
    Ok(())
}

/// A classifier's line per printed epoch: its training loss and validation figures.
struct EpochLines {
    quiet: bool,
    total_epochs: String,
    print_every: usize,
}

impl Observer for EpochLines {
    fn epoch(&mut self, epoch: usize, rows: &[MetricsRow]) {
        let Some(row) = rows.last().filter(|_| epoch.is_multiple_of(self.print_every)) else { return };
        let figure = |value: Option<f64>| value.unwrap_or(f64::NAN);
        say!(
            self.quiet,
            "epoch {epoch}/{}  train_loss {:.4}  valid_loss {:.4}  accuracy {:.4}  error_rate {:.4}",
            self.total_epochs,
            row.train_loss,
            figure(row.valid_loss),
            figure(row.accuracy),
            figure(row.error_rate)
        );
    }
}
