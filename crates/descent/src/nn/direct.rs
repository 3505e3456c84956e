//! Direct convolution: each output tile computed from the (zero-padded) input image in place,
//! with no im2col buffer and no packing of the unfolded columns.
//!
//! The im2col route ([`super::cpu::conv2d_forward`]) writes every image's unfolded columns to
//! memory (800 values per output pixel at the Fashion-MNIST CNN's second block), then gemm reads
//! them back and packs them again, and the backward pass writes the input gradient's columns
//! and folds them back (col2im): about a third of a Fashion-MNIST step went to those passes
//! (BENCHMARKS.md). Here the microkernel reads the input image itself. A tile is 6 output
//! pixels by 16 output channels, 12 vector accumulators: per kernel tap it loads the tap's 16
//! weights (two 8-lane vectors, packed once per step) and broadcasts the 6 pixels' input values
//! straight from the padded image, whose offsets are those of the tap. Rows of taps that fall on
//! the vertical padding of every pixel of a tile are skipped.
//!
//! The three products of a training step all run this way:
//! - the output, `y = W ⊛ x` ([`forward`]);
//! - the input's gradient, the convolution of the padded output gradient with the kernel flipped
//!   and its channels swapped ([`backward`]), by the same microkernel;
//! - the kernel's gradient, a tile of 6 taps by 16 output channels summed over every output
//!   pixel, the output gradient read 16 channels at a time from a channel-last copy.
//!
//! AVX2 with FMA is chosen at run time; any other CPU runs the same loops on plain arrays.

use std::ops::Range;

use rayon::prelude::*;

use super::cpu::{self, ConvGrads, ConvShape, output, recycle, scratch};

/// Output channels per slab: two 8-lane vectors.
const LANES: usize = 16;
/// Output pixels (forward) or kernel taps (weight gradient) per tile.
const TILE: usize = 6;

/// A tile's accumulators: [`TILE`] rows of [`LANES`] channels.
type Acc = [[f32; LANES]; TILE];

/// Whether the direct convolution runs `shape` rather than im2col and gemm: with at least 8
/// output channels (fewer would leave a 16-lane slab more than half empty), and a padding the
/// input gradient's convolution can express (`padding < kernel`, always so for "same" padding).
/// The Fashion-MNIST CNN's two blocks (1 → 32 channels at 28x28, 32 → 64 at 14x14) run direct:
/// 868 → 1,095 images/s at 1 thread, 1,581 → 2,069 at 2 (BENCHMARKS.md, fourth pass).
pub fn direct_pays(shape: &ConvShape) -> bool {
    shape.padding < shape.kernel && shape.c_out >= 8
}

/// The instruction set the microkernels use, found once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
        Isa::Portable
    }
}

/// An image batch with its zero padding written out, `[batch, channels, h + 2p, w + 2p]`:
/// every tap of every output pixel reads inside it, so the microkernels need no bounds checks.
/// Kept by the forward pass for the weight gradient; recycled when dropped.
#[derive(Debug)]
pub struct Padded {
    values: Vec<f32>,
    height: usize,
    width: usize,
}

impl Drop for Padded {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.values));
    }
}

impl Padded {
    /// `x [batch, channels, height, width]` with `padding` zeros on every side.
    fn new(
        x: &[f32],
        (batch, channels, height, width): (usize, usize, usize, usize),
        padding: usize,
    ) -> Padded {
        let (hp, wp) = (height + 2 * padding, width + 2 * padding);
        // Written whole: each padded plane is cleared, then its rows copied in.
        let mut values = scratch(batch * channels * hp * wp);
        if !values.is_empty() {
            values.par_chunks_mut(hp * wp).enumerate().for_each(|(plane, padded)| {
                padded.fill(0.0);
                let source = &x[plane * height * width..][..height * width];
                for (row, values) in source.chunks_exact(width.max(1)).enumerate() {
                    padded[(row + padding) * wp + padding..][..width].copy_from_slice(values);
                }
            });
        }
        Padded { values, height: hp, width: wp }
    }

    fn plane(&self) -> usize {
        self.height * self.width
    }
}

/// The kernel `[c_out, c_in, k, k]` as slabs of 16 output channels, `[slab, tap, 16]`, the
/// missing channels of the last slab zero. With `flip` it is the kernel of the input gradient's
/// convolution instead: channels swapped and taps reversed, `[slab of c_in, (co, k−1−ky,
/// k−1−kx), 16]`.
fn pack(weight: &[f32], shape: &ConvShape, flip: bool) -> Vec<f32> {
    let (c_in, c_out, kk) = (shape.c_in, shape.c_out, shape.kernel * shape.kernel);
    let (rows, columns) = if flip { (c_in, c_out) } else { (c_out, c_in) };
    let taps = columns * kk;
    let slabs = rows.div_ceil(LANES);
    let mut packed = vec![0.0f32; slabs * taps * LANES];
    for row in 0..rows {
        let (slab, lane) = (row / LANES, row % LANES);
        for tap in 0..taps {
            let (column, offset) = (tap / kk, tap % kk);
            let source = if flip {
                (column * c_in + row) * kk + (kk - 1 - offset)
            } else {
                (row * c_in + column) * kk + offset
            };
            packed[(slab * taps + tap) * LANES + lane] = weight[source];
        }
    }
    packed
}

/// One convolution's operands as the microkernel sees them: a padded input, a packed kernel
/// and the sizes that map one to the other.
struct Plan<'a> {
    input: &'a Padded,
    packed: &'a [f32],
    c_in: usize,
    c_out: usize,
    kernel: usize,
    /// Rows of padding above the input proper, in `input`.
    padding: usize,
    /// Rows of the input proper.
    height: usize,
    out_height: usize,
    out_width: usize,
}

impl Plan<'_> {
    fn taps(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }
    fn pixels(&self) -> usize {
        self.out_height * self.out_width
    }
    /// Floats from one padded image to the next.
    fn image_stride(&self) -> usize {
        self.c_in * self.input.plane()
    }
    /// The kernel rows that reach the input proper from output row `oy`.
    fn rows(&self, oy: usize) -> Range<usize> {
        self.padding.saturating_sub(oy)..self.kernel.min((self.padding + self.height).saturating_sub(oy))
    }
}

/// `y [batch, c_out, h', w']` (`bias` added, or nothing when it is empty) from `plan`, the
/// batch split into groups of images, one group per task.
fn convolve(isa: Isa, plan: &Plan, bias: &[f32], batch: usize) -> Vec<f32> {
    let out_image = plan.c_out * plan.pixels();
    // Written whole: every (pixel, channel) of every image belongs to one tile of one slab.
    let mut y = output(batch * out_image);
    if y.is_empty() {
        return y;
    }
    let per_task = images_per_task(batch, plan.image_stride());
    y.par_chunks_mut(per_task * out_image).enumerate().for_each(|(task, y)| {
        let first = task * per_task;
        convolve_group(isa, plan, bias, first..(first + per_task).min(batch), y);
    });
    y
}

/// Images per task: about 128 KB of padded input (so a group stays in the core's cache while
/// every slab passes over it), and at least four tasks per thread when the batch allows.
fn images_per_task(batch: usize, image_floats: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_cache = ((128 << 10) / (4 * image_floats.max(1))).max(1);
    by_cache.min(batch.div_ceil(4 * threads)).max(1)
}

/// A tile of output pixels: where each reads the padded input (the last pixel repeated to
/// fill a short tile), where it goes in `y` for the slab's first channel (`None` for the
/// repeats), and the kernel rows that reach the input proper from any of them.
struct Tile {
    bases: [usize; TILE],
    targets: [Option<usize>; TILE],
    rows: Range<usize>,
}

fn tiles(plan: &Plan, images: Range<usize>) -> Vec<Tile> {
    let (pixels, image_stride) = (plan.pixels(), plan.image_stride());
    let total = images.len() * pixels;
    (0..total)
        .step_by(TILE)
        .map(|start| {
            let mut tile = Tile { bases: [0; TILE], targets: [None; TILE], rows: plan.kernel..0 };
            for i in 0..TILE {
                let q = (start + i).min(total - 1);
                let (image, pixel) = (q / pixels, q % pixels);
                let (oy, ox) = (pixel / plan.out_width, pixel % plan.out_width);
                tile.bases[i] = (images.start + image) * image_stride + oy * plan.input.width + ox;
                if start + i < total {
                    tile.targets[i] = Some(image * plan.c_out * pixels + pixel);
                }
                let rows = plan.rows(oy);
                tile.rows = tile.rows.start.min(rows.start)..tile.rows.end.max(rows.end);
            }
            tile.rows.end = tile.rows.end.max(tile.rows.start);
            tile
        })
        .collect()
}

fn convolve_group(isa: Isa, plan: &Plan, bias: &[f32], images: Range<usize>, y: &mut [f32]) {
    let (pixels, taps) = (plan.pixels(), plan.taps());
    let largest_base =
        (images.end - 1) * plan.image_stride() + (plan.out_height - 1) * plan.input.width + plan.out_width
            - 1;
    let reach = (plan.c_in - 1) * plan.input.plane() + (plan.kernel - 1) * (plan.input.width + 1);
    assert!(largest_base + reach < plan.input.values.len(), "direct convolution: input too short");
    let tiles = tiles(plan, images);
    for slab in 0..plan.c_out.div_ceil(LANES) {
        let weights = &plan.packed[slab * taps * LANES..][..taps * LANES];
        let lanes = LANES.min(plan.c_out - slab * LANES);
        let mut start = [0.0f32; LANES];
        for (lane, b) in start[..lanes].iter_mut().enumerate() {
            *b = bias.get(slab * LANES + lane).copied().unwrap_or(0.0);
        }
        let slab_offset = slab * LANES * pixels;
        for tile in &tiles {
            let acc = run_tile(isa, plan, weights, &start, tile);
            if let [Some(first), .., Some(last)] = tile.targets
                && last == first + TILE - 1
            {
                // Six neighbouring pixels of one image: six contiguous values per channel.
                for lane in 0..lanes {
                    let out = &mut y[slab_offset + first + lane * pixels..][..TILE];
                    for (value, row) in out.iter_mut().zip(&acc) {
                        *value = row[lane];
                    }
                }
                continue;
            }
            for (row, target) in acc.iter().zip(tile.targets) {
                let Some(target) = target else { continue };
                for (lane, &value) in row[..lanes].iter().enumerate() {
                    y[slab_offset + target + lane * pixels] = value;
                }
            }
        }
    }
}

/// One output tile by the microkernel of `isa`, its accumulators starting at `start`.
fn run_tile(isa: Isa, plan: &Plan, weights: &[f32], start: &[f32; LANES], tile: &Tile) -> Acc {
    let geometry = Geometry {
        c_in: plan.c_in,
        plane: plan.input.plane(),
        width: plan.input.width,
        kernel: plan.kernel,
        rows: tile.rows.clone(),
    };
    let bases = &tile.bases;
    match isa {
        // SAFETY: `convolve_group` checked that every tap of every base reads inside the input,
        // and sliced `weights` to the slab's taps·16 values, every tap's 16 of them; the CPU has
        // AVX2 and FMA (`Isa::detect`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe {
            avx2::tile(weights.as_ptr(), plan.input.values.as_ptr(), bases, start, &geometry)
        },
        Isa::Portable => portable_tile(weights, &plan.input.values, bases, start, &geometry),
    }
}

/// Where a tile's taps are: input channels, the padded plane's size and width, the kernel side,
/// and the kernel rows to run.
struct Geometry {
    c_in: usize,
    plane: usize,
    width: usize,
    kernel: usize,
    rows: Range<usize>,
}

fn portable_tile(
    weights: &[f32],
    x: &[f32],
    bases: &[usize; TILE],
    start: &[f32; LANES],
    g: &Geometry,
) -> Acc {
    let mut acc = [*start; TILE];
    for ci in 0..g.c_in {
        for ky in g.rows.clone() {
            let offset = ci * g.plane + ky * g.width;
            for kx in 0..g.kernel {
                let w = &weights[((ci * g.kernel + ky) * g.kernel + kx) * LANES..][..LANES];
                for (row, &base) in acc.iter_mut().zip(bases) {
                    let value = x[base + offset + kx];
                    for (a, &w) in row.iter_mut().zip(w) {
                        *a += value * w;
                    }
                }
            }
        }
    }
    acc
}

/// The weight gradient's tile: 6 taps by 16 output channels, summed over the output pixels of
/// `images`. `dyt` is the slab's output gradient channel-last, `[pixel, 16]`, from the first
/// of `images` on; `offsets` are the taps' offsets in a padded image.
fn portable_weight_tile(dyt: &[f32], x: &[f32], offsets: &[usize; TILE], sweep: &Sweep, acc: &mut Acc) {
    let mut p = 0;
    for image in sweep.images.clone() {
        for oy in 0..sweep.out_height {
            let base = image * sweep.image_stride + oy * sweep.width;
            for ox in 0..sweep.out_width {
                let dy = &dyt[p * LANES..][..LANES];
                for (row, &offset) in acc.iter_mut().zip(offsets) {
                    let value = x[base + ox + offset];
                    for (a, &d) in row.iter_mut().zip(dy) {
                        *a += value * d;
                    }
                }
                p += 1;
            }
        }
    }
}

/// The output pixels a weight-gradient tile sums over.
struct Sweep {
    images: Range<usize>,
    image_stride: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Acc, Geometry, LANES, Sweep, TILE};

    /// [`super::portable_tile`] on 8-lane vectors: per tap two weight loads, six broadcasts,
    /// twelve fused multiply-adds.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; for every base, every tap's input value lies inside `x`'s
    /// allocation, and every tap's 16 weights inside `weights`'.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(
        weights: *const f32,
        x: *const f32,
        bases: &[usize; TILE],
        start: &[f32; LANES],
        g: &Geometry,
    ) -> Acc {
        let first = unsafe { [_mm256_loadu_ps(start.as_ptr()), _mm256_loadu_ps(start.as_ptr().add(8))] };
        let mut acc = [first; TILE];
        let pointers: [*const f32; TILE] = std::array::from_fn(|i| unsafe { x.add(bases[i]) });
        for ci in 0..g.c_in {
            for ky in g.rows.clone() {
                let offset = ci * g.plane + ky * g.width;
                let mut w = unsafe { weights.add((ci * g.kernel + ky) * g.kernel * LANES) };
                for kx in 0..g.kernel {
                    let (w0, w1) = unsafe { (_mm256_loadu_ps(w), _mm256_loadu_ps(w.add(8))) };
                    for i in 0..TILE {
                        let value = unsafe { _mm256_broadcast_ss(&*pointers[i].add(offset + kx)) };
                        acc[i][0] = _mm256_fmadd_ps(value, w0, acc[i][0]);
                        acc[i][1] = _mm256_fmadd_ps(value, w1, acc[i][1]);
                    }
                    w = unsafe { w.add(LANES) };
                }
            }
        }
        store(&acc)
    }

    /// [`super::portable_weight_tile`] on 8-lane vectors, adding onto `acc`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `dyt` holds 16 values for every pixel of the sweep, and every
    /// offset of every pixel's base lies inside `x`'s allocation.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_tile(
        dyt: *const f32,
        x: *const f32,
        offsets: &[usize; TILE],
        s: &Sweep,
        out: &mut Acc,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; TILE];
        for i in 0..TILE {
            acc[i] = unsafe { [_mm256_loadu_ps(out[i].as_ptr()), _mm256_loadu_ps(out[i].as_ptr().add(8))] };
        }
        let mut dy = dyt;
        for image in s.images.clone() {
            for oy in 0..s.out_height {
                let row = unsafe { x.add(image * s.image_stride + oy * s.width) };
                let pointers: [*const f32; TILE] = std::array::from_fn(|i| unsafe { row.add(offsets[i]) });
                for ox in 0..s.out_width {
                    let (d0, d1) = unsafe { (_mm256_loadu_ps(dy), _mm256_loadu_ps(dy.add(8))) };
                    for i in 0..TILE {
                        let value = unsafe { _mm256_broadcast_ss(&*pointers[i].add(ox)) };
                        acc[i][0] = _mm256_fmadd_ps(value, d0, acc[i][0]);
                        acc[i][1] = _mm256_fmadd_ps(value, d1, acc[i][1]);
                    }
                    dy = unsafe { dy.add(LANES) };
                }
            }
        }
        *out = store(&acc);
    }

    #[target_feature(enable = "avx2,fma")]
    fn store(acc: &[[__m256; 2]; TILE]) -> Acc {
        let mut out = [[0.0f32; LANES]; TILE];
        for (row, vectors) in out.iter_mut().zip(acc) {
            // SAFETY: each row holds 16 floats, two vectors' worth.
            unsafe {
                _mm256_storeu_ps(row.as_mut_ptr(), vectors[0]);
                _mm256_storeu_ps(row.as_mut_ptr().add(8), vectors[1]);
            }
        }
        out
    }
}

/// The padding of the input gradient's convolution (`k − 1 − p`): every output gradient value
/// that an input pixel reached, and zeros where it reached none.
fn transposed_padding(shape: &ConvShape) -> usize {
    shape.kernel - 1 - shape.padding
}

/// Convolution forward, direct: `y [batch, c_out, h', w']` and, with `keep`, the padded input
/// for the backward pass.
pub fn forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: &ConvShape,
    keep: bool,
) -> (Vec<f32>, Option<Padded>) {
    forward_on(Isa::detect(), x, weight, bias, shape, keep)
}

fn forward_on(
    isa: Isa,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: &ConvShape,
    keep: bool,
) -> (Vec<f32>, Option<Padded>) {
    let dims = (shape.batch, shape.c_in, shape.height, shape.width);
    let padded = Padded::new(x, dims, shape.padding);
    let packed = pack(weight, shape, false);
    let plan = Plan {
        input: &padded,
        packed: &packed,
        c_in: shape.c_in,
        c_out: shape.c_out,
        kernel: shape.kernel,
        padding: shape.padding,
        height: shape.height,
        out_height: shape.out_height(),
        out_width: shape.out_width(),
    };
    let y = if shape.c_in == 0 || shape.kernel == 0 {
        let pixels = shape.out_height() * shape.out_width();
        (0..shape.batch * shape.c_out * pixels).map(|i| bias[i / pixels % shape.c_out]).collect()
    } else {
        convolve(isa, &plan, bias, shape.batch)
    };
    (y, keep.then_some(padded))
}

/// Convolution backward, direct, from the output gradient `dy` and the forward pass's padded
/// input: the weight and bias gradients, and the input gradient when `want_x`.
pub fn backward(padded: &Padded, weight: &[f32], dy: &[f32], shape: &ConvShape, want_x: bool) -> ConvGrads {
    backward_on(Isa::detect(), padded, weight, dy, shape, want_x)
}

fn backward_on(
    isa: Isa,
    padded: &Padded,
    weight: &[f32],
    dy: &[f32],
    shape: &ConvShape,
    want_x: bool,
) -> ConvGrads {
    let (oh, ow) = (shape.out_height(), shape.out_width());
    let x = want_x.then(|| {
        if shape.batch * shape.c_in * shape.height * shape.width == 0 || shape.c_out == 0 {
            return vec![0.0; shape.batch * shape.c_in * shape.height * shape.width];
        }
        let padding = transposed_padding(shape);
        let dy_padded = Padded::new(dy, (shape.batch, shape.c_out, oh, ow), padding);
        let packed = pack(weight, shape, true);
        let plan = Plan {
            input: &dy_padded,
            packed: &packed,
            c_in: shape.c_out,
            c_out: shape.c_in,
            kernel: shape.kernel,
            padding,
            height: oh,
            out_height: shape.height,
            out_width: shape.width,
        };
        convolve(isa, &plan, &[], shape.batch)
    });
    let weight_grad = weight_gradient(isa, padded, dy, shape);
    let pixels = oh * ow;
    let bias = cpu::channel_sums(dy, dy, (shape.batch, shape.c_out, pixels), |_, d, _| d)
        .into_iter()
        .map(|sum| sum as f32)
        .collect();
    ConvGrads { x, weight: weight_grad, bias }
}

/// `dW [c_out, c_in, k, k]`: for each slab of 16 output channels and tile of 6 taps, the sum
/// over every output pixel of the output gradient times the input the tap read there. Tasks
/// own disjoint tiles, and each sums its pixels in one fixed order, so the result does not
/// depend on the threads.
fn weight_gradient(isa: Isa, padded: &Padded, dy: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (taps, kk, pixels) =
        (shape.taps(), shape.kernel * shape.kernel, shape.out_height() * shape.out_width());
    let slabs = shape.c_out.div_ceil(LANES);
    let mut weight = vec![0.0f32; shape.c_out * taps];
    if weight.is_empty() || shape.batch * pixels == 0 {
        return weight;
    }
    let dyt = channel_last(dy, shape.batch, shape.c_out, pixels);
    let image_stride = shape.c_in * padded.plane();
    let offset = |tap: usize| {
        let (ci, ky, kx) = (tap / kk, tap % kk / shape.kernel, tap % shape.kernel);
        ci * padded.plane() + ky * padded.width + kx
    };
    // Images per pass over a tile: about 64 KB of the gradient, which stays in cache while
    // every tile of the task's block reads it.
    let chunk = ((64 << 10) / (4 * LANES * pixels)).max(1);
    let tiles = taps.div_ceil(TILE);
    let threads = rayon::current_num_threads().max(1);
    let per_task = tiles.div_ceil((4 * threads).div_ceil(slabs)).max(1);
    let blocks: Vec<(usize, Range<usize>)> = (0..slabs)
        .flat_map(|slab| (0..tiles).step_by(per_task).map(move |t| (slab, t..(t + per_task).min(tiles))))
        .collect();
    let sums: Vec<Vec<Acc>> = blocks
        .par_iter()
        .map(|(slab, block)| {
            let dyt = &dyt[slab * shape.batch * pixels * LANES..][..shape.batch * pixels * LANES];
            let mut sums = vec![[[0.0f32; LANES]; TILE]; block.len()];
            for first in (0..shape.batch).step_by(chunk) {
                let images = first..(first + chunk).min(shape.batch);
                let dyt = &dyt[first * pixels * LANES..][..images.len() * pixels * LANES];
                let sweep = Sweep {
                    images,
                    image_stride,
                    width: padded.width,
                    out_height: shape.out_height(),
                    out_width: shape.out_width(),
                };
                for (acc, t) in sums.iter_mut().zip(block.clone()) {
                    let offsets: [usize; TILE] =
                        std::array::from_fn(|i| offset((t * TILE + i).min(taps - 1)));
                    weight_tile(isa, dyt, &padded.values, &offsets, &sweep, acc);
                }
            }
            sums
        })
        .collect();
    for ((slab, block), sums) in blocks.iter().zip(sums) {
        for (t, acc) in block.clone().zip(sums) {
            for (i, row) in acc.iter().enumerate().filter(|(i, _)| t * TILE + i < taps) {
                for (lane, &value) in
                    row.iter().enumerate().filter(|(lane, _)| slab * LANES + lane < shape.c_out)
                {
                    weight[(slab * LANES + lane) * taps + t * TILE + i] = value;
                }
            }
        }
    }
    recycle(dyt);
    weight
}

fn weight_tile(isa: Isa, dyt: &[f32], x: &[f32], offsets: &[usize; TILE], sweep: &Sweep, acc: &mut Acc) {
    let count = sweep.images.len() * sweep.out_height * sweep.out_width;
    assert!(dyt.len() >= count * LANES, "weight gradient: gradient too short");
    let last =
        (sweep.images.end - 1) * sweep.image_stride + (sweep.out_height - 1) * sweep.width + sweep.out_width
            - 1;
    assert!(offsets.iter().all(|&offset| last + offset < x.len()), "weight gradient: input too short");
    match isa {
        // SAFETY: checked above: every pixel has 16 gradient values and every tap of every
        // pixel reads inside `x`; the CPU has AVX2 and FMA (`Isa::detect`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::weight_tile(dyt.as_ptr(), x.as_ptr(), offsets, sweep, acc) },
        Isa::Portable => portable_weight_tile(dyt, x, offsets, sweep, acc),
    }
}

/// `dy [batch, c_out, pixels]` as slabs of 16 channels, channel-last: `[slab, batch·pixels,
/// 16]`, the missing channels of the last slab zero.
fn channel_last(dy: &[f32], batch: usize, c_out: usize, pixels: usize) -> Vec<f32> {
    let slabs = c_out.div_ceil(LANES);
    // Written whole: each slab's rows are written for every lane, zeros past `c_out`.
    let mut dyt = scratch(slabs * batch * pixels * LANES);
    dyt.par_chunks_mut(pixels * LANES).enumerate().for_each(|(index, rows)| {
        let (slab, image) = (index / batch, index % batch);
        for lane in 0..LANES {
            let co = slab * LANES + lane;
            if co < c_out {
                let plane = &dy[(image * c_out + co) * pixels..][..pixels];
                for (p, &value) in plane.iter().enumerate() {
                    rows[p * LANES + lane] = value;
                }
            } else {
                (0..pixels).for_each(|p| rows[p * LANES + lane] = 0.0);
            }
        }
    });
    dyt
}

/// Both microkernels, whichever this CPU would pick (for the tests of `cpu` and this module).
#[cfg(test)]
pub(super) fn isas() -> Vec<Isa> {
    let mut isas = vec![Isa::Portable];
    if Isa::detect() != Isa::Portable {
        isas.push(Isa::detect());
    }
    isas
}

/// Forward and backward on `isa`: the output and every gradient, for the oracle tests.
#[cfg(test)]
pub(super) fn convolution_on(
    isa: Isa,
    (x, weight, bias): (&[f32], &[f32], &[f32]),
    dy: &[f32],
    shape: &ConvShape,
) -> (Vec<f32>, ConvGrads) {
    let (y, padded) = forward_on(isa, x, weight, bias, shape, true);
    let padded = padded.expect("kept for the backward pass");
    (y, backward_on(isa, &padded, weight, dy, shape, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_flips_and_swaps_for_the_input_gradient() {
        let shape = ConvShape { batch: 1, c_in: 2, height: 4, width: 4, c_out: 3, kernel: 2, padding: 1 };
        let weight: Vec<f32> = (0..shape.c_out * shape.taps()).map(|i| i as f32).collect();
        let packed = pack(&weight, &shape, false);
        // Output channel 2, input channel 1, tap (0, 1): lane 2 of tap 1·4 + 1.
        assert_eq!(packed[5 * LANES + 2], weight[(2 * 2 + 1) * 4 + 1]);
        assert_eq!(packed[5 * LANES + 3], 0.0, "channels past c_out are zero");
        let flipped = pack(&weight, &shape, true);
        // Input channel 1 (lane 1) from output channel 2, tap (0, 1) reversed to (1, 0).
        assert_eq!(flipped[(2 * 4 + 1) * LANES + 1], weight[(2 * 2 + 1) * 4 + 2]);
    }
}
