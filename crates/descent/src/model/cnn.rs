//! A small convolutional network, the lesson series' next step (`create_cnn(data, ...,
//! metrics=error_rate)`), sized for 8x8 digits and 28x28 MNIST alike, and with global average
//! pooling ([`CnnConfig::for_pictures`]) for a folder of photos at 64x64 in colour.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::ImageBatch;
use crate::data::images::ImageShape;
use crate::metrics::Classifier;
use crate::model::{ImageModel, Layer};
use crate::nn::{ConvBlock, ConvBlockConfig, Dropout};
use crate::onnx::{Attribute, Graph, OnnxError, ToOnnx, child};
use crate::optim::InvalidValue;
use crate::train::Objective;

/// The network's sizes. The default is the PyTorch reference's LeNet-like layout (two 5x5
/// convolutions with 32 and 64 channels, each followed by 2x2 max pooling, then one linear
/// layer), with batch norm after each convolution and dropout before the head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// Output channels of each convolution block; each block halves the image side.
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
    /// Side of the square convolution kernels (odd; padded to keep the image size).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// Batch normalisation after each convolution.
    #[serde(default = "default_true")]
    pub batch_norm: bool,
    /// Dropout probability before the linear head.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Average each channel over the image before the head (global average pooling), so the
    /// head sees one value per channel whatever the image size; without it the head sees every
    /// pixel of the last block's output.
    #[serde(default)]
    pub global_pool: bool,
}

/// `side` after `blocks` 2x2 poolings: 0 once it has halved to nothing, for any count (a plain
/// `>>` by 64 or more would wrap the shift count in release builds and overflow in debug ones).
fn halved(side: usize, blocks: usize) -> usize {
    u32::try_from(blocks).ok().and_then(|blocks| side.checked_shr(blocks)).unwrap_or(0)
}

fn default_channels() -> Vec<usize> {
    vec![32, 64]
}
fn default_kernel() -> usize {
    5
}
fn default_true() -> bool {
    true
}
fn default_dropout() -> f64 {
    0.25
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            channels: default_channels(),
            kernel: default_kernel(),
            batch_norm: true,
            dropout: default_dropout(),
            global_pool: false,
        }
    }
}

impl CnnConfig {
    /// The CNN for a folder of the user's own pictures (64x64, often in colour): three 3x3
    /// blocks of 32, 64 and 128 channels, then global average pooling, dropout and the head.
    /// The digits and Fashion-MNIST keep [`CnnConfig::default`].
    pub fn for_pictures() -> Self {
        Self {
            channels: vec![32, 64, 128],
            kernel: 3,
            batch_norm: true,
            dropout: default_dropout(),
            global_pool: true,
        }
    }

    /// Check the sizes for images of `shape`, naming the field of the first problem.
    pub fn validate(&self, shape: &ImageShape) -> Result<(), InvalidValue> {
        let side = shape.side;
        let invalid = |field: &str, message: String| Err(InvalidValue { field: field.into(), message });
        if self.channels.is_empty() || self.channels.contains(&0) {
            return invalid(
                "model.channels",
                format!("must be one or more positive counts, got {:?}", self.channels),
            );
        }
        if self.kernel == 0 || self.kernel.is_multiple_of(2) {
            return invalid("model.kernel", format!("must be odd, got {}", self.kernel));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return invalid("model.dropout", format!("must be in [0, 1), got {}", self.dropout));
        }
        if halved(side, self.channels.len()) == 0 {
            return invalid(
                "model.channels",
                format!(
                    "{} blocks halve {side}x{side} images to nothing; use at most {}",
                    self.channels.len(),
                    side.checked_ilog2().unwrap_or(0)
                ),
            );
        }
        Ok(())
    }

    /// About how many bytes training needs for images of `shape` in batches of `batch`:
    /// the parameters four times (weights, gradients and two optimizer moments) and, per image,
    /// each block's unfolded input (kept for the weight gradient) and three copies of its output
    /// (convolution, batch norm, and their gradients), all `f32`. `None` when the sizes overflow.
    pub fn memory_bytes(&self, shape: &ImageShape, batch: usize) -> Option<u64> {
        let (mut inputs, mut side, kernel) = (shape.channels as u64, shape.side as u64, self.kernel as u64);
        let classes = shape.classes as u64;
        let (mut parameters, mut activations) = (0u64, 0u64);
        for &outputs in &self.channels {
            let outputs = outputs as u64;
            let weights =
                crate::limits::product(&[inputs, outputs, kernel, kernel])?.checked_add(5 * outputs)?;
            parameters = parameters.checked_add(weights)?;
            let unfolded = crate::limits::product(&[inputs, kernel, kernel, side, side])?;
            let outputs_held = crate::limits::product(&[3, outputs, side, side])?;
            activations = activations.checked_add(unfolded)?.checked_add(outputs_held)?;
            (inputs, side) = (outputs, side / 2);
        }
        let features = if self.global_pool { inputs } else { crate::limits::product(&[inputs, side, side])? };
        let head = crate::limits::product(&[features, classes])?.checked_add(classes)?;
        parameters = parameters.checked_add(head)?;
        let values = crate::limits::product(&[parameters, 4])?
            .checked_add(crate::limits::product(&[activations, batch as u64])?)?;
        values.checked_mul(4)
    }

    /// The network for images of `shape`, on `device`.
    pub fn init(&self, shape: &ImageShape, device: &Device) -> Cnn {
        let mut blocks = Vec::with_capacity(self.channels.len());
        let mut inputs = shape.channels;
        for &outputs in &self.channels {
            let block = ConvBlockConfig::new(inputs, outputs, self.kernel).with_batch_norm(self.batch_norm);
            blocks.push(block.init(device));
            inputs = outputs;
        }
        let remaining = halved(shape.side, self.channels.len());
        let features = if self.global_pool { inputs } else { inputs * remaining * remaining };
        Cnn {
            blocks,
            global_pool: self.global_pool,
            dropout: Dropout::new(self.dropout),
            head: LinearConfig::new(features, shape.classes).init(device),
        }
    }
}

/// The convolutional network: [`ConvBlock`]s (fast on Flex), optionally global average
/// pooling, then dropout and a linear layer to the class scores.
#[derive(Module, Debug)]
pub struct Cnn {
    blocks: Vec<ConvBlock>,
    global_pool: bool,
    dropout: Dropout,
    head: Linear,
}

impl Cnn {
    /// Class scores (logits), `[b, classes]`, for images `[b, channels, side, side]`; in
    /// training, the dropout mask is drawn from `seed`.
    pub fn forward(&self, images: Tensor<4>, seed: u64) -> Tensor<2> {
        let x = self.blocks.iter().fold(images, |x, block| block.forward(x));
        let x: Tensor<2> = if self.global_pool {
            let [batch, channels, _, _] = x.dims();
            x.mean_dim(3).mean_dim(2).reshape([batch, channels])
        } else {
            x.flatten(1, 3)
        };
        self.head.forward(self.dropout.forward(x, seed))
    }
}

impl Cnn {
    /// The layers in the order [`Cnn::forward`] uses them, for images of `shape`.
    pub fn layers(&self, shape: &ImageShape) -> Vec<Layer> {
        let (mut channels, mut side) = (shape.channels, shape.side);
        let mut layers = Vec::new();
        for (index, block) in self.blocks.iter().enumerate() {
            let sizes = block.settings();
            let (outputs, kernel) = (sizes.outputs, sizes.kernel);
            let path = |leaf: &str| format!("blocks.{index}.{leaf}");
            let products = outputs * side * side * sizes.inputs * kernel * kernel;
            let conv = format!("Conv2d {channels}→{outputs}, {kernel}×{kernel}, padding {}", kernel / 2);
            layers.push(Layer::new(path("conv"), conv, vec![outputs, side, side], products as u64));
            if sizes.batch_norm {
                layers.push(Layer::new(path("norm"), "BatchNorm2d", vec![outputs, side, side], 0));
            }
            layers.push(Layer::new(path("activation"), "ReLU", vec![outputs, side, side], 0));
            side /= 2;
            layers.push(Layer::new(path("pool"), "MaxPool2d 2×2", vec![outputs, side, side], 0));
            channels = outputs;
        }
        let features = if self.global_pool {
            layers.push(Layer::new("pool", "global average pooling", vec![channels], 0));
            channels
        } else {
            layers.push(Layer::new("flatten", "Flatten", vec![channels * side * side], 0));
            channels * side * side
        };
        layers.push(Layer::new("dropout", format!("Dropout p = {}", self.dropout.prob), vec![features], 0));
        let [_, classes] = self.head.weight.val().dims();
        layers.push(Layer::new(
            "head",
            format!("Linear {features}→{classes}"),
            vec![classes],
            (features * classes) as u64,
        ));
        layers
    }
}

impl Classifier for Cnn {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images, 0)
    }
}

impl ImageModel for CnnConfig {
    const NAME: &'static str = "cnn";
    type Network = Cnn;

    fn validate(&self, shape: &ImageShape) -> Result<(), InvalidValue> {
        CnnConfig::validate(self, shape)
    }

    fn init(&self, shape: &ImageShape, device: &Device) -> Cnn {
        CnnConfig::init(self, shape, device)
    }

    fn describe(&self) -> String {
        format!(
            "channels {:?}, kernel {}, batch norm {}, dropout {}{}",
            self.channels,
            self.kernel,
            self.batch_norm,
            self.dropout,
            if self.global_pool { ", global average pooling" } else { "" }
        )
    }

    fn size(&self) -> String {
        format!("channels {:?} and kernel {}", self.channels, self.kernel)
    }

    fn memory_bytes(&self, shape: &ImageShape, batch: usize) -> Option<u64> {
        CnnConfig::memory_bytes(self, shape, batch)
    }

    fn layers(&self, network: &Cnn, shape: &ImageShape) -> Option<Vec<Layer>> {
        Some(network.layers(shape))
    }

    fn onnx(&self, network: &Cnn, graph: &mut Graph, input: &str) -> Result<String, OnnxError> {
        network.to_onnx(graph, "", input)
    }
}

impl ToOnnx for Cnn {
    /// The blocks, `GlobalAveragePool` with global pooling, `Flatten` (channel, row, column:
    /// Burn's order), and the head; dropout is left out (it only acts in training).
    fn to_onnx(&self, graph: &mut Graph, name: &str, input: &str) -> Result<String, OnnxError> {
        let mut x = input.to_string();
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.to_onnx(graph, &child(name, &format!("blocks.{index}")), &x)?;
        }
        if self.global_pool {
            x = graph.node("GlobalAveragePool", &child(name, "pool"), &[&x], vec![]);
        }
        let x = graph.node("Flatten", &child(name, "flatten"), &[&x], vec![Attribute::int("axis", 1)]);
        let x = self.dropout.to_onnx(graph, &child(name, "dropout"), &x)?;
        self.head.to_onnx(graph, &child(name, "head"), &x)
    }
}

impl Objective<ImageBatch> for Cnn {
    /// Cross-entropy of the class scores, as fastai and PyTorch's `F.cross_entropy`.
    fn loss(&self, batch: ImageBatch) -> Tensor<1> {
        let logits = self.forward(batch.images.clone(), batch.seed);
        crate::train::classification_loss(logits, &batch)
    }
}
