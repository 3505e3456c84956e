//! `descent lesson2`: the fast.ai lesson-2 notebook as a command.

use std::path::PathBuf;
use std::sync::Arc;

use burn::optim::SgdConfig;
use burn::prelude::*;
use clap::Args;
use descent::data::{FullBatch, LessonData, MiniBatches, RegressionBatch, Table, read_points};
use descent::device::{self, SelectedDevice};
use descent::model::LinearModel;
use descent::ols::least_squares;
use descent::train::{BatchSource, Length, LossRecord, Objective, Plan, Report, train};
use serde_json::json;

use crate::Failure;
use crate::args::{non_negative_finite, pair, positive_count, positive_finite};

/// Fit y = x·a by gradient descent on the lesson's data (or on your points), print the loss as
/// the notebook does, and compare the fit with the closed-form least-squares solution.
///
/// With no --batch-size every step uses all the data (full-batch gradient descent, the
/// notebook) and the loss is printed every --print-every steps, computed before that step's
/// update. With --batch-size the rows go through Burn's DataLoader in shuffled mini-batches
/// (stochastic gradient descent) and the mean loss of each --print-every-th epoch is printed.
#[derive(Args, Debug)]
pub struct Lesson2Args {
    /// Number of generated points.
    #[arg(long, default_value = "100", value_parser = positive_count, conflicts_with = "data")]
    pub n: usize,

    /// Seed of the data generator and of the mini-batch shuffle.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Standard deviation of the noise added to y.
    #[arg(long, default_value = "0.25", value_parser = non_negative_finite, allow_negative_numbers = true,
          conflicts_with = "data")]
    pub noise: f64,

    /// True slope and intercept of the generated data.
    #[arg(long, value_name = "SLOPE,INTERCEPT", default_value = "3,2", value_parser = pair,
          allow_hyphen_values = true, conflicts_with = "data")]
    pub true_a: [f64; 2],

    /// Initial guess of the parameters a (slope, intercept).
    #[arg(long, value_name = "SLOPE,INTERCEPT", default_value = "-1,1", value_parser = pair,
          allow_hyphen_values = true)]
    pub init: [f64; 2],

    /// Learning rate: the gradient is multiplied by it before being subtracted from a.
    #[arg(long, default_value = "0.1", value_parser = positive_finite, allow_negative_numbers = true)]
    pub lr: f64,

    /// Number of updates [default: 100 with full batches; with --batch-size, --epochs decides].
    #[arg(long, value_parser = positive_count, conflicts_with = "epochs")]
    pub steps: Option<usize>,

    /// Rows per mini-batch; without it every step uses all the rows.
    #[arg(long, value_parser = positive_count)]
    pub batch_size: Option<usize>,

    /// Passes over the data [default: 10 with --batch-size; a full-batch epoch is one step].
    #[arg(long, value_parser = positive_count)]
    pub epochs: Option<usize>,

    /// Print the loss every this many steps (full batch) or epochs (mini-batches) [default: 10
    /// steps with full batches, 1 epoch with mini-batches].
    #[arg(long, value_parser = positive_count)]
    pub print_every: Option<usize>,

    /// Read the points from a CSV file with a header and the columns x,y instead of generating
    /// them; the column of ones is added as in the lesson.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,

    /// Device to train on: auto, a backend (flex, ndarray, wgpu, vulkan, metal, cuda, rocm), or a
    /// GPU adapter such as wgpu:discrete, wgpu:cpu or cuda:1. `descent devices` lists what this
    /// build and machine have.
    #[arg(long, default_value = "auto")]
    pub device: String,

    /// Also print a one-line JSON summary as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// Steps printed with full batches unless --print-every says otherwise (the notebook's 10).
const FULL_BATCH_PRINT_EVERY: usize = 10;

pub fn run(args: &Lesson2Args) -> Result<(), Failure> {
    let selected = device::select(&args.device).map_err(Failure::input)?;
    let table = match &args.data {
        Some(path) => read_points(path).map_err(Failure::input)?,
        None => LessonData {
            n: args.n,
            true_a: args.true_a,
            noise: args.noise,
            seed: args.seed,
        }
        .generate(),
    };
    // Seed the backend's own generator too, so that nothing on the device is left unseeded.
    selected.device.seed(args.seed);

    describe_data(args, &selected, &table);
    let device = selected.device.clone().autodiff();
    let init = [args.init[0] as f32, args.init[1] as f32];
    let model = LinearModel::new(&init, &device);

    // The notebook's cell 7: the loss of the guess.
    let whole = RegressionBatch::from_table(&table, &selected.device);
    let initial_loss = read(model.loss(whole))?;
    println!(
        "mse of the guess a = ({}, {}): {initial_loss:.6}",
        init[0], init[1]
    );

    let full_batch = args.batch_size.is_none();
    let source: Box<dyn BatchSource<RegressionBatch>> = match args.batch_size {
        None => Box::new(FullBatch::new(&table, &selected.device)),
        Some(size) => Box::new(MiniBatches::new(
            Arc::new(table.clone()),
            size,
            args.seed,
            &selected.device,
        )),
    };
    let plan = Plan {
        lr: args.lr,
        length: match (args.steps, args.epochs) {
            (Some(steps), _) => Length::Steps(steps),
            (None, Some(epochs)) => Length::Epochs(epochs),
            (None, None) if full_batch => Length::Steps(100),
            (None, None) => Length::Epochs(10),
        },
        report: match (full_batch, args.print_every) {
            (true, every) => Report::EverySteps(every.unwrap_or(FULL_BATCH_PRINT_EVERY)),
            (false, every) => Report::EveryEpochs(every.unwrap_or(1)),
        },
    };
    match args.batch_size {
        None => println!(
            "full-batch gradient descent: lr {}, {}",
            args.lr,
            describe_length(plan.length, "step")
        ),
        Some(size) => println!(
            "mini-batch SGD: batch size {size} ({} batches per epoch, shuffled with seed {}), lr {}, {}",
            source.batches_per_epoch(),
            args.seed,
            args.lr,
            describe_length(plan.length, "epoch")
        ),
    }

    let mut optimizer = SgdConfig::new().init();
    let mut print = |record: &LossRecord| match plan.report {
        Report::EverySteps(_) => println!("step {:>5}  loss {:.6}", record.step, record.loss),
        Report::EveryEpochs(_) => {
            println!(
                "epoch {:>4}  step {:>6}  loss {:.6}",
                record.epoch, record.step, record.loss
            )
        }
    };
    let trained = train(model, &mut optimizer, source.as_ref(), &plan, &mut print)
        .map_err(Failure::internal)?;

    let a: Vec<f64> = trained
        .model
        .parameters()
        .map_err(Failure::internal)?
        .into_iter()
        .map(f64::from)
        .collect();
    let loss = table.mse(&a);
    let ols = least_squares(&table).map_err(|error| {
        Failure::input(format!(
            "cannot compare with least squares: {error} (all x values are equal?)"
        ))
    })?;
    let gap_a = a
        .iter()
        .zip(&ols.a)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    let gap_loss = loss - ols.mse;

    println!(
        "fitted a:             ({:.6}, {:.6})   mse {loss:.6}",
        a[0], a[1]
    );
    println!(
        "least squares a_ols:  ({:.6}, {:.6})   mse {:.6}",
        ols.a[0], ols.a[1], ols.mse
    );
    println!("gap: max |a - a_ols| = {gap_a:.6}, loss - loss_ols = {gap_loss:.3e}");
    let epochs = if full_batch {
        String::new()
    } else {
        format!(" ({} epochs)", trained.epochs)
    };
    println!(
        "trained {} steps{epochs} in {:.2} ms on {}",
        trained.steps,
        trained.seconds * 1e3,
        selected.describe()
    );

    if args.json {
        let losses: Vec<_> = trained
            .losses
            .iter()
            .map(|r| json!({"step": r.step, "epoch": r.epoch, "loss": r.loss}))
            .collect();
        let summary = json!({
            "command": "lesson2",
            "losses": losses,
            "a": a,
            "a_ols": ols.a,
            "loss": loss,
            "loss_ols": ols.mse,
            "initial_loss": initial_loss,
            "gap_a": gap_a,
            "gap_loss": gap_loss,
            "steps": trained.steps,
            "epochs": trained.epochs,
            "n": table.len(),
            "lr": args.lr,
            "batch_size": args.batch_size.unwrap_or(table.len()),
            "seed": args.seed,
            "device": selected.describe(),
            "backend": selected.backend.name(),
            "seconds": trained.seconds,
        });
        println!("{summary}");
    }
    Ok(())
}

fn describe_data(args: &Lesson2Args, selected: &SelectedDevice, table: &Table) {
    println!("descent lesson2 on {}", selected.describe());
    match &args.data {
        Some(path) => println!("data: {} points from {}", table.len(), path.display()),
        None => println!(
            "data: n = {}, x = [U(-1, 1), 1], y = x·({}, {}) + {}·N(0, 1), seed {}",
            table.len(),
            args.true_a[0],
            args.true_a[1],
            args.noise,
            args.seed
        ),
    }
    println!("first rows of x:");
    for i in 0..table.len().min(5) {
        let row = table.row(i);
        println!("  [{:>8.4}, {:>6.4}]", row[0], row[1]);
    }
}

fn describe_length(length: Length, unit: &str) -> String {
    match length {
        Length::Steps(steps) => format!("{steps} steps"),
        Length::Epochs(epochs) if unit == "step" => format!("{epochs} epochs (one step each)"),
        Length::Epochs(epochs) => format!("{epochs} epochs"),
    }
}

fn read(loss: Tensor<1>) -> Result<f64, Failure> {
    loss.inner()
        .try_into_scalar::<f32>()
        .map(f64::from)
        .map_err(|error| Failure::internal(format!("{error:?}")))
}
