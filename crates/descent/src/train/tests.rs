//! The engine's own arithmetic, on a small mini-batch lesson: where an interrupted run says it
//! stopped, that continuing from there is the uninterrupted run bit for bit, partial epochs, and
//! an interruption on an epoch's last batch.

use std::ops::ControlFlow;
use std::sync::Arc;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::ModuleOptimizer;

use super::{BatchEnd, EpochEnd, Hooks, Length, LossRecord, Plan, Position, Report, Trained, train_observed};
use crate::config::optimizer_from;
use crate::data::{LessonData, MiniBatches};
use crate::model::LinearModel;
use crate::optim::ScheduleConfig;

/// 37 rows in batches of 8: four of 8 and a last of 5, five batches an epoch.
const ROWS: usize = 37;
const BATCH: usize = 8;

fn source() -> MiniBatches {
    let table = LessonData { n: ROWS, seed: 3, ..LessonData::default() }.generate();
    MiniBatches::new(Arc::new(table), BATCH, 11, &crate::device::select("ndarray").unwrap().device)
}

fn model() -> LinearModel {
    LinearModel::new(&[-1.0, 1.0], &crate::device::select("ndarray").unwrap().device.autodiff())
}

/// Momentum SGD (state that must carry over) and a cosine schedule (a position that must too).
fn optimization(total_steps: usize) -> (ModuleOptimizer, ModuleLrScheduler) {
    let optimizer = optimizer_from("sgd-momentum").unwrap().build();
    let schedule = ScheduleConfig::Cosine { min_lr: 0.001 }.build(0.05, total_steps).unwrap();
    (optimizer, schedule)
}

fn plan(length: Length, start: Position) -> Plan {
    Plan { start, seed: Some(5), ..Plan::new(length, Report::EveryEpochs(1)) }
}

/// What one call of the engine did: its result, every update's `BatchEnd`, and the positions
/// `on_epoch` was given with whether each was an interruption.
struct Observed {
    trained: Trained<LinearModel>,
    batches: Vec<BatchEnd>,
    epochs: Vec<(Position, bool, bool)>,
}

fn run(
    model: LinearModel,
    optimization: &mut (ModuleOptimizer, ModuleLrScheduler),
    plan: &Plan,
    stop_at_step: Option<usize>,
) -> Observed {
    let mut batches = Vec::new();
    let mut epochs = Vec::new();
    let mut on_batch = |end: &BatchEnd| {
        batches.push(*end);
        if Some(end.step) == stop_at_step { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let mut on_epoch = |end: &EpochEnd<'_, LinearModel>| {
        epochs.push((end.position, end.interrupted, end.last));
        ControlFlow::Continue(())
    };
    let mut on_loss = |_: &LossRecord| ControlFlow::Continue(());
    let mut hooks =
        Hooks { on_loss: Some(&mut on_loss), on_batch: Some(&mut on_batch), on_epoch: Some(&mut on_epoch) };
    let (optimizer, schedule) = optimization;
    let trained = train_observed(model, optimizer, schedule, &source(), plan, &mut hooks).unwrap();
    Observed { trained, batches, epochs }
}

fn parameters(trained: &Trained<LinearModel>) -> Vec<f32> {
    trained.model.parameters().unwrap()
}

#[test]
fn an_interruption_reports_its_position_and_continuing_from_it_is_the_straight_run() {
    let total = 3 * 5;
    let straight =
        run(model(), &mut optimization(total), &plan(Length::Epochs(3), Position::default()), None);
    assert_eq!((straight.trained.steps, straight.trained.epochs), (15, 3));

    // Stopped after the second batch of epoch 2 (step 7).
    let mut state = optimization(total);
    let first = run(model(), &mut state, &plan(Length::Epochs(3), Position::default()), Some(7));
    assert!(first.trained.interrupted && first.trained.stopped);
    let (position, interrupted, _) = *first.epochs.last().unwrap();
    assert!(interrupted, "the last on_epoch call is the interruption's");
    let epoch_two: Vec<&BatchEnd> = first.batches.iter().filter(|b| b.epoch == 2).collect();
    let partial_loss: f64 = epoch_two.iter().map(|b| b.loss * BATCH as f64).sum();
    assert_eq!(
        position,
        Position { step: 7, epoch: 1, batch: 2, partial_loss, partial_rows: 2 * BATCH },
        "seven updates, one epoch finished, two batches of the next, their example-weighted losses"
    );

    // Continued from there with the same optimizer and schedule state: the straight run.
    let second = run(first.trained.model, &mut state, &plan(Length::Epochs(3), position), None);
    assert_eq!(parameters(&second.trained), parameters(&straight.trained), "bit for bit");
    assert_eq!((second.trained.steps, second.trained.epochs), (15, 3));
    let resumed_batches: Vec<(usize, usize, u64)> =
        second.batches.iter().map(|b| (b.epoch, b.batch, b.loss.to_bits())).collect();
    let straight_batches: Vec<(usize, usize, u64)> =
        straight.batches[7..].iter().map(|b| (b.epoch, b.batch, b.loss.to_bits())).collect();
    assert_eq!(resumed_batches, straight_batches, "the same batches in the same order, same losses");
    // Epoch 2's mean includes the two batches trained before the interruption.
    let mean = |records: &[LossRecord], epoch: usize| {
        records.iter().find(|r| r.epoch == epoch).map(|r| r.loss.to_bits())
    };
    assert_eq!(mean(&second.trained.losses, 2), mean(&straight.trained.losses, 2));
    assert_eq!(mean(&second.trained.losses, 3), mean(&straight.trained.losses, 3));
}

#[test]
fn a_length_in_steps_ends_part_way_through_an_epoch_and_reports_its_mean() {
    let observed = run(model(), &mut optimization(7), &plan(Length::Steps(7), Position::default()), None);
    assert_eq!((observed.trained.steps, observed.trained.epochs), (7, 2));
    assert_eq!(observed.batches.len(), 7);
    let epoch_two: Vec<&BatchEnd> = observed.batches.iter().filter(|b| b.epoch == 2).collect();
    assert_eq!(epoch_two.len(), 2);
    let expected = epoch_two.iter().map(|b| b.loss).sum::<f64>() / 2.0;
    let reported = observed.trained.losses.iter().find(|r| r.epoch == 2).unwrap();
    assert!((reported.loss - expected).abs() <= 1e-12 * expected.abs(), "{} vs {expected}", reported.loss);
    // Epoch 1's mean weights the short last batch by its 5 rows.
    let epoch_one: Vec<&BatchEnd> = observed.batches.iter().filter(|b| b.epoch == 1).collect();
    let weighted =
        epoch_one.iter().enumerate().map(|(i, b)| b.loss * if i == 4 { 5.0 } else { 8.0 }).sum::<f64>()
            / ROWS as f64;
    let reported = observed.trained.losses.iter().find(|r| r.epoch == 1).unwrap();
    assert!((reported.loss - weighted).abs() <= 1e-12 * weighted.abs());
    let (last, interrupted, is_last) = *observed.epochs.last().unwrap();
    assert_eq!(last, Position { step: 7, epoch: 2, ..Position::default() });
    assert!(!interrupted && is_last);
}

#[test]
fn an_interruption_on_an_epochs_last_batch_ends_the_epoch_normally() {
    let observed =
        run(model(), &mut optimization(15), &plan(Length::Epochs(3), Position::default()), Some(5));
    assert!(observed.trained.interrupted);
    assert_eq!((observed.trained.steps, observed.trained.epochs), (5, 1));
    assert_eq!(observed.epochs, vec![(Position { step: 5, epoch: 1, ..Position::default() }, false, true)]);
    assert_eq!(observed.trained.losses.len(), 1, "epoch 1 is reported");
}

#[test]
fn step_seeds_are_fixed_and_differ_between_neighbours() {
    assert_eq!(super::step_seed(42, 7), super::step_seed(42, 7));
    let seeds: std::collections::HashSet<u64> = (0..1000).map(|step| super::step_seed(42, step)).collect();
    assert_eq!(seeds.len(), 1000);
    assert_ne!(super::step_seed(42, 0), super::step_seed(43, 0));
}
