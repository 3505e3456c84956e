//! Add your own model in one file: a 2-layer MLP on the digits, trained by descent's engine with
//! the same batches, optimizer configurations, schedules and devices as the built-in CNN.
//!
//!     cargo run --release --example custom_model
//!
//! A model plugs in by being a Burn module that implements two traits:
//! - `descent::train::Objective<Batch>`: the loss to minimise on one batch;
//! - `descent::metrics::Classifier` (for classifiers): class scores, for the validation metrics.

use std::ops::ControlFlow;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use descent::config::RunConfig;
use descent::data::ImageBatch;
use descent::experiment::{EpochResult, ImageExperiment};
use descent::metrics::{Classifier, Evaluation};

/// Two linear layers with a ReLU between them, on the flattened 8x8 image.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Linear,
    activation: Relu,
    output: Linear,
}

impl Mlp {
    /// An MLP for images of `pixels` pixels with `hidden` hidden units, on `device`.
    pub fn new(pixels: usize, hidden: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(pixels, hidden).init(device),
            activation: Relu::new(),
            output: LinearConfig::new(hidden, 10).init(device),
        }
    }
}

impl Classifier for Mlp {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        let x: Tensor<2> = images.flatten(1, 3);
        self.output.forward(self.activation.forward(self.hidden.forward(x)))
    }
}

impl descent::train::Objective<ImageBatch> for Mlp {
    fn loss(&self, batch: ImageBatch) -> Tensor<1> {
        let logits = self.logits(batch.images);
        CrossEntropyLossConfig::new().init(&logits.device()).forward(logits, batch.labels)
    }
}

/// Train the MLP on the digits for `epochs` epochs (the CNN's data, split, optimizer and seed)
/// and return its validation results after each epoch.
pub fn train_mlp(epochs: usize) -> Result<Vec<Evaluation>, Box<dyn std::error::Error>> {
    let mut config = RunConfig::cnn();
    config.training.epochs = Some(epochs);
    let experiment = ImageExperiment::prepare(config)?;
    let side = experiment.train_set.side();
    let model = Mlp::new(side * side, 128, &experiment.device.device.clone().autodiff());
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
    Ok(())
}
