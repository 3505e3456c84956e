//! What a run leaves behind. Observers of the engine write here; the engine knows nothing of it.

pub mod export;
pub mod figures;
pub mod files;
pub mod metrics_csv;
pub mod plots;
pub mod predict;
pub mod run_folder;
pub mod saved_model;
pub mod summary;
pub mod tensorboard;

pub use files::{
    ANIMATION_FILE, CHECKSUM_FILE, CONFIG_FILE, EXPORT_FILE, METRICS_FILE, MODEL_FILE, ONNX_FILE,
    SUMMARY_FILE,
};
pub use metrics_csv::{METRICS_HEADER, MetricsRow, metrics_csv};
pub use run_folder::{RunFolder, RunFolderError, check_writable, write_atomic};
pub use saved_model::{SavedClassifier, SavedModel, SavedModelError, load_saved, load_saved_unverified};
pub use summary::{RunPlace, RunSummary};
