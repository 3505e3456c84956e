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
use descent::experiment::ImageExperiment;
use descent::metrics::evaluate;
use descent::model::Cnn;
use descent::train::{EpochEnd, train_with_epochs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The data: 1,797 8x8 digits, 20% held out for validation with seed 42 (fastai's
    // RandomSplitter(valid_pct=0.2, seed=42)). The model: two conv blocks and a linear head.
    // The optimizer: Adam at 1e-3, batches of 64, 10 epochs.
    let experiment = ImageExperiment::prepare(RunConfig::cnn())?;
    let model = experiment.model();
    println!(
        "{} parameters, {} training and {} validation images",
        model.num_params(),
        experiment.train.len(),
        experiment.valid.len()
    );

    let (mut optimizer, mut schedule) = experiment.optimization(experiment.total_steps())?;
    // After every epoch, measure on the validation images with a copy of the model that is off
    // the autodiff device (`valid()`: dropout off, batch norm on its running statistics).
    let mut on_epoch = |end: &EpochEnd<'_, Cnn>| {
        let valid = end.model.valid();
        match evaluate(&valid, &experiment.valid_set, &experiment.valid, &experiment.device.device) {
            Ok(result) => {
                println!(
                    "epoch {:>2}  valid_loss {:.4}  error_rate {:.4}",
                    end.epoch, result.loss, result.error_rate
                );
                ControlFlow::Continue(())
            }
            Err(error) => {
                eprintln!("validation failed: {error}");
                ControlFlow::Break(())
            }
        }
    };
    let trained = train_with_epochs(
        model,
        &mut optimizer,
        &mut schedule,
        &experiment.batches(),
        &experiment.plan(),
        &mut |_| ControlFlow::Continue(()),
        &mut on_epoch,
    )?;
    println!("trained {} steps in {:.2} s", trained.steps, trained.seconds);
    Ok(())
}
