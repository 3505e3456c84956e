//! Batches on a device: the whole table at once (the notebook's full-batch descent) or mini-batches
//! through Burn's `DataLoader` with a seeded shuffle.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::prelude::*;

use super::{ImageSet, Table};
use crate::train::{BatchSource, Batches};

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
}

impl BatchSource<RegressionBatch> for FullBatch {
    fn batches_per_epoch(&self) -> usize {
        1
    }

    fn epoch(&self) -> Batches<'_, RegressionBatch> {
        // Cloning a tensor clones a handle, not the data.
        Box::new(std::iter::once(Ok(self.batch.clone())))
    }
}

/// Mini-batches through Burn's `DataLoader`: the dataset is a list of indices (rows of a table,
/// images of a set), shuffled every epoch from a seed; a batcher copies the chosen items into
/// tensors, one batch at a time. The last batch of an epoch may be smaller.
pub struct LoaderBatches<B> {
    loader: Arc<dyn DataLoader<B>>,
    batches_per_epoch: usize,
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
        let batches_per_epoch = indices.len().div_ceil(batch_size);
        let loader = DataLoaderBuilder::new(batcher)
            .batch_size(batch_size)
            .shuffle(seed)
            .set_device(device.clone())
            .build(InMemDataset::new(indices));
        Self { loader, batches_per_epoch }
    }
}

impl<B> BatchSource<B> for LoaderBatches<B> {
    fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    fn epoch(&self) -> Batches<'_, B> {
        Box::new(self.loader.iter().map(|batch| batch.map_err(|error| error.to_string())))
    }
}

/// Shuffled mini-batches of a table's rows.
pub type MiniBatches = LoaderBatches<RegressionBatch>;

impl MiniBatches {
    /// Batches of `batch_size` rows of `table`, reshuffled every epoch from `seed`.
    ///
    /// # Panics
    /// If `batch_size` is 0 (callers validate user input first).
    pub fn new(table: Arc<Table>, batch_size: usize, seed: u64, device: &Device) -> Self {
        let rows = (0..table.len()).collect();
        Self::with_batcher(RowBatcher { table }, rows, batch_size, seed, device)
    }
}

/// Gathers the rows named by a batch of indices into tensors.
struct RowBatcher {
    table: Arc<Table>,
}

impl Batcher<usize, RegressionBatch> for RowBatcher {
    fn batch(&self, rows: Vec<usize>, device: &Device) -> RegressionBatch {
        let features = self.table.features();
        let mut x = Vec::with_capacity(rows.len() * features);
        let mut y = Vec::with_capacity(rows.len());
        for &row in &rows {
            x.extend_from_slice(self.table.row(row));
            y.push(self.table.y()[row]);
        }
        RegressionBatch {
            x: Tensor::from_data(TensorData::new(x, [rows.len(), features]), device),
            y: Tensor::from_data(TensorData::new(y, [rows.len(), 1]), device),
        }
    }
}

/// Images (`[b, 1, side, side]`) and their class labels (`[b]`), on one device.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// Pixels in [0, 1], one channel.
    pub images: Tensor<4>,
    /// Class labels.
    pub labels: Tensor<1, Int>,
}

impl ImageBatch {
    /// The images `indices` of `set` as one batch on `device`.
    pub fn gather(set: &ImageSet, indices: &[usize], device: &Device) -> Self {
        let side = set.side();
        let mut pixels = Vec::with_capacity(indices.len() * side * side);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(set.image(i));
            labels.push(i64::from(set.label(i)));
        }
        ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels, [indices.len(), 1, side, side]), device),
            labels: Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
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
        device: &Device,
    ) -> Self {
        Self::with_batcher(ImageBatcher { set }, indices, batch_size, seed, device)
    }
}

struct ImageBatcher {
    set: Arc<ImageSet>,
}

impl Batcher<usize, ImageBatch> for ImageBatcher {
    fn batch(&self, indices: Vec<usize>, device: &Device) -> ImageBatch {
        ImageBatch::gather(&self.set, &indices, device)
    }
}
