//! What a run leaves behind. Observers of the engine write here; the engine knows nothing of it.
//! Reading a finished run's model back (predict, export) is [`crate::inference`]'s.

pub mod confusion;
pub mod figures;
pub mod files;
pub mod metrics_csv;
pub mod plots;
pub mod run_folder;
pub mod summary;
pub mod tensorboard;

pub use files::{
    ANIMATION_FILE, CHECKSUM_FILE, CONFIG_FILE, EXPORT_FILE, METRICS_FILE, MODEL_FILE, ONNX_FILE,
    SUMMARY_FILE,
};
pub use metrics_csv::{METRICS_HEADER, MetricsRow, csv_field, metrics_csv};
pub use run_folder::{RunFolder, RunFolderError, check_writable, hex, sha256_hex, utc_stamp, write_atomic};
pub use summary::{RunPlace, RunSummary};
