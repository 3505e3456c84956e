//! Models the trainer fits. Each implements [`crate::train::Objective`] for its batches.
//!
//! Image classifiers are known to descent by name through [`ImageModel`]: the built-in
//! [`cnn`], and [`mlp`], the model of `examples/custom_model.rs` and the pattern for your own.
//! A new classifier is one file here that implements [`ImageModel`] on its settings, and one
//! line in the model registry (`models!` in [`crate::config`]); it then gets what the CNN gets:
//! `descent train --config`, the run folder, checkpoints and resume, Ctrl-C, lr-find, predict,
//! export and bench.

pub mod cnn;
pub mod linear;
pub mod mlp;
pub mod summary;

pub use cnn::{Cnn, CnnConfig};
pub use linear::{LinearModel, mse};
pub use mlp::{Mlp, MlpConfig};
pub use summary::{Layer, ModelSummary};

use burn::prelude::Device;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::ImageBatch;
use crate::data::images::ImageShape;
use crate::metrics::Classifier;
use crate::onnx::{Graph, OnnxError};
use crate::optim::InvalidValue;
use crate::train::Objective;

/// An image classifier descent trains by name. Implement it on the model's settings, the
/// fields of the configuration's `[model]` section besides `name` (serde, with
/// `deny_unknown_fields` and a default for each field), and register the settings in
/// `models!` (`crate::config`).
pub trait ImageModel:
    Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The model's name: `[model] name = "..."`, the checkpoint's model kind, the export's
    /// `model` metadata. The registry's variant name in kebab case.
    const NAME: &'static str;

    /// The name of the network's last layer, the one that maps features to class scores (a
    /// field of the network's module). Fine-tuning (`--init-from`) makes it new when the class
    /// count changes, and `--freeze` trains it alone at first; everything else is the body.
    const HEAD: &'static str = "head";

    /// The network: a Burn module with its loss on a batch of images and its class scores.
    type Network: Objective<ImageBatch> + Classifier + std::fmt::Debug + 'static;

    /// Check the settings for images of `shape` (side, channels, classes), naming the field
    /// (`model.FIELD`) of the first value out of range.
    fn validate(&self, shape: &ImageShape) -> Result<(), InvalidValue>;

    /// The network for images of `shape` at its seeded initial weights, on `device`: it takes
    /// `[N, shape.channels, shape.side, shape.side]` and scores `shape.classes` classes.
    fn init(&self, shape: &ImageShape, device: &Device) -> Self::Network;

    /// The settings in a few words, for the line that introduces a run (`channels [32, 64],
    /// kernel 5, ...`).
    fn describe(&self) -> String;

    /// What decides the model's size, for a refusal when it does not fit in memory; by default
    /// [`Self::describe`].
    fn size(&self) -> String {
        self.describe()
    }

    /// About how many bytes training takes for images of `shape` in batches of `batch` (the
    /// parameters, their gradients and optimizer state, and a batch's activations); `None` when
    /// the count overflows. A run that would not fit in memory is refused before it starts.
    fn memory_bytes(&self, shape: &ImageShape, batch: usize) -> Option<u64>;

    /// The network's layers in the order its forward pass uses them, for images of `shape`:
    /// each one's module path, type, output shape and multiply-adds per image, for
    /// `descent summary` (parameter counts are read from the network). By default none: the
    /// summary then has one row per field of the network, with its parameters and no shapes.
    fn layers(&self, network: &Self::Network, shape: &ImageShape) -> Option<Vec<Layer>> {
        let _ = (network, shape);
        None
    }

    /// The network as ONNX operations, for `descent export --format onnx`: append to `graph`
    /// what computes the class scores (`[N, classes]`) from the images named `input`
    /// (`[N, channels, side, side]`), and return the scores' name. Write it with
    /// [`crate::onnx::ToOnnx`] on the network's layers, in the order `logits` uses them. By
    /// default a model has no ONNX form, and export says so.
    fn onnx(&self, network: &Self::Network, graph: &mut Graph, input: &str) -> Result<String, OnnxError> {
        let _ = (network, graph, input);
        Err(OnnxError::Unsupported {
            layer: format!("the {} model", Self::NAME),
            reason: "it does not implement ImageModel::onnx (see descent::onnx::ToOnnx)".into(),
        })
    }
}

/// Something done with an image model of any registered kind: the one place where the model's
/// type is chosen from its name is [`crate::config::ModelConfig::visit_image_model`], which
/// calls [`ImageModelVisitor::visit`] with the configured settings.
pub trait ImageModelVisitor {
    /// What the visit returns.
    type Output;

    /// Do it with `model`'s settings, its type known.
    fn visit<T: ImageModel>(self, model: &T) -> Self::Output;
}
