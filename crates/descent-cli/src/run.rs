//! The training commands: `descent lesson2`, `descent train` and `descent config show` share one
//! set of flags that builds a [`RunConfig`]; `lesson2` and `train` run it.

use std::path::{Path, PathBuf};

use clap::Args;
use descent::config::{DataConfig, ModelConfig, RunConfig};
use descent::experiment::Experiment;
use descent::run::Resumable;
use descent::task::lesson::Lesson;
use descent::task::table::TableRegression;

use crate::Failure;
use crate::args::{non_negative_finite, pair, positive_count};
use crate::session::{
    CommonArgs, execute, linear_training, resumed_config, say_lines, say_outputs, start_run,
};
use descent::task::text;

/// The lesson's flags: the shared ones, and the data and initial guess of the linear model.
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[arg(help = crate::help::n(), long, value_parser = positive_count, allow_hyphen_values = true, conflicts_with_all = ["data", "resume"])]
    pub n: Option<usize>,

    #[arg(help = crate::help::noise(), long, value_parser = non_negative_finite, allow_hyphen_values = true,
          conflicts_with_all = ["data", "resume"])]
    pub noise: Option<f64>,

    #[arg(help = crate::help::true_a(), long, value_name = "SLOPE,INTERCEPT", value_parser = pair, allow_hyphen_values = true,
          conflicts_with_all = ["data", "resume"])]
    pub true_a: Option<[f64; 2]>,

    #[arg(help = crate::help::init(), long, value_name = "SLOPE,INTERCEPT", value_parser = pair, allow_hyphen_values = true,
          conflicts_with = "resume")]
    pub init: Option<[f64; 2]>,

    /// Read the points from a CSV file with a header and the columns x,y instead of generating
    /// them; the column of ones is added as in the lesson.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub data: Option<PathBuf>,

    /// Also write animation.gif: the notebook's animation of the line moving onto the points,
    /// one frame per gradient step for 100 steps from the initial guess, 20 ms per frame.
    #[arg(long)]
    pub animate: bool,
}

impl RunArgs {
    /// The effective configuration: the lesson's defaults, then `--config`, `--optim`,
    /// `--schedule`, the single flags, and `--set`.
    pub fn config(&self) -> Result<RunConfig, Failure> {
        let mut config = self.common.base(RunConfig::default())?;
        if let Some(path) = &self.data {
            config.data = DataConfig::Points { path: path.clone(), sha256: None };
        }
        if self.n.is_some() || self.noise.is_some() || self.true_a.is_some() {
            let DataConfig::Lesson { n, true_a, noise } = config.data else {
                return Err(Failure::input(
                    "--n, --noise and --true-a describe generated data, but the configuration reads its data from a file",
                ));
            };
            config.data = DataConfig::Lesson {
                n: self.n.unwrap_or(n),
                true_a: self.true_a.unwrap_or(true_a),
                noise: self.noise.unwrap_or(noise),
            };
        }
        if let Some(init) = self.init {
            config.model = ModelConfig::Linear { init: Some(init.to_vec()) };
        }
        self.common.finish(config)
    }
}

/// `descent config show`: print the effective configuration as TOML.
pub fn show_config(args: &RunArgs) -> Result<(), Failure> {
    let config = match &args.common.resume {
        Some(dir) => resumed_config(&args.common, dir, false)?.0,
        None => args.config()?,
    };
    out!("# descent run configuration: run it with `descent train --config FILE`");
    out_text!("{}", config.to_toml());
    Ok(())
}

/// A training command (`lesson2`, `train`, `fit`, `cnn`): continue `--resume DIR`, or run the
/// configuration that `config` builds from the command's flags.
pub fn start(
    command: &str,
    common: &CommonArgs,
    animate: bool,
    config: impl FnOnce() -> Result<RunConfig, Failure>,
) -> Result<(), Failure> {
    match &common.resume {
        Some(dir) => resume(command, common, dir, animate),
        None => run_config(command, config()?, common, None, animate),
    }
}

/// `--resume DIR`: read the checkpoint, take the run's configuration from it, apply the flags a
/// resumed run accepts (--epochs, --steps, --checkpoint-every, --device) and continue. Nothing
/// in DIR changes unless the run starts.
pub fn resume(command: &str, common: &CommonArgs, dir: &Path, animate: bool) -> Result<(), Failure> {
    let (config, resumed) = resumed_config(common, dir, true)?;
    run_config(command, config, common, Some(resumed), animate)
}

/// Train a linear configuration, from the start into a new run folder, or resumed into its own.
pub fn run_config(
    command: &str,
    config: RunConfig,
    common: &CommonArgs,
    resumed: Option<Resumable>,
    animate: bool,
) -> Result<(), Failure> {
    if config.model.is_image_model() {
        if animate {
            return Err(Failure::input(format!(
                "--animate draws the linear model's line: the {} has none",
                config.model.name()
            )));
        }
        return crate::cnn::run_config(command, config, common, resumed);
    }
    let experiment = Experiment::prepare_with(config, &common.access()?).map_err(Failure::input)?;
    if let Some(table) = TableRegression::of(&experiment) {
        return crate::fit::train_and_report(command, table, resumed, common);
    }
    run_lesson(command, &experiment, common, resumed, animate)
}

/// The lesson on its points: the notebook's first lines, training, the fit beside the closed
/// form, and what the run leaves (the model, the figures and the animation, the summary).
fn run_lesson(
    command: &str,
    experiment: &Experiment,
    common: &CommonArgs,
    resumed: Option<Resumable>,
    animate: bool,
) -> Result<(), Failure> {
    // The lesson compares with the closed form: data that has none is refused before the run
    // folder exists (`fit` reports a table's degenerate columns itself).
    let mut lesson = Lesson::new(experiment, animate).map_err(Failure::input)?;
    let initial_loss = lesson.initial_loss().map_err(Failure::internal)?;
    say_lines(common.quiet, [text::heading(command, experiment)]);
    say_lines(common.quiet, text::lesson_setup(&lesson, initial_loss));
    // The folder is created once the first lines are out: a run whose output is lost already
    // (`> /dev/full`) writes nothing.
    let mut run = start_run(common, command, &experiment.config, &experiment.plan(), resumed)?;
    let mut lines = linear_training(experiment, common.quiet);
    let epochs = experiment.plan().length.epochs();
    let done = execute(&mut run, &mut lesson, &mut lines, common, epochs)?;
    say_lines(false, text::lesson_result(&lesson, &done.outcome));
    say_lines(false, [text::linear_trained(experiment, &done.outcome.trained)]);
    say_outputs(&run, &done.files, &done.summary, common.json);
    Ok(())
}
