//! MixUp (Zhang et al., 2018; fastai's `MixUp` callback): each training batch is blended with a
//! shuffled copy of itself, `λ·x + (1 − λ)·x[π]`, by a weight `λ ~ Beta(α, α)`, and its loss is
//! blended the same way, `λ·loss(y) + (1 − λ)·loss(y[π])` ([`crate::train::classification_loss`]).
//!
//! A batch's weight and permutation come from the run's seed, the epoch and the batch's place in
//! it alone, so a run repeats exactly and a resumed run draws what the uninterrupted one drew.

use burn::prelude::*;

use super::batches::{EachBatch, ImageBatch, Mix};
use super::random::{SeededRng, batch_seed};
use crate::batch::BatchSource;

/// Kept apart from augmentation's stream, which draws from the same seed, epoch and batch.
const STREAM: u64 = 0x4D49_5855_5053_5452;

/// The draw of batch `batch` (0-based) of epoch `epoch` (1-based) of `images` images: λ from
/// Beta(`alpha`, `alpha`), then the partner of each image (a permutation).
pub fn draw(seed: u64, epoch: usize, batch: usize, images: usize, alpha: f64) -> (f64, Vec<usize>) {
    let mut rng = SeededRng::new(batch_seed(seed ^ STREAM, epoch as u64, batch as u64));
    let weight = rng.beta(alpha, alpha);
    (weight, rng.permutation(images))
}

/// `batch` blended with itself in the order `partners` by `weight`, on its device.
pub fn mix(batch: ImageBatch, weight: f64, partners: &[usize]) -> ImageBatch {
    let device = batch.images.device();
    let order: Vec<i64> = partners.iter().map(|&i| i as i64).collect();
    let order = Tensor::<1, Int>::from_data(TensorData::new(order, [partners.len()]), &device);
    let others = batch.images.clone().select(0, order.clone());
    let images = batch.images * weight + others * (1.0 - weight);
    let labels = batch.labels.clone().select(0, order);
    ImageBatch { images, mix: Some(Mix { labels, weight: weight as f32 }), ..batch }
}

/// Training batches blended by MixUp with strength `alpha` (`training.mixup`): each blended
/// with a shuffled copy of itself by Beta(`alpha`, `alpha`) weights drawn from `seed`.
pub fn mixed_up(inner: Box<dyn BatchSource<ImageBatch>>, seed: u64, alpha: f64) -> EachBatch {
    EachBatch::new(inner, move |epoch, batch, made: ImageBatch| {
        let (weight, partners) = draw(seed, epoch, batch, made.len(), alpha);
        mix(made, weight, &partners)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mixed_batch_is_the_weighted_sum_of_the_batch_and_its_shuffled_copy() {
        let device = Device::flex();
        let (b, side) = (5, 3);
        let values: Vec<f32> = (0..b * side * side).map(|v| (v as f32 * 0.37).sin()).collect();
        let labels: Vec<i64> = vec![3, 1, 4, 1, 5];
        let batch = ImageBatch {
            images: Tensor::from_data(TensorData::new(values.clone(), [b, 1, side, side]), &device),
            labels: Tensor::from_data(TensorData::new(labels.clone(), [b]), &device),
            seed: 0,
            label_smoothing: 0.0,
            mix: None,
        };
        let (weight, partners) = draw(42, 2, 3, b, 0.4);
        assert_eq!((weight, partners.clone()), draw(42, 2, 3, b, 0.4), "the draw repeats");
        assert_ne!(draw(42, 2, 4, b, 0.4).0, weight, "the next batch draws anew");
        let mixed = mix(batch, weight, &partners);
        let got: Vec<f32> = mixed.images.into_data().try_to_vec::<f32>().unwrap();
        for i in 0..b {
            for p in 0..side * side {
                let expected = weight * f64::from(values[i * side * side + p])
                    + (1.0 - weight) * f64::from(values[partners[i] * side * side + p]);
                assert!((f64::from(got[i * side * side + p]) - expected).abs() < 1e-6);
            }
        }
        let mix = mixed.mix.expect("a mixed batch says so");
        let partner_labels: Vec<i64> = mix.labels.into_data().iter::<i64>().collect();
        assert_eq!(partner_labels, partners.iter().map(|&p| labels[p]).collect::<Vec<_>>());
        assert_eq!(mix.weight, weight as f32);
        let own: Vec<i64> = mixed.labels.into_data().iter::<i64>().collect();
        assert_eq!(own, labels, "each image keeps its own label beside its partner's");
    }
}
