//! The lesson series' next step, `learn = create_cnn(data, ..., metrics=error_rate);
//! learn.fit(...)`, with descent: a small CNN on the UCI digits, on the same training engine as
//! the lesson.
//!
//!     cargo run --release --example cnn
//!
//! `descent cnn` does the same with every option (optimizers, schedules, devices, MNIST) and a
//! confusion matrix at the end.

use std::ops::ControlFlow;

use burn::module::Module;
use descent::config::RunConfig;
use descent::experiment::{EpochResult, ImageExperiment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The data: 1,797 8x8 digits, 20% held out for validation with seed 42 (fastai's
    // RandomSplitter(valid_pct=0.2, seed=42)). The model: two conv blocks and a linear head.
    // The optimizer: Adam at 1e-3, batches of 64, 10 epochs.
    let experiment = ImageExperiment::prepare(RunConfig::cnn())?;
    let model = experiment.model()?;
    println!(
        "{} parameters, {} training and {} validation images",
        model.num_params(),
        experiment.train.len(),
        experiment.valid.len()
    );

    // After every epoch the experiment measures the model on the validation images, with a copy
    // off the autodiff device (`valid()`: dropout off, batch norm on its running statistics).
    let result = experiment.train(model, &mut |epoch: &EpochResult<'_>| {
        let valid = epoch.evaluation;
        println!(
            "epoch {:>2}  valid_loss {:.4}  error_rate {:.4}",
            epoch.epoch, valid.loss, valid.error_rate
        );
        ControlFlow::Continue(())
    })?;
    let trained = result.trained;
    println!("trained {} steps in {:.2} s", trained.steps, trained.seconds);
    Ok(())
}
