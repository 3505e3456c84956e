//! The fast path against Burn's standard operations: the same block, the same input and the
//! same output gradient, through `ConvBlock::forward` (descent's kernels on Flex) and
//! `ConvBlock::forward_standard` (Burn's Conv2d, BatchNorm, Relu and MaxPool2d), on Flex and on
//! NdArray. Forward values, every gradient and the running statistics must agree within 1e-4
//! relative to the largest value compared.

// NdArray is the second, independent CPU backend to compare with; Burn deprecates it for Flex.
#![allow(deprecated)]

use burn::module::Module;
use burn::prelude::*;

use super::{ConvBlock, ConvBlockConfig};
use crate::model::LinearModel;
use crate::train::Objective;

/// Reproducible values in [-1, 1) (xorshift): the same on every backend.
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 values")
}

/// `max |a - b| / max(max |b|, 1)`: an error relative to the scale of the values compared.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    relative_error_at(a, b, 1.0)
}

/// `max |a - b| / max(max |b|, floor)`.
fn relative_error_at(a: &[f32], b: &[f32], floor: f32) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// What one pass through a block produces.
#[derive(Debug)]
struct Outcome {
    y: Vec<f32>,
    grads: Vec<(&'static str, Vec<f32>)>,
    running: Vec<Vec<f32>>,
}

/// Forward `x` through `block` (fast or standard), backward from `Σ y·probe`.
fn pass(block: &ConvBlock, x: &[f32], dims: [usize; 4], fast: bool, device: &Device) -> Outcome {
    pass_with(block, x, dims, fast, device, true)
}

/// [`pass`], with or without a gradient for the input (a first layer's input has none).
fn pass_with(
    block: &ConvBlock,
    x: &[f32],
    dims: [usize; 4],
    fast: bool,
    device: &Device,
    track_x: bool,
) -> Outcome {
    // A tracked input on the autodiff device; an untracked one on the plain device, as the
    // engine's batches of images are (the block must still train its batch norm then).
    let x = if track_x {
        Tensor::<4>::from_data(TensorData::new(x.to_vec(), dims), device).require_grad()
    } else {
        Tensor::<4>::from_data(TensorData::new(x.to_vec(), dims), &device.clone().inner())
    };
    let y = if fast { block.forward(x.clone()) } else { block.forward_standard(x.clone()) };
    let probe =
        Tensor::<4>::from_data(TensorData::new(values(y.shape().num_elements(), 99), y.dims()), device);
    let grads = (y.clone() * probe).sum().backward();
    let mut found = vec![
        ("x", if track_x { host(x.grad(&grads).expect("x has a gradient")) } else { Vec::new() }),
        ("weight", host(block.conv.weight.val().grad(&grads).expect("weight gradient"))),
        ("bias", host(block.conv.bias.as_ref().unwrap().val().grad(&grads).expect("bias gradient"))),
    ];
    let mut running = Vec::new();
    if let Some(norm) = &block.norm {
        found.push(("gamma", host(norm.gamma.val().grad(&grads).expect("gamma gradient"))));
        found.push(("beta", host(norm.beta.val().grad(&grads).expect("beta gradient"))));
        running.push(host(norm.running_mean.value_sync()));
        running.push(host(norm.running_var.value_sync()));
    }
    Outcome { y: host(y), grads: found, running }
}

/// A block with the parameters of `source`, on `device`, with fresh running statistics state.
fn copy_to(source: &ConvBlock, config: &ConvBlockConfig, device: &Device) -> ConvBlock {
    config.init(device).load_record(source.clone().into_record()).fork(device)
}

fn assert_close(label: &str, fast: &Outcome, reference: &Outcome) {
    let error = relative_error(&fast.y, &reference.y);
    assert!(error < 1e-4, "{label}: forward differs by {error:e}");
    // Before batch norm the bias's true gradient is zero (the norm removes the mean): both sides
    // hold rounding noise of the sums of the output gradient, so that scale is the reference.
    let weight_scale = reference.grads[1].1.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let normed = !fast.running.is_empty();
    for ((name, got), (_, want)) in fast.grads.iter().zip(&reference.grads) {
        let floor = if *name == "bias" && normed { weight_scale } else { 1.0 };
        let error = relative_error_at(got, want, floor);
        assert!(error < 1e-4, "{label}: gradient of {name} differs by {error:e}");
    }
    for (got, want) in fast.running.iter().zip(&reference.running) {
        let error = relative_error(got, want);
        assert!(error < 1e-4, "{label}: running statistics differ by {error:e}");
    }
}

#[test]
fn conv_block_on_flex_matches_burns_standard_ops_on_flex_and_ndarray() {
    // (batch, input channels, side, kernel, output channels, batch norm)
    let cases = [
        (1, 1, 8, 5, 4, false),
        (64, 1, 8, 5, 32, true),
        (64, 3, 28, 3, 8, true),
        (1, 3, 28, 7, 6, false),
        (5, 3, 13, 7, 5, true),
        (3, 1, 11, 3, 2, false),
        (2, 3, 9, 5, 3, true),
    ];
    let flex = Device::flex().autodiff();
    let ndarray = Device::ndarray().autodiff();
    // The comparison means something only if the fast path is the one taken on Flex.
    assert!(super::flex::on_flex(&Tensor::<4>::zeros([1, 1, 2, 2], &flex)));
    assert!(super::flex::on_flex(&Tensor::<4>::zeros([1, 1, 2, 2], &Device::flex())));
    assert!(!super::flex::on_flex(&Tensor::<4>::zeros([1, 1, 2, 2], &ndarray)));
    for (case, &(batch, inputs, side, kernel, outputs, batch_norm)) in cases.iter().enumerate() {
        let label =
            format!("batch {batch}, {inputs} channels, {side}x{side}, kernel {kernel}, bn {batch_norm}");
        let config = ConvBlockConfig::new(inputs, outputs, kernel).with_batch_norm(batch_norm);
        flex.seed(case as u64);
        let block = config.init(&flex);
        let dims = [batch, inputs, side, side];
        let x = values(dims.iter().product(), case as u64 + 1);
        let fast = pass(&copy_to(&block, &config, &flex), &x, dims, true, &flex);
        let standard = pass(&copy_to(&block, &config, &flex), &x, dims, false, &flex);
        assert_close(&format!("{label}, flex"), &fast, &standard);
        let on_ndarray = pass(&copy_to(&block, &config, &ndarray), &x, dims, true, &ndarray);
        assert_close(&format!("{label}, ndarray"), &fast, &on_ndarray);
        // A first layer: no gradient for the input, the weight's still.
        let fast = pass_with(&copy_to(&block, &config, &flex), &x, dims, true, &flex, false);
        let standard = pass_with(&copy_to(&block, &config, &flex), &x, dims, false, &flex, false);
        assert_close(&format!("{label}, untracked input"), &fast, &standard);
        // Inference mode: the running statistics, no autodiff.
        let plain = Device::flex();
        let x_plain = Tensor::<4>::from_data(TensorData::new(x.clone(), dims), &plain);
        let inference = copy_to(&block, &config, &plain);
        let error = relative_error(
            &host(inference.forward(x_plain.clone())),
            &host(inference.forward_standard(x_plain)),
        );
        assert!(error < 1e-4, "{label}, inference: differs by {error:e}");
    }
}

/// Inference folds batch norm into the convolution's weights and bias: against Burn's standard
/// `Conv2d` then `BatchNorm` on running statistics, and gamma, beta, mean and variance far from
/// their initial values (at those the fold would be nearly the identity and prove little); on
/// the autodiff device too, with training off, where gamma's and beta's gradients go through
/// the fold.
#[test]
fn inference_folds_batch_norm_into_the_convolution() {
    use burn::module::{Param, RunningState};
    for (device, label) in [(Device::flex(), "flex"), (Device::flex().autodiff(), "flex, training off")] {
        device.seed(11);
        let mut block = ConvBlockConfig::new(3, 5, 5).with_batch_norm(true).init(&device);
        let norm = block.norm.as_mut().expect("batch norm");
        let per_channel =
            |values: [f32; 5]| Tensor::<1>::from_data(TensorData::new(values.to_vec(), [5]), &device);
        norm.gamma = Param::from_tensor(per_channel([0.5, -1.25, 2.0, 1.0, 0.3]));
        norm.beta = Param::from_tensor(per_channel([0.1, 0.0, -0.7, 1.5, 0.25]));
        norm.running_mean = RunningState::new(per_channel([0.2, -0.4, 0.0, 1.0, -2.0]));
        norm.running_var = RunningState::new(per_channel([0.5, 2.0, 0.01, 1.0, 4.0]));
        // Training off on the autodiff device: running statistics, as a frozen layer has them.
        norm.training = Param::from_bool(false);
        let dims = [3, 3, 11, 11];
        let x = Tensor::<4>::from_data(TensorData::new(values(3 * 3 * 121, 12), dims), &device);
        let (fast, standard) = (block.forward(x.clone()), block.forward_standard(x));
        let error = relative_error(&host(fast.clone()), &host(standard.clone()));
        assert!(error < 1e-5, "{label}: folded inference differs by {error:e}");
        if device.is_autodiff() {
            let probe = Tensor::<4>::from_data(
                TensorData::new(values(fast.shape().num_elements(), 13), fast.dims()),
                &device,
            );
            let grads = |y: Tensor<4>| {
                let grads = y.mul(probe.clone()).sum().backward();
                let norm = block.norm.as_ref().expect("batch norm");
                [
                    host(norm.gamma.grad(&grads).expect("gamma's gradient")),
                    host(norm.beta.grad(&grads).expect("beta's")),
                ]
            };
            for (name, (fast, standard)) in
                ["gamma", "beta"].iter().zip(grads(fast).into_iter().zip(grads(standard)))
            {
                let error = relative_error(&fast, &standard);
                assert!(error < 1e-4, "{label}: {name}'s gradient differs by {error:e}");
            }
        }
    }
}

#[test]
fn conv_block_gradients_match_finite_differences() {
    // A tiny case in f32, differenced in the loss Σ y·probe with steps of 1e-2: the fast path's
    // analytic gradient against the slope of its own forward.
    let device = Device::flex().autodiff();
    let config = ConvBlockConfig::new(2, 3, 3).with_batch_norm(true);
    device.seed(5);
    let block = config.init(&device);
    let dims = [2, 2, 5, 5];
    let x = values(dims.iter().product(), 7);
    let analytic = pass(&block, &x, dims, true, &device).grads[0].1.clone();
    let loss = |x: &[f32]| -> f64 {
        // Training-mode forward without a graph: batch statistics, as in the pass above.
        let t = Tensor::<4>::from_data(TensorData::new(x.to_vec(), dims), &device);
        let y = block.forward(t);
        let probe = values(y.shape().num_elements(), 99);
        host(y).iter().zip(&probe).map(|(y, p)| (*y as f64) * (*p as f64)).sum()
    };
    let h = 1e-2f32;
    for i in [0, 13, 27, 49] {
        let (mut up, mut down) = (x.clone(), x.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (loss(&up) - loss(&down)) / (2.0 * h as f64);
        let error = (numeric - analytic[i] as f64).abs();
        assert!(
            error < 2e-2 * numeric.abs().max(1.0),
            "dx[{i}]: analytic {} vs numeric {numeric}",
            analytic[i]
        );
    }
}

#[test]
fn fused_loss_matches_the_unfused_blocked_loss_and_its_gradient() {
    // Above BLOCK_ROWS rows the linear model's loss on Flex is the fused operation; the same
    // model on NdArray runs the blocked Burn ops. Loss and gradient must agree.
    for rows in [4097, 20_000, 70_001] {
        let x: Vec<f32> = values(rows, 3).iter().flat_map(|&v| [v, 1.0]).collect();
        let y: Vec<f32> =
            values(rows, 4).iter().zip(x.chunks(2)).map(|(n, x)| 3.0 * x[0] + 2.0 + 0.25 * n).collect();
        let mut results = Vec::new();
        for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
            let model = LinearModel::new(&[-1.0, 1.0], &device);
            // The data is tracked too at the smallest size, so its gradients are checked as well.
            let track = rows == 4097;
            let x_tensor = Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, 2]), &device);
            let y_tensor = Tensor::<2>::from_data(TensorData::new(y.clone(), [rows, 1]), &device);
            let (x_tensor, y_tensor) =
                if track { (x_tensor.require_grad(), y_tensor.require_grad()) } else { (x_tensor, y_tensor) };
            let batch = crate::data::RegressionBatch { x: x_tensor.clone(), y: y_tensor.clone() };
            let loss = model.loss(batch);
            let grads = loss.clone().backward();
            let mut gradient = host(model.a.val().grad(&grads).unwrap());
            if track {
                gradient.extend(host(x_tensor.grad(&grads).unwrap()));
                gradient.extend(host(y_tensor.grad(&grads).unwrap()));
            }
            results.push((host(loss)[0], gradient));
        }
        let ((loss_flex, grad_flex), (loss_nd, grad_nd)) = (&results[0], &results[1]);
        assert!(
            (loss_flex - loss_nd).abs() <= 1e-5 * loss_nd.abs(),
            "{rows} rows: loss {loss_flex} vs {loss_nd}"
        );
        assert!(
            relative_error(grad_flex, grad_nd) < 1e-5,
            "{rows} rows: gradient {grad_flex:?} vs {grad_nd:?}"
        );
        // The analytic gradient 2/n·Xᵀ(Xa − y), in f64.
        let grad_flex = &grad_flex[..2];
        let mut oracle = [0.0f64; 2];
        for (row, target) in x.chunks(2).zip(&y) {
            let r = -(row[0] as f64) + 1.0 - *target as f64;
            oracle[0] += 2.0 * row[0] as f64 * r / rows as f64;
            oracle[1] += 2.0 * r / rows as f64;
        }
        for (got, want) in grad_flex.iter().zip(oracle) {
            assert!((*got as f64 - want).abs() < 1e-5 * want.abs().max(1.0), "{rows} rows: {got} vs {want}");
        }
    }
}

/// The default CNN for 8x8 images without batch norm and dropout, initialised on Flex from
/// `seed`, and a copy of its parameters on NdArray.
fn cnn_on_flex_and_ndarray(seed: u64) -> ((crate::model::Cnn, Device), (crate::model::Cnn, Device)) {
    let config = crate::model::CnnConfig { batch_norm: false, dropout: 0.0, ..Default::default() };
    let flex = Device::flex().autodiff();
    flex.seed(seed);
    let model = config.init(&crate::data::images::ImageShape::grey(8), &flex);
    let ndarray = Device::ndarray().autodiff();
    let copy = config
        .init(&crate::data::images::ImageShape::grey(8), &ndarray)
        .load_record(model.clone().into_record())
        .fork(&ndarray);
    ((model, flex), (copy, ndarray))
}

#[test]
fn the_default_cnn_trains_the_same_on_flex_and_ndarray() {
    // Five Adam steps on changing batches: the kernels' state (kept buffers, reused scratch)
    // must not leak from one step into the next.
    use crate::data::ImageBatch;
    use burn::optim::{AdamConfig, GradientsParams};
    let ((model, flex), (copy, ndarray)) = cnn_on_flex_and_ndarray(4);
    let mut losses = Vec::new();
    for (mut model, device) in [(model, &flex), (copy, &ndarray)] {
        let mut optimizer = AdamConfig::new().init();
        let mut run = Vec::new();
        for step in 0..5u64 {
            let rows = if step == 4 { 30 } else { 64 };
            let pixels: Vec<f32> = values(rows * 64, 20 + step).iter().map(|v| v.abs()).collect();
            let labels: Vec<i64> = (0..rows).map(|i| ((i as u64 * 7 + step) % 10) as i64).collect();
            let batch = ImageBatch {
                images: Tensor::from_data(TensorData::new(pixels, [rows, 1, 8, 8]), device),
                labels: Tensor::from_data(TensorData::new(labels, [rows]), device),
                seed: step,
                label_smoothing: 0.0,
                mix: None,
            };
            let loss = model.loss(batch);
            run.push(host(loss.clone())[0]);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-3, model, grads);
        }
        losses.push(run);
    }
    // Adam moves every parameter by about its rate whatever the size of its gradient, so a
    // gradient that rounding alone makes positive on one backend and negative on the other (the
    // Toeplitz product sums the digits' second block in another order than im2col and NdArray)
    // becomes a 2e-3 difference in that parameter: 4e-5 in the loss after four steps here, and
    // 2e-7 with a rate of 1e-6. A kernel whose state leaked between steps would be off by far
    // more; every value of the kernels is compared at 1e-5 in `nn::cpu`'s tests.
    assert!(relative_error(&losses[0], &losses[1]) < 1e-4, "{:?} vs {:?}", losses[0], losses[1]);
}

#[test]
fn the_default_cnn_has_the_same_loss_and_gradients_on_flex_and_ndarray() {
    // The whole network (two blocks, the head), batch norm and dropout off: one batch's loss and
    // every parameter's gradient, Flex (descent's kernels) against NdArray (Burn's ops).
    use crate::data::ImageBatch;
    let ((model, flex), (copy, ndarray)) = cnn_on_flex_and_ndarray(3);
    let pixels: Vec<f32> = values(64 * 64, 11).iter().map(|v| v.abs()).collect();
    let labels: Vec<i64> = (0..64).map(|i| (i * 7 % 10) as i64).collect();
    let mut results = Vec::new();
    for (model, device) in [(&model, &flex), (&copy, &ndarray)] {
        let batch = ImageBatch {
            images: Tensor::from_data(TensorData::new(pixels.clone(), [64, 1, 8, 8]), device),
            labels: Tensor::from_data(TensorData::new(labels.clone(), [64]), device),
            seed: 0,
            label_smoothing: 0.0,
            mix: None,
        };
        let loss = model.loss(batch);
        let grads = loss.clone().backward();
        let mut gradients = Vec::new();
        model.visit(&mut GradientCollector { grads: &grads, found: &mut gradients });
        results.push((host(loss), gradients));
    }
    let (flex_result, ndarray_result) = (&results[0], &results[1]);
    assert!(
        relative_error(&flex_result.0, &ndarray_result.0) < 1e-5,
        "loss {:?} vs {:?}",
        flex_result.0,
        ndarray_result.0
    );
    assert_eq!(flex_result.1.len(), ndarray_result.1.len());
    for (index, (got, want)) in flex_result.1.iter().zip(&ndarray_result.1).enumerate() {
        let error = relative_error(got, want);
        assert!(error < 1e-4, "parameter {index} of {}: gradient differs by {error:e}", want.len());
    }
}

/// Every float parameter's gradient, in the module's order.
struct GradientCollector<'a> {
    grads: &'a burn::tensor::Gradients,
    found: &'a mut Vec<Vec<f32>>,
}

impl burn::module::ModuleVisitor for GradientCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if let Some(grad) = param.val().grad(self.grads) {
            self.found.push(host(grad));
        }
    }
}
