//! The lesson end to end, checked against oracles: closed-form least squares, the analytic
//! gradient, an independent f64 trajectory, and the by-hand update of the notebook.

use std::sync::Arc;

use crate::common::{devices, full_batch, train_sgd};
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use descent::data::{LessonData, MiniBatches, RegressionBatch, Table};
use descent::model::{LinearModel, mse};
use descent::ols::least_squares;
use descent::train::{Length, Report};

fn lesson() -> Table {
    LessonData::default().generate()
}

/// Gradient descent on the MSE in f64 on the host: a_{t+1} = a_t - lr·(2/n)·Xᵀ(X·a_t - y).
/// Returns the loss before each step and the final parameters.
fn reference_trajectory(table: &Table, init: [f64; 2], lr: f64, steps: usize) -> (Vec<f64>, [f64; 2]) {
    let mut a = init;
    let mut losses = Vec::with_capacity(steps);
    let n = table.len() as f64;
    for _ in 0..steps {
        losses.push(table.mse(&a));
        let mut gradient = [0.0; 2];
        for i in 0..table.len() {
            let row = table.row(i);
            let residual = f64::from(row[0]) * a[0] + f64::from(row[1]) * a[1] - f64::from(table.y()[i]);
            gradient[0] += 2.0 / n * residual * f64::from(row[0]);
            gradient[1] += 2.0 / n * residual * f64::from(row[1]);
        }
        a = [a[0] - lr * gradient[0], a[1] - lr * gradient[1]];
    }
    (losses, a)
}

#[test]
fn full_batch_descent_converges_to_least_squares() {
    let table = lesson();
    let ols = least_squares(&table).unwrap();
    for device in devices() {
        let (a, _) = full_batch(&table, &device, [-1.0, 1.0], 0.1, 2_000);
        let gap = a.iter().zip(&ols.a).map(|(&p, q)| (f64::from(p) - q).abs()).fold(0.0, f64::max);
        assert!(gap < 1e-4, "{}: a = {a:?}, a_ols = {:?}, gap {gap}", device.backend, ols.a);
    }
}

#[test]
fn the_lesson_follows_the_f64_reference_trajectory() {
    let table = lesson();
    let (reference, reference_a) = reference_trajectory(&table, [-1.0, 1.0], 0.1, 100);
    for device in devices() {
        let (a, losses) = full_batch(&table, &device, [-1.0, 1.0], 0.1, 100);
        assert_eq!(losses.len(), 100);
        for (record, expected) in losses.iter().zip(&reference) {
            let relative = (record.loss - expected).abs() / expected;
            assert!(
                relative < 1e-5,
                "{}: step {} loss {} vs {expected}",
                device.backend,
                record.step,
                record.loss
            );
        }
        for (p, q) in a.iter().zip(reference_a) {
            assert!((f64::from(*p) - q).abs() < 1e-5, "{}: a = {a:?} vs {reference_a:?}", device.backend);
        }
    }
}

#[test]
fn the_first_printed_loss_is_the_mse_of_the_guess() {
    let table = lesson();
    for device in devices() {
        let (_, losses) = full_batch(&table, &device, [-1.0, 1.0], 0.1, 1);
        let expected = table.mse(&[-1.0, 1.0]);
        assert_eq!(losses[0].step, 0);
        assert!((losses[0].loss - expected).abs() / expected < 1e-6, "{} vs {expected}", losses[0].loss);
        // The notebook's "about 6.4 with this noise".
        assert!((5.0..8.0).contains(&expected), "initial mse {expected}");
    }
}

#[test]
fn autodiff_gradient_equals_the_analytic_gradient() {
    let table = lesson();
    let n = table.len() as f64;
    for device in devices() {
        let batch = RegressionBatch::from_table(&table, &device.device);
        for point in [[-1.0f32, 1.0], [0.0, 0.0], [3.0, 2.0], [2.5, -4.0], [10.0, 0.5]] {
            let model = LinearModel::new(&point, &device.device.clone().autodiff());
            let loss = mse(model.forward(batch.x.clone()), batch.y.clone());
            let grads = loss.backward();
            let gradient = model.a.val().grad(&grads).unwrap().into_data().try_into_vec::<f32>().unwrap();
            // (2/n)·Xᵀ(X·a - y) in f64.
            let mut analytic = [0.0f64; 2];
            for i in 0..table.len() {
                let row = table.row(i);
                let residual = f64::from(row[0]) * f64::from(point[0])
                    + f64::from(row[1]) * f64::from(point[1])
                    - f64::from(table.y()[i]);
                analytic[0] += 2.0 / n * residual * f64::from(row[0]);
                analytic[1] += 2.0 / n * residual * f64::from(row[1]);
            }
            for (g, expected) in gradient.iter().zip(analytic) {
                let tolerance = 1e-5 * expected.abs().max(1.0);
                assert!(
                    (f64::from(*g) - expected).abs() < tolerance,
                    "{} at {point:?}: {gradient:?} vs {analytic:?}",
                    device.backend
                );
            }
        }
    }
}

#[test]
fn optimizer_step_and_update_by_hand_agree_exactly() {
    let table = lesson();
    for device in devices() {
        let batch = RegressionBatch::from_table(&table, &device.device);
        let autodiff = device.device.clone().autodiff();

        let mut a = Tensor::<2>::from_floats([[-1.0], [1.0]], &autodiff).require_grad();
        for _ in 0..100 {
            let loss = mse(batch.x.clone().matmul(a.clone()), batch.y.clone());
            let grad = a.grad(&loss.backward()).unwrap();
            a = (a.inner() - grad.mul_scalar(0.1)).autodiff().require_grad();
        }
        let by_hand = a.inner().into_data().try_into_vec::<f32>().unwrap();

        let mut model = LinearModel::new(&[-1.0, 1.0], &autodiff);
        let mut optimizer = SgdConfig::new().init();
        for _ in 0..100 {
            let loss = mse(model.forward(batch.x.clone()), batch.y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(0.1, model, grads);
        }
        let with_optimizer = model.parameters().unwrap();
        assert_eq!(by_hand, with_optimizer, "{}", device.backend);
    }
}

#[test]
fn one_mini_batch_of_all_rows_is_full_batch_descent() {
    let table = lesson();
    for device in devices() {
        let (full_a, full_losses) = full_batch(&table, &device, [-1.0, 1.0], 0.1, 50);
        let model = LinearModel::new(&[-1.0, 1.0], &device.device.clone().autodiff());
        let source = MiniBatches::new(Arc::new(table.clone()), table.len(), 7, &device.device);
        let trained = train_sgd(model, &source, 0.1, Length::Epochs(50), Report::EveryEpochs(1));
        assert_eq!(trained.steps, 50);
        // Epoch e's loss is the loss before update e-1 of full-batch descent. The shuffled order
        // changes only the order of the float sums.
        for (mini, full) in trained.losses.iter().zip(&full_losses) {
            assert_eq!(mini.step, full.step + 1);
            assert!((mini.loss - full.loss).abs() / full.loss < 1e-6, "{} vs {}", mini.loss, full.loss);
        }
        let mini_a = trained.model.parameters().unwrap();
        for (p, q) in mini_a.iter().zip(&full_a) {
            assert!((p - q).abs() < 1e-6, "{}: {mini_a:?} vs {full_a:?}", device.backend);
        }
    }
}

#[test]
fn mini_batch_sgd_converges_near_least_squares() {
    // Small batches leave noise around the optimum: within 0.05 after 30 epochs of batch 10.
    let table = lesson();
    let ols = least_squares(&table).unwrap();
    for device in devices() {
        let model = LinearModel::new(&[-1.0, 1.0], &device.device.clone().autodiff());
        let source = MiniBatches::new(Arc::new(table.clone()), 10, 42, &device.device);
        let trained = train_sgd(model, &source, 0.05, Length::Epochs(30), Report::EveryEpochs(10));
        assert_eq!(trained.steps, 300);
        assert_eq!(trained.losses.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![10, 20, 30]);
        let a = trained.model.parameters().unwrap();
        for (p, q) in a.iter().zip(&ols.a) {
            assert!((f64::from(*p) - q).abs() < 0.05, "{}: {a:?} vs {:?}", device.backend, ols.a);
        }
    }
}

#[test]
fn the_shuffle_is_seeded() {
    let table = Arc::new(lesson());
    for device in devices() {
        let run = |seed: u64| {
            let model = LinearModel::new(&[-1.0, 1.0], &device.device.clone().autodiff());
            let source = MiniBatches::new(table.clone(), 16, seed, &device.device);
            let trained = train_sgd(model, &source, 0.1, Length::Epochs(3), Report::EveryEpochs(1));
            trained.model.parameters().unwrap()
        };
        assert_eq!(run(1), run(1), "{}", device.backend);
        assert_ne!(run(1), run(2), "{}", device.backend);
    }
}

/// Mini-batch SGD in f64 on the host over the batches `MiniBatches` draws: each epoch's order from
/// [`MiniBatches::order`], batches of `batch_size` consecutive rows of it (the last one smaller).
/// Returns each epoch's mean loss (batch losses before their updates, weighted by rows) and the
/// final parameters.
fn reference_mini_batches(
    table: &Table,
    source: &MiniBatches,
    batch_size: usize,
    lr: f64,
    epochs: usize,
) -> (Vec<f64>, [f64; 2]) {
    let mut a = [-1.0f64, 1.0];
    let mut means = Vec::new();
    for epoch in 0..epochs {
        let order = source.order(epoch as u64);
        let mut total = 0.0;
        for batch in order.chunks(batch_size) {
            let b = batch.len() as f64;
            let mut gradient = [0.0; 2];
            let mut loss = 0.0;
            for &i in batch {
                let row = table.row(i);
                let residual = f64::from(row[0]) * a[0] + f64::from(row[1]) * a[1] - f64::from(table.y()[i]);
                loss += residual * residual / b;
                gradient[0] += 2.0 / b * residual * f64::from(row[0]);
                gradient[1] += 2.0 / b * residual * f64::from(row[1]);
            }
            total += loss * b;
            a = [a[0] - lr * gradient[0], a[1] - lr * gradient[1]];
        }
        means.push(total / table.len() as f64);
    }
    (means, a)
}

#[test]
fn mini_batches_follow_the_host_reference_over_the_drawn_order() {
    // The fast path (the table on the device, one gather per epoch, slices as batches) against
    // plain SGD in f64 over the same batches: 103 rows in batches of 16, the last one of 7.
    let table = LessonData { n: 103, ..LessonData::default() }.generate();
    let shared = Arc::new(table.clone());
    for device in devices() {
        let source = MiniBatches::new(shared.clone(), 16, 9, &device.device);
        let (means, expected) = reference_mini_batches(&table, &source, 16, 0.05, 4);
        let model = LinearModel::new(&[-1.0, 1.0], &device.device.clone().autodiff());
        let trained = train_sgd(model, &source, 0.05, Length::Epochs(4), Report::EveryEpochs(1));
        assert_eq!(trained.steps, 4 * 7);
        for (record, mean) in trained.losses.iter().zip(&means) {
            assert!(
                (record.loss - mean).abs() / mean < 1e-5,
                "{}: {} vs {mean}",
                device.backend,
                record.loss
            );
        }
        let a = trained.model.parameters().unwrap();
        for (p, q) in a.iter().zip(&expected) {
            assert!((f64::from(*p) - q).abs() < 1e-5, "{}: {a:?} vs {expected:?}", device.backend);
        }
    }
}
