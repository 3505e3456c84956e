//! Layers for your own models that run fast on the CPU.
//!
//! [`ConvBlock`] is the building block of the default CNN: convolution, optional batch norm,
//! ReLU and 2x2 max pooling. On Flex it runs descent's own kernels (a direct convolution whose
//! microkernel reads the padded image in place, ReLU folded into the pooling, batch norm in two
//! parallel passes, both cores busy); on every other device it runs Burn's standard modules, with the same parameters and
//! the same results. A model built from it gets the speed with no further work:
//!
//! ```no_run
//! use burn::prelude::*;
//! use descent::nn::{ConvBlock, ConvBlockConfig};
//!
//! #[derive(Module, Debug)]
//! struct Tiny {
//!     block: ConvBlock,
//! }
//!
//! let device = Device::flex().autodiff();
//! let model = Tiny { block: ConvBlockConfig::new(1, 8, 3).with_batch_norm(true).init(&device) };
//! let y = model.block.forward(Tensor::<4>::zeros([2, 1, 28, 28], &device)); // [2, 8, 14, 14]
//! ```

#[cfg(feature = "flex")]
pub(crate) mod cpu;
#[cfg(feature = "flex")]
pub(crate) mod direct;
mod dropout;
pub use dropout::Dropout;
#[cfg(feature = "flex")]
pub(crate) mod flex;
#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests;

/// Rows per block of the linear model's mean squared error on large batches (see
/// `model::linear::BLOCK_ROWS`, which is this): the fused CPU loss sums its blocks the same way.
pub const LOSS_BLOCK_ROWS: usize = 4096;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, Relu};
use burn::prelude::*;

use crate::world::World;

std::thread_local! {
    /// The world whose processes this thread's batch norm sums its statistics across, while
    /// [`synchronise`] runs.
    static SYNCHRONISED: std::cell::RefCell<Option<World>> = const { std::cell::RefCell::new(None) };
}

/// Run `work` (a forward and backward pass) with batch norm's training statistics summed across
/// `world`'s processes: synchronised batch norm on descent's Flex kernels. `None`: each process's
/// own statistics.
pub(crate) fn synchronise<T>(world: Option<&World>, work: impl FnOnce() -> T) -> T {
    let Some(world) = world.filter(|world| world.is_parallel()) else {
        return work();
    };
    let previous = SYNCHRONISED.replace(Some(world.clone()));
    let result = work();
    SYNCHRONISED.set(previous);
    result
}

/// The world batch norm synchronises across on this thread, if any.
pub(crate) fn synchronised() -> Option<World> {
    SYNCHRONISED.with_borrow(Clone::clone)
}

/// The sizes of a [`ConvBlock`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvBlockConfig {
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// Side of the square kernel, odd; the input is padded by `kernel / 2` to keep its size.
    pub kernel: usize,
    /// Batch normalisation after the convolution.
    pub batch_norm: bool,
}

impl ConvBlockConfig {
    /// A block from `inputs` to `outputs` channels with a `kernel × kernel` convolution, without
    /// batch norm.
    pub fn new(inputs: usize, outputs: usize, kernel: usize) -> Self {
        Self { inputs, outputs, kernel, batch_norm: false }
    }

    /// With or without batch normalisation after the convolution.
    pub fn with_batch_norm(mut self, batch_norm: bool) -> Self {
        self.batch_norm = batch_norm;
        self
    }

    /// The block, its parameters initialised as Burn's `Conv2d` and `BatchNorm` do.
    pub fn init(&self, device: &Device) -> ConvBlock {
        let padding = self.kernel / 2;
        ConvBlock {
            conv: Conv2dConfig::new([self.inputs, self.outputs], [self.kernel, self.kernel])
                .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
                .init(device),
            norm: self.batch_norm.then(|| BatchNormConfig::new(self.outputs).init(device)),
            activation: Relu::new(),
            pool: MaxPool2dConfig::new([2, 2]).init(),
        }
    }
}

impl crate::onnx::ToOnnx for ConvBlock {
    /// `Conv`, `BatchNormalization` (inference form) when the block has batch norm, `Relu`,
    /// `MaxPool`: the standard path's operations.
    fn to_onnx(
        &self,
        graph: &mut crate::onnx::Graph,
        name: &str,
        input: &str,
    ) -> Result<String, crate::onnx::OnnxError> {
        use crate::onnx::child;
        let x = self.conv.to_onnx(graph, &child(name, "conv"), input)?;
        let x = self.norm.to_onnx(graph, &child(name, "norm"), &x)?;
        let x = self.activation.to_onnx(graph, &child(name, "activation"), &x)?;
        self.pool.to_onnx(graph, &child(name, "pool"), &x)
    }
}

/// Convolution (stride 1, same padding, with bias), optional batch norm, ReLU, 2x2 max pooling
/// (stride 2): `[b, inputs, h, w]` to `[b, outputs, h / 2, w / 2]`.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv: Conv2d,
    norm: Option<BatchNorm>,
    activation: Relu,
    pool: MaxPool2d,
}

impl ConvBlock {
    /// The block's sizes, read from its layers.
    pub fn settings(&self) -> ConvBlockConfig {
        let [outputs, inputs, kernel, _] = self.conv.weight.val().dims();
        ConvBlockConfig { inputs, outputs, kernel, batch_norm: self.norm.is_some() }
    }

    /// The block's output. Uses descent's kernels on Flex, Burn's standard operations elsewhere.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        #[cfg(feature = "flex")]
        if let Some(padding) = self.fast_padding(&x) {
            return self.forward_flex(x, padding);
        }
        self.forward_standard(x)
    }

    /// The block through Burn's standard modules, on any device: the reference the fast path is
    /// tested against.
    pub fn forward_standard(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        self.pool.forward(self.activation.forward(x))
    }

    /// The padding of the convolution when the fast kernels cover this block and input.
    #[cfg(feature = "flex")]
    fn fast_padding(&self, x: &Tensor<4>) -> Option<usize> {
        let conv = &self.conv;
        let square = conv.kernel_size[0] == conv.kernel_size[1];
        let plain = conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.groups == 1;
        let padding = match conv.padding {
            PaddingConfig2d::Explicit(top, left, bottom, right)
                if top == left && left == bottom && bottom == right =>
            {
                top
            }
            _ => return None,
        };
        (square && plain && conv.bias.is_some() && flex::on_flex(x)).then_some(padding)
    }

    #[cfg(feature = "flex")]
    fn forward_flex(&self, x: Tensor<4>, padding: usize) -> Tensor<4> {
        // Weight before bias: Burn initialises parameters lazily, on first use, from the
        // device's generator, so the order of first use decides the initial values; this is
        // `Conv2d::forward`'s order, which keeps runs identical to the standard path's.
        let weight = self.conv.weight.val();
        let bias = self.conv.bias.as_ref().expect("checked by fast_padding").val();
        // Batch norm trains as Burn's `BatchNorm` decides: when its input, the convolution's
        // output, is on an autodiff device (which the weight's being there makes it, even for a
        // batch of images put on the plain device) and the layer's training flag is on.
        let autodiff = x.device().is_autodiff() || weight.device().is_autodiff();
        let training = |norm: &BatchNorm| autodiff && norm.training.is_enabled();
        if let Some(norm) = self.norm.as_ref().filter(|norm| !training(norm)) {
            // Batch norm on its running statistics is an affine map per channel: folded into
            // the convolution's weights and bias, it costs no pass over the activations.
            let (weight, bias) = fold_batch_norm(norm, weight, bias);
            return flex::relu_max_pool2x2(flex::conv2d_padded(x, weight, bias, padding));
        }
        let x = flex::conv2d_padded(x, weight, bias, padding);
        // Here batch norm, if any, trains: the batch's statistics.
        let x = match &self.norm {
            Some(norm) => {
                let (y, mean, variance) =
                    flex::batch_norm_train(x, norm.gamma.val(), norm.beta.val(), norm.epsilon);
                // The running statistics move as Burn's `BatchNorm` moves them.
                let device = y.device();
                let momentum = norm.momentum;
                let running_mean = norm.running_mean.value_sync().to_device(&device);
                let running_var = norm.running_var.value_sync().to_device(&device);
                norm.running_mean.update(
                    running_mean.mul_scalar(1.0 - momentum).add(mean.detach().mul_scalar(momentum)).detach(),
                );
                norm.running_var.update(
                    running_var
                        .mul_scalar(1.0 - momentum)
                        .add(variance.detach().mul_scalar(momentum))
                        .detach(),
                );
                y
            }
            None => x,
        };
        flex::relu_max_pool2x2(x)
    }
}

/// The weight and bias of a convolution followed by `norm` on its running statistics:
/// `norm(conv(x; w, b)) = conv(x; w·s, (b − mean)·s + beta)` with `s = gamma / sqrt(var + ε)` per
/// output channel. Burn operations, so the fold is differentiable where gamma and beta are tracked.
#[cfg(feature = "flex")]
fn fold_batch_norm(norm: &BatchNorm, weight: Tensor<4>, bias: Tensor<1>) -> (Tensor<4>, Tensor<1>) {
    let device = weight.device();
    let mean = norm.running_mean.value().to_device(&device);
    let variance = norm.running_var.value().to_device(&device);
    let scale = norm.gamma.val().div(variance.add_scalar(norm.epsilon).sqrt());
    let [outputs] = scale.dims();
    let weight = weight.mul(scale.clone().reshape([outputs, 1, 1, 1]));
    let bias = bias.sub(mean).mul(scale).add(norm.beta.val());
    (weight, bias)
}
