//! A handle that stops a run between two updates: what Ctrl-C, a failing standard output, a
//! notebook's stop button or a library user's own condition reaches the engine through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Ask a run to stop: the engine checks it after every update, and a stopped run writes a
/// checkpoint there and ends as interrupted (`RunError::Interrupted`), to be resumed later.
/// Clones share one flag, so one clone can go to a signal handler or another thread while the
/// run holds another; a fresh handle for each run keeps runs in one process apart.
#[derive(Clone, Debug, Default)]
pub struct Interrupter {
    stop: Arc<AtomicBool>,
}

impl Interrupter {
    /// A handle that has not asked anything yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the run to stop after the update under way. It only stores a flag, so a signal
    /// handler may call it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked for.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Forget a stop asked for, to use the handle for another run.
    pub fn reset(&self) {
        self.stop.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Interrupter;

    #[test]
    fn clones_share_the_flag_and_other_handles_do_not() {
        let (run, other) = (Interrupter::new(), Interrupter::new());
        let handler = run.clone();
        assert!(!run.should_stop());
        handler.stop();
        assert!(run.should_stop() && !other.should_stop());
        run.reset();
        assert!(!handler.should_stop());
    }
}
