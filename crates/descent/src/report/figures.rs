//! The figures a run leaves in its folder: PNG always, SVG too when asked.
//!
//! | task | figures |
//! |---|---|
//! | the lesson (linear model on points) | `fit` (the data, the initial guess, the fitted line), `loss` (log scale), `lr`; `animation.gif` when asked |
//! | a table (`descent fit`) | `loss`, `lr`, `predictions` (predicted against actual) |
//! | an image classifier | `loss` (train and validation), `accuracy`, `results` (validation images, true / predicted), `lr` |
//! | lr-find | `lr_find` (loss against the learning rate, log scale, the suggestion marked) |

use crate::config::RunConfig;
use crate::report::plots::{Format, LineChart, PlotError, Series, line_chart};
use crate::report::{RunFolder, RunFolderError};
use crate::train::LossRecord;

/// Most points drawn of the schedule's learning rate (longer runs are subsampled).
const LR_POINTS: usize = 2000;
/// Most points drawn of the per-update training loss (longer runs are subsampled).
const LOSS_POINTS: usize = 4000;
/// The smoothing of the per-update loss, as fastai's recorder does it.
pub const SMOOTHING: f64 = 0.98;

/// Every update's loss smoothed as fastai's recorder smooths it: an exponential moving average
/// with `beta`, divided by `1 - beta^n` so that the first values are not pulled toward 0.
pub fn smoothed(losses: &[(usize, f64)], beta: f64) -> Vec<(usize, f64)> {
    let mut average = 0.0;
    losses
        .iter()
        .enumerate()
        .map(|(i, &(step, loss))| {
            average = beta * average + (1.0 - beta) * loss;
            (step, average / (1.0 - beta.powi(i as i32 + 1)))
        })
        .collect()
}

/// Why a figure could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// It could not be drawn.
    #[error(transparent)]
    Draw(#[from] PlotError),
    /// It could not be written into the run folder.
    #[error(transparent)]
    Write(#[from] RunFolderError),
}

/// A linear run's losses for its figure: the reported ones, every update's as (step, loss), and
/// the validation loss as (step, loss) points.
pub type LinearLosses<'a> = (&'a [LossRecord], &'a [(usize, f64)], Vec<(f64, f64)>);

/// Where figures go, and in which formats.
pub struct Figures<'a> {
    folder: &'a RunFolder,
    svg: bool,
}

impl<'a> Figures<'a> {
    /// Figures in `folder`: PNG, and SVG when `svg`.
    pub fn new(folder: &'a RunFolder, svg: bool) -> Self {
        Self { folder, svg }
    }

    /// The folder the figures go into.
    pub fn folder(&self) -> &RunFolder {
        self.folder
    }

    /// Draw `name` in every format asked for and write it into the folder.
    pub fn save(
        &self,
        name: &str,
        draw: impl Fn(Format) -> Result<Vec<u8>, PlotError>,
    ) -> Result<(), FigureError> {
        let formats: &[Format] = if self.svg { &[Format::Png, Format::Svg] } else { &[Format::Png] };
        for &format in formats {
            let bytes = draw(format)?;
            self.folder.write(&format!("{name}.{}", format.extension()), &bytes)?;
        }
        Ok(())
    }

    /// A line chart.
    pub fn chart(&self, name: &str, chart: &LineChart) -> Result<(), FigureError> {
        self.save(name, |format| line_chart(chart, format))
    }

    /// The linear model's figures of its training: `loss` and `lr` (the rate of every update,
    /// `rates`). With mini-batches, `loss` draws every update's loss, smoothed
    /// (`batch_losses`, with the validation loss at `valid`); with full batches, the reported
    /// losses on a log scale.
    pub fn linear_loss_and_schedule(
        &self,
        config: &RunConfig,
        (losses, batch_losses, valid): LinearLosses<'_>,
        rates: &[(usize, f64)],
    ) -> Result<(), FigureError> {
        if config.training.batch_size.is_some() && !batch_losses.is_empty() {
            self.batch_losses(("MSE (log scale)", true), batch_losses, valid)?;
            return self.rates(config, rates);
        }
        self.loss_and_schedule(config, losses, rates)
    }

    /// `loss` (the reported losses, log scale) and `lr` (the rate of every update, `rates`).
    pub fn loss_and_schedule(
        &self,
        config: &RunConfig,
        losses: &[LossRecord],
        rates: &[(usize, f64)],
    ) -> Result<(), FigureError> {
        self.chart(
            "loss",
            &LineChart {
                title: format!("Training loss: {} lr {}", config.optimizer.name(), config.optimizer.lr()),
                x_label: "step".into(),
                y_label: "MSE (log scale)".into(),
                series: vec![Series {
                    name: "train loss".into(),
                    points: losses.iter().map(|r| (r.step as f64, r.loss)).collect(),
                }],
                log_x: false,
                log_y: true,
                marker: None,
            },
        )?;
        self.rates(config, rates)
    }

    /// `loss`: every update's training loss, smoothed, against the step, and the validation
    /// loss of each epoch (`valid`, as (step, loss)) on the same axes.
    pub fn batch_losses(
        &self,
        (y_label, log_y): (&str, bool),
        batch_losses: &[(usize, f64)],
        valid: Vec<(f64, f64)>,
    ) -> Result<(), FigureError> {
        let train = smoothed(batch_losses, SMOOTHING);
        let stride = train.len().div_ceil(LOSS_POINTS).max(1);
        let last = train.len().saturating_sub(1);
        let points = train
            .iter()
            .enumerate()
            .filter(|(i, _)| i.is_multiple_of(stride) || *i == last)
            .map(|(_, &(step, loss))| (step as f64, loss))
            .collect();
        let title = match valid.len() {
            0 => "Loss: every update's, smoothed",
            1 => "Loss: every update's, smoothed, and the validation loss",
            _ => "Loss: every update's, smoothed, and each epoch's validation",
        };
        let mut series = vec![Series { name: format!("train (smoothed, β = {SMOOTHING})"), points }];
        if !valid.is_empty() {
            series.push(Series { name: "validation".into(), points: valid });
        }
        let chart = LineChart {
            title: title.into(),
            x_label: "step".into(),
            y_label: y_label.into(),
            series,
            log_x: false,
            log_y,
            marker: None,
        };
        self.chart("loss", &chart)
    }

    /// `lr`: the learning rate the run used at each update, `rates` as (updates made before it,
    /// rate) as the run recorded them: what the schedule gave, over the steps trained.
    pub fn rates(&self, config: &RunConfig, rates: &[(usize, f64)]) -> Result<(), FigureError> {
        let stride = rates.len().div_ceil(LR_POINTS).max(1);
        let last = rates.len().saturating_sub(1);
        let points: Vec<(f64, f64)> = rates
            .iter()
            .enumerate()
            .filter(|(i, _)| i.is_multiple_of(stride) || *i == last)
            .map(|(_, &(step, lr))| (step as f64, lr))
            .collect();
        let chart = LineChart {
            title: format!("Learning rate: {} schedule, {}", config.schedule.name(), config.optimizer.name()),
            x_label: "step".into(),
            y_label: "learning rate".into(),
            series: vec![Series { name: "lr".into(), points }],
            log_x: false,
            log_y: false,
            marker: None,
        };
        self.chart("lr", &chart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_fastais_debiased_moving_average() {
        let losses: Vec<(usize, f64)> =
            [4.0, 2.0, 3.0].iter().enumerate().map(|(i, &l)| (i + 1, l)).collect();
        let beta = 0.9;
        let s = smoothed(&losses, beta);
        // By hand: averages 0.4, 0.56, 0.804; divided by 1 - 0.9, 1 - 0.81, 1 - 0.729.
        let expected = [0.4 / 0.1, 0.56 / 0.19, 0.804 / 0.271];
        for ((step, value), (i, e)) in s.iter().zip(expected.iter().enumerate()) {
            assert_eq!(*step, i + 1);
            assert!((value - e).abs() < 1e-12, "{value} vs {e}");
        }
        assert_eq!(s[0].1, 4.0, "the first value is the first loss");
    }
}
