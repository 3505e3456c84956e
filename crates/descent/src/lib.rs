//! descent: gradient descent on Burn 0.22.
//!
//! The fast.ai lesson-2 "SGD from scratch" reproduced faithfully, and the trainer that grows out
//! of it. One concern per module:
//!
//! - [`batch`]: the batch traits the data makes and the engine consumes;
//! - [`data`]: where rows come from (the lesson's generator, CSV files) and how they become
//!   batches on a device;
//! - [`model`]: the models the trainer fits (the lesson's linear model `x·a`);
//! - [`nn`]: layers for your own models with fast CPU kernels ([`nn::ConvBlock`]);
//! - [`train`]: the one training engine every model goes through;
//! - [`device`]: backend names to Burn devices; the only module that knows which backends exist;
//! - [`regression`]: linear regression on a CSV table of your own (`descent fit`);
//! - [`ols`]: closed-form least squares, the oracle gradient descent is measured against;
//! - [`optim`] and [`config`]: optimizers, schedules and whole runs as TOML-backed data;
//! - [`flags`]: the training commands' flags (clap argument groups) and the one step from them to
//!   a checked configuration;
//! - [`experiment`]: a run prepared from its configuration, ready for the engine;
//! - [`notebook`]: the lesson's figures as images under a Jupyter cell (the evcxr kernel);
//! - [`observe`]: the outputs of a run as observers of the engine's events;
//! - [`onnx`]: trained models as ONNX files, layer by layer;
//! - [`inference`]: a finished run's model read back, predicting, and exported (safetensors,
//!   ONNX);
//! - [`run`]: a run's lifecycle: its folder (new or resumed), its end (the model, metrics and
//!   summary) and its failures (the outputs so far, and what to do next);
//! - [`task`]: the lesson, a table regression and an image classifier: what each leaves behind;
//! - [`limits`]: the bounds every input is read and sized through;
//! - [`bench`]: the speed workloads of BENCHMARKS.md (`descent bench`).

/// The Burn this crate is built on (0.22.1), for code that uses both: `descent::burn::prelude::*`
/// names the same tensors and devices as descent's API (the notebook does this).
pub use burn;

pub mod batch;
pub mod bench;
pub mod config;
pub mod data;
pub mod defaults;
pub mod device;
pub mod experiment;
pub mod flags;
pub mod inference;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod notebook;
pub mod observe;
pub mod ols;
pub mod onnx;
pub mod optim;
pub mod regression;
#[cfg(feature = "remote")]
pub mod remote;
pub mod report;
pub mod run;
pub mod sweep;
pub mod task;
pub mod train;
pub mod world;
