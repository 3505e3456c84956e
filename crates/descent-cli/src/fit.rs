//! `descent fit`: linear regression on your own CSV table, through the same trainer as the lesson
//! (the linear model with an intercept, any optimizer and schedule, full or mini-batches, any
//! device), reported on the original scale beside the closed-form least-squares solution.

use descent::flags::CommonArgs;

use crate::Failure;
use crate::session::{execute, linear_training, say_early_stop, say_lines, say_outputs, start_run};
use descent::run::Resumable;
use descent::task::table::TableRegression;
use descent::task::text;

/// Train a prepared regression (CSV data) and report it beside the closed form: the linear
/// runner hands every CSV configuration here, from `descent fit`, `descent train --config` or
/// `--resume`.
pub fn train_and_report(
    command: &str,
    mut table: TableRegression<'_>,
    resumed: Option<Resumable>,
    common: &CommonArgs,
) -> Result<(), Failure> {
    let (experiment, regression) = (table.experiment, table.regression);
    say_lines(common.quiet, [text::heading(command, experiment)]);
    if let Some(skipped) = regression.skipped.describe() {
        err!("warning: {}: {skipped}", regression.path.display());
    }
    say_lines(common.quiet, text::table_setup(regression, experiment.config.seed));
    crate::session::say_summary(common, experiment.summary())?;
    // The folder is created once the first lines are out: a run whose output is lost already
    // (`> /dev/full`) writes nothing.
    let mut run = start_run(common, command, &experiment.config, &experiment.plan(), resumed)?;
    let mut lines = linear_training(experiment, common.quiet);
    let epochs = experiment.plan().length.epochs();
    let done = execute(&mut run, &mut table, &mut lines, common, epochs)?;
    let outcome = &done.outcome;
    say_lines(false, text::fit_comparison(regression, &outcome.fit));
    say_early_stop(outcome.early_stop.as_ref(), outcome.trained.epochs);
    say_lines(false, [text::linear_trained(experiment, &outcome.trained)]);
    say_outputs(&run, &done.files, &done.summary, common.json);
    Ok(())
}
