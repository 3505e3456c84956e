//! The CPU kernels behind [`super::ConvBlock`] and the linear model's loss on Flex: plain `f32`
//! slices in, plain vectors out, no Burn types, so each kernel is testable on its own.
//!
//! Why these and not Flex's own: Flex 0.22.1 runs conv2d through its conv3d path one image at a
//! time (one small matrix product per image, the weights re-packed for each), its conv backward
//! through a serial transposed convolution, 2x2 max pooling through a generic 3-D kernel, and
//! batch norm and the element-wise ops as serial passes (see BENCHMARKS.md, "The CNN"). Here the
//! batch is folded into one large matrix product per worker, the im2col buffers of the forward
//! pass are kept for the weight gradient, ReLU is folded into the pooling (they commute), and
//! every pass is split over the rayon pool so both cores work.
//!
//! Which convolution runs a layer: the Toeplitz product for images no larger than the kernel
//! ([`toeplitz_pays`]), the direct convolution of [`super::direct`] for most others
//! ([`super::direct::direct_pays`]), and im2col with gemm ([`conv2d_forward`]) for the rest.

use std::ops::Range;
use std::sync::Mutex;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// Large scratch buffers (im2col columns, gathered gradients, matrix products) kept between
/// steps. Allocating them afresh every step cost about a fifth of a Fashion-MNIST step in
/// zero-filling and page faults (measured with perf); a reused buffer is already mapped and
/// needs no zeroing when it is overwritten whole.
static SCRATCH: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// The most the scratch pool keeps, in floats (256 MB).
const SCRATCH_LIMIT: usize = 64 << 20;

/// A buffer of `len` floats whose contents are left from an earlier use: for temporaries that
/// are overwritten whole and given back with [`recycle`]. (Results handed to Burn are allocated
/// afresh instead: they never come back, and taking pool buffers for them would only starve the
/// temporaries.)
pub(super) fn scratch(len: usize) -> Vec<f32> {
    let reused = {
        let mut pool = SCRATCH.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The smallest buffer that holds `len` without growing, and not more than twice as large.
        let fits = |capacity: usize| capacity >= len && capacity <= len.saturating_mul(2);
        let best = (0..pool.len()).filter(|&i| fits(pool[i].capacity())).min_by_key(|&i| pool[i].capacity());
        best.map(|i| pool.swap_remove(i))
    };
    let mut buffer = match reused {
        Some(mut buffer) => {
            buffer.resize(len, 0.0);
            buffer
        }
        None => vec![0.0; len],
    };
    // As with `output`: a kernel that leaves part of its scratch unwritten fails its tests.
    if cfg!(any(test, debug_assertions)) {
        buffer.fill(f32::NAN);
    }
    buffer
}

/// Give a buffer back for later steps.
pub(super) fn recycle(buffer: Vec<f32>) {
    if buffer.capacity() == 0 {
        return;
    }
    let mut pool = SCRATCH.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    pool.push(buffer);
    // Over the limit, the largest buffers go first.
    while pool.iter().map(Vec::capacity).sum::<usize>() > SCRATCH_LIMIT {
        let largest = (0..pool.len()).max_by_key(|&i| pool[i].capacity()).expect("not empty");
        pool.swap_remove(largest);
    }
}

/// A vector of `len` floats for a kernel that writes every one of them before anything reads
/// it: a result handed to Burn, skipping the zero-fill (and, for fresh pages, the kernel's page
/// clearing) that `vec![0.0; len]` costs. Unit tests and debug builds fill it with NaN, so a
/// kernel that misses an element fails its oracle test instead of passing on leftover zeros.
pub(super) fn output(len: usize) -> Vec<f32> {
    let mut values: Vec<f32> = Vec::with_capacity(len);
    // SAFETY: `f32` has no invalid bit patterns and no drop; every caller overwrites all `len`
    // values before the vector is read or handed on (each call site says how).
    #[allow(clippy::uninit_vec)]
    unsafe {
        values.set_len(len)
    };
    if cfg!(any(test, debug_assertions)) {
        values.fill(f32::NAN);
    }
    values
}

/// Defines a function whose body is compiled twice: as is (baseline x86-64, SSE2), and with AVX2
/// and FMA, picked at run time when the CPU has them. The binary still runs on any x86-64 CPU;
/// on the ones this is measured on, the element-wise loops run on 256-bit vectors.
macro_rules! wide_when_available {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// The sizes of a stride-1 convolution with symmetric zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub height: usize,
    pub width: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub padding: usize,
}

impl ConvShape {
    pub fn out_height(&self) -> usize {
        self.height + 2 * self.padding + 1 - self.kernel
    }
    pub fn out_width(&self) -> usize {
        self.width + 2 * self.padding + 1 - self.kernel
    }
    /// Output pixels per image and channel.
    fn pixels(&self) -> usize {
        self.out_height() * self.out_width()
    }
    /// Multiply-adds per output value: one per input channel and kernel tap.
    pub(super) fn taps(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }
    fn in_image(&self) -> usize {
        self.c_in * self.height * self.width
    }
    fn out_image(&self) -> usize {
        self.c_out * self.pixels()
    }
}

/// The im2col buffers of one forward pass, one per group of images, kept for the backward pass
/// and recycled when dropped.
#[derive(Debug)]
pub struct Columns {
    groups: Vec<Vec<f32>>,
    per_group: usize,
}

impl Drop for Columns {
    fn drop(&mut self) {
        self.groups.drain(..).for_each(recycle);
    }
}

/// Images per worker: the batch split into as many equal groups as there are threads, or more
/// when a group's im2col buffer would pass its budget. In training (`keep`) the buffers are kept
/// for the backward pass, and 32 MB groups (about where they fall out of every cache anyway) keep
/// the products large. In inference nothing is kept, and groups of about 1 MB of columns (a few
/// images, or one) are unfolded and multiplied while they are still in the core's cache: on the
/// Fashion-MNIST test set at 2 threads that took 3,295 images/s to 4,111-4,388 (BENCHMARKS.md).
fn images_per_group(shape: &ConvShape, keep: bool) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let column_bytes = shape.taps() * shape.pixels() * 4;
    let budget: usize = if keep { 32 << 20 } else { 1 << 20 };
    let by_memory = budget / column_bytes.max(1);
    shape.batch.div_ceil(threads).min(by_memory.max(1)).max(1)
}

/// Inside a parallel loop over several groups the matrix product runs on its own thread; a single
/// group (batch 1, say) lets the product use the whole pool instead.
fn parallelism(groups: usize) -> Parallelism {
    if groups > 1 { Parallelism::None } else { Parallelism::Rayon(rayon::current_num_threads().max(1)) }
}

/// The row operations im2col and col2im are made of, on rows of at most a few dozen values. For
/// such short rows the library's `memcpy` and `memset` calls cost more than the copying: the
/// AVX2 variant does a row in a few 8-lane loads and stores instead, the padding's zeros
/// included. (Loads are masked; stores are not: AMD's masked stores are microcoded and had made
/// im2col four times slower. The stores may spill past the row, into values written later.)
trait Rows {
    /// `dst[o] = src[o + shift]` for `o < len`, zero where `o + shift` falls outside `src`.
    /// `dst[len..]` may be overwritten: the caller writes it later.
    fn shifted(dst: &mut [f32], len: usize, src: &[f32], shift: isize);
    /// `plane[row + o + shift] += src[o]` for the `o` whose `o + shift` falls inside `0..width`:
    /// the adjoint of `shifted`, onto the row of `width` values at `row` of `plane`. Values of
    /// `plane` outside that span may be read and written back unchanged.
    fn add_shifted(plane: &mut [f32], row: usize, width: usize, src: &[f32], shift: isize);
}

/// [`Rows`] on any CPU, by slices.
struct Portable;

impl Rows for Portable {
    #[inline(always)]
    fn shifted(dst: &mut [f32], len: usize, src: &[f32], shift: isize) {
        let dst = &mut dst[..len];
        let (lo, hi) = overlap(len, src.len(), shift);
        dst[..lo].fill(0.0);
        if lo < hi {
            dst[lo..hi].copy_from_slice(&src[(lo as isize + shift) as usize..(hi as isize + shift) as usize]);
        }
        dst[hi..].fill(0.0);
    }

    #[inline(always)]
    fn add_shifted(plane: &mut [f32], row: usize, width: usize, src: &[f32], shift: isize) {
        let (lo, hi) = overlap(src.len(), width, shift);
        if lo < hi {
            let dst =
                &mut plane[row..][..width][(lo as isize + shift) as usize..(hi as isize + shift) as usize];
            dst.iter_mut().zip(&src[lo..hi]).for_each(|(d, s)| *d += s);
        }
    }
}

/// The indices `[lo, hi)` of a row of `len` whose `o + shift` falls inside `0..other`.
#[inline(always)]
fn overlap(len: usize, other: usize, shift: isize) -> (usize, usize) {
    let lo = (-shift).clamp(0, len as isize);
    let hi = (other as isize - shift).clamp(lo, len as isize);
    (lo as usize, hi as usize)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::Rows`] with AVX2 loads and stores. Only reached after a run-time check that the
    /// CPU has AVX2 (`with_rows!`).
    pub struct Avx2;

    /// The lanes `o..o + 8` whose `o + lane + shift` lies inside `0..other`, and below `len`.
    #[inline(always)]
    unsafe fn valid(o: usize, len: usize, other: usize, shift: isize) -> __m256i {
        unsafe {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let inside = _mm256_cmpgt_epi32(_mm256_set1_epi32((len - o) as i32), lane);
            let at = _mm256_add_epi32(lane, _mm256_set1_epi32(o as i32 + shift as i32));
            let valid = _mm256_and_si256(
                _mm256_cmpgt_epi32(at, _mm256_set1_epi32(-1)),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(other as i32), at),
            );
            _mm256_and_si256(inside, valid)
        }
    }

    impl super::Rows for Avx2 {
        #[inline(always)]
        fn shifted(dst: &mut [f32], len: usize, src: &[f32], shift: isize) {
            assert!(len <= dst.len());
            let mut o = 0;
            // SAFETY: the CPU has AVX2 (checked before any `Avx2` call). Masked-off lanes are
            // not read, and every enabled lane indexes inside `src` (`valid`), so the addresses
            // computed with `wrapping_offset` outside it are never dereferenced; each store
            // writes `dst[o..o + 8]`, inside `dst`.
            unsafe {
                while o < len && o + 8 <= dst.len() {
                    let from = src.as_ptr().wrapping_offset(o as isize + shift);
                    let values = _mm256_maskload_ps(from, valid(o, len, src.len(), shift));
                    _mm256_storeu_ps(dst.as_mut_ptr().add(o), values);
                    o += 8;
                }
            }
            // The end of the buffer: the remaining lanes one by one.
            for (i, d) in dst[o.min(len)..len].iter_mut().enumerate() {
                let at = (o + i) as isize + shift;
                *d = if at >= 0 && (at as usize) < src.len() { src[at as usize] } else { 0.0 };
            }
        }

        /// The portable loop, compiled with AVX2: hand-written 8-lane windows measured slower
        /// here (a 14-value row is one window and a scalar tail, or a window that spills into
        /// the next row, whose reload then stalls on the store).
        #[inline(always)]
        fn add_shifted(plane: &mut [f32], row: usize, width: usize, src: &[f32], shift: isize) {
            super::Portable::add_shifted(plane, row, width, src, shift)
        }
    }
}

/// Runs `$body::<Rows>` with the AVX2 rows when the CPU has AVX2 (compiled with AVX2 enabled),
/// the portable rows otherwise.
macro_rules! with_rows {
    ($body:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2")]
            unsafe fn wide(f: impl FnOnce()) {
                f()
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                return unsafe { wide(|| $body::<avx2::Avx2>($($arg),*)) };
            }
        }
        $body::<Portable>($($arg),*)
    }};
}

/// Unfolds `images` of `x` into `columns`, `[taps, images·pixels]` row-major: row `t` holds
/// input channel `t / k²`, kernel offset `t % k²`, for every output pixel of every image.
fn im2col(x: &[f32], shape: &ConvShape, images: Range<usize>, columns: &mut [f32]) {
    with_rows!(im2col_rows(x, shape, images, columns))
}

#[inline(always)]
fn im2col_rows<R: Rows>(x: &[f32], shape: &ConvShape, images: Range<usize>, columns: &mut [f32]) {
    let (k, pixels, out_width) = (shape.kernel, shape.pixels(), shape.out_width());
    let n = images.len() * pixels;
    let plane_size = shape.height * shape.width;
    for c in 0..shape.c_in {
        for ky in 0..k {
            for kx in 0..k {
                let tap = (c * k + ky) * k + kx;
                let shift = kx as isize - shape.padding as isize;
                for (j, image) in images.clone().enumerate() {
                    let plane = &x[(image * shape.c_in + c) * plane_size..][..plane_size];
                    for oy in 0..shape.out_height() {
                        // From this row to the end of the buffer: what follows is written later.
                        let dst = &mut columns[tap * n + j * pixels + oy * out_width..];
                        let iy = (oy + ky) as isize - shape.padding as isize;
                        if iy < 0 || iy >= shape.height as isize {
                            R::shifted(dst, out_width, &[], 0);
                        } else {
                            let src = &plane[iy as usize * shape.width..][..shape.width];
                            R::shifted(dst, out_width, src, shift);
                        }
                    }
                }
            }
        }
    }
}

/// Folds `columns` (`[taps, images·pixels]`) back onto `dx`, the input gradient of `images`
/// (`dx` starts at the first of them): the adjoint of [`im2col`].
fn col2im(columns: &[f32], shape: &ConvShape, images: usize, dx: &mut [f32]) {
    with_rows!(col2im_rows(columns, shape, images, dx))
}

#[inline(always)]
fn col2im_rows<R: Rows>(columns: &[f32], shape: &ConvShape, images: usize, dx: &mut [f32]) {
    let (k, pixels, out_width) = (shape.kernel, shape.pixels(), shape.out_width());
    let n = images * pixels;
    let plane_size = shape.height * shape.width;
    for c in 0..shape.c_in {
        for ky in 0..k {
            for kx in 0..k {
                let tap = (c * k + ky) * k + kx;
                let row = &columns[tap * n..(tap + 1) * n];
                let shift = kx as isize - shape.padding as isize;
                for j in 0..images {
                    let plane = &mut dx[(j * shape.c_in + c) * plane_size..][..plane_size];
                    for oy in 0..shape.out_height() {
                        let iy = (oy + ky) as isize - shape.padding as isize;
                        if iy < 0 || iy >= shape.height as isize {
                            continue;
                        }
                        let src = &row[j * pixels + oy * out_width..][..out_width];
                        R::add_shifted(plane, iy as usize * shape.width, shape.width, src, shift);
                    }
                }
            }
        }
    }
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]`, each given by its row and column strides.
///
/// gemm works on column-major destinations (it transposes the problem otherwise) and copies
/// ("packs") an operand that is not laid out for its kernel; the strides chosen by the callers
/// keep the large im2col buffers out of that copy.
#[allow(clippy::too_many_arguments)]
fn matmul(
    sizes: (usize, usize, usize),
    dst: &mut [f32],
    dst_strides: (usize, usize),
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
    parallelism: Parallelism,
) {
    product(sizes, (dst, dst_strides, false), (lhs, lhs_strides), (rhs, rhs_strides), parallelism)
}

/// `dst[m×n] += lhs[m×k] · rhs[k×n]`, as [`matmul`].
#[allow(clippy::too_many_arguments)]
fn accumulate(
    sizes: (usize, usize, usize),
    dst: &mut [f32],
    dst_strides: (usize, usize),
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
    parallelism: Parallelism,
) {
    product(sizes, (dst, dst_strides, true), (lhs, lhs_strides), (rhs, rhs_strides), parallelism)
}

/// An operand and its row and column strides.
type Operand<'a> = (&'a [f32], (usize, usize));

/// [`matmul`] (`read_dst` false) or [`accumulate`] (true).
fn product(
    (m, n, k): (usize, usize, usize),
    (dst, (dst_rs, dst_cs), read_dst): (&mut [f32], (usize, usize), bool),
    (lhs, (lhs_rs, lhs_cs)): Operand<'_>,
    (rhs, (rhs_rs, rhs_cs)): Operand<'_>,
    parallelism: Parallelism,
) {
    assert!(m == 0 || n == 0 || (m - 1) * dst_rs + (n - 1) * dst_cs < dst.len());
    assert!(m == 0 || k == 0 || (m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len());
    assert!(n == 0 || k == 0 || (k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len());
    // SAFETY: the asserts above keep every index the product reads or writes inside the slices.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            read_dst,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if read_dst { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Convolution forward: `x [batch, c_in, h, w]`, `weight [c_out, c_in, k, k]`, `bias [c_out]`
/// to `[batch, c_out, h', w']`. With `keep` the im2col buffers come back for the backward pass.
pub fn conv2d_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: &ConvShape,
    keep: bool,
) -> (Vec<f32>, Option<Columns>) {
    let (pixels, taps, c_out) = (shape.pixels(), shape.taps(), shape.c_out);
    let per_group = images_per_group(shape, keep);
    let group_count = shape.batch.div_ceil(per_group);
    // Written whole: every group's images by `scatter_with_bias`.
    let mut y = output(shape.batch * shape.out_image());
    if y.is_empty() {
        return (y, keep.then(|| Columns { groups: Vec::new(), per_group }));
    }
    let columns: Vec<Vec<f32>> = y
        .par_chunks_mut(per_group * shape.out_image())
        .enumerate()
        .map(|(group, y)| {
            let first = group * per_group;
            let images = first..(first + per_group).min(shape.batch);
            let n = images.len() * pixels;
            let mut columns = scratch(taps * n);
            im2col(x, shape, images.clone(), &mut columns);
            let mut out = scratch(c_out * n);
            matmul(
                (c_out, n, taps),
                &mut out,
                (n, 1),
                weight,
                (taps, 1),
                &columns,
                (n, 1),
                parallelism(group_count),
            );
            scatter_with_bias(&out, bias, images.len(), pixels, y);
            recycle(out);
            if keep {
                columns
            } else {
                recycle(columns);
                Vec::new()
            }
        })
        .collect();
    (y, keep.then_some(Columns { groups: columns, per_group }))
}

wide_when_available! {
/// `out [c_out, images·pixels]` to `y [images, c_out, pixels]`, adding the bias on the way.
fn scatter_with_bias(out: &[f32], bias: &[f32], images: usize, pixels: usize, y: &mut [f32]) {
    let (c_out, n) = (bias.len(), images * pixels);
    for j in 0..images {
        for (co, &b) in bias.iter().enumerate() {
            let src = &out[co * n + j * pixels..][..pixels];
            let dst = &mut y[(j * c_out + co) * pixels..][..pixels];
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s + b;
            }
        }
    }
}
}

/// The gradients of a convolution.
pub struct ConvGrads {
    /// `[batch, c_in, h, w]`, when asked for.
    pub x: Option<Vec<f32>>,
    /// `[c_out, c_in, k, k]`.
    pub weight: Vec<f32>,
    /// `[c_out]`.
    pub bias: Vec<f32>,
}

/// Convolution backward from the output gradient `dy [batch, c_out, h', w']` and the forward
/// pass's im2col buffers: the weight and bias gradients, and the input gradient when `want_x`.
pub fn conv2d_backward(
    columns: &Columns,
    weight: &[f32],
    dy: &[f32],
    shape: &ConvShape,
    want_x: bool,
) -> ConvGrads {
    let (pixels, taps, c_out) = (shape.pixels(), shape.taps(), shape.c_out);
    let per_group = columns.per_group;
    let group_count = columns.groups.len();
    let group = |index: usize, dx: Option<&mut [f32]>| {
        let first = index * per_group;
        let images = first..(first + per_group).min(shape.batch);
        let n = images.len() * pixels;
        let columns = &columns.groups[index];
        // dy of these images as [c_out, images·pixels], the layout of the forward product.
        let mut dyc = scratch(c_out * n);
        for (j, image) in images.clone().enumerate() {
            for co in 0..c_out {
                dyc[co * n + j * pixels..][..pixels]
                    .copy_from_slice(&dy[(image * c_out + co) * pixels..][..pixels]);
            }
        }
        let parallelism = parallelism(group_count);
        // dW = dY · colsᵀ, written column-major (as dWᵀ, [taps, c_out]): gemm then reads the
        // columns in place instead of packing all of them.
        let mut dwt = vec![0.0f32; taps * c_out];
        matmul((c_out, taps, n), &mut dwt, (1, c_out), &dyc, (n, 1), columns, (1, n), parallelism);
        let db: Vec<f32> = dyc.chunks(n).map(|row| lane_sum(row, row, |d, _| d) as f32).collect();
        if let Some(dx) = dx {
            // dcols = Wᵀ · dY, then folded back onto the images.
            let mut dcols = scratch(taps * n);
            matmul((taps, n, c_out), &mut dcols, (n, 1), weight, (1, taps), &dyc, (n, 1), parallelism);
            col2im(&dcols, shape, images.len(), dx);
            recycle(dcols);
        }
        recycle(dyc);
        (dwt, db)
    };
    let (parts, dx): (Vec<GroupGrads>, Option<Vec<f32>>) = if want_x {
        let mut dx = vec![0.0f32; shape.batch * shape.in_image()];
        let parts = if dx.is_empty() {
            Vec::new()
        } else {
            dx.par_chunks_mut(per_group * shape.in_image())
                .enumerate()
                .map(|(index, dx)| group(index, Some(dx)))
                .collect()
        };
        (parts, Some(dx))
    } else {
        ((0..group_count).into_par_iter().map(|index| group(index, None)).collect(), None)
    };
    // Summed in group order, so the result does not depend on which thread finished first; the
    // sum stays in the products' `[taps, c_out]` layout and is transposed once at the end.
    let mut weight_grad_t = vec![0.0f32; taps * c_out];
    let mut bias_grad = vec![0.0f32; c_out];
    for (dwt, db) in parts {
        weight_grad_t.iter_mut().zip(dwt).for_each(|(total, part)| *total += part);
        bias_grad.iter_mut().zip(db).for_each(|(total, part)| *total += part);
    }
    let weight = (0..c_out * taps).map(|i| weight_grad_t[(i % taps) * c_out + i / taps]).collect();
    ConvGrads { x: dx, weight, bias: bias_grad }
}

/// The most floats a Toeplitz matrix may hold (16 MB).
const TOEPLITZ_LIMIT: usize = 4 << 20;

/// Whether `shape` runs as one product with its Toeplitz matrix ([`toeplitz_forward`]) rather
/// than im2col and products per group: when an image has no more pixels than the kernel has
/// taps, the Toeplitz matrix's multiply-adds (`c_in·h·w` per output value) are fewer than
/// im2col's (`c_in·k²`, padding included: at 4x4 with a 5x5 kernel half of those fall on
/// padding), and the whole batch is one large, efficient product with no unfolding at all.
pub fn toeplitz_pays(shape: &ConvShape) -> bool {
    let in_pixels = shape.height * shape.width;
    in_pixels <= shape.kernel * shape.kernel
        && shape.c_in.saturating_mul(in_pixels).saturating_mul(shape.out_image()) <= TOEPLITZ_LIMIT
}

/// The Toeplitz matrix of a convolution, `[c_in·h·w, c_out·h'·w']` row-major: an image
/// flattened (`[c_in, h, w]`) times it is the image's convolution flattened (`[c_out, h', w']`),
/// without the bias. Zero where a kernel tap would fall on padding. The forward pass builds it
/// and the backward pass reuses it; it goes back to the scratch pool when dropped.
#[derive(Debug)]
pub struct Toeplitz(Vec<f32>);

impl Drop for Toeplitz {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.0));
    }
}

/// The output positions `o` (rows or columns) that input position `i` reaches through a kernel
/// of side `k` with padding `p`, each with its tap `i + p − o`: `o` from `i + p − (k − 1)` to
/// `i + p`, within `0..out`.
fn reach(i: usize, k: usize, p: usize, out: usize) -> Range<usize> {
    (i + p).saturating_sub(k.saturating_sub(1))..(i + p + 1).min(out)
}

/// Builds [`Toeplitz`] for `weight`, a row per input value (each row's kernel taps copied in
/// runs, one per output row it reaches), the rows shared out between the cores.
fn toeplitz(weight: &[f32], shape: &ConvShape) -> Toeplitz {
    let (c_in, h, w, k, p) = (shape.c_in, shape.height, shape.width, shape.kernel, shape.padding);
    let (oh, ow, n) = (shape.out_height(), shape.out_width(), shape.out_image());
    // Written whole: each row is cleared, then its taps copied in.
    let mut t = scratch(shape.in_image() * n);
    if n == 0 {
        return Toeplitz(t);
    }
    t.par_chunks_mut(n).with_min_len(8).enumerate().for_each(|(r, row)| {
        let (ci, iy, ix) = (r / (h * w), r / w % h, r % w);
        row.fill(0.0);
        let columns = reach(ix, k, p, ow);
        for co in 0..shape.c_out {
            let kernel = &weight[(co * c_in + ci) * k * k..][..k * k];
            for oy in reach(iy, k, p, oh) {
                let taps = &kernel[(iy + p - oy) * k..][..k];
                let out = &mut row[(co * oh + oy) * ow..][..ow];
                for ox in columns.clone() {
                    out[ox] = taps[ix + p - ox];
                }
            }
        }
    });
    Toeplitz(t)
}

/// Convolution forward by the Toeplitz matrix (for shapes where [`toeplitz_pays`]): the batch
/// `[batch, c_in·h·w]` times `T`, onto the bias, in one product over every core. With `keep`
/// the matrix comes back for the backward pass.
pub fn toeplitz_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    shape: &ConvShape,
    keep: bool,
) -> (Vec<f32>, Option<Toeplitz>) {
    let (k_dim, n, pixels) = (shape.in_image(), shape.out_image(), shape.pixels());
    // Written whole: every row starts as the bias, and the product adds onto it.
    let mut y = output(shape.batch * n);
    for row in y.chunks_exact_mut(n.max(1)) {
        for (plane, &b) in row.chunks_exact_mut(pixels.max(1)).zip(bias) {
            plane.fill(b);
        }
    }
    let t = toeplitz(weight, shape);
    if !y.is_empty() && k_dim > 0 {
        let all = Parallelism::Rayon(rayon::current_num_threads().max(1));
        accumulate((shape.batch, n, k_dim), &mut y, (n, 1), x, (k_dim, 1), &t.0, (n, 1), all);
    }
    (y, keep.then_some(t))
}

/// Convolution backward by the Toeplitz matrix `t` of the forward pass, from its input `x`: the
/// input's gradient `dY·Tᵀ` (when `want_x`), `dT = Xᵀ·dY` folded back onto the kernel taps it
/// repeats, and the bias's per-channel sums.
pub fn toeplitz_backward(x: &[f32], t: &Toeplitz, dy: &[f32], shape: &ConvShape, want_x: bool) -> ConvGrads {
    let (k_dim, n, batch) = (shape.in_image(), shape.out_image(), shape.batch);
    let all = Parallelism::Rayon(rayon::current_num_threads().max(1));
    let dx = want_x.then(|| {
        let mut dx = vec![0.0f32; batch * k_dim];
        if !dx.is_empty() && n > 0 {
            matmul((batch, k_dim, n), &mut dx, (k_dim, 1), dy, (n, 1), &t.0, (1, n), all);
        }
        dx
    });
    let mut dt = scratch(k_dim * n);
    if batch > 0 {
        matmul((k_dim, n, batch), &mut dt, (n, 1), x, (1, k_dim), dy, (n, 1), all);
    } else {
        dt.fill(0.0);
    }
    let weight_grad = fold_taps(&dt, shape);
    recycle(dt);
    let pixels = shape.pixels();
    let mut bias = vec![0.0f64; shape.c_out];
    for image in dy.chunks_exact(n.max(1)) {
        for (total, plane) in bias.iter_mut().zip(image.chunks_exact(pixels.max(1))) {
            *total += lane_sum(plane, plane, |d, _| d);
        }
    }
    ConvGrads { x: dx, weight: weight_grad, bias: bias.into_iter().map(|b| b as f32).collect() }
}

/// The kernel's gradient from the Toeplitz matrix's, `dT [c_in·h·w, c_out·h'·w']`: each tap
/// `(co, ci, ky, kx)` sums the entries of `T` it was copied to. Read row by row, the rows of one
/// input channel per task, each summing its channel's taps in f64.
fn fold_taps(dt: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (c_in, h, w, k, p) = (shape.c_in, shape.height, shape.width, shape.kernel, shape.padding);
    let (oh, ow, n, kk) = (shape.out_height(), shape.out_width(), shape.out_image(), k * k);
    let channel = |ci: usize| {
        let mut sums = vec![0.0f64; shape.c_out * kk];
        for (iy, ix) in (0..h).flat_map(|iy| (0..w).map(move |ix| (iy, ix))) {
            let row = &dt[((ci * h + iy) * w + ix) * n..][..n];
            let columns = reach(ix, k, p, ow);
            for co in 0..shape.c_out {
                for oy in reach(iy, k, p, oh) {
                    let taps = &mut sums[co * kk + (iy + p - oy) * k..][..k];
                    let values = &row[(co * oh + oy) * ow..][..ow];
                    for ox in columns.clone() {
                        taps[ix + p - ox] += f64::from(values[ox]);
                    }
                }
            }
        }
        sums
    };
    let channels: Vec<Vec<f64>> = (0..c_in).into_par_iter().map(channel).collect();
    let mut dw = vec![0.0f32; shape.c_out * shape.taps()];
    for (ci, sums) in channels.iter().enumerate() {
        for co in 0..shape.c_out {
            let taps = &mut dw[(co * c_in + ci) * kk..][..kk];
            taps.iter_mut().zip(&sums[co * kk..][..kk]).for_each(|(d, &s)| *d = s as f32);
        }
    }
    dw
}

/// One group of images' share of the weight gradient (in the products' `[taps, c_out]` layout)
/// and of the bias gradient.
type GroupGrads = (Vec<f32>, Vec<f32>);

/// Marks a pooled output that ReLU set to zero: no input receives its gradient.
const CLIPPED: u8 = 4;

/// Planes per parallel task: enough work per task to pay for the hand-off.
fn planes_per_task(planes: usize, plane_size: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_work = (16 * 1024 / plane_size.max(1)).max(1);
    planes.div_ceil(threads * 4).max(by_work.min(planes.div_ceil(threads))).max(1)
}

/// `relu(max_pool2x2(x))` (equal to `max_pool2x2(relu(x))`) over `planes` planes of
/// `height × width`, stride 2, odd edges dropped as Burn's `MaxPool2d` does. Returns the output
/// and, per output, which of the four inputs it came from (or that ReLU clipped it).
pub fn relu_max_pool2x2_forward(
    x: &[f32],
    planes: usize,
    height: usize,
    width: usize,
) -> (Vec<f32>, Vec<u8>) {
    let (out_h, out_w) = (height / 2, width / 2);
    let out_plane = out_h * out_w;
    // Both written whole by `pool_planes`.
    let mut y = output(planes * out_plane);
    let mut from = vec![CLIPPED; planes * out_plane];
    if out_plane == 0 {
        return (y, from);
    }
    let per_task = planes_per_task(planes, height * width);
    y.par_chunks_mut(per_task * out_plane)
        .zip(from.par_chunks_mut(per_task * out_plane))
        .enumerate()
        .for_each(|(task, (y, from))| {
            let first = task * per_task * height * width;
            pool_planes(&x[first..first + y.len() / out_plane * height * width], height, width, y, from)
        });
    (y, from)
}

/// The larger of two candidates and its index, the first on a tie: a select, not a branch (the
/// winner of a pooling window is data, and a mispredicted branch per comparison had made this
/// pass a twelfth of a Fashion-MNIST step).
#[inline(always)]
fn larger((a, i): (f32, u8), (b, j): (f32, u8)) -> (f32, u8) {
    let later = b > a;
    (if later { b } else { a }, if later { j } else { i })
}

wide_when_available! {
/// The pooling of consecutive planes of `x` into `y` and `from`, every output written.
fn pool_planes(x: &[f32], height: usize, width: usize, y: &mut [f32], from: &mut [u8]) {
    let (out_h, out_w) = (height / 2, width / 2);
    let out_plane = out_h * out_w;
    for p in 0..y.len() / out_plane {
        let plane = &x[p * height * width..][..height * width];
        for oy in 0..out_h {
            let top = &plane[2 * oy * width..][..2 * out_w];
            let bottom = &plane[(2 * oy + 1) * width..][..2 * out_w];
            let y = &mut y[p * out_plane + oy * out_w..][..out_w];
            let from = &mut from[p * out_plane + oy * out_w..][..out_w];
            for ox in 0..out_w {
                let upper = larger((top[2 * ox], 0), (top[2 * ox + 1], 1));
                let lower = larger((bottom[2 * ox], 2), (bottom[2 * ox + 1], 3));
                let (best, index) = larger(upper, lower);
                let kept = best > 0.0;
                y[ox] = if kept { best } else { 0.0 };
                from[ox] = if kept { index } else { CLIPPED };
            }
        }
    }
}
}

/// The input gradient of [`relu_max_pool2x2_forward`]: each output's gradient goes to the input it
/// came from.
pub fn relu_max_pool2x2_backward(
    dy: &[f32],
    from: &[u8],
    planes: usize,
    height: usize,
    width: usize,
) -> Vec<f32> {
    let (out_h, out_w) = (height / 2, width / 2);
    let out_plane = out_h * out_w;
    // Written whole by `unpool_planes`, odd edges included.
    let mut dx = output(planes * height * width);
    if dx.is_empty() {
        return dx;
    }
    if out_plane == 0 {
        dx.fill(0.0);
        return dx;
    }
    let per_task = planes_per_task(planes, height * width);
    dx.par_chunks_mut(per_task * height * width).enumerate().for_each(|(task, dx)| {
        let first = task * per_task * out_plane;
        let count = dx.len() / (height * width);
        unpool_planes(
            &dy[first..][..count * out_plane],
            &from[first..][..count * out_plane],
            height,
            width,
            dx,
        );
    });
    dx
}

wide_when_available! {
/// [`relu_max_pool2x2_backward`] for consecutive planes: every input of a window gets its
/// output's gradient or zero, by selects (no branch on the winner, no zero-fill beforehand); the
/// odd last row and column, which no window covers, get zero.
fn unpool_planes(dy: &[f32], from: &[u8], height: usize, width: usize, dx: &mut [f32]) {
    let (out_h, out_w) = (height / 2, width / 2);
    let out_plane = out_h * out_w;
    for (p, dx) in dx.chunks_exact_mut(height * width).enumerate() {
        let (dy, from) = (&dy[p * out_plane..][..out_plane], &from[p * out_plane..][..out_plane]);
        for oy in 0..out_h {
            let (top, bottom) = dx[2 * oy * width..][..2 * width].split_at_mut(width);
            let (dy, from) = (&dy[oy * out_w..][..out_w], &from[oy * out_w..][..out_w]);
            for ox in 0..out_w {
                let (g, f) = (dy[ox], from[ox]);
                top[2 * ox] = if f == 0 { g } else { 0.0 };
                top[2 * ox + 1] = if f == 1 { g } else { 0.0 };
                bottom[2 * ox] = if f == 2 { g } else { 0.0 };
                bottom[2 * ox + 1] = if f == 3 { g } else { 0.0 };
            }
            top[2 * out_w..].fill(0.0);
            bottom[2 * out_w..].fill(0.0);
        }
        dx[2 * out_h * width..].fill(0.0);
    }
}
}

/// The batch statistics of a batch-norm layer in training mode.
#[derive(Clone, Debug)]
pub struct BatchStats {
    /// Per channel.
    pub mean: Vec<f32>,
    /// Per channel, biased (divided by the count), as Burn's `batch_norm_train` returns it.
    pub variance: Vec<f32>,
    /// `1 / sqrt(variance + epsilon)` per channel.
    pub inv_std: Vec<f32>,
    /// The values per channel the statistics are over (the whole job's under synchronised
    /// batch norm).
    pub count: f64,
}

/// Lanes of the plain sums below: independent accumulators the compiler turns into vector adds
/// (one running sum would be a chain of dependent scalar adds).
const LANES: usize = 16;

/// `Σ f(a[i], b[i])` in `f32` lanes, added up in `f64`: for one plane (a few hundred values)
/// the lanes' rounding stays near 1e-7 relative.
#[inline]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 =
        a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(&x, &y)| f(x, y) as f64).sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for k in 0..LANES {
            lanes[k] += f(a[k], b[k]);
        }
    }
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

/// Per channel of `[batch, channels, size]` data, `Σ f(a, b)` over its planes, in `f64`.
pub(super) fn channel_sums(
    a: &[f32],
    b: &[f32],
    (batch, channels, size): (usize, usize, usize),
    f: impl Fn(usize, f32, f32) -> f32 + Sync,
) -> Vec<f64> {
    (0..channels)
        .into_par_iter()
        .map(|c| {
            (0..batch)
                .map(|n| {
                    let start = (n * channels + c) * size;
                    lane_sum(&a[start..start + size], &b[start..start + size], |x, y| f(c, x, y))
                })
                .sum()
        })
        .collect()
}

/// Batch norm in training mode over `x [batch, channels, size]`: the batch's own per-channel
/// mean and biased variance (two passes, so no cancellation), then `gamma · x̂ + beta`.
pub fn batch_norm_train_forward(
    x: &[f32],
    dims: (usize, usize, usize),
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, BatchStats) {
    let (batch, channels, size) = dims;
    // Under synchronised batch norm the sums (and the count) are the whole job's.
    let world = super::synchronised();
    let mut sums = channel_sums(x, x, dims, |_, x, _| x);
    sums.push((batch * size) as f64);
    if let Some(world) = &world {
        world.sum_f64(&mut sums);
    }
    let count = sums.pop().unwrap_or_default().max(1.0);
    let mean: Vec<f32> = sums.iter().map(|s| (s / count) as f32).collect();
    let mut centred = channel_sums(x, x, dims, |c, x, _| (x - mean[c]) * (x - mean[c]));
    if let Some(world) = &world {
        world.sum_f64(&mut centred);
    }
    let variance: Vec<f64> = centred.iter().map(|s| s / count).collect();
    let stats = BatchStats {
        inv_std: variance.iter().map(|v| (1.0 / (v + epsilon).sqrt()) as f32).collect(),
        variance: variance.iter().map(|&v| v as f32).collect(),
        mean,
        count,
    };
    // Written whole by `affine`, plane by plane (no planes when `size` is 0).
    let mut y = output(x.len());
    if size > 0 {
        y.par_chunks_mut(size).enumerate().for_each(|(plane, y)| {
            let c = plane % channels;
            let scale = gamma[c] * stats.inv_std[c];
            affine(&x[plane * size..][..size], scale, beta[c] - stats.mean[c] * scale, y);
        });
    }
    (y, stats)
}

/// The gradients of [`batch_norm_train_forward`]: `(dx, dgamma, dbeta)`, with the batch
/// statistics differentiated as functions of `x`.
pub fn batch_norm_train_backward(
    x: &[f32],
    dy: &[f32],
    dims: (usize, usize, usize),
    gamma: &[f32],
    stats: &BatchStats,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (_, channels, size) = dims;
    let count = stats.count;
    // Per channel: Σ dy and Σ dy·x̂ (x̂ = (x − mean)·inv_std), the whole job's under
    // synchronised batch norm.
    let mut sums = channel_sums(dy, dy, dims, |_, dy, _| dy);
    sums.extend(channel_sums(x, dy, dims, |c, x, dy| dy * (x - stats.mean[c])));
    let with_inv_std = |sums: &[f64]| -> Vec<f64> {
        sums.iter().zip(&stats.inv_std).map(|(s, &inv_std)| s * inv_std as f64).collect()
    };
    // gamma's and beta's gradients are this process's own (the engine sums every parameter's
    // gradient across the processes); the input's gradient needs the job's sums.
    let dgamma = with_inv_std(&sums[channels..]).iter().map(|&s| s as f32).collect();
    let dbeta = sums[..channels].iter().map(|&s| s as f32).collect();
    if let Some(world) = super::synchronised() {
        world.sum_f64(&mut sums);
    }
    let sum_dy_xhat = with_inv_std(&sums[channels..]);
    let sum_dy = sums[..channels].to_vec();
    // Written whole by `norm_input_grad`, plane by plane.
    let mut dx = output(x.len());
    if size > 0 {
        dx.par_chunks_mut(size).enumerate().for_each(|(plane, dx)| {
            let c = plane % channels;
            let (mean, inv_std) = (stats.mean[c], stats.inv_std[c]);
            let scale = gamma[c] * inv_std;
            let mean_dy = (sum_dy[c] / count) as f32;
            let mean_dy_xhat = (sum_dy_xhat[c] / count) as f32;
            let start = plane * size;
            norm_input_grad(
                &x[start..start + size],
                &dy[start..start + size],
                [mean, inv_std, scale, mean_dy, mean_dy_xhat],
                dx,
            );
        });
    }
    (dx, dgamma, dbeta)
}

wide_when_available! {
/// `y = x·scale + shift`.
fn affine(x: &[f32], scale: f32, shift: f32, y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x * scale + shift;
    }
}
}

wide_when_available! {
/// One plane of batch norm's input gradient: `scale·(dy − mean(dy) − x̂·mean(dy·x̂))`.
fn norm_input_grad(x: &[f32], dy: &[f32], terms: [f32; 5], dx: &mut [f32]) {
    let [mean, inv_std, scale, mean_dy, mean_dy_xhat] = terms;
    for ((dx, &dy), &x) in dx.iter_mut().zip(dy).zip(x) {
        let xhat = (x - mean) * inv_std;
        *dx = scale * (dy - mean_dy - xhat * mean_dy_xhat);
    }
}
}

/// Rows per block of the fused loss; the same blocks as [`crate::model::linear::BLOCK_ROWS`].
const LOSS_BLOCK: usize = super::LOSS_BLOCK_ROWS;

/// The sum of squared residuals `Σ (x·a − y)²` and `Xᵀr` (`r = x·a − y`) over `x [n, d]`,
/// `y [n]`, in one parallel pass: each block of rows sums in `f64` (from `f32` partial sums of a
/// few rows), then the blocks are added in order (so the result does not depend on thread
/// timing).
pub fn squared_residuals(x: &[f32], a: &[f32], y: &[f32]) -> (f64, Vec<f64>) {
    let d = a.len();
    let blocks: Vec<(f64, Vec<f64>)> = x
        .par_chunks(LOSS_BLOCK * d)
        .zip(y.par_chunks(LOSS_BLOCK))
        .map(|(x, y)| {
            let mut sum = 0.0f64;
            let mut xtr = vec![0.0f64; d];
            if d == 2 {
                let (sum_two, xtr_two) = two_feature_block(x, [a[0], a[1]], y);
                sum = sum_two;
                xtr.copy_from_slice(&xtr_two);
            } else {
                for (row, &target) in x.chunks_exact(d).zip(y) {
                    let r = (row.iter().zip(a).map(|(x, a)| x * a).sum::<f32>() - target) as f64;
                    sum += r * r;
                    for (g, &x) in xtr.iter_mut().zip(row) {
                        *g += x as f64 * r;
                    }
                }
            }
            (sum, xtr)
        })
        .collect();
    let mut sum = 0.0;
    let mut xtr = vec![0.0f64; d];
    for (block_sum, block_xtr) in blocks {
        sum += block_sum;
        xtr.iter_mut().zip(block_xtr).for_each(|(total, part)| *total += part);
    }
    (sum, xtr)
}

/// Rows summed in `f32` lanes before they join the block's `f64` sums: 16 lanes of 4 rows.
const LOSS_SUB_BLOCK: usize = 64;

wide_when_available! {
/// [`squared_residuals`] of one block for two features (the lesson's shape): 16 `f32` lanes of
/// 4 rows each, then `f64` (the relative rounding of 4-term `f32` sums is about 1e-7).
fn two_feature_block(x: &[f32], a: [f32; 2], y: &[f32]) -> (f64, [f64; 2]) {
    const L: usize = 16;
    let (mut sum, mut g0, mut g1) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in x.chunks(2 * LOSS_SUB_BLOCK).zip(y.chunks(LOSS_SUB_BLOCK)) {
        let (mut s, mut p0, mut p1) = ([0.0f32; L], [0.0f32; L], [0.0f32; L]);
        let full = y.len() / L * L;
        for (rows, targets) in x[..2 * full].chunks_exact(2 * L).zip(y[..full].chunks_exact(L)) {
            for k in 0..L {
                let (x0, x1) = (rows[2 * k], rows[2 * k + 1]);
                let r = x0 * a[0] + x1 * a[1] - targets[k];
                s[k] += r * r;
                p0[k] += x0 * r;
                p1[k] += x1 * r;
            }
        }
        for i in full..y.len() {
            let r = (x[2 * i] * a[0] + x[2 * i + 1] * a[1] - y[i]) as f64;
            sum += r * r;
            g0 += x[2 * i] as f64 * r;
            g1 += x[2 * i + 1] as f64 * r;
        }
        sum += s.iter().map(|&v| v as f64).sum::<f64>();
        g0 += p0.iter().map(|&v| v as f64).sum::<f64>();
        g1 += p1.iter().map(|&v| v as f64).sum::<f64>();
    }
    (sum, [g0, g1])
}
}

/// The residuals `x·a − y`, for the rare case that the data itself needs a gradient.
pub fn residuals(x: &[f32], a: &[f32], y: &[f32]) -> Vec<f32> {
    let d = a.len();
    x.par_chunks(d)
        .zip(y.par_iter())
        .map(|(row, &target)| row.iter().zip(a).map(|(x, a)| x * a).sum::<f32>() - target)
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The convolution by its definition, in f64.
    fn direct_conv(x: &[f32], w: &[f32], b: &[f32], s: &ConvShape) -> Vec<f64> {
        let (oh, ow, k, p) = (s.out_height(), s.out_width(), s.kernel, s.padding as isize);
        let mut y = vec![0.0; s.batch * s.c_out * oh * ow];
        for n in 0..s.batch {
            for co in 0..s.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut total = b[co] as f64;
                        for ci in 0..s.c_in {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy + ky) as isize - p;
                                    let ix = (ox + kx) as isize - p;
                                    if iy < 0 || ix < 0 || iy >= s.height as isize || ix >= s.width as isize {
                                        continue;
                                    }
                                    let xv = x[((n * s.c_in + ci) * s.height + iy as usize) * s.width
                                        + ix as usize];
                                    total += xv as f64 * w[((co * s.c_in + ci) * k + ky) * k + kx] as f64;
                                }
                            }
                        }
                        y[((n * s.c_out + co) * oh + oy) * ow + ox] = total;
                    }
                }
            }
        }
        y
    }

    pub(in crate::nn) fn values(count: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// An input, a weight and a bias for `shape`, drawn from `seed` onwards.
    pub(in crate::nn) fn operands(shape: &ConvShape, seed: u32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = values(shape.batch * shape.in_image(), seed);
        (x, values(shape.c_out * shape.taps(), seed + 1), values(shape.c_out, seed + 2))
    }

    #[test]
    fn convolution_matches_its_definition_and_its_adjoint() {
        for shape in [
            ConvShape { batch: 3, c_in: 2, height: 7, width: 5, c_out: 4, kernel: 3, padding: 1 },
            ConvShape { batch: 1, c_in: 1, height: 4, width: 4, c_out: 2, kernel: 5, padding: 2 },
            ConvShape { batch: 5, c_in: 3, height: 6, width: 6, c_out: 3, kernel: 3, padding: 0 },
            // Rows longer than one 8-lane window, odd sides, kernels 5 and 7, batch 1.
            ConvShape { batch: 1, c_in: 3, height: 13, width: 11, c_out: 5, kernel: 7, padding: 3 },
            ConvShape { batch: 2, c_in: 2, height: 9, width: 19, c_out: 3, kernel: 5, padding: 2 },
            ConvShape { batch: 3, c_in: 1, height: 17, width: 10, c_out: 4, kernel: 5, padding: 0 },
            // More than one 16-channel slab, the last one short; padding 1 on a 5x5 kernel (the
            // direct input gradient's own padding is then 3).
            ConvShape { batch: 1, c_in: 3, height: 13, width: 11, c_out: 17, kernel: 7, padding: 3 },
            ConvShape { batch: 2, c_in: 2, height: 9, width: 19, c_out: 35, kernel: 5, padding: 2 },
            ConvShape { batch: 2, c_in: 4, height: 8, width: 9, c_out: 16, kernel: 5, padding: 1 },
        ] {
            let (x, w, b) = operands(&shape, 1);
            let (y, columns) = conv2d_forward(&x, &w, &b, &shape, true);
            let dy = values(y.len(), 4);
            let columns = columns.unwrap();
            // Both algorithms, whichever the shape would pick.
            let by_columns = (y, conv2d_backward(&columns, &w, &dy, &shape, true));
            let (y_toeplitz, matrix) = toeplitz_forward(&x, &w, &b, &shape, true);
            let by_toeplitz = (y_toeplitz, toeplitz_backward(&x, &matrix.unwrap(), &dy, &shape, true));
            for (name, (y, grads)) in [("im2col", by_columns), ("toeplitz", by_toeplitz)] {
                check_convolution(name, &shape, (&x, &w, &b, &dy), &y, grads);
            }
            // The direct convolution, with each microkernel this CPU has.
            for isa in super::super::direct::isas() {
                let (y, grads) = super::super::direct::convolution_on(isa, (&x, &w, &b), &dy, &shape);
                check_convolution(&format!("direct {isa:?}"), &shape, (&x, &w, &b, &dy), &y, grads);
            }
        }
    }

    /// The output against the definition, and each gradient against finite differences of the
    /// definition.
    pub(in crate::nn) fn check_convolution(
        name: &str,
        shape: &ConvShape,
        (x, w, b, dy): (&[f32], &[f32], &[f32], &[f32]),
        y: &[f32],
        grads: ConvGrads,
    ) {
        let shape = *shape;
        let expected = direct_conv(x, w, b, &shape);
        for (got, want) in y.iter().zip(&expected) {
            assert!((*got as f64 - want).abs() < 1e-4, "{name}: {got} vs {want} for {shape:?}");
        }
        // <dy, conv(x)> is linear in x, w and b: each gradient is checked against the
        // definition by finite differences of that inner product.
        let (x, w, b) = (x.to_vec(), w.to_vec(), b.to_vec());
        let inner = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
            direct_conv(x, w, b, &shape).iter().zip(dy).map(|(y, d)| y * *d as f64).sum()
        };
        let dx = grads.x.unwrap();
        for i in [0, x.len() / 2, x.len() - 1] {
            let mut bumped = x.clone();
            bumped[i] += 1.0;
            let numeric = inner(&bumped, &w, &b) - inner(&x, &w, &b);
            assert!((numeric - dx[i] as f64).abs() < 1e-3, "{name}: dx[{i}] {} vs {numeric}", dx[i]);
        }
        for i in [0, w.len() / 3, w.len() - 1] {
            let mut bumped = w.clone();
            bumped[i] += 1.0;
            let numeric = inner(&x, &bumped, &b) - inner(&x, &w, &b);
            assert!((numeric - grads.weight[i] as f64).abs() < 1e-3, "{name}: dw[{i}]");
        }
        let per_image_channel0: f64 = (0..shape.batch)
            .map(|n| dy[n * shape.out_image()..][..shape.pixels()].iter().map(|&d| d as f64).sum::<f64>())
            .sum();
        assert!((grads.bias[0] as f64 - per_image_channel0).abs() < 1e-3, "{name}: bias");
    }

    /// Every value of the Toeplitz product's and the direct convolution's outputs and gradients
    /// against the im2col path's, at the digits' second block (batch 30 and 64), the
    /// Fashion-MNIST CNN's two blocks and odd shapes: the finite differences above sample a few
    /// entries only. (The Toeplitz matrix is built only where it stays small.)
    #[test]
    fn every_algorithm_agrees_with_im2col_on_every_value() {
        for shape in [
            ConvShape { batch: 30, c_in: 32, height: 4, width: 4, c_out: 64, kernel: 5, padding: 2 },
            ConvShape { batch: 64, c_in: 32, height: 4, width: 4, c_out: 64, kernel: 5, padding: 2 },
            ConvShape { batch: 3, c_in: 2, height: 3, width: 5, c_out: 3, kernel: 5, padding: 2 },
            ConvShape { batch: 1, c_in: 3, height: 2, width: 2, c_out: 2, kernel: 3, padding: 1 },
            ConvShape { batch: 3, c_in: 32, height: 14, width: 14, c_out: 64, kernel: 5, padding: 2 },
            ConvShape { batch: 5, c_in: 1, height: 28, width: 28, c_out: 32, kernel: 5, padding: 2 },
            ConvShape { batch: 7, c_in: 5, height: 11, width: 13, c_out: 21, kernel: 3, padding: 1 },
            ConvShape { batch: 1, c_in: 64, height: 8, width: 8, c_out: 8, kernel: 7, padding: 3 },
        ] {
            let (x, w, b) = operands(&shape, 21);
            let (y, columns) = conv2d_forward(&x, &w, &b, &shape, true);
            let dy = values(y.len(), 24);
            let reference = conv2d_backward(&columns.unwrap(), &w, &dy, &shape, true);
            if shape.in_image() * shape.out_image() <= TOEPLITZ_LIMIT {
                let (y_toeplitz, matrix) = toeplitz_forward(&x, &w, &b, &shape, true);
                let toeplitz = toeplitz_backward(&x, &matrix.unwrap(), &dy, &shape, true);
                assert_same_convolution("toeplitz", &shape, (&y_toeplitz, &toeplitz), (&y, &reference));
            }
            for isa in super::super::direct::isas() {
                let (y_direct, direct) = super::super::direct::convolution_on(isa, (&x, &w, &b), &dy, &shape);
                assert_same_convolution(
                    &format!("direct {isa:?}"),
                    &shape,
                    (&y_direct, &direct),
                    (&y, &reference),
                );
            }
        }
    }

    /// Every value of one algorithm's output and gradients within 1e-5 (relative to the largest
    /// value) of another's.
    pub(in crate::nn) fn assert_same_convolution(
        name: &str,
        shape: &ConvShape,
        (y, grads): (&[f32], &ConvGrads),
        (y_reference, reference): (&[f32], &ConvGrads),
    ) {
        let close = |what: &str, a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len(), "{name} {what} for {shape:?}");
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale, "{name} {what}[{i}]: {a} vs {b} for {shape:?}");
            }
        };
        close("y", y, y_reference);
        close("dx", grads.x.as_deref().unwrap(), reference.x.as_deref().unwrap());
        close("dw", &grads.weight, &reference.weight);
        close("db", &grads.bias, &reference.bias);
    }

    /// The Toeplitz product for images no larger than the kernel; the direct convolution for 8
    /// output channels or more; im2col for the rest.
    #[test]
    fn each_shape_runs_the_algorithm_that_pays() {
        use super::super::direct::direct_pays;
        let shape = |side, kernel, c_in, c_out| ConvShape {
            batch: 64,
            c_in,
            height: side,
            width: side,
            c_out,
            kernel,
            padding: kernel / 2,
        };
        // The digits' second block (4x4, 5x5 kernel) is; Fashion-MNIST's (14x14) is not.
        assert!(toeplitz_pays(&shape(4, 5, 32, 64)));
        assert!(!toeplitz_pays(&shape(14, 5, 32, 64)));
        assert!(!toeplitz_pays(&shape(8, 5, 1, 32)));
        // Nor when its matrix would be too large.
        assert!(!toeplitz_pays(&shape(5, 5, 512, 512)));
        // Fashion-MNIST's two blocks run direct; 4 output channels, or a padding beyond the
        // kernel, run im2col.
        assert!(direct_pays(&shape(28, 5, 1, 32)) && direct_pays(&shape(14, 5, 32, 64)));
        assert!(!direct_pays(&shape(28, 3, 3, 4)));
        assert!(!direct_pays(&ConvShape { padding: 3, ..shape(28, 3, 3, 16) }));
    }

    #[test]
    fn pooling_picks_the_largest_positive_input() {
        // One 3x5 plane: odd edges are dropped.
        let x = [1.0, -2.0, 3.0, 4.0, 9.0, -1.0, 0.5, -3.0, 2.0, 9.0, 7.0, 7.0, 7.0, 7.0, 7.0];
        let (y, from) = relu_max_pool2x2_forward(&x, 1, 3, 5);
        assert_eq!(y, vec![1.0, 4.0]);
        let dx = relu_max_pool2x2_backward(&[10.0, 20.0], &from, 1, 3, 5);
        assert_eq!(dx, vec![10.0, 0.0, 0.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let (y, _) = relu_max_pool2x2_forward(&[-1.0, -2.0, -3.0, -4.0], 1, 2, 2);
        assert_eq!(y, vec![0.0]);
    }

    /// The AVX2 rows (when this CPU has AVX2) and the portable rows unfold and fold alike.
    #[test]
    fn both_row_kernels_unfold_and_fold_alike() {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            for shape in [
                ConvShape { batch: 2, c_in: 2, height: 9, width: 19, c_out: 3, kernel: 5, padding: 2 },
                ConvShape { batch: 1, c_in: 3, height: 14, width: 14, c_out: 1, kernel: 7, padding: 3 },
                ConvShape { batch: 3, c_in: 1, height: 4, width: 4, c_out: 1, kernel: 5, padding: 2 },
            ] {
                let x = values(shape.batch * shape.in_image(), 9);
                let n = shape.batch * shape.pixels();
                let (mut portable, mut wide) = (vec![1.0; shape.taps() * n], vec![2.0; shape.taps() * n]);
                im2col_rows::<Portable>(&x, &shape, 0..shape.batch, &mut portable);
                im2col_rows::<avx2::Avx2>(&x, &shape, 0..shape.batch, &mut wide);
                assert_eq!(portable, wide, "im2col {shape:?}");
                let (mut portable_dx, mut wide_dx) = (vec![0.5; x.len()], vec![0.5; x.len()]);
                col2im_rows::<Portable>(&portable, &shape, shape.batch, &mut portable_dx);
                col2im_rows::<avx2::Avx2>(&portable, &shape, shape.batch, &mut wide_dx);
                assert_eq!(portable_dx, wide_dx, "col2im {shape:?}");
            }
        }
    }

    #[test]
    fn pooling_and_its_gradient_match_their_definitions_at_odd_sizes() {
        for (planes, height, width) in [(3, 7, 9), (2, 28, 28), (1, 2, 33), (4, 5, 1)] {
            let x = values(planes * height * width, 7);
            let (y, from) = relu_max_pool2x2_forward(&x, planes, height, width);
            let dy = values(y.len(), 8);
            let dx = relu_max_pool2x2_backward(&dy, &from, planes, height, width);
            let (out_h, out_w) = (height / 2, width / 2);
            let mut expected_dx = vec![0.0f32; x.len()];
            for p in 0..planes {
                for oy in 0..out_h {
                    for ox in 0..out_w {
                        let at = |dy: usize, dx: usize| (p * height + 2 * oy + dy) * width + 2 * ox + dx;
                        let window = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                        // The first largest input wins; ReLU clips a window whose largest is <= 0.
                        let best =
                            window.iter().copied().fold(window[0], |b, i| if x[i] > x[b] { i } else { b });
                        let out = (p * out_h + oy) * out_w + ox;
                        assert_eq!(y[out], x[best].max(0.0), "plane {p} ({oy}, {ox}) of {height}x{width}");
                        if x[best] > 0.0 {
                            expected_dx[best] = dy[out];
                        }
                    }
                }
            }
            assert_eq!(dx, expected_dx, "{planes}x{height}x{width}");
        }
    }

    #[test]
    fn squared_residuals_match_a_direct_sum() {
        let n = 10_000;
        let x: Vec<f32> = values(n, 5).iter().flat_map(|&v| [v, 1.0]).collect();
        let y = values(n, 6);
        let a = [3.0f32, 2.0];
        let (sum, xtr) = squared_residuals(&x, &a, &y);
        let r: Vec<f64> = (0..n).map(|i| (x[2 * i] * 3.0 + 2.0 - y[i]) as f64).collect();
        assert!((sum - r.iter().map(|r| r * r).sum::<f64>()).abs() < 1e-6 * sum);
        let g0: f64 = (0..n).map(|i| x[2 * i] as f64 * r[i]).sum();
        assert!((xtr[0] - g0).abs() < 1e-6 * g0.abs().max(1.0));
    }
}
