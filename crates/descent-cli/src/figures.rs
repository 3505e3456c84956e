//! The figures each command leaves in its run folder: PNG always, SVG too with `--svg`.
//!
//! | command | figures |
//! |---|---|
//! | lesson2, train (linear) | `fit` (the data, the initial guess, the fitted line), `loss` (log scale), `lr`; `animation.gif` with `--animate` |
//! | cnn | `loss` (train and validation), `accuracy`, `results` (validation images, true / predicted), `lr` |
//! | lr-find | `lr_find` (loss against the learning rate, log scale, the suggestion marked) |

use descent::config::RunConfig;
use descent::report::RunFolder;
use descent::report::plots::{Format, LineChart, PlotError, Series};

use crate::Failure;

/// Most points drawn of the schedule's learning rate (longer runs are subsampled).
const LR_POINTS: usize = 2000;

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

    /// Draw `name` in every format asked for and write it into the folder.
    pub fn save(
        &self,
        name: &str,
        draw: impl Fn(Format) -> Result<Vec<u8>, PlotError>,
    ) -> Result<(), Failure> {
        let formats: &[Format] = if self.svg { &[Format::Png, Format::Svg] } else { &[Format::Png] };
        for &format in formats {
            let bytes = draw(format).map_err(Failure::internal)?;
            self.folder.write(&format!("{name}.{}", format.extension()), &bytes).map_err(Failure::input)?;
        }
        Ok(())
    }

    /// A line chart.
    pub fn chart(&self, name: &str, chart: &LineChart) -> Result<(), Failure> {
        self.save(name, |format| descent::report::plots::line_chart(chart, format))
    }

    /// The linear model's figures of its training: `loss` (the reported losses, log scale) and
    /// `lr` (the schedule over `total_steps`).
    pub fn loss_and_schedule(
        &self,
        config: &RunConfig,
        losses: &[descent::train::LossRecord],
        total_steps: usize,
    ) -> Result<(), Failure> {
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
    pub fn schedule(&self, config: &RunConfig, total_steps: usize) -> Result<(), Failure> {
        let mut schedule =
            config.schedule.build(config.optimizer.lr(), total_steps).map_err(Failure::input)?;
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
