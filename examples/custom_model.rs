//! Add your own model: the MLP of `crates/descent/src/model/mlp.rs`, trained from Rust.
//!
//!     cargo run --release --example custom_model [-- --epochs 5 --lr 3e-3 --out runs/mlp]
//!
//! A model is one file and one registration line:
//! - the file (`crates/descent/src/model/mlp.rs`) holds a Burn module with its loss on a batch
//!   (`descent::train::Objective`), its class scores (`descent::metrics::Classifier`), and its
//!   settings with `descent::model::ImageModel` (its name, how to build it, its size);
//! - the line names the settings in the model registry (`models!` in
//!   `crates/descent/src/config.rs`): `Mlp(crate::model::MlpConfig),`.
//!
//! From then on a configuration with `[model] name = "mlp"` (`examples/mlp.toml`) trains with
//! `descent train --config examples/mlp.toml`, with the run folder, checkpoints and resume,
//! Ctrl-C, lr-find, predict, export and bench, as the built-in CNN does. This example does the
//! same from Rust: `train_mlp` drives the library's experiment, engine and validation with the
//! model in hand; `main` takes `descent cnn`'s flags (`descent::flags::CnnArgs`) and runs the
//! whole run (its folder, checkpoint, model, figures, metrics and summary) through
//! `Run::execute`, with a failure (a divergence, a full disk, bad input) told and ended with the
//! command line's exit code.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use descent::config::{ModelConfig, RunConfig};
use descent::experiment::{EpochResult, ImageExperiment};
use descent::flags::CnnArgs;
use descent::metrics::Evaluation;
use descent::model::MlpConfig;
use descent::run::Run;
use descent::task::classify::ImageClassification;
use descent::train::Interrupter;

/// Train the MLP on the digits for `epochs` epochs (the CNN's data, split, optimizer and seed)
/// and return its validation results after each epoch.
pub fn train_mlp(epochs: usize) -> Result<Vec<Evaluation>, Box<dyn std::error::Error>> {
    let settings = MlpConfig { hidden: 128 };
    let mut config = RunConfig::cnn();
    config.model = ModelConfig::Mlp(settings.clone());
    config.training.epochs = Some(epochs);
    let experiment = ImageExperiment::prepare(config)?;
    let model = experiment.network(&settings);
    let mut history = Vec::new();
    experiment.train(model, &mut |epoch: &EpochResult<'_>| {
        let valid = epoch.evaluation;
        println!("epoch {}  valid_loss {:.4}  error_rate {:.4}", epoch.epoch, valid.loss, valid.error_rate);
        history.push(valid.clone());
        ControlFlow::Continue(())
    })?;
    Ok(history)
}

/// The flags of `descent cnn` (`--epochs`, `--lr`, `--optim`, `--seed`, `--out`, `--resume`,
/// `--device`, ...), from the library: the same flags, defaults, checks and `--help`.
#[derive(clap::Parser)]
#[command(about = "Train the MLP of crates/descent/src/model/mlp.rs on the digits, into a run folder")]
struct Cli {
    #[command(flatten)]
    flags: CnnArgs,
}

/// Why a run did not finish: the message, and the exit code the command line would give.
type Failed = (String, u8);

/// Train the MLP as `descent train --config examples/mlp.toml` does, from Rust: the
/// configuration from `flags` (the cnn's defaults with the MLP as the model, unless `--config`
/// names another), a new run folder or `--resume`'s, and the whole run (checkpoint, model,
/// figures, metrics, summary) through `Run::execute`, the call the command line makes. Ctrl-C is
/// not connected here: a program that wants it calls `interrupter.stop()` from its handler.
/// Returns the folder.
#[allow(dead_code)] // the integration tests use `train_mlp` alone
fn train_mlp_into_a_run_folder(flags: &CnnArgs) -> Result<PathBuf, Failed> {
    let input = |message: String| (message, 2);
    let (config, resumed) = match &flags.common.resume {
        Some(dir) => flags.common.resumed(dir, true).map(|(config, run)| (config, Some(run))),
        None => flags.config().map(|config| (config, None)),
    }
    .map_err(|error| input(error.to_string()))?;
    let mut config = config;
    if config.model == ModelConfig::Cnn(Default::default()) {
        config.model = ModelConfig::Mlp(MlpConfig { hidden: 128 });
    }
    let access = flags.common.access().map_err(|error| input(error.to_string()))?;
    let experiment =
        ImageExperiment::prepare_with(config, &access).map_err(|error| input(error.to_string()))?;
    let mut task = ImageClassification::of(&experiment).map_err(|error| input(error.to_string()))?;
    let mut run = match resumed {
        Some(resumed) => Run::resume(resumed, &experiment.plan(), "custom_model"),
        None => Run::create(flags.common.out.as_deref(), "custom_model", &experiment.config),
    }
    .map_err(|error| input(error.to_string()))?;
    let done = run
        .execute(&mut task, Vec::new(), &Interrupter::new())
        .map_err(|failure| (failure.message, failure.kind.exit_code()))?;
    println!("{}", descent::task::text::classifier_result(&experiment, &done.outcome));
    println!("wrote {}", done.files.join(", "));
    Ok(run.folder().path().to_path_buf())
}

#[allow(dead_code)] // the integration tests include this file for `train_mlp` alone
fn main() -> ExitCode {
    let cli = Cli::parse();
    match train_mlp_into_a_run_folder(&cli.flags) {
        Ok(folder) => {
            println!("the run folder: {}", folder.display());
            println!("the same from the command line: descent train --config examples/mlp.toml");
            ExitCode::SUCCESS
        }
        Err((message, code)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}
