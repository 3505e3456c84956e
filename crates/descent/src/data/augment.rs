//! Augmentation of image batches: seeded random shifts of a few pixels and horizontal flips,
//! applied on the device to each batch as it leaves the data loader.
//!
//! Each batch's draws come from the run's seed, the epoch and the batch's place in it alone
//! (SplitMix64 of the three), so a run repeats exactly, and a resumed run, which skips the
//! batches the interrupted run trained, draws what the uninterrupted run drew.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::batches::{EachBatch, ImageBatch};
use super::random::{SeededRng, batch_seed};
use crate::batch::BatchSource;

/// How images are augmented (`--augment`): the `[training.augment]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// The largest shift, in pixels, in each direction (drawn uniformly from -shift..=shift).
    #[serde(default = "default_shift")]
    pub shift: usize,
    /// Flip half the images left to right; absent: on for Fashion-MNIST (clothes look the same
    /// mirrored), off for digits (a mirrored digit is another glyph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip: Option<bool>,
}

fn default_shift() -> usize {
    crate::defaults::AUGMENT_SHIFT
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { shift: default_shift(), flip: None }
    }
}

/// What happens to one image: moved `dx` pixels right and `dy` down (after the flip, when
/// `flip`); pixels moved in from outside are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// Pixels to the right (negative: to the left).
    pub dx: isize,
    /// Pixels down (negative: up).
    pub dy: isize,
    /// Mirrored left to right first.
    pub flip: bool,
}

/// The moves of the `images` images of batch `batch` (0-based) of epoch `epoch` (1-based).
pub fn moves(seed: u64, epoch: usize, batch: usize, images: usize, shift: usize, flip: bool) -> Vec<Move> {
    let mut rng = SeededRng::new(batch_seed(seed, epoch as u64, batch as u64));
    let span = 2 * shift + 1;
    let mut draw = |n: usize| ((rng.unit() * n as f64) as usize).min(n - 1);
    (0..images)
        .map(|_| {
            let dx = draw(span) as isize - shift as isize;
            let dy = draw(span) as isize - shift as isize;
            let flip = flip && draw(2) == 1;
            Move { dx, dy, flip }
        })
        .collect()
}

/// For each output pixel of each image, the pixel of the input it takes (`index`, within its
/// image) and whether there is one (`keep`: 0 where the shift moved in pixels from outside).
pub fn source_pixels(moves: &[Move], side: usize) -> (Vec<i64>, Vec<f32>) {
    let mut index = Vec::with_capacity(moves.len() * side * side);
    let mut keep = Vec::with_capacity(moves.len() * side * side);
    let side_i = side as isize;
    for m in moves {
        for r in 0..side_i {
            for c in 0..side_i {
                let (sr, mut sc) = (r - m.dy, c - m.dx);
                if m.flip {
                    sc = side_i - 1 - sc;
                }
                let inside = (0..side_i).contains(&sr) && (0..side_i).contains(&sc);
                index.push(if inside { (sr * side_i + sc) as i64 } else { 0 });
                keep.push(if inside { 1.0 } else { 0.0 });
            }
        }
    }
    (index, keep)
}

/// `images` (`[b, channels, side, side]`) moved as `moves` say (every channel of an image
/// alike), on their device: one gather and one product.
pub fn apply(images: Tensor<4>, moves: &[Move]) -> Tensor<4> {
    let [b, channels, side, _] = images.dims();
    let device = images.device();
    let (mut index, mut keep) = source_pixels(moves, side);
    if channels > 1 {
        (index, keep) =
            (per_channel(&index, side * side, channels), per_channel(&keep, side * side, channels));
    }
    let index = Tensor::<2, Int>::from_data(TensorData::new(index, [b * channels, side * side]), &device);
    let keep = Tensor::<2>::from_data(TensorData::new(keep, [b * channels, side * side]), &device);
    let flat: Tensor<2> = images.reshape([b * channels, side * side]);
    (flat.gather(1, index) * keep).reshape([b, channels, side, side])
}

/// One row of `row` values per channel of each image: each a copy of its image's row.
fn per_channel<T: Copy>(values: &[T], row: usize, channels: usize) -> Vec<T> {
    values.chunks(row).flat_map(|row| std::iter::repeat_n(row, channels).flatten().copied()).collect()
}

/// Image batches augmented on the fly: each batch of `inner` moved as [`moves`] draws, with
/// shifts of up to `shift` pixels and, when `flip`, mirror images, drawn from `seed`.
pub fn augmented(inner: Box<dyn BatchSource<ImageBatch>>, seed: u64, shift: usize, flip: bool) -> EachBatch {
    EachBatch::new(inner, move |epoch, batch, made: ImageBatch| {
        let moves = moves(seed, epoch, batch, made.len(), shift, flip);
        ImageBatch { images: apply(made.images, &moves), ..made }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_image_is_the_original_shifted_by_the_drawn_offset() {
        let side = 5;
        let original: Vec<f32> = (0..side * side).map(|v| v as f32 + 1.0).collect();
        let device = Device::flex();
        for m in [
            Move { dx: 2, dy: -1, flip: false },
            Move { dx: -2, dy: 2, flip: true },
            Move { dx: 0, dy: 0, flip: true },
        ] {
            let images =
                Tensor::<4>::from_data(TensorData::new(original.clone(), [1, 1, side, side]), &device);
            let moved: Vec<f32> = apply(images, &[m]).into_data().try_to_vec::<f32>().unwrap();
            for r in 0..side as isize {
                for c in 0..side as isize {
                    // The oracle: out(r, c) = flipped(r - dy, c - dx), flipped(r, c) = in(r, side-1-c).
                    let (sr, sc) = (r - m.dy, c - m.dx);
                    let inside = (0..side as isize).contains(&sr) && (0..side as isize).contains(&sc);
                    let sc = if m.flip { side as isize - 1 - sc } else { sc };
                    let expected = if inside { original[(sr * side as isize + sc) as usize] } else { 0.0 };
                    assert_eq!(moved[(r * side as isize + c) as usize], expected, "{m:?} at ({r}, {c})");
                }
            }
        }
    }

    /// A colour image's channels move together (this panicked for pictures in colour before).
    #[test]
    fn every_channel_of_a_colour_image_moves_alike() {
        let (side, channels) = (4, 3);
        let values: Vec<f32> = (0..2 * channels * side * side).map(|v| v as f32).collect();
        let images = Tensor::<4>::from_data(
            TensorData::new(values.clone(), [2, channels, side, side]),
            &Device::flex(),
        );
        let moves = [Move { dx: 1, dy: 0, flip: false }, Move { dx: 0, dy: -1, flip: true }];
        let moved: Vec<f32> = apply(images, &moves).into_data().try_to_vec::<f32>().unwrap();
        for (image, m) in moves.iter().enumerate() {
            for channel in 0..channels {
                let start = (image * channels + channel) * side * side;
                let one = Tensor::<4>::from_data(
                    TensorData::new(values[start..start + side * side].to_vec(), [1, 1, side, side]),
                    &Device::flex(),
                );
                let expected: Vec<f32> = apply(one, &[*m]).into_data().try_to_vec::<f32>().unwrap();
                assert_eq!(
                    &moved[start..start + side * side],
                    expected.as_slice(),
                    "image {image}, channel {channel}"
                );
            }
        }
    }

    #[test]
    fn draws_repeat_from_the_seed_and_stay_within_the_shift() {
        let a = moves(42, 3, 7, 64, 2, true);
        assert_eq!(a, moves(42, 3, 7, 64, 2, true));
        assert_ne!(a, moves(42, 3, 8, 64, 2, true));
        assert_ne!(a, moves(43, 3, 7, 64, 2, true));
        assert!(a.iter().all(|m| m.dx.abs() <= 2 && m.dy.abs() <= 2));
        assert!(a.iter().any(|m| m.flip) && a.iter().any(|m| !m.flip));
        assert!((-2..=2).all(|d| a.iter().any(|m| m.dx == d)), "every offset is drawn");
        assert!(moves(42, 1, 0, 64, 2, false).iter().all(|m| !m.flip));
    }
}
