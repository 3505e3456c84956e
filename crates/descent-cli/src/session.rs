//! What every training command shares: the run folder (a new one, or a resumed run's own),
//! training through `Run::execute` with progress and Ctrl-C, turning failures into exits with
//! their outputs written, and the lines every run prints. The flags are `descent::flags`.

use descent::config::RunConfig;
use descent::experiment::{EarlyStopped, Experiment, RunError};
use descent::flags::CommonArgs;
use descent::observe::Observer;
use descent::optim::ScheduleConfig;

use descent::run::{Executed, FailureKind, Resumable, Run, RunFailure, Task};
use descent::train::{LossRecord, Plan, Report};

use crate::Failure;
use crate::progress::Progress;

/// The run a command trains: a new one (`--out`, with the configuration written first), or the
/// resumed run, once it is clear that `plan` has steps left.
pub fn start_run(
    common: &CommonArgs,
    command: &str,
    config: &RunConfig,
    plan: &Plan,
    resumed: Option<Resumable>,
) -> Result<Run, Failure> {
    match resumed {
        Some(resumed) => {
            // Output already lost (`> /dev/full`): end before the folder changes.
            crate::output::check()?;
            Run::resume(resumed, plan, command).map(|run| run.with_svg(common.svg)).map_err(Failure::input)
        }
        None => new_run(common, command, config),
    }
}

/// Create the run folder and write the effective configuration into it, before training.
pub fn new_run(args: &CommonArgs, command: &str, config: &RunConfig) -> Result<Run, Failure> {
    // Output already lost (`> /dev/full`): end before the folder is created.
    crate::output::check()?;
    Run::create(args.out.as_deref(), command, config)
        .map(|run| run.with_svg(args.svg))
        .map_err(Failure::input)
}

/// Say where a resumed run continues from.
pub fn say_resuming(quiet: bool, run: &Run) {
    if let Some(checkpoint) = run.checkpoint() {
        let state = &checkpoint.state;
        let dir = run.folder().path().display();
        say!(quiet, "resuming {dir} after epoch {} (step {})", state.epoch, state.step);
    }
}

/// Say how a linear experiment trains, and the observer that prints its loss at the
/// configured cadence.
pub fn linear_training(experiment: &Experiment, quiet: bool) -> LossLines {
    say!(quiet, "{}", descent::task::text::linear_training(experiment));
    LossLines {
        quiet,
        report: experiment.plan().report,
        show_lr: !matches!(experiment.config.schedule, ScheduleConfig::Constant),
    }
}

/// Print `lines` unless `quiet`.
/// With `--verbose`, the model's summary before training starts.
pub fn say_summary(
    common: &CommonArgs,
    summary: Result<descent::model::ModelSummary, RunError>,
) -> Result<(), Failure> {
    if common.verbose {
        out_text!("{}", summary.map_err(Failure::input)?.table());
    }
    Ok(())
}

pub fn say_lines(quiet: bool, lines: impl IntoIterator<Item = String>) {
    lines.into_iter().for_each(|line| say!(quiet, "{line}"));
}

/// Train `task` as `run` (see [`Run::execute`]): `lines` print what the command shows during
/// training, a progress bar runs on a terminal, Ctrl-C and a failing standard output stop the
/// run with a checkpoint. A failure becomes its exit, with the run's outputs so far written.
pub fn execute<T: Task>(
    run: &mut Run,
    task: &mut T,
    lines: &mut dyn Observer,
    common: &CommonArgs,
    epochs: Option<usize>,
) -> Result<Executed<T::Outcome>, Failure> {
    say_resuming(common.quiet, run);
    let mut progress = Progress::new(common.quiet, epochs);
    let interrupter = crate::interrupt::install();
    let executed = run.execute(task, vec![lines, &mut progress], &interrupter);
    progress.clear();
    executed.map_err(run_failed)
}

/// The linear model's line per reported loss: the step (and epoch), the loss, and the learning
/// rate when a schedule changes it.
pub struct LossLines {
    quiet: bool,
    report: Report,
    show_lr: bool,
}

impl Observer for LossLines {
    fn loss(&mut self, record: &LossRecord) {
        let lr = if self.show_lr { format!("  lr {:.3e}", record.lr) } else { String::new() };
        match self.report {
            Report::EverySteps(_) => {
                say!(self.quiet, "step {:>5}  loss {:.6}{lr}", record.step, record.loss)
            }
            Report::EveryEpochs(_) => say!(
                self.quiet,
                "epoch {:>4}  step {:>6}  loss {:.6}{lr}",
                record.epoch,
                record.step,
                record.loss
            ),
        }
    }
}

/// Where early stopping ended: the best epoch (the saved model's), and whether it stopped the
/// run before its plan's end.
pub fn say_early_stop(stop: Option<&EarlyStopped>, trained_epochs: usize) {
    if let Some(stop) = stop {
        out!("{}", descent::task::text::early_stop(stop, trained_epochs));
    }
}

/// A training failure as an exit, of the kind the library gives it.
pub fn train_failure(error: RunError) -> Failure {
    Failure { exit: FailureKind::of(&error), message: error.to_string() }
}

/// A failed run as an exit (its outputs up to the failure are written, see [`Run::failed`]).
/// When standard output failed, the interruption that followed is said as such (exit 2).
pub fn run_failed(failure: RunFailure) -> Failure {
    for warning in &failure.warnings {
        err!("warning: {warning}");
    }
    if let (FailureKind::Interrupted, Some(output)) = (failure.kind, crate::output::failed()) {
        return Failure::input(format!(
            "cannot write to standard output ({output}): training stopped: {}",
            failure.message
        ));
    }
    Failure { exit: failure.kind, message: failure.message }
}

/// Say where the outputs are, and print the summary as the last line of stdout with `--json`.
pub fn say_outputs(run: &Run, files: &[String], summary: &serde_json::Value, json: bool) {
    out!("outputs: {} ({})", run.folder().path().display(), files.join(", "));
    if json {
        out!("{summary}");
    }
}
