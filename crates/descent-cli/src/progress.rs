//! Progress while training. On a terminal: a bar per epoch with the running loss, cleared when
//! the epoch's line is printed. Anywhere else (a pipe, a file, CI, `nohup`): nothing but the
//! lines the commands print at their cadence, with no escape codes.

use std::io::IsTerminal;

use descent::observe::Observer;
use descent::train::BatchEnd;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Weight of the newest batch loss in the running loss (fastai's smoothing, beta = 0.98).
const SMOOTHING: f64 = 0.02;

/// The bar of the epoch in progress, if progress is shown at all.
pub struct Progress {
    enabled: bool,
    total_epochs: Option<usize>,
    bar: Option<ProgressBar>,
    /// Exponential moving average of the batch losses, and the sum of its weights (to remove
    /// the bias toward 0 of the first batches, as fastai's smoothed loss does).
    running: (f64, f64),
}

impl Progress {
    /// Progress bars when standard output is a terminal and the run is not `--quiet`.
    pub fn new(quiet: bool, total_epochs: Option<usize>) -> Self {
        let enabled = !quiet
            && crate::output::prints()
            && std::io::stdout().is_terminal()
            && std::env::var("TERM").as_deref() != Ok("dumb");
        Self { enabled, total_epochs, bar: None, running: (0.0, 0.0) }
    }

    /// Move the bar after an update. Runs with one batch per epoch (full-batch descent) show no
    /// bar: an epoch is one step, and the printed lines already say where the run is.
    fn advance(&mut self, end: &BatchEnd) {
        if !self.enabled || end.batches < 2 {
            return;
        }
        if end.batch == 1 {
            self.start_epoch(end.epoch, end.batches);
        }
        let Some(bar) = &self.bar else { return };
        let (average, weight) = self.running;
        self.running =
            ((1.0 - SMOOTHING) * average + SMOOTHING * end.loss, (1.0 - SMOOTHING) * weight + SMOOTHING);
        bar.set_message(format!("loss {:.4}", self.running.0 / self.running.1));
        bar.set_position(end.batch as u64);
        if end.batch == end.batches {
            self.clear();
        }
    }

    /// Remove the bar (before printing a line, or at the end).
    pub fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn start_epoch(&mut self, epoch: usize, batches: usize) {
        self.clear();
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} batches  {msg}  {elapsed}")
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let total = self.total_epochs.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
        bar.set_prefix(format!("epoch {epoch}/{total}"));
        self.bar = Some(bar);
    }
}

impl Observer for Progress {
    fn batch(&mut self, end: &BatchEnd) {
        self.advance(end);
    }
}

/// The fewest pictures whose decoding shows a bar: smaller folders decode in a moment.
const DECODING_BAR_FROM: usize = 500;

/// A bar while a folder's pictures are decoded, on a terminal and not `--quiet`; `tell` is the
/// library's progress callback (done, total), callable from any decoding thread.
pub struct Decoding {
    enabled: bool,
    bar: std::sync::OnceLock<ProgressBar>,
}

impl Decoding {
    /// A bar as [`Progress`] shows one: only on a terminal, not `--quiet`.
    pub fn new(quiet: bool) -> Self {
        let enabled = !quiet
            && crate::output::prints()
            && std::io::stdout().is_terminal()
            && std::env::var("TERM").as_deref() != Ok("dumb");
        Self { enabled, bar: std::sync::OnceLock::new() }
    }

    /// `done` of `total` pictures decoded.
    pub fn tell(&self, done: usize, total: usize) {
        if !self.enabled || total < DECODING_BAR_FROM {
            return;
        }
        let bar = self.bar.get_or_init(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
            let style =
                ProgressStyle::with_template("decoding pictures [{bar:30}] {pos}/{len}  {per_sec}  {eta}")
                    .map(|style| style.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        bar.set_position(done as u64);
        if done >= total {
            bar.finish_and_clear();
        }
    }
}
