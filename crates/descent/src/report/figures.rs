//! The figures a run leaves in its folder: PNG always, SVG too when asked.
//!
//! | task | figures |
//! |---|---|
//! | the lesson (linear model on points) | `fit` (the data, the initial guess, the fitted line), `loss` (log scale), `lr`; `animation.gif` when asked |
//! | a table (`descent fit`) | `loss`, `lr`, `predictions` (predicted against actual) |
//! | an image classifier | `loss` (train and validation), `accuracy`, `results` (validation images, true / predicted), `lr` |
//! | lr-find | `lr_find` (loss against the learning rate, log scale, the suggestion marked) |

use crate::config::RunConfig;
use crate::optim::InvalidValue;
use crate::report::plots::{Format, LineChart, PlotError, Series, line_chart};
use crate::report::{RunFolder, RunFolderError};
use crate::train::LossRecord;

/// Most points drawn of the schedule's learning rate (longer runs are subsampled).
const LR_POINTS: usize = 2000;

/// Why a figure could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// It could not be drawn.
    #[error(transparent)]
    Draw(#[from] PlotError),
    /// It could not be written into the run folder.
    #[error(transparent)]
    Write(#[from] RunFolderError),
    /// The schedule to draw cannot be built.
    #[error(transparent)]
    Schedule(#[from] InvalidValue),
}

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

    /// The linear model's figures of its training: `loss` (the reported losses, log scale) and
    /// `lr` (the schedule over `total_steps`).
    pub fn loss_and_schedule(
        &self,
        config: &RunConfig,
        losses: &[LossRecord],
        total_steps: usize,
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
        self.schedule(config, total_steps)
    }

    /// The schedule's learning rate at every step of a run of `total_steps` updates.
    pub fn schedule(&self, config: &RunConfig, total_steps: usize) -> Result<(), FigureError> {
        let mut schedule = config.schedule.build(config.optimizer.lr(), total_steps)?;
        let stride = total_steps.div_ceil(LR_POINTS).max(1);
        let points: Vec<(f64, f64)> = (0..total_steps)
            .map(|step| (step as f64, schedule.step().base()))
            .filter(|(step, _)| (*step as usize).is_multiple_of(stride))
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
