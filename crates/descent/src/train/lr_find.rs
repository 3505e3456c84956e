//! The learning-rate finder (fastai's `lr_find`): train from the initial weights while the
//! learning rate grows exponentially, record the loss at each step, stop when it blows up, and
//! suggest the learning rate where the loss fell fastest.
//!
//! It runs through the same [`train`] loop as every model; the model it trains is thrown away.

use std::ops::ControlFlow;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::ModuleOptimizer;
use burn::prelude::Device;

use super::engine::{BatchRows, BatchSource, Length, Plan, Report, train};
use super::objective::{Objective, TrainError};

/// The sweep: `steps` updates with the learning rate going from `start_lr` to `end_lr`
/// geometrically; stop once the smoothed loss exceeds `stop_factor` times its minimum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrFindSettings {
    /// The first learning rate.
    pub start_lr: f64,
    /// The last learning rate.
    pub end_lr: f64,
    /// Number of updates.
    pub steps: usize,
    /// Stop when the smoothed loss exceeds this multiple of its minimum (fastai: 4).
    pub stop_factor: f64,
    /// Weight of the past in the exponential moving average of the loss.
    pub smoothing: f64,
}

impl Default for LrFindSettings {
    /// fastai's sweep (1e-7 to 10 over 100 steps, stop at 4x the minimum), with a lighter
    /// smoothing (0.9 rather than 0.98): over 100 steps fastai's average lags the loss by tens of
    /// steps, which moves the steepest point to a learning rate that is already too large.
    fn default() -> Self {
        Self { start_lr: 1e-7, end_lr: 10.0, steps: 100, stop_factor: 4.0, smoothing: 0.9 }
    }
}

/// One step of the sweep.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LrPoint {
    /// The step (0-based).
    pub step: usize,
    /// The learning rate of that step's update.
    pub lr: f64,
    /// The loss before the update.
    pub loss: f64,
    /// The exponential moving average of the loss (bias-corrected).
    pub smoothed: f64,
}

/// What the sweep found.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFinding {
    /// Every step, in order.
    pub points: Vec<LrPoint>,
    /// The suggested learning rate, fastai's "valley": the middle of the longest stretch over
    /// which the smoothed loss keeps falling. Robust to the noise of mini-batches.
    pub suggestion: Option<f64>,
    /// Where the smoothed loss falls fastest against log(lr) inside the valley (fastai's
    /// "steep"; looked for only inside the valley, where mini-batch noise cannot fool it).
    pub steepest: Option<f64>,
    /// The step with the lowest smoothed loss.
    pub minimum: Option<LrPoint>,
    /// Whether the sweep stopped because the loss blew up.
    pub stopped_early: bool,
}

/// The learning rates of the sweep as a Burn scheduler.
#[derive(Clone, Debug)]
struct Sweep {
    settings: LrFindSettings,
    step: usize,
}

impl Sweep {
    fn lr(settings: &LrFindSettings, step: usize) -> f64 {
        let fraction = step as f64 / (settings.steps.max(2) - 1) as f64;
        settings.start_lr * (settings.end_lr / settings.start_lr).powf(fraction)
    }
}

impl LrScheduler for Sweep {
    fn step(&mut self) -> f64 {
        let lr = Self::lr(&self.settings, self.step);
        self.step += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("step", self.step as u64)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(step) = record.scalar::<u64>("step") {
            self.step = step as usize;
        }
    }
}

/// Run the sweep on `model` (consumed and discarded) with `optimizer` and batches from `source`,
/// data-parallel over `replicas` when it names several devices (see [`Plan::replicas`]).
pub fn lr_find<M, B>(
    model: M,
    optimizer: &mut ModuleOptimizer,
    source: &dyn BatchSource<B>,
    settings: &LrFindSettings,
    replicas: &[Device],
) -> Result<LrFinding, TrainError>
where
    M: Objective<B> + 'static,
    B: BatchRows + Send + 'static,
{
    let mut schedule = ModuleLrScheduler::new(Sweep { settings: *settings, step: 0 });
    let plan = Plan {
        replicas: replicas.to_vec(),
        ..Plan::new(Length::Steps(settings.steps), Report::EverySteps(1))
    };
    let mut points: Vec<LrPoint> = Vec::with_capacity(settings.steps.min(1 << 12));
    let mut average = 0.0;
    let mut best = f64::INFINITY;
    let mut blew_up = false;
    let swept = train(model, optimizer, &mut schedule, source, &plan, &mut |record| {
        let count = points.len() as i32 + 1;
        average = settings.smoothing * average + (1.0 - settings.smoothing) * record.loss;
        let smoothed = average / (1.0 - settings.smoothing.powi(count));
        points.push(LrPoint { step: record.step, lr: record.lr, loss: record.loss, smoothed });
        best = best.min(smoothed);
        if !record.loss.is_finite() || !smoothed.is_finite() || smoothed > settings.stop_factor * best {
            blew_up = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    match swept {
        Ok(_) => {}
        // The engine stops at a loss that is not a number: the sweep has gone past any useful
        // learning rate, which is how a sweep ends.
        Err(TrainError::Diverged { step, lr, loss, .. }) => {
            points.push(LrPoint { step, lr, loss, smoothed: f64::NAN });
            blew_up = true;
        }
        Err(error) => return Err(error),
    }

    let minimum_index = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.smoothed.is_finite())
        .min_by(|(_, a), (_, b)| a.smoothed.total_cmp(&b.smoothed))
        .map(|(i, _)| i);
    let valley = valley(&points);
    let suggestion = valley.map(|(first, last)| points[(first + last) / 2].lr);
    let steepest = valley.and_then(|(first, last)| steepest(&points[first..=last]));
    Ok(LrFinding {
        minimum: minimum_index.map(|i| points[i]),
        points,
        suggestion,
        steepest,
        stopped_early: blew_up,
    })
}

/// The smallest fall between two steps of a valley, as a fraction of the loss's whole drop.
const VALLEY_MIN_FALL: f64 = 2e-3;

/// The middle of the longest valley: among all subsequences of steps along which the smoothed
/// loss keeps falling (by at least [`VALLEY_MIN_FALL`] of its drop each time), take the longest;
/// with `k` steps ending at step `last`, the valley is steps `last + 1 - k ..= last` (returned
/// as that pair). The suggestion is the learning rate half-way along it.
fn valley(points: &[LrPoint]) -> Option<(usize, usize)> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    // longest[i]: length of the longest decreasing subsequence ending at step i.
    // A fall counts only if it is a visible part of the whole drop: at very small learning
    // rates the loss of a deterministic problem creeps down by parts per million, and a chain
    // of such creeps would stretch the valley back to the start of the sweep.
    let finite = points.iter().map(|p| p.smoothed).filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let threshold = (points[0].smoothed.min(high) - low).max(0.0) * VALLEY_MIN_FALL;
    let mut longest = vec![1usize; n];
    for i in 1..n {
        for j in 0..i {
            if points[i].smoothed < points[j].smoothed - threshold && longest[j] + 1 > longest[i] {
                longest[i] = longest[j] + 1;
            }
        }
    }
    let last = (0..n).max_by_key(|&i| (longest[i], std::cmp::Reverse(i)))?;
    if longest[last] < 2 {
        return None;
    }
    // The valley is the `longest[last]` steps ending at `last`: a subsequence can jump over the
    // flat start in one link, so its first element says little about where the fall begins.
    Some((last + 1 - longest[last], last))
}

/// The learning rate where the smoothed loss falls fastest against log10(lr) (central
/// differences inside, one-sided at the ends).
fn steepest(points: &[LrPoint]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let x: Vec<f64> = points.iter().map(|p| p.lr.log10()).collect();
    let y: Vec<f64> = points.iter().map(|p| p.smoothed).collect();
    let last = points.len() - 1;
    (0..=last)
        .map(|i| {
            let (a, b) = (i.saturating_sub(1), (i + 1).min(last));
            (i, (y[b] - y[a]) / (x[b] - x[a]))
        })
        .min_by(|(_, s), (_, t)| s.total_cmp(t))
        .map(|(i, _)| points[i].lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_spans_start_to_end() {
        let settings = LrFindSettings::default();
        assert!((Sweep::lr(&settings, 0) - 1e-7).abs() < 1e-20);
        assert!((Sweep::lr(&settings, 99) - 10.0).abs() < 1e-9);
        assert!((Sweep::lr(&settings, 50) / Sweep::lr(&settings, 49) - 10f64.powf(8.0 / 99.0)).abs() < 1e-9);
    }

    #[test]
    fn the_valley_is_the_middle_of_the_longest_fall() {
        // Flat, then falling from step 20 to step 60, then rising.
        let points: Vec<LrPoint> = (0..80)
            .map(|i| {
                let loss = match i {
                    0..20 => 5.0,
                    20..=60 => 5.0 - (i - 20) as f64 * 0.1,
                    _ => 1.0 + (i - 60) as f64,
                };
                LrPoint { step: i, lr: i as f64, loss, smoothed: loss }
            })
            .collect();
        // The longest falling run is 5.0, 4.9, ..., 1.0: 41 steps ending at step 60.
        assert_eq!(valley(&points), Some((20, 60)));
    }

    #[test]
    fn steepest_finds_the_fastest_fall() {
        // A loss falling fastest around lr = 1e-2 (a logistic in log10(lr)).
        let points: Vec<LrPoint> = (0..50)
            .map(|i| {
                let lr = 10f64.powf(-5.0 + i as f64 * 0.1);
                let loss = 1.0 / (1.0 + (4.0 * (lr.log10() + 2.0)).exp());
                LrPoint { step: i, lr, loss, smoothed: loss }
            })
            .collect();
        let lr = steepest(&points).unwrap();
        assert!((lr.log10() + 2.0).abs() < 0.11, "{lr}");
    }
}
