//! `descent cnn`: the convolutional network on handwritten digits, through the same training
//! engine, optimizer configurations and devices as the lesson.

use descent::config::RunConfig;
use descent::experiment::ImageExperiment;
use descent::flags::CommonArgs;
use descent::observe::Observer;
use descent::report::MetricsRow;

use crate::Failure;
use crate::session::{execute, say_early_stop, say_lines, say_outputs, start_run};
use descent::run::Resumable;
use descent::task::classify::ImageClassification;
use descent::task::text;

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
    let decoding = crate::progress::Decoding::new(common.quiet);
    let experiment = ImageExperiment::prepare_observed(config, &common.access()?, &|done, total| {
        decoding.tell(done, total)
    })
    .map_err(Failure::input)?;
    let mut task = ImageClassification::of(&experiment).map_err(Failure::input)?;
    let (plan, quiet) = (experiment.plan(), common.quiet);
    say_lines(quiet, [text::heading(command, &experiment)]);
    say_lines(quiet, text::image_setup(&task));
    crate::session::say_summary(common, experiment.summary())?;
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
    say_lines(quiet, text::confusion_matrix(&outcome.evaluation, &names));
    say_lines(quiet, text::most_confused(&outcome.evaluation, &names));
    let worst = match &experiment.folder {
        Some(folder) => text::worst_pictures(&outcome.worst, &names, &folder.files),
        None => text::worst_predictions(&outcome.worst, &names),
    };
    say_lines(quiet, worst);
    say_early_stop(outcome.early_stop.as_ref(), outcome.trained.epochs);
    say_lines(false, [text::classifier_result(&experiment, outcome)]);
    say_lines(false, text::tta_result(&experiment, outcome));
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
