//! `descent sweep --config sweep.toml`: the trials the library plans ([`descent::sweep`]), each
//! run as `descent train` in a process of its own (so several run side by side, each with its
//! share of the cores, and a diverging one ends only itself), recorded after each one ends.
//! Ctrl-C stops the running trials at their next update (each writes its checkpoint) and the
//! sweep with them; the same command resumes it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use clap::Args;
use descent::flags::values::positive_count;
use descent::sweep::{Record, Status, Sweep, Trial, TrialResult};
use descent::train::CHECKPOINT_FILE;

use crate::Failure;

/// `descent sweep`'s flags.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The sweep file: `base` (a run configuration, relative to the sweep file), optionally
    /// `metric`, and the values to try as `[grid]` or `[random]` (trials, seed, and per key a
    /// list, { log_uniform = [low, high] } or { uniform = [low, high] }).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// The sweep's folder: trial-001/ ... (run folders), sweep.csv, sweep.png, best.toml. Give
    /// the same folder again to resume an interrupted sweep [default: runs/sweep-<UTC time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Trials run at a time, each with an equal share of the cores.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_count)]
    pub parallel: usize,

    /// Print only the result: no line per trial.
    #[arg(long, short)]
    pub quiet: bool,

    /// Also print a one-line JSON summary as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// How a trial process ended, before it is recorded.
enum Ended {
    Recorded(TrialResult),
    Interrupted,
}

pub fn run(args: &SweepArgs) -> Result<(), Failure> {
    let sweep = Sweep::load(&args.config).map_err(Failure::input)?;
    let dir = match &args.out {
        Some(dir) => dir.clone(),
        None => Path::new("runs")
            .join(format!("sweep-{}", descent::report::utc_stamp(std::time::SystemTime::now()))),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Failure::input(format!("--out {}: {e}", dir.display())))?;
    let record = Record { sweep: &sweep, dir: &dir };
    let mut results = record.read().map_err(Failure::input)?;
    let done = results.len();
    let pending: Vec<&Trial> =
        sweep.trials.iter().filter(|trial| !results.iter().any(|r| r.trial == trial.number)).collect();
    say!(
        args.quiet,
        "sweep: {} trials of {}, {} at a time, in {}{}",
        sweep.trials.len(),
        sweep.keys.join(", "),
        args.parallel,
        dir.display(),
        if done > 0 { format!("; {done} already ended, resuming") } else { String::new() }
    );
    let interrupter = crate::interrupt::install();
    let (sender, receiver) = mpsc::channel();
    let mut queue = pending.into_iter();
    let (mut running, mut interrupted) = (0, false);
    loop {
        while running < args.parallel && !interrupter.should_stop() {
            let Some(trial) = queue.next() else { break };
            start(trial, &dir, args.parallel, sender.clone())?;
            running += 1;
        }
        if running == 0 {
            break;
        }
        let (trial, ended) = receiver.recv().map_err(Failure::internal)?;
        running -= 1;
        match ended {
            Ended::Interrupted => interrupted = true,
            Ended::Recorded(result) => {
                say_trial(args.quiet, &sweep, &trial, &result);
                results.push(result);
                results.sort_by_key(|r| r.trial);
                record.write(&results).map_err(Failure::input)?;
            }
        }
    }
    if interrupted || interrupter.should_stop() {
        return Err(Failure::interrupted(format!(
            "sweep interrupted with {} of {} trials ended (the running ones wrote checkpoints): resume it with `descent sweep --config {} --out {}`",
            results.len(),
            sweep.trials.len(),
            args.config.display(),
            dir.display()
        )));
    }
    record.write(&results).map_err(Failure::input)?;
    say_best(args, &sweep, &results, &dir);
    Ok(())
}

/// Start `trial` as `descent train` in its own process, telling `done` when it ends: from its
/// configuration, resumed from its checkpoint, or (finished before the record was written) read
/// from its summary.
fn start(
    trial: &Trial,
    dir: &Path,
    parallel: usize,
    done: mpsc::Sender<(Trial, Ended)>,
) -> Result<(), Failure> {
    let (folder, trial) = (trial.folder(dir), trial.clone());
    if let Some(Ok(result)) = TrialResult::read_finished(&trial, dir) {
        let _ = done.send((trial, Ended::Recorded(result)));
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(Failure::internal)?;
    let mut command = Command::new(exe);
    if folder.join(CHECKPOINT_FILE).exists() {
        command.arg("train").arg("--resume").arg(&folder);
    } else {
        let file = dir.join(format!("{}.toml", trial.folder_name()));
        descent::report::write_atomic(&file, trial.config.to_toml().as_bytes()).map_err(Failure::input)?;
        command.arg("train").arg("--config").arg(&file).arg("--out").arg(&folder);
    }
    command.arg("-q").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    if parallel > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        command.env("RAYON_NUM_THREADS", (cores / parallel).max(1).to_string());
    }
    let child = command
        .spawn()
        .map_err(|e| Failure::internal(format!("cannot start trial {}: {e}", trial.number)))?;
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let ended = match child.wait_with_output() {
            Ok(output) => ended(&trial, &dir, &output),
            Err(error) => {
                Ended::Recorded(TrialResult::ended(&trial, Status::Failed, Some(error.to_string())))
            }
        };
        let _ = done.send((trial, ended));
    });
    Ok(())
}

/// What a trial's exit says: finished (its run folder's summary), diverged (exit 3),
/// interrupted (exit 130), or failed (anything else, with its error line).
fn ended(trial: &Trial, dir: &Path, output: &Output) -> Ended {
    let last_error = || {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr.lines().rev().find(|line| line.starts_with("error: ")).unwrap_or_default();
        Some(line.trim_start_matches("error: ").to_string())
    };
    match output.status.code() {
        Some(0) => Ended::Recorded(match TrialResult::read_finished(trial, dir) {
            Some(Ok(result)) => result,
            Some(Err(error)) => TrialResult::ended(
                trial,
                Status::Failed,
                Some(format!("its summary could not be read: {error}")),
            ),
            None => {
                TrialResult::ended(trial, Status::Failed, Some("it ended without writing its summary".into()))
            }
        }),
        Some(3) => Ended::Recorded(TrialResult::ended(trial, Status::Diverged, last_error())),
        Some(130) | None => Ended::Interrupted,
        Some(_) => Ended::Recorded(TrialResult::ended(trial, Status::Failed, last_error())),
    }
}

/// A line per ended trial.
fn say_trial(quiet: bool, sweep: &Sweep, trial: &Trial, result: &TrialResult) {
    let (metric, _) = sweep.ranking(std::slice::from_ref(result));
    let outcome = match (result.status, result.figures.get(&metric)) {
        (Status::Finished, Some(value)) => format!("{metric} {value:.6}"),
        (Status::Finished, None) => "finished".into(),
        (status, _) => format!("{status:?}: {}", result.message.clone().unwrap_or_default()).to_lowercase(),
    };
    say!(quiet, "trial {}/{} ({}): {outcome}", trial.number, sweep.trials.len(), trial.describe());
}

/// The best trial, and with `--json` the sweep's summary line.
fn say_best(args: &SweepArgs, sweep: &Sweep, results: &[TrialResult], dir: &Path) {
    let (metric, larger) = sweep.ranking(results);
    let count = |status: Status| results.iter().filter(|r| r.status == status).count();
    let best = sweep.best(results);
    match best {
        Some(best) => out!(
            "best: trial {} ({}), {metric} {:.6} ({} better); its configuration is {}",
            best.trial,
            sweep.trials[best.trial - 1].describe(),
            best.figures[&metric],
            if larger { "larger is" } else { "smaller is" },
            dir.join("best.toml").display()
        ),
        None => out!("no trial finished with a {metric}: see {}", dir.join("sweep.csv").display()),
    }
    if args.json {
        let summary = serde_json::json!({
            "trials": results.len(),
            "finished": count(Status::Finished),
            "diverged": count(Status::Diverged),
            "failed": count(Status::Failed),
            "metric": metric,
            "best": best,
            "sweep_folder": dir.display().to_string(),
        });
        out!("{summary}");
    }
}
