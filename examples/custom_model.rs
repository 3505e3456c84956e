//! Add your own model: the MLP of `crates/descent/src/model/mlp.rs`, trained from Rust.
//!
//!     cargo run --release --example custom_model
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
//! same from Rust: the library's experiment, engine and validation, with the model in hand, and
//! then the whole run (its folder, checkpoint, model, figures, metrics and summary) through
//! `Run::execute`, with a failure (a divergence, Ctrl-C, a full disk) told as the command line
//! tells it.

use std::ops::ControlFlow;
use std::path::PathBuf;

use descent::config::{ModelConfig, RunConfig};
use descent::experiment::{EpochResult, ImageExperiment};
use descent::metrics::Evaluation;
use descent::model::MlpConfig;
use descent::run::Run;
use descent::task::classify::Classification;
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

/// Train the MLP as `descent train --config examples/mlp.toml` does, from Rust: into a run
/// folder (`runs/custom_model-<time>`) with its checkpoint, model, figures, metrics and summary,
/// through `Run::execute`, the call the command line makes. Ctrl-C is not connected here: a
/// program that wants it calls `interrupter.stop()` from its handler. Returns the folder.
#[allow(dead_code)] // the integration tests use `train_mlp` alone
pub fn train_mlp_into_a_run_folder(epochs: usize) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let settings = MlpConfig { hidden: 128 };
    let mut config = RunConfig::cnn();
    config.model = ModelConfig::Mlp(settings.clone());
    config.training.epochs = Some(epochs);
    let experiment = ImageExperiment::prepare(config)?;
    let mut task = Classification::new(&experiment, experiment.network(&settings));
    let mut run = Run::create(None, "custom_model", &experiment.config)?;
    let done = run.execute(&mut task, Vec::new(), &Interrupter::new()).map_err(|failure| failure.message)?;
    println!(
        "error_rate {:.4}; wrote {}",
        done.outcome.classifier.evaluation.error_rate,
        done.files.join(", ")
    );
    Ok(run.folder().path().to_path_buf())
}

#[allow(dead_code)] // the integration tests include this file for `train_mlp` alone
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let history = train_mlp(10)?;
    if let Some(last) = history.last() {
        println!("MLP on the digits: error_rate {:.4} after {} epochs", last.error_rate, history.len());
    }
    let folder = train_mlp_into_a_run_folder(10)?;
    println!("the same with a run folder: {}", folder.display());
    println!("and from the command line: descent train --config examples/mlp.toml");
    Ok(())
}
