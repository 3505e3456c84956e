//! What a run leaves behind. Observers of the engine write here; the engine knows nothing of it.

pub mod run_folder;

pub use run_folder::{RunFolder, RunFolderError};
