//! `descent lr-find`: fastai's learning-rate finder on any run configuration.

use clap::Args;
use descent::config::RunConfig;
use descent::experiment::{Experiment, ImageExperiment};
use descent::model::{ImageModel, ImageModelVisitor};
use descent::train::{LrFindSettings, LrFinding, TrainError, lr_find};
use serde_json::json;

use crate::Failure;
use crate::args::{positive_count, positive_finite};
use crate::run::RunArgs;
use crate::session::{finish, new_run, output_failure};
use descent::report::figures::Figures;
use descent::report::plots::{LineChart, Series};

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
    let (config, (device, devices, described), finding) = sweep(config, &settings)?;
    let mut run = new_run(&args.run.common, "lr-find", &config)?;

    let quiet = args.run.common.quiet;
    say!(
        quiet,
        "lr-find: {} from {:e} to {:e} over {} steps on {}",
        config.optimizer.name(),
        settings.start_lr,
        settings.end_lr,
        settings.steps,
        described
    );
    say_finding(&finding, quiet);
    let curve = |value: fn(&descent::train::LrPoint) -> f64| -> Vec<(f64, f64)> {
        finding.points.iter().map(|p| (p.lr, value(p))).collect()
    };
    let chart = LineChart {
        title: format!("Learning-rate finder: {}", config.optimizer.name()),
        x_label: "learning rate (log scale)".into(),
        y_label: "loss".into(),
        // The smoothed loss only, as fastai plots it: the raw loss of the last steps, where the
        // sweep diverges, would squash the curve that matters.
        series: vec![Series { name: "smoothed loss".into(), points: curve(|p| p.smoothed) }],
        log_x: true,
        log_y: false,
        marker: finding.suggestion.map(|lr| (format!("suggested {lr:.2e}"), lr)),
    };
    if let Some(log) = run.events_mut() {
        // TensorBoard's x axis is the step: the rate and the losses of each step of the sweep.
        for point in &finding.points {
            log.scalar("lr_find/lr", point.step, point.lr);
            log.scalar("lr_find/loss", point.step, point.loss);
            log.scalar("lr_find/smoothed", point.step, point.smoothed);
        }
    }
    let figures = Figures::new(run.folder(), args.run.common.svg);
    figures.chart("lr_find", &chart).map_err(|error| output_failure(error.into()))?;
    let points: Vec<_> = finding
        .points
        .iter()
        .map(|p| json!({"step": p.step, "lr": p.lr, "loss": p.loss, "smoothed": p.smoothed}))
        .collect();
    let summary = json!({
        "command": "lr-find",
        "points": points,
        "suggestion": finding.suggestion,
        "steepest": finding.steepest,
        "minimum_lr": finding.minimum.map(|m| m.lr),
        "stopped_early": finding.stopped_early,
        "optimizer": config.optimizer.name(),
        "device": device,
        "devices": devices,
        "run_folder": run.folder().path(),
    });
    finish(&mut run, &summary, None, args.run.common.json)
}

/// Where a sweep ran: the main device, every device described, and the line that names them.
type Place = (String, Vec<String>, String);

/// Prepare the run and sweep: the same sweep for every model the trainer supports, the lesson's
/// linear model and every image model.
fn sweep(config: RunConfig, settings: &LrFindSettings) -> Result<(RunConfig, Place, LrFinding), Failure> {
    if config.model.is_image_model() {
        let experiment = ImageExperiment::prepare(config).map_err(Failure::input)?;
        let model = experiment.config.model.clone();
        let sweep = ImageSweep { experiment: &experiment, settings };
        let finding = model.visit_image_model(sweep).unwrap_or(Err(TrainError::NoBatches));
        let place = (experiment.device.describe(), experiment.device_names(), experiment.describe_device());
        return Ok((experiment.config.clone(), place, finding.map_err(Failure::internal)?));
    }
    let experiment = Experiment::prepare(config).map_err(Failure::input)?;
    let mut optimizer = experiment.config.optimizer.build();
    let source = experiment.batches();
    let finding =
        lr_find(experiment.model(), &mut optimizer, source.as_ref(), settings, &experiment.plan().replicas);
    let place = (experiment.device.describe(), experiment.device_names(), experiment.describe_device());
    Ok((experiment.config.clone(), place, finding.map_err(Failure::internal)?))
}

/// The sweep of an image model, its type known.
struct ImageSweep<'a> {
    experiment: &'a ImageExperiment,
    settings: &'a LrFindSettings,
}

impl ImageModelVisitor for ImageSweep<'_> {
    type Output = Result<LrFinding, TrainError>;

    fn visit<T: ImageModel>(self, model: &T) -> Self::Output {
        let experiment = self.experiment;
        let mut optimizer = experiment.config.optimizer.build();
        let network = experiment.network(model);
        lr_find(
            network,
            &mut optimizer,
            experiment.batches().as_ref(),
            self.settings,
            &experiment.plan().replicas,
        )
    }
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
