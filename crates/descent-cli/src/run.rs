//! The training commands: `descent lesson2`, `descent train`, `descent config show` and
//! `descent summary` share one
//! set of flags (`descent::flags::RunArgs`) that builds a [`RunConfig`]; `lesson2` and `train`
//! run it; every training command starts here (`start`).

use std::path::Path;

use descent::config::RunConfig;
use descent::experiment::{Experiment, ImageExperiment};
use descent::flags::{CommonArgs, FlagError, RunArgs};
use descent::run::Resumable;
use descent::task::lesson::Lesson;
use descent::task::table::TableRegression;

use crate::Failure;
use crate::session::{execute, linear_training, say_lines, say_outputs, say_summary, start_run};
use descent::task::text;

/// `descent config show`: print the effective configuration as TOML.
pub fn show_config(args: &RunArgs) -> Result<(), Failure> {
    let config = match &args.common.resume {
        Some(dir) => args.common.resumed(dir, false)?.0,
        None => args.config()?,
    };
    out!("# descent run configuration: run it with `descent train --config FILE`");
    out_text!("{}", config.to_toml());
    Ok(())
}

/// `descent summary`: the configured model layer by layer for the run's data (`--config FILE`,
/// a run's `--resume DIR`, or the lesson's flags), as a table or, with `--json`, one JSON line.
pub fn summary(args: &RunArgs) -> Result<(), Failure> {
    let config = match &args.common.resume {
        Some(dir) => args.common.resumed(dir, false)?.0,
        None => args.config()?,
    };
    let summary = if config.model.is_image_model() {
        ImageExperiment::prepare_with(config, &args.common.access()?).and_then(|run| run.summary())
    } else {
        Experiment::prepare_with(config, &args.common.access()?).and_then(|run| run.summary())
    }
    .map_err(Failure::input)?;
    match args.common.json {
        true => out!("{}", serde_json::to_string(&summary).map_err(Failure::internal)?),
        false => out_text!("{}", summary.table()),
    }
    Ok(())
}

/// A training command (`lesson2`, `train`, `fit`, `cnn`): continue `--resume DIR`, or run the
/// configuration that `config` builds from the command's flags.
pub fn start(
    command: &str,
    common: &CommonArgs,
    animate: bool,
    config: impl FnOnce() -> Result<RunConfig, FlagError>,
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
    let (config, resumed) = common.resumed(dir, true)?;
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
    say_summary(common, experiment.summary())?;
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
