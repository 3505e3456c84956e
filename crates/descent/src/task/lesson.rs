//! The lesson: the linear model `y = x·a` fitted to points by gradient descent, compared with
//! the closed-form least squares, with the notebook's figures.

use burn::module::Module;
use serde::Serialize;

use crate::config::DataConfig;
use crate::device::ReadBackError;
use crate::experiment::{Experiment, Prepared, RunError, TrainOptions, TrainedRun};
use crate::model::LinearModel;
use crate::ols::LeastSquares;
use crate::report::figures::{FigureError, Figures};
use crate::report::{ANIMATION_FILE, MetricsRow, RunFolder, RunFolderError, RunPlace, RunSummary, plots};
use crate::run::{OutputError, Task};
use crate::train::{Objective, TrainError, Trained};

use super::{LossEntry, loss_entries};

/// Frames of the animation, one gradient step each (the notebook's `np.arange(0, 100)`).
pub const ANIMATION_STEPS: usize = 100;
/// Milliseconds per frame (the notebook's `interval=20`).
pub const ANIMATION_FRAME_MS: u16 = 20;

/// The lesson on a prepared linear experiment, and its closed-form solution.
pub struct Lesson<'a> {
    /// The experiment: the points, the model, the optimizer.
    pub experiment: &'a Experiment,
    /// The least-squares fit of the points.
    pub ols: LeastSquares,
    /// Also draw the notebook's animation (`animation.gif`).
    pub animate: bool,
    /// The loss of the guess, once computed: a pass over every point, which the command line
    /// prints before training and the outcome reports after it.
    initial_loss: std::cell::OnceCell<f64>,
}

/// Why the lesson cannot run on its points.
#[derive(Debug, thiserror::Error)]
#[error(
    "{source_name}: {why}: the lesson needs at least two points with different x values (nothing was written)"
)]
pub struct NoUniqueLine {
    /// Where the points came from (the file, or `--n N (data.n)`).
    pub source_name: String,
    /// Why they fit no unique line.
    pub why: String,
}

/// What the lesson's training gave.
pub struct LessonOutcome {
    /// The trained model and what happened on the way.
    pub trained: Trained<LinearModel>,
    /// The fitted parameters (slope, intercept).
    pub a: Vec<f64>,
    /// The mean squared error at `a`.
    pub loss: f64,
    /// The mean squared error of the initial guess.
    pub initial_loss: f64,
    /// The largest difference of a parameter from the closed form's.
    pub gap_a: f64,
    /// `loss` minus the closed form's.
    pub gap_loss: f64,
    /// Every update's loss, as (step, loss).
    pub batch_losses: Vec<(usize, f64)>,
    /// Every update's learning rate, as (updates made before it, rate).
    pub rates: Vec<(usize, f64)>,
}

impl<'a> Lesson<'a> {
    /// The lesson on `experiment`'s points. Points that fit no unique line (one point, or all
    /// with one x) are refused, naming where they came from, before anything is written.
    pub fn new(experiment: &'a Experiment, animate: bool) -> Result<Self, NoUniqueLine> {
        let rows = &experiment.rows;
        let ols = rows.least_squares().map_err(|_| {
            let first_x = rows.head(1).first().map_or(0.0, |row| row[0]);
            let why = if rows.len() == 1 {
                "one point fits no unique line".to_string()
            } else {
                format!(
                    "all {} points have x = {first_x}, and no unique line passes through them",
                    rows.len()
                )
            };
            let source_name = match &experiment.config.data {
                DataConfig::Points { path, .. } => format!("{}", path.display()),
                DataConfig::Lesson { n, .. } => format!("--n {n} (data.n)"),
                _ => "the data".to_string(),
            };
            NoUniqueLine { source_name, why }
        })?;
        Ok(Self { experiment, ols, animate, initial_loss: std::cell::OnceCell::new() })
    }

    /// The notebook's cell 7: the mean squared error of the initial guess on every point.
    pub fn initial_loss(&self) -> Result<f64, ReadBackError> {
        if let Some(&loss) = self.initial_loss.get() {
            return Ok(loss);
        }
        let experiment = self.experiment;
        let whole = experiment.rows.full_batch(&experiment.device.device).batch();
        let loss = experiment.model().loss(whole).inner().try_into_scalar::<f32>();
        let loss = f64::from(loss.map_err(|error| ReadBackError::from_debug(&error))?);
        Ok(*self.initial_loss.get_or_init(|| loss))
    }

    /// The trained model's parameters beside the closed form.
    pub fn outcome(
        &self,
        run: TrainedRun<LinearModel>,
        initial_loss: f64,
    ) -> Result<LessonOutcome, RunError> {
        let TrainedRun { trained, batch_losses, rates, .. } = run;
        let a = trained.model.parameters().map_err(|error| TrainError::Device(error.to_string()))?;
        let a: Vec<f64> = a.into_iter().map(f64::from).collect();
        let loss = self.experiment.rows.mse(&a);
        let gap_a = a.iter().zip(&self.ols.a).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        let gap_loss = loss - self.ols.mse;
        Ok(LessonOutcome { trained, a, loss, initial_loss, gap_a, gap_loss, batch_losses, rates })
    }
}

/// The lesson's own fields of its summary.
#[derive(Serialize)]
struct LessonSummary {
    losses: Vec<LossEntry>,
    a: Vec<f64>,
    a_ols: Vec<f64>,
    loss: f64,
    loss_ols: f64,
    initial_loss: f64,
    gap_a: f64,
    gap_loss: f64,
    epochs: usize,
    n: usize,
    lr: f64,
}

impl Task for Lesson<'_> {
    type Outcome = LessonOutcome;

    fn prepared(&self) -> &Prepared {
        self.experiment
    }

    /// The loss of the guess, the training, and the fit beside the closed form.
    fn train(&mut self, options: TrainOptions<'_>) -> Result<LessonOutcome, RunError> {
        let initial_loss = self.initial_loss().map_err(|error| TrainError::Device(error.to_string()))?;
        let source = self.experiment.batches();
        let trained = self
            .experiment
            .train_run_with(source.as_ref(), options, &mut |_| std::ops::ControlFlow::Continue(()))?;
        self.outcome(trained, initial_loss)
    }

    fn save_model(&self, outcome: &LessonOutcome, folder: &RunFolder) -> Result<(), RunFolderError> {
        folder.save_model(outcome.trained.model.valid()).map(drop)
    }

    /// `fit` (the points, the guess and the fitted line), `loss`, `lr`, and when asked the
    /// notebook's animation.
    fn figures(&self, outcome: &LessonOutcome, figures: &Figures) -> Result<(), OutputError> {
        let (experiment, a) = (self.experiment, [outcome.a[0], outcome.a[1]]);
        let (config, points) = (&experiment.config, experiment.rows.scatter());
        let guess = config.linear_init(2);
        let guess = [guess[0], guess[1]];
        figures.save("fit", |format| plots::fit_plot(&points, guess, a, format))?;
        let losses = (&outcome.trained.losses[..], &outcome.batch_losses[..], Vec::new());
        figures.linear_loss_and_schedule(config, losses, &outcome.rates)?;
        if self.animate {
            let frames = experiment.trajectory(ANIMATION_STEPS)?;
            let gif = plots::animation(&points, &frames, ANIMATION_FRAME_MS).map_err(FigureError::from)?;
            figures.folder().write(ANIMATION_FILE, &gif)?;
        }
        Ok(())
    }

    fn metrics(&self, outcome: &LessonOutcome) -> Option<Vec<MetricsRow>> {
        Some(outcome.trained.losses.iter().map(MetricsRow::from).collect())
    }

    fn summary(&self, outcome: &LessonOutcome, place: RunPlace<'_>) -> serde_json::Value {
        let (experiment, trained) = (self.experiment, &outcome.trained);
        let lesson = LessonSummary {
            losses: loss_entries(&trained.losses),
            a: outcome.a.clone(),
            a_ols: self.ols.a.clone(),
            loss: outcome.loss,
            loss_ols: self.ols.mse,
            initial_loss: outcome.initial_loss,
            gap_a: outcome.gap_a,
            gap_loss: outcome.gap_loss,
            epochs: trained.epochs,
            n: experiment.rows.len(),
            lr: experiment.config.optimizer.lr(),
        };
        let batch_size = experiment.config.training.batch_size.unwrap_or(experiment.rows.len());
        RunSummary::new(place, trained.steps, batch_size, trained.seconds, lesson).to_json()
    }
}
