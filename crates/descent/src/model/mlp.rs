//! A model of your own, in one file: a two-layer perceptron on the flattened image.
//!
//! This is the pattern `examples/custom_model.rs` and docs/models.md's "Add your own model" follow.
//! The file holds the network (a Burn module), its loss and class scores, and its settings with
//! [`ImageModel`]; one line in the registry (`models!` in `crate::config`) names it, and then
//!
//! ```toml
//! [model]
//! name = "mlp"
//! hidden = 128
//! ```
//!
//! trains with `descent train --config`, with the run folder, checkpoints and resume, Ctrl-C,
//! lr-find, predict, export and bench, as the built-in CNN does.

use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::ImageBatch;
use crate::data::images::ImageShape;
use crate::metrics::Classifier;
use crate::model::{ImageModel, Layer};
use crate::onnx::{Attribute, Graph, OnnxError, ToOnnx, child};
use crate::optim::InvalidValue;
use crate::train::Objective;

/// The settings of [`Mlp`]: the `[model]` section of `name = "mlp"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Units of the hidden layer.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
}

fn default_hidden() -> usize {
    128
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self { hidden: default_hidden() }
    }
}

/// Two linear layers with a ReLU between them, on the flattened image.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Linear,
    activation: Relu,
    output: Linear,
}

impl Mlp {
    /// An MLP for images of `values` values (channels × side × side) with `hidden` hidden
    /// units and `classes` outputs, on `device`.
    pub fn new(values: usize, hidden: usize, classes: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(values, hidden).init(device),
            activation: Relu::new(),
            output: LinearConfig::new(hidden, classes).init(device),
        }
    }
}

impl Classifier for Mlp {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        let x: Tensor<2> = images.flatten(1, 3);
        self.output.forward(self.activation.forward(self.hidden.forward(x)))
    }
}

impl Objective<ImageBatch> for Mlp {
    fn loss(&self, batch: ImageBatch) -> Tensor<1> {
        let logits = self.logits(batch.images.clone());
        crate::train::classification_loss(logits, &batch)
    }
}

impl ToOnnx for Mlp {
    /// `Flatten`, then the layers in `logits`' order.
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
        let x = graph.node("Flatten", &child(name, "flatten"), &[input], vec![Attribute::int("axis", 1)]);
        let x = self.hidden.to_onnx(graph, &child(name, "hidden"), &x)?;
        let x = self.activation.to_onnx(graph, &child(name, "activation"), &x)?;
        self.output.to_onnx(graph, &child(name, "output"), &x)
    }
}

impl ImageModel for MlpConfig {
    const NAME: &'static str = "mlp";
    const HEAD: &'static str = "output";
    type Network = Mlp;

    fn validate(&self, _shape: &ImageShape) -> Result<(), InvalidValue> {
        if self.hidden == 0 {
            return Err(InvalidValue {
                field: "model.hidden".into(),
                message: "must be at least 1 unit, got 0".into(),
            });
        }
        Ok(())
    }

    fn init(&self, shape: &ImageShape, device: &Device) -> Mlp {
        Mlp::new(shape.values(), self.hidden, shape.classes, device)
    }

    fn describe(&self) -> String {
        format!("hidden {}", self.hidden)
    }

    /// The layers in `logits`' order, for `descent summary` (optional: without it the summary
    /// shows each field's parameters, without shapes).
    fn layers(&self, _network: &Mlp, shape: &ImageShape) -> Option<Vec<Layer>> {
        let (values, hidden, classes) = (shape.values(), self.hidden, shape.classes);
        Some(vec![
            Layer::new("flatten", "Flatten", vec![values], 0),
            Layer::new("hidden", format!("Linear {values}→{hidden}"), vec![hidden], (values * hidden) as u64),
            Layer::new("activation", "ReLU", vec![hidden], 0),
            Layer::new(
                "output",
                format!("Linear {hidden}→{classes}"),
                vec![classes],
                (hidden * classes) as u64,
            ),
        ])
    }

    fn onnx(&self, network: &Mlp, graph: &mut Graph, input: &str) -> Result<String, OnnxError> {
        network.to_onnx(graph, "", input)
    }

    fn memory_bytes(&self, shape: &ImageShape, batch: usize) -> Option<u64> {
        let (side, channels) = (shape.side as u64, shape.channels as u64);
        let (pixels, hidden, classes) =
            (crate::limits::product(&[side, side, channels])?, self.hidden as u64, shape.classes as u64);
        let parameters = crate::limits::product(&[pixels.checked_add(1)?, hidden])?
            .checked_add(crate::limits::product(&[hidden.checked_add(1)?, classes])?)?;
        // Each parameter with its gradient and two optimizer moments; per image, its pixels and
        // the hidden layer before and after the ReLU.
        let per_image = pixels.checked_add(crate::limits::product(&[3, hidden])?)?.checked_add(classes)?;
        let values = crate::limits::product(&[parameters, 4])?
            .checked_add(crate::limits::product(&[per_image, batch as u64])?)?;
        values.checked_mul(4)
    }
}
