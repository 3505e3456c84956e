//! The outputs of a run as observers of the engine's events.
//!
//! A training run tells each [`Observer`] of every update, every reported loss and every epoch's
//! end, in order; a progress bar, the printed lines, a log file or an experiment viewer is each
//! one observer, passed to [`crate::run::Run::execute`] (or in
//! [`crate::experiment::TrainOptions::observers`]); every run's
//! TensorBoard log ([`crate::report::tensorboard::EventLog`]) is one. The checkpoints and
//! the metrics rows are the run's own (see [`crate::experiment::Prepared::train_run`]).

use crate::train::{BatchEnd, LossRecord, MetricsRow};

/// Something that watches a run. Every method has a default that does nothing.
pub trait Observer {
    /// After each update, with the batch's loss. To stop the run there (Ctrl-C), an observer
    /// holds a clone of the run's [`crate::train::Interrupter`] and stops it.
    fn batch(&mut self, end: &BatchEnd) {
        let _ = end;
    }

    /// Each reported loss: every `print_every` steps with full batches, each epoch's mean with
    /// mini-batches.
    fn loss(&mut self, record: &LossRecord) {
        let _ = record;
    }

    /// The end of a whole epoch (not of one interrupted part-way), before its checkpoint, if due,
    /// is written: `rows` are the run's metrics rows so far (a resumed run's start with its
    /// checkpoint's), the last one the epoch's (with its validation figures for a classifier).
    fn epoch(&mut self, epoch: usize, rows: &[MetricsRow]) {
        let _ = (epoch, rows);
    }

    /// Just before a checkpoint may be written (each epoch's end, and an interruption's): write
    /// out what is buffered, so that everything up to the checkpoint is on disk before it is,
    /// and a run killed after it and resumed from it has lost nothing the checkpoint covers.
    fn flush(&mut self) {}

    /// A value a task logs beside training (lr-find's sweep: `lr_find/lr` at each step), by
    /// tag and step.
    fn scalar(&mut self, tag: &str, step: usize, value: f64) {
        let _ = (tag, step, value);
    }
}
