//! `descent lr-find`: fastai's learning-rate finder on any run configuration.

use clap::Args;
use descent::experiment::{Experiment, ImageExperiment};
use descent::run::Task;
use descent::task::classify::ImageClassification;
use descent::task::lr_find::LrFind;
use descent::train::{Interrupter, LrFindSettings, LrFinding};

use crate::Failure;
use crate::session::{new_run, run_failed, say_outputs};
use descent::flags::RunArgs;
use descent::flags::values::{positive_count, positive_finite};

/// Sweep the learning rate exponentially from --start-lr to --end-lr over --sweep-steps
/// updates from the initial weights, stop when the smoothed loss exceeds 4x its minimum, print
/// the curve, and suggest a learning rate: fastai's "valley", the middle of the longest fall of
/// the smoothed loss (the steepest point is printed too). The model trained by the sweep is
/// discarded.
#[derive(Args, Debug)]
pub struct LrFindArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// The first learning rate of the sweep.
    #[arg(long, default_value = "1e-7", value_parser = positive_finite, allow_hyphen_values = true)]
    pub start_lr: f64,

    /// The last learning rate of the sweep.
    #[arg(long, default_value = "10", value_parser = positive_finite, allow_hyphen_values = true)]
    pub end_lr: f64,

    /// Number of updates in the sweep.
    #[arg(long, default_value = "100", value_parser = positive_count, allow_hyphen_values = true)]
    pub sweep_steps: usize,
}

pub fn run(args: &LrFindArgs) -> Result<(), Failure> {
    if args.end_lr <= args.start_lr {
        return Err(Failure::input(format!(
            "--end-lr ({}) must be greater than --start-lr ({})",
            args.end_lr, args.start_lr
        )));
    }
    // Every step's point is kept, printed, plotted and written to the summary: about 256 bytes.
    descent::limits::check_memory((args.sweep_steps as u64).checked_mul(256)).map_err(|message| {
        Failure::input(format!("--sweep-steps {}: the sweep {message}", args.sweep_steps))
    })?;
    let config = args.run.config()?;
    let settings = LrFindSettings {
        start_lr: args.start_lr,
        end_lr: args.end_lr,
        steps: args.sweep_steps,
        ..LrFindSettings::default()
    };
    let access = args.run.common.access()?;
    if config.model.is_image_model() {
        let experiment = ImageExperiment::prepare_with(config, &access).map_err(Failure::input)?;
        let classification = ImageClassification::of(&experiment).map_err(Failure::input)?;
        sweep(args, LrFind::image(classification, settings))
    } else {
        let experiment = Experiment::prepare_with(config, &access).map_err(Failure::input)?;
        sweep(args, LrFind::linear(&experiment, settings))
    }
}

/// Sweep as a run of its own (`runs/lr-find-<time>`), print the curve and what it suggests.
fn sweep(args: &LrFindArgs, mut task: LrFind<'_>) -> Result<(), Failure> {
    let (common, settings) = (&args.run.common, task.settings);
    let prepared = task.prepared();
    let mut run = new_run(common, "lr-find", &prepared.config)?;
    say!(
        common.quiet,
        "lr-find: {} from {:e} to {:e} over {} steps on {}",
        prepared.config.optimizer.name(),
        settings.start_lr,
        settings.end_lr,
        settings.steps,
        prepared.describe_device()
    );
    // The sweep is short and leaves no checkpoint: Ctrl-C ends it as it ends any program.
    let done = run.execute(&mut task, Vec::new(), &Interrupter::new()).map_err(run_failed)?;
    say_finding(&done.outcome, common.quiet);
    say_outputs(&run, &done.files, &done.summary, common.json);
    Ok(())
}

/// The curve, a line per step, and what it suggests.
fn say_finding(finding: &LrFinding, quiet: bool) {
    say!(quiet, "{:>5}  {:>11}  {:>12}  {:>12}", "step", "lr", "loss", "smoothed");
    for point in &finding.points {
        say!(quiet, "{:>5}  {:>11.3e}  {:>12.6}  {:>12.6}", point.step, point.lr, point.loss, point.smoothed);
    }
    if finding.stopped_early {
        say!(quiet, "stopped at step {}: the smoothed loss passed 4x its minimum", finding.points.len() - 1);
    }
    if let Some(minimum) = finding.minimum {
        out!("minimum smoothed loss {:.6} at lr {:.3e}", minimum.smoothed, minimum.lr);
    }
    if let Some(lr) = finding.steepest {
        out!("steepest fall of the smoothed loss at lr {lr:.3e}");
    }
    match finding.suggestion {
        Some(lr) => out!(
            "suggested lr: {lr:.3e} (fastai's \"valley\": the middle of the longest fall of the smoothed loss)"
        ),
        None => out!("no suggestion: the smoothed loss never fell"),
    }
}
