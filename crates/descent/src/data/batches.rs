//! Batches on a device: the whole table at once (the notebook's full-batch descent), shuffled
//! slices of the table held on the device (mini-batches of rows), or images through Burn's
//! `DataLoader` with a seeded shuffle.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::prelude::*;

use super::random::SeededRng;
use super::{ImageSet, Table};
use crate::batch::{BatchError, BatchRows, BatchSource, Batches};

/// Features `x` (`[b, d]`) and targets `y` (`[b, 1]`) of `b` rows, on one device.
#[derive(Clone, Debug)]
pub struct RegressionBatch {
    /// Features, one row per example.
    pub x: Tensor<2>,
    /// Targets, one row per example.
    pub y: Tensor<2>,
}

impl RegressionBatch {
    /// The whole table as one batch on `device`.
    pub fn from_table(table: &Table, device: &Device) -> Self {
        Self { x: table.x_tensor(device), y: table.y_tensor(device) }
    }

    /// Number of rows in the batch.
    pub fn len(&self) -> usize {
        self.y.dims()[0]
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Full-batch descent: every epoch is one batch holding every row, made once and reused.
#[derive(Clone, Debug)]
pub struct FullBatch {
    batch: RegressionBatch,
}

impl FullBatch {
    /// Put the whole table on `device` once.
    pub fn new(table: &Table, device: &Device) -> Self {
        Self { batch: RegressionBatch::from_table(table, device) }
    }

    /// Put `table` on `device`, giving up the host copy: its columns move into the tensors (no
    /// copy at all on Flex; other devices copy them and the host's are freed).
    pub fn from_owned(table: Table, device: &Device) -> Self {
        let (rows, features) = (table.len(), table.features());
        let (x, y) = table.into_columns();
        let x = Tensor::from_data(TensorData::new(x, [rows, features]), device);
        let y = Tensor::from_data(TensorData::new(y, [rows, 1]), device);
        Self { batch: RegressionBatch { x, y } }
    }

    /// The batch: every row (tensor handles; no data is copied).
    pub fn batch(&self) -> RegressionBatch {
        self.batch.clone()
    }
}

impl BatchSource<RegressionBatch> for FullBatch {
    fn rows_of(&self, index: usize) -> Option<usize> {
        (index == 0).then(|| self.batch.len())
    }

    fn batches_per_epoch(&self) -> usize {
        1
    }

    fn epoch(&self) -> Batches<'_, RegressionBatch> {
        // Cloning a tensor clones a handle, not the data.
        Box::new(std::iter::once(Ok(self.batch.clone())))
    }
}

/// The examples in batch `index` of `items` examples cut into batches of `batch_size` (the last
/// one may be smaller); `None` past the end.
fn rows_of_batch(items: usize, batch_size: usize, index: usize) -> Option<usize> {
    let start = index.checked_mul(batch_size)?;
    (start < items).then(|| batch_size.min(items - start))
}

/// Mini-batches through Burn's `DataLoader`: the dataset is a list of indices (rows of a table,
/// images of a set), shuffled every epoch from a seed; a batcher copies the chosen items into
/// tensors, one batch at a time. The last batch of an epoch may be smaller.
pub struct LoaderBatches<B> {
    loader: Arc<dyn DataLoader<B>>,
    batches_per_epoch: usize,
    items: usize,
    batch_size: usize,
}

impl<B: Send + Sync + Clone + std::fmt::Debug + 'static> LoaderBatches<B> {
    /// Batches of `batch_size` of `indices`, made by `batcher`, reshuffled every epoch; the
    /// sequence of orders is determined by `seed`.
    ///
    /// # Panics
    /// If `batch_size` is 0 (callers validate user input first).
    fn with_batcher(
        batcher: impl Batcher<usize, B> + 'static,
        indices: Vec<usize>,
        batch_size: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        assert!(batch_size > 0, "batch size must be positive");
        let (items, batches_per_epoch) = (indices.len(), indices.len().div_ceil(batch_size));
        // Burn's loader reserves a batch's worth of items up front: a batch larger than the set
        // (`--batch-size 18446744073709551615`) is the whole set, not a capacity overflow.
        let loader = DataLoaderBuilder::new(batcher)
            .batch_size(batch_size.min(items.max(1)))
            .shuffle(seed)
            .set_device(device.clone())
            .build(InMemDataset::new(indices));
        Self { loader, batches_per_epoch, items, batch_size }
    }
}

impl<B> BatchSource<B> for LoaderBatches<B> {
    fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    fn rows_of(&self, index: usize) -> Option<usize> {
        rows_of_batch(self.items, self.batch_size, index)
    }

    fn epoch(&self) -> Batches<'_, B> {
        Box::new(self.loader.iter().map(|batch| batch.map_err(|error| BatchError(error.to_string()))))
    }
}

/// Shuffled mini-batches of a table's rows, taken from the table held once on the device.
///
/// Each epoch draws a permutation of the rows on the host from the seed and the epoch number,
/// gathers the whole table in that order with one `select` per tensor, and hands out contiguous
/// slices of it as batches. Per batch that is two slices, where Burn's `DataLoader` would clone
/// every row and build two new tensors from host memory: with rows of a few floats, that copying
/// was most of the time of an epoch (see BENCHMARKS.md). The last batch of an epoch may be smaller.
pub struct MiniBatches {
    x: Tensor<2>,
    y: Tensor<2>,
    rows: usize,
    batch_size: usize,
    seed: u64,
    /// Epochs started so far.
    epochs: std::cell::Cell<u64>,
}

impl MiniBatches {
    /// Batches of `batch_size` rows of `table`, reshuffled every epoch from `seed`.
    ///
    /// # Panics
    /// If `batch_size` is 0 (callers validate user input first).
    pub fn new(table: Arc<Table>, batch_size: usize, seed: u64, device: &Device) -> Self {
        assert!(batch_size > 0, "batch size must be positive");
        Self {
            x: table.x_tensor(device),
            y: table.y_tensor(device),
            rows: table.len(),
            batch_size,
            seed,
            epochs: std::cell::Cell::new(0),
        }
    }

    /// The order of the rows in epoch `epoch` (0-based): a permutation drawn from the seed and
    /// the epoch alone, so that any epoch's order can be drawn without the ones before it.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        SeededRng::new(epoch_seed(self.seed, epoch)).permutation(self.rows)
    }
}

/// The seed of epoch `epoch`'s shuffle: SplitMix64 of the run's seed and the epoch, so that
/// neighbouring seeds and epochs give unrelated streams.
fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl BatchSource<RegressionBatch> for MiniBatches {
    fn batches_per_epoch(&self) -> usize {
        self.rows.div_ceil(self.batch_size)
    }

    fn rows_of(&self, index: usize) -> Option<usize> {
        rows_of_batch(self.rows, self.batch_size, index)
    }

    fn epoch(&self) -> Batches<'_, RegressionBatch> {
        let epoch = self.epochs.get();
        self.epochs.set(epoch + 1);
        let order: Vec<i64> = self.order(epoch).into_iter().map(|row| row as i64).collect();
        let device = self.x.device();
        let index = Tensor::<1, Int>::from_data(TensorData::new(order, [self.rows]), &device);
        let x = self.x.clone().select(0, index.clone());
        let y = self.y.clone().select(0, index);
        let (rows, size) = (self.rows, self.batch_size);
        Box::new((0..rows.div_ceil(size)).map(move |batch| {
            let range = batch * size..((batch + 1) * size).min(rows);
            Ok(RegressionBatch { x: x.clone().slice(range.clone()), y: y.clone().slice(range) })
        }))
    }

    fn skip_epochs(&self, epochs: usize) {
        // Each epoch's order depends on its number only: nothing to draw.
        self.epochs.set(self.epochs.get() + epochs as u64);
    }
}

/// Images (`[b, channels, side, side]`) and their class labels (`[b]`), on one device.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// The images' values: grey pixels in [0, 1], or a folder's normalised channels.
    pub images: Tensor<4>,
    /// Class labels.
    pub labels: Tensor<1, Int>,
    /// The seed of the batch's random draws (dropout masks: [`crate::nn::Dropout`]): the engine
    /// sets it from the run's seed and the step before the forward pass, so a run's draws
    /// depend on its own seed alone, never on a generator another run shares.
    pub seed: u64,
    /// Label smoothing ε of this batch's loss (`training.label_smoothing`; 0: the plain
    /// cross-entropy): set on training batches ([`ImageBatches::new`]), 0 on evaluation batches.
    pub label_smoothing: f32,
    /// With MixUp (`training.mixup`): each image's partner's label and the images' own weight,
    /// for the blended loss ([`crate::train::classification_loss`]); `None` elsewhere.
    pub mix: Option<Mix>,
}

impl ImageBatch {
    /// The images `indices` of `set` as one batch on `device`.
    pub fn gather(set: &ImageSet, indices: &[usize], device: &Device) -> Self {
        let (side, channels) = (set.side(), set.channels());
        let mut pixels = Vec::with_capacity(indices.len() * set.shape().values());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(set.image(i));
            labels.push(i64::from(set.label(i)));
        }
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [indices.len(), channels, side, side]), device),
            labels: Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
            seed: 0,
            label_smoothing: 0.0,
            mix: None,
        }
    }

    /// Number of images in the batch.
    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    /// Whether the batch has no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What MixUp did to a batch: each image's partner's label, and the weight of the image itself.
#[derive(Clone, Debug)]
pub struct Mix {
    /// The label of the image each image was blended with (`labels[π]`).
    pub labels: Tensor<1, Int>,
    /// λ: the image's own share of the blend (the partner's is 1 − λ).
    pub weight: f32,
}

/// Training batches each changed on their device as they leave `inner`, by a function of the
/// epoch (1-based), the batch's place in it (0-based) and the batch: augmentation's moves and
/// MixUp's blends, whose draws depend on those alone, so a resumed run (which skips epochs)
/// draws what the uninterrupted run drew.
pub struct EachBatch {
    inner: Box<dyn BatchSource<ImageBatch>>,
    change: Box<dyn Fn(usize, usize, ImageBatch) -> ImageBatch>,
    /// Epochs started (the next is this plus one).
    epochs: std::cell::Cell<usize>,
}

impl EachBatch {
    /// `inner`'s batches, each passed through `change(epoch, batch, made)`.
    pub fn new(
        inner: Box<dyn BatchSource<ImageBatch>>,
        change: impl Fn(usize, usize, ImageBatch) -> ImageBatch + 'static,
    ) -> Self {
        Self { inner, change: Box::new(change), epochs: std::cell::Cell::new(0) }
    }
}

impl BatchSource<ImageBatch> for EachBatch {
    fn batches_per_epoch(&self) -> usize {
        self.inner.batches_per_epoch()
    }

    fn rows_of(&self, index: usize) -> Option<usize> {
        self.inner.rows_of(index)
    }

    fn epoch(&self) -> Batches<'_, ImageBatch> {
        let epoch = self.epochs.get() + 1;
        self.epochs.set(epoch);
        let change = &self.change;
        Box::new(self.inner.epoch().enumerate().map(move |(batch, made)| Ok(change(epoch, batch, made?))))
    }

    fn skip_epochs(&self, epochs: usize) {
        self.inner.skip_epochs(epochs);
        self.epochs.set(self.epochs.get() + epochs);
    }
}

/// Shuffled mini-batches of a subset of an image set (the training split).
pub type ImageBatches = LoaderBatches<ImageBatch>;

impl ImageBatches {
    /// Batches of `batch_size` of the images `indices` of `set`, reshuffled every epoch from
    /// `seed`.
    ///
    /// # Panics
    /// If `batch_size` is 0 (callers validate user input first).
    pub fn new(
        set: Arc<ImageSet>,
        indices: Vec<usize>,
        batch_size: usize,
        seed: u64,
        label_smoothing: f32,
        device: &Device,
    ) -> Self {
        Self::with_batcher(ImageBatcher { set, label_smoothing }, indices, batch_size, seed, device)
    }
}

/// Training batches of an image set, each carrying the run's label smoothing.
struct ImageBatcher {
    set: Arc<ImageSet>,
    label_smoothing: f32,
}

impl Batcher<usize, ImageBatch> for ImageBatcher {
    fn batch(&self, indices: Vec<usize>, device: &Device) -> ImageBatch {
        ImageBatch {
            label_smoothing: self.label_smoothing,
            ..ImageBatch::gather(&self.set, &indices, device)
        }
    }
}

// What the engine needs of a batch: its rows, and a range of them on another device.

impl BatchRows for RegressionBatch {
    fn rows(&self) -> usize {
        self.len()
    }

    fn slice_rows(&self, rows: std::ops::Range<usize>, device: &Device) -> Self {
        Self {
            x: self.x.clone().slice(rows.clone()).to_device(device),
            y: self.y.clone().slice(rows).to_device(device),
        }
    }
}

impl BatchRows for ImageBatch {
    fn rows(&self) -> usize {
        self.len()
    }

    fn slice_rows(&self, rows: std::ops::Range<usize>, device: &Device) -> Self {
        Self {
            images: self.images.clone().slice(rows.clone()).to_device(device),
            labels: self.labels.clone().slice(rows.clone()).to_device(device),
            seed: self.seed,
            label_smoothing: self.label_smoothing,
            mix: self.mix.as_ref().map(|mix| Mix {
                labels: mix.labels.clone().slice(rows.clone()).to_device(device),
                weight: mix.weight,
            }),
        }
    }

    fn seeded(self, seed: u64) -> Self {
        Self { seed, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_is_a_new_permutation_of_all_rows_in_slices() {
        let n = 103;
        let device =
            crate::device::select("ndarray").or_else(|_| crate::device::select("flex")).unwrap().device;
        let batches = MiniBatches::new(batches_table(n), 10, 5, &device);
        assert_eq!(batches.batches_per_epoch(), 11);
        let mut orders = Vec::new();
        for epoch in 0..3 {
            let mut seen = Vec::new();
            let mut sizes = Vec::new();
            for batch in batches.epoch() {
                let batch = batch.unwrap();
                let x: Vec<f32> = batch.x.into_data().try_into_vec().unwrap();
                let y: Vec<f32> = batch.y.into_data().try_into_vec().unwrap();
                sizes.push(y.len());
                for (row, target) in x.chunks(2).zip(&y) {
                    assert_eq!((row[1], *target), (1.0, 10.0 * row[0]), "rows stay whole");
                    seen.push(row[0] as usize);
                }
            }
            assert_eq!(sizes, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]);
            assert_eq!(seen, batches.order(epoch), "epoch {epoch} follows its drawn order");
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "every row once");
            orders.push(seen);
        }
        assert!(orders[0] != orders[1] && orders[1] != orders[2]);
        // A resumed source skips epochs without drawing them, and continues with the same order.
        let resumed = MiniBatches::new(batches_table(n), 10, 5, &device);
        resumed.skip_epochs(2);
        let third: Vec<usize> = resumed
            .epoch()
            .flat_map(|b| {
                b.unwrap()
                    .x
                    .into_data()
                    .try_into_vec::<f32>()
                    .unwrap()
                    .chunks(2)
                    .map(|r| r[0] as usize)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(third, orders[2]);
    }

    /// Row i is `x = [i, 1]`, `y = 10 i`.
    fn batches_table(n: usize) -> Arc<Table> {
        let x: Vec<f32> = (0..n).flat_map(|i| [i as f32, 1.0]).collect();
        let y: Vec<f32> = (0..n).map(|i| 10.0 * i as f32).collect();
        Arc::new(Table::new(x, y, 2))
    }
}
