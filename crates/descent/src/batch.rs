//! What the engine takes from the data: batches that know their size, and sources of them
//! epoch by epoch. The data loaders (`crate::data`) make them, the engine (`crate::train`)
//! consumes them; neither imports the other for it.

use burn::prelude::*;

/// The batches of one epoch, in order; an error says why a batch could not be made.
pub type Batches<'a, B> = Box<dyn Iterator<Item = Result<B, BatchError>> + 'a>;

/// Why a batch could not be made (Burn's data loader failed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BatchError(pub String);

/// Where batches come from: every call to [`BatchSource::epoch`] starts a new epoch.
pub trait BatchSource<B> {
    /// How many batches one epoch has.
    fn batches_per_epoch(&self) -> usize;

    /// How many examples batch `index` (0-based) of every epoch holds, when the source knows it
    /// before making the batch; gradient accumulation needs it to weight a group's batches.
    fn rows_of(&self, index: usize) -> Option<usize> {
        let _ = index;
        None
    }
    /// The batches of the next epoch.
    fn epoch(&self) -> Batches<'_, B>;

    /// Move past `epochs` epochs without making their batches, so that the next call to
    /// [`BatchSource::epoch`] gives the batches (and shuffle) of epoch `epochs + 1`: what a resumed
    /// run does. The default starts each epoch and drops it, which for a shuffling source only
    /// draws the epoch's order.
    fn skip_epochs(&self, epochs: usize) {
        for _ in 0..epochs {
            drop(self.epoch());
        }
    }
}

/// What the engine needs of a batch: how many examples it holds (to weight epoch means), and,
/// for data-parallel training, a range of its examples on another device.
pub trait BatchRows {
    /// Number of examples in the batch.
    fn rows(&self) -> usize;

    /// The examples `rows` (a range within `0..self.rows()`) as a batch on `device`.
    fn slice_rows(&self, rows: std::ops::Range<usize>, device: &Device) -> Self;

    /// The batch with `seed` for its random draws (dropout masks): the engine calls it before
    /// each forward pass with a seed made of the run's seed and the step, so that a step draws
    /// the same at every run and resume and no two runs share a generator. Batches whose model
    /// draws nothing keep the default, which ignores it.
    fn seeded(self, seed: u64) -> Self
    where
        Self: Sized,
    {
        let _ = seed;
        self
    }
}
