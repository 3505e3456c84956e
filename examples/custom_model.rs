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
//! same from Rust: the library's experiment, engine and validation, with the model in hand.

use std::ops::ControlFlow;

use descent::config::{ModelConfig, RunConfig};
use descent::experiment::{EpochResult, ImageExperiment};
use descent::metrics::Evaluation;
use descent::model::MlpConfig;

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

#[allow(dead_code)] // the integration tests include this file for `train_mlp` alone
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let history = train_mlp(10)?;
    if let Some(last) = history.last() {
        println!("MLP on the digits: error_rate {:.4} after {} epochs", last.error_rate, history.len());
    }
    println!("the same from the command line: descent train --config examples/mlp.toml");
    Ok(())
}
