//! The fast CPU kernels of [`super::cpu`] as Burn operations on Flex, forward and backward.
//!
//! This is Burn's own extension mechanism (`#[backend_extension]`, Burn's `extension` feature):
//! a trait of operations implemented for `Flex`, and for `Autodiff<Flex>` with hand-written
//! backward steps, reached from ordinary `Tensor`s through `Dispatch`. It leaves Burn untouched
//! (no fork to rebase at every release) and keeps the model code on Burn's modules and
//! parameters; the price is that only code that calls these operations gets them, which is why
//! they sit behind one public layer, [`super::ConvBlock`], and the linear model's loss.
//!
//! Only Flex is listed: the callers check [`on_flex`] first and use Burn's standard operations
//! on every other device.

use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::DType;

use super::cpu::{self, BatchStats, Columns, ConvShape};
use super::direct::{self, Padded};

/// Whether `tensor` lives on Flex (with or without autodiff) as `f32`: the case the kernels cover.
/// The environment variable `DESCENT_STANDARD_OPS=1` turns the kernels off (Burn's standard
/// operations everywhere), to compare the two in one binary.
pub fn on_flex<const D: usize>(tensor: &Tensor<D>) -> bool {
    static STANDARD_OPS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let standard =
        *STANDARD_OPS.get_or_init(|| std::env::var_os("DESCENT_STANDARD_OPS").is_some_and(|v| v == "1"));
    !standard && tensor.dtype() == DType::F32 && tensor.device() == Device::flex()
}

/// The operations, as Burn backend operations. Call them through the `Tensor` functions below.
#[backend_extension(Flex, Autodiff)]
pub trait CpuKernels: Backend {
    /// Stride-1 convolution with bias and `padding` zeros on every side.
    fn conv2d_padded(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: usize,
    ) -> FloatTensor<Self>;
    /// `relu(max_pool2d(x, 2x2, stride 2))`.
    fn relu_max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Batch norm with the batch's statistics: the output, the mean and the biased variance.
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// `Σ (x·a − y)² / n` for `x [n, d]`, `a [d, 1]`, `y [n, 1]`, as a `[1]` tensor.
    fn mean_squared_residual(
        x: FloatTensor<Self>,
        a: FloatTensor<Self>,
        y: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The values of a Flex tensor, row-major, without a copy when it is already contiguous.
fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(tensor.to_contiguous().as_slice::<f32>().expect("contiguous f32").to_vec()),
    }
}

fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn conv_shape(x: &FlexTensor, weight: &FlexTensor, padding: usize) -> ConvShape {
    let [batch, c_in, height, width] = x.shape().dims();
    let [c_out, weight_in, kernel, kernel_w] = weight.shape().dims();
    assert_eq!(c_in, weight_in, "conv2d_padded: the weight's input channels differ from the input's");
    assert_eq!(kernel, kernel_w, "conv2d_padded: square kernels only");
    assert!(
        height + 2 * padding >= kernel && width + 2 * padding >= kernel,
        "conv2d_padded: a {kernel}x{kernel} kernel does not fit a padded {height}x{width} image"
    );
    ConvShape { batch, c_in, height, width, c_out, kernel, padding }
}

/// What a convolution's backward step needs of its input.
#[derive(Clone, Debug)]
enum Saved {
    /// The im2col buffers, which stand in for the input.
    Columns(Arc<Columns>),
    /// The input itself (a handle, not a copy) and the Toeplitz matrix of the forward product.
    Input(FlexTensor, Arc<cpu::Toeplitz>),
    /// The input with its zero padding, for the direct convolution's weight gradient.
    Padded(Arc<Padded>),
}

fn conv_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    padding: usize,
    keep: bool,
) -> (FlexTensor, Option<Saved>, ConvShape) {
    let shape = conv_shape(x, weight, padding);
    let (x_values, weight, bias) = (values(x), values(weight), values(bias));
    let (y, saved) = if cpu::toeplitz_pays(&shape) {
        let (y, matrix) = cpu::toeplitz_forward(&x_values, &weight, &bias, &shape, keep);
        (y, matrix.map(|matrix| Saved::Input(x.clone(), Arc::new(matrix))))
    } else if direct::direct_pays(&shape) {
        let (y, padded) = direct::forward(&x_values, &weight, &bias, &shape, keep);
        (y, padded.map(|padded| Saved::Padded(Arc::new(padded))))
    } else {
        let (y, columns) = cpu::conv2d_forward(&x_values, &weight, &bias, &shape, keep);
        (y, columns.map(|columns| Saved::Columns(Arc::new(columns))))
    };
    let out = flex(y, vec![shape.batch, shape.c_out, shape.out_height(), shape.out_width()]);
    (out, saved, shape)
}

/// `[planes, height, width]` of a `[batch, channels, height, width]` tensor.
fn planes(x: &FlexTensor) -> (usize, usize, usize, [usize; 4]) {
    let dims: [usize; 4] = x.shape().dims();
    (dims[0] * dims[1], dims[2], dims[3], dims)
}

fn pool_forward(x: &FlexTensor) -> (FlexTensor, Vec<u8>, [usize; 4]) {
    let (planes, height, width, dims) = planes(x);
    let (y, from) = cpu::relu_max_pool2x2_forward(&values(x), planes, height, width);
    (flex(y, vec![dims[0], dims[1], height / 2, width / 2]), from, dims)
}

/// `(batch, channels, pixels per channel)` of a `[batch, channels, ...]` tensor.
fn norm_dims(x: &FlexTensor) -> (usize, usize, usize) {
    let shape = x.shape();
    assert!(shape.num_dims() >= 2, "batch_norm_train: the input needs a channel axis");
    let (batch, channels) = (shape[0], shape[1]);
    (batch, channels, shape.num_elements() / (batch * channels).max(1))
}

fn norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, BatchStats) {
    let dims = norm_dims(x);
    let (y, stats) = cpu::batch_norm_train_forward(&values(x), dims, &values(gamma), &values(beta), epsilon);
    (flex(y, x.shape().to_vec()), stats)
}

fn stats_tensors(stats: &BatchStats) -> (FlexTensor, FlexTensor) {
    let channels = stats.mean.len();
    (flex(stats.mean.clone(), vec![channels]), flex(stats.variance.clone(), vec![channels]))
}

/// The loss and its gradient with respect to `a`, `(2/n)·Xᵀr`, from one pass.
fn loss_forward(x: &FlexTensor, a: &FlexTensor, y: &FlexTensor) -> (f32, Vec<f32>, usize) {
    let [rows, features] = x.shape().dims();
    assert_eq!(a.shape().num_elements(), features, "mean_squared_residual: a has one value per feature");
    assert_eq!(y.shape().num_elements(), rows, "mean_squared_residual: y has one value per row");
    let (sum, xtr) = cpu::squared_residuals(&values(x), &values(a), &values(y));
    let n = rows.max(1) as f64;
    ((sum / n) as f32, xtr.iter().map(|g| (2.0 * g / n) as f32).collect(), rows)
}

impl CpuKernels for Flex {
    fn conv2d_padded(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, padding: usize) -> FlexTensor {
        conv_forward(&x, &weight, &bias, padding, false).0
    }

    fn relu_max_pool2x2(x: FlexTensor) -> FlexTensor {
        pool_forward(&x).0
    }

    fn batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (y, stats) = norm_forward(&x, &gamma, &beta, epsilon);
        let (mean, variance) = stats_tensors(&stats);
        (y, mean, variance)
    }

    fn mean_squared_residual(x: FlexTensor, a: FlexTensor, y: FlexTensor) -> FlexTensor {
        flex(vec![loss_forward(&x, &a, &y).0], vec![1])
    }
}

/// What the convolution's backward step keeps.
#[derive(Clone, Debug)]
struct ConvState {
    saved: Saved,
    weight: FlexTensor,
    shape: ConvShape,
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let ConvState { saved, weight, shape } = ops.state;
        let (weight, dy, want_x) = (values(&weight), values(&dy), node_x.is_some());
        let grad = match saved {
            Saved::Columns(columns) => cpu::conv2d_backward(&columns, &weight, &dy, &shape, want_x),
            Saved::Input(x, matrix) => cpu::toeplitz_backward(&values(&x), &matrix, &dy, &shape, want_x),
            Saved::Padded(padded) => direct::backward(&padded, &weight, &dy, &shape, want_x),
        };
        if let (Some(node), Some(dx)) = (node_x, grad.x) {
            grads.register::<Flex>(
                node.id,
                flex(dx, vec![shape.batch, shape.c_in, shape.height, shape.width]),
            );
        }
        if let Some(node) = node_weight {
            let dims = vec![shape.c_out, shape.c_in, shape.kernel, shape.kernel];
            grads.register::<Flex>(node.id, flex(grad.weight, dims));
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, flex(grad.bias, vec![shape.c_out]));
        }
    }
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = (Arc<Vec<u8>>, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (from, dims) = ops.state;
        if let Some(node) = node_x {
            let dx = cpu::relu_max_pool2x2_backward(&values(&dy), &from, dims[0] * dims[1], dims[2], dims[3]);
            grads.register::<Flex>(node.id, flex(dx, dims.to_vec()));
        }
    }
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = (FlexTensor, FlexTensor, Arc<BatchStats>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats) = ops.state;
        let dims = norm_dims(&x);
        let (dx, dgamma, dbeta) =
            cpu::batch_norm_train_backward(&values(&x), &values(&dy), dims, &values(&gamma), &stats);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex(dx, x.shape().to_vec()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex(dgamma, vec![dims.1]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex(dbeta, vec![dims.1]));
        }
    }
}

/// The loss's backward step: the gradient for `a` was computed in the forward pass; `x` and `y`
/// (data, normally untracked) get theirs from the residuals when asked.
#[derive(Debug)]
struct LossBackward;

impl Backward<Flex, 3> for LossBackward {
    /// The gradient for `a` and its shape, and the data only when the data itself is tracked:
    /// holding x and y in the graph would keep a copy of the table alive as long as the graph.
    type State = (Vec<f32>, Vec<usize>, Option<(FlexTensor, FlexTensor, FlexTensor)>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_a, node_y] = ops.parents;
        let upstream = values(&grads.consume::<Flex>(&ops.node))[0];
        let (grad_a, a_shape, data) = ops.state;
        if let Some(node) = node_a {
            let grad = grad_a.iter().map(|g| g * upstream).collect();
            grads.register::<Flex>(node.id, flex(grad, a_shape));
        }
        if let Some((x, a, y)) = data {
            let a_values = values(&a);
            let r = cpu::residuals(&values(&x), &a_values, &values(&y));
            let scale = 2.0 * upstream / r.len().max(1) as f32;
            if let Some(node) = node_x {
                let dx = r.iter().flat_map(|r| a_values.iter().map(move |a| scale * r * a)).collect();
                grads.register::<Flex>(node.id, flex(dx, x.shape().to_vec()));
            }
            if let Some(node) = node_y {
                let dy = r.iter().map(|r| -scale * r).collect();
                grads.register::<Flex>(node.id, flex(dy, y.shape().to_vec()));
            }
        }
    }
}

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn conv2d_padded(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: usize,
    ) -> FloatTensor<Self> {
        match ConvBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, saved, shape) =
                    conv_forward(x.primitive(), weight.primitive(), bias.primitive(), padding, true);
                let saved = saved.expect("kept");
                prep.finish(ConvState { saved, weight: weight.primitive().clone(), shape }, y)
            }
            OpsKind::UnTracked(prep) => prep
                .finish(conv_forward(x.primitive(), weight.primitive(), bias.primitive(), padding, false).0),
        }
    }

    fn relu_max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match PoolBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, from, dims) = pool_forward(x.primitive());
                prep.finish((Arc::new(from), dims), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(pool_forward(x.primitive()).0),
        }
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, stats) = norm_forward(x.primitive(), gamma.primitive(), beta.primitive(), epsilon);
        let (mean, variance) = stats_tensors(&stats);
        let state = (x.primitive().clone(), gamma.primitive().clone(), Arc::new(stats));
        let y =
            match NormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
        // The statistics feed the running averages only: constants to the graph.
        (y, FloatTensor::<Self>::new(mean), FloatTensor::<Self>::new(variance))
    }

    fn mean_squared_residual(
        x: FloatTensor<Self>,
        a: FloatTensor<Self>,
        y: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (loss, grad_a, _) = loss_forward(x.primitive(), a.primitive(), y.primitive());
        let out = flex(vec![loss], vec![1]);
        match LossBackward.prepare::<C>([x.node(), a.node(), y.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let data = (x.is_tracked() || y.is_tracked())
                    .then(|| (x.primitive().clone(), a.primitive().clone(), y.primitive().clone()));
                prep.finish((grad_a, a.primitive().shape().to_vec(), data), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// [`CpuKernels::conv2d_padded`] on tensors. The caller checks [`on_flex`].
pub fn conv2d_padded(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, padding: usize) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CpuKernels>::conv2d_padded(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        padding,
    ))
}

/// [`CpuKernels::relu_max_pool2x2`] on tensors. The caller checks [`on_flex`].
pub fn relu_max_pool2x2(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as CpuKernels>::relu_max_pool2x2(x.into_dispatch()))
}

/// [`CpuKernels::batch_norm_train`] on tensors: the output, the batch mean and biased variance.
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    let (y, mean, variance) = <Dispatch as CpuKernels>::batch_norm_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (Tensor::from_dispatch(y), Tensor::from_dispatch(mean), Tensor::from_dispatch(variance))
}

/// [`CpuKernels::mean_squared_residual`] on tensors. The caller checks [`on_flex`].
pub fn mean_squared_residual(x: Tensor<2>, a: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as CpuKernels>::mean_squared_residual(
        x.into_dispatch(),
        a.into_dispatch(),
        y.into_dispatch(),
    ))
}
