//! A finished run's model at work: read back from its folder ([`saved_model`]), predicting on
//! new rows and pictures ([`predict`]), and written for other tools ([`export`]: safetensors for
//! PyTorch, ONNX for onnxruntime). `descent predict` and `descent export` are this module.

pub mod export;
pub mod init_from;
pub mod predict;
pub mod saved_model;
pub mod spool;

pub use saved_model::{SavedClassifier, SavedModel, SavedModelError, load_saved, load_saved_unverified};
