//! Data: the lesson's generator, CSV tables and point files, images, and batches on a device.

pub mod augment;
pub mod batches;
pub mod csv_table;
pub mod folder;
pub mod images;
pub mod mixup;
pub mod pictures;
pub mod points;
pub mod random;
pub mod synthetic;

pub use batches::{FullBatch, ImageBatch, ImageBatches, MiniBatches, Mix, RegressionBatch};
pub use images::{ImageSet, Split};
pub use points::{read_points, read_x};
pub use synthetic::LessonData;

use burn::prelude::*;

/// The fraction of the rows or images held out for validation when a configuration sets none.
pub(crate) fn default_valid_fraction() -> f64 {
    crate::defaults::VALID_FRACTION
}

/// A regression table held on the host: `n` rows of `d` features (row-major) and one target each.
///
/// For the lesson `d = 2` and the second feature is the column of ones, so the model `x·a` has an
/// intercept without a separate bias. The values are `f32`, the values the model trains on; the
/// oracles ([`crate::ols`], [`Table::mse`]) accumulate them in `f64`.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    x: Vec<f32>,
    y: Vec<f32>,
    features: usize,
}

impl Table {
    /// A table from row-major features and targets.
    ///
    /// # Panics
    /// If `x.len() != y.len() * features` or `features == 0` (a programming error, not user input:
    /// readers check rows as they read them).
    pub fn new(x: Vec<f32>, y: Vec<f32>, features: usize) -> Self {
        assert!(features > 0, "a table needs at least one feature column");
        assert_eq!(x.len(), y.len() * features, "x must hold `features` values per target");
        Self { x, y, features }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of feature columns (including the column of ones, when there is one).
    pub fn features(&self) -> usize {
        self.features
    }

    /// The features of row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.features..(i + 1) * self.features]
    }

    /// All features, row-major.
    pub fn x(&self) -> &[f32] {
        &self.x
    }

    /// All targets.
    pub fn y(&self) -> &[f32] {
        &self.y
    }

    /// Features as an `[n, d]` tensor on `device`.
    /// The columns, given up: `x` row-major (`features` values per row) and `y`. Moved into
    /// device tensors, they cost no copy on the CPU.
    pub fn into_columns(self) -> (Vec<f32>, Vec<f32>) {
        (self.x, self.y)
    }

    pub fn x_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.x.clone(), [self.len(), self.features]), device)
    }

    /// Targets as an `[n, 1]` tensor on `device`.
    pub fn y_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.y.clone(), [self.len(), 1]), device)
    }

    /// Mean squared error of the predictions `x·a`, accumulated in `f64` on the host.
    ///
    /// # Panics
    /// If `a.len()` is not the number of features.
    pub fn mse(&self, a: &[f64]) -> f64 {
        assert_eq!(a.len(), self.features, "one parameter per feature");
        let total: f64 = (0..self.len())
            .map(|i| {
                let prediction: f64 = self.row(i).iter().zip(a).map(|(&x, &a)| f64::from(x) * a).sum();
                let residual = prediction - f64::from(self.y[i]);
                residual * residual
            })
            .sum();
        total / self.len() as f64
    }
}

use std::path::PathBuf;

/// The eight bytes every PNG file starts with.
pub const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// What a file is, by its first bytes, when it is a picture, an archive or another binary format
/// that people hand to a command by mistake: `a PNG picture`, `a JPEG picture`, ...; `None` for
/// anything else (text included).
pub fn binary_kind(start: &[u8]) -> Option<&'static str> {
    const KINDS: [(&[u8], &str); 9] = [
        (PNG_SIGNATURE, "a PNG picture"),
        (b"\xff\xd8\xff", "a JPEG picture"),
        (b"GIF8", "a GIF picture"),
        (b"RIFF", "a RIFF file (a WebP picture or a WAV sound)"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"PK\x03\x04", "a zip archive"),
        (b"%PDF", "a PDF document"),
        (b"\x7fELF", "a program (ELF)"),
        (b"\x00\x00\x08", "an IDX file (MNIST's format)"),
    ];
    KINDS.iter().find(|(magic, _)| start.starts_with(magic)).map(|&(_, kind)| kind)
}

/// Why a data file could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A line of the file is not what it should be.
    /// A data set that is not where the configuration says, with what to do.
    #[error("{}: {message}", path.display())]
    Missing {
        /// The folder or file looked in.
        path: PathBuf,
        /// What is missing and how to get it.
        message: String,
    },
    #[error("{}, line {line}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The 1-based line number (the header is line 1).
        line: u64,
        /// What was found and what is allowed.
        message: String,
    },
    /// A binary file (MNIST IDX) is not what it should be.
    #[error("{}, byte {offset}: {message}", path.display())]
    Binary {
        /// The file.
        path: PathBuf,
        /// The byte offset where the problem is.
        offset: usize,
        /// What was found and what is allowed.
        message: String,
    },
    /// A whole column cannot be used (a constant feature).
    #[error("{}, column {column} (`{name}`): {message}", path.display())]
    Column {
        /// The file.
        path: PathBuf,
        /// The 1-based column number.
        column: usize,
        /// The column's name in the header.
        name: String,
        /// What was found and what to do.
        message: String,
    },
    /// The rows as a whole cannot be used (too few for the model).
    #[error("{}: {message}", path.display())]
    Rows {
        /// The file.
        path: PathBuf,
        /// What was found and what is needed.
        message: String,
    },
    /// The file holds no data.
    #[error("{} has {what}: expected a header row and at least one data row", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What it has instead.
        what: String,
    },
}
