//! Honest metrics for classifiers: loss, accuracy and fastai's `error_rate` over a whole
//! validation set, the confusion matrix, and the worst predictions.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

use crate::data::augment::{Move, apply, moves};
use crate::data::{ImageBatch, ImageSet};

/// A model that scores the classes of images.
pub trait Classifier {
    /// Class scores (logits), `[b, classes]`, for images `[b, channels, side, side]`.
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;
}

/// What the model said about one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// The image's index in its set.
    pub index: usize,
    /// The true class.
    pub label: u8,
    /// The class with the highest score.
    pub predicted: u8,
    /// The probability the model gave its prediction.
    pub confidence: f64,
    /// The probability the model gave the true class.
    pub label_probability: f64,
}

/// A classifier's results on a set of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of images whose predicted class is the true one.
    pub accuracy: f64,
    /// `1 - accuracy` (fastai's `error_rate`).
    pub error_rate: f64,
    /// `confusion[true][predicted]`: image counts, one row and one column per class.
    pub confusion: Vec<Vec<usize>>,
    /// One prediction per image, in the order evaluated.
    pub predictions: Vec<Prediction>,
}

impl Evaluation {
    /// The `count` worst predictions: the lowest probability given to the true class first.
    pub fn worst(&self, count: usize) -> Vec<Prediction> {
        let mut sorted = self.predictions.clone();
        sorted.sort_by(|a, b| a.label_probability.total_cmp(&b.label_probability));
        sorted.truncate(count);
        sorted
    }

    /// The images with the largest losses (fastai's `top_losses`): the worst `count`
    /// predictions, each with its cross-entropy `-ln p(true class)`.
    pub fn top_losses(&self, count: usize) -> Vec<(Prediction, f64)> {
        self.worst(count).into_iter().map(|p| (p, -p.label_probability.max(f64::MIN_POSITIVE).ln())).collect()
    }

    /// The pairs of distinct classes most often confused (fastai's `most_confused`): (true,
    /// predicted, count), the largest counts first, those with at least `min_count` images.
    pub fn most_confused(&self, min_count: usize) -> Vec<(usize, usize, usize)> {
        let mut pairs: Vec<(usize, usize, usize)> = self
            .confusion
            .iter()
            .enumerate()
            .flat_map(|(actual, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |&(predicted, _)| predicted != actual)
                    .map(move |(predicted, &count)| (actual, predicted, count))
            })
            .filter(|&(_, _, count)| count >= min_count.max(1))
            .collect();
        pairs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        pairs
    }
}

/// Images evaluated per forward pass, at most.
const EVALUATION_BATCH: usize = 512;

/// Input values per forward pass of an evaluation, at most: 512 of Fashion-MNIST's 28x28 grey
/// images, 32 pictures of 64x64 in colour. The activations of a forward pass grow with its
/// input, and 512 colour pictures would hold more than a training batch does.
const EVALUATION_VALUES: usize = EVALUATION_BATCH * 28 * 28;

/// How many images of `set` one forward pass of an evaluation takes.
fn evaluation_batch(set: &ImageSet) -> usize {
    (EVALUATION_VALUES / set.shape().values().max(1)).clamp(1, EVALUATION_BATCH)
}

/// Test-time augmentation (fastai's `learn.tta`): each image's class probabilities averaged over
/// the image itself and `copies` moved copies of it, the moves drawn as training's augmentation
/// draws them (shifts of up to `shift` pixels, and mirror images when `flip`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tta {
    /// Moved copies per image, besides the image itself.
    pub copies: usize,
    /// The seed the moves are drawn from (the run's).
    pub seed: u64,
    /// The largest shift, in pixels, each way.
    pub shift: usize,
    /// Whether half the copies are mirrored left to right.
    pub flip: bool,
}

/// Kept apart from training's augmentation stream.
const TTA_STREAM: u64 = 0x5454_415F_5354_524D;

impl Tta {
    /// The move of copy `copy` (0-based) of image `index` of its set: drawn from the seed, the
    /// copy and the image alone, so an image's copies do not depend on what else is evaluated
    /// with it.
    pub fn moved(&self, copy: usize, index: usize) -> Move {
        moves(self.seed ^ TTA_STREAM, copy + 1, index, 1, self.shift, self.flip)[0]
    }

    /// The log of the class probabilities of `images` (the images `indices` of their set)
    /// averaged over the images and their copies, `[b, classes]`.
    fn log_probabilities<M: Classifier>(&self, model: &M, images: Tensor<4>, indices: &[usize]) -> Tensor<2> {
        let mut sum = softmax(model.logits(images.clone()), 1);
        for copy in 0..self.copies {
            let moves: Vec<Move> = indices.iter().map(|&index| self.moved(copy, index)).collect();
            sum = sum + softmax(model.logits(apply(images.clone(), &moves)), 1);
        }
        // A probability that underflowed to 0 gives a large finite loss, not an infinite one.
        (sum / (self.copies + 1) as f64).clamp_min(f32::MIN_POSITIVE).log()
    }
}

/// Evaluate `model` (a copy off the autodiff device: `model.valid()`) on the images `indices` of
/// `set`. Loss and probabilities come from a log-softmax on the device, summed in f64 on the host.
pub fn evaluate<M: Classifier>(
    model: &M,
    set: &ImageSet,
    indices: &[usize],
    device: &Device,
) -> Result<Evaluation, crate::device::ReadBackError> {
    evaluate_with(model, set, indices, device, None)
}

/// [`evaluate`], with test-time augmentation when `tta` is given: the probabilities, the loss
/// and the predictions are those of each image's averaged probabilities ([`Tta`]).
pub fn evaluate_with<M: Classifier>(
    model: &M,
    set: &ImageSet,
    indices: &[usize],
    device: &Device,
    tta: Option<&Tta>,
) -> Result<Evaluation, crate::device::ReadBackError> {
    let mut predictions = Vec::with_capacity(indices.len());
    let classes = set.classes();
    let mut total_loss = 0.0;
    for chunk in indices.chunks(evaluation_batch(set)) {
        let batch = ImageBatch::gather(set, chunk, device);
        let log_probabilities = match tta {
            Some(tta) => tta.log_probabilities(model, batch.images, chunk),
            None => log_softmax(model.logits(batch.images), 1),
        };
        let log_probabilities = log_probabilities
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|error| crate::device::ReadBackError::from_debug(&error))?;
        for (row, &index) in log_probabilities.chunks(classes).zip(chunk) {
            let label = set.label(index);
            let (predicted, best) = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(class, &value)| (class as u8, value))
                .expect("one score per class");
            total_loss -= f64::from(row[usize::from(label)]);
            predictions.push(Prediction {
                index,
                label,
                predicted,
                confidence: f64::from(best).exp(),
                label_probability: f64::from(row[usize::from(label)]).exp(),
            });
        }
    }
    Ok(Evaluation::of(predictions, total_loss, classes))
}

impl Evaluation {
    /// The evaluation made of `predictions` over `classes` classes whose cross-entropies sum
    /// to `loss_sum`: the mean loss, the accuracy and the confusion matrix.
    fn of(predictions: Vec<Prediction>, loss_sum: f64, classes: usize) -> Self {
        let mut confusion = vec![vec![0usize; classes]; classes];
        for p in &predictions {
            confusion[usize::from(p.label)][usize::from(p.predicted)] += 1;
        }
        let count = predictions.len().max(1) as f64;
        let accuracy = predictions.iter().filter(|p| p.label == p.predicted).count() as f64 / count;
        Self { loss: loss_sum / count, accuracy, error_rate: 1.0 - accuracy, confusion, predictions }
    }
}

/// [`evaluate_with`] in a job of several processes (MPI): each process evaluates one contiguous share
/// of `indices`, and every process gets the whole evaluation (the predictions gathered in order,
/// the losses summed), as one process evaluating them all would have it, up to the order of
/// the loss's sum. In a world of one, [`evaluate`].
pub fn evaluate_across<M: Classifier>(
    world: &crate::world::World,
    model: &M,
    set: &ImageSet,
    indices: &[usize],
    device: &Device,
    tta: Option<&Tta>,
) -> Result<Evaluation, crate::device::ReadBackError> {
    if !world.is_parallel() {
        return evaluate_with(model, set, indices, device, tta);
    }
    let share = &indices[world.share(indices.len()).unwrap_or_default()];
    let local = evaluate_with(model, set, share, device, tta)?;
    let mut loss = [local.loss * local.predictions.len() as f64];
    world.sum_f64(&mut loss);
    let predictions: Vec<Prediction> = world
        .gather_bytes(prediction_bytes(&local.predictions))
        .iter()
        .flat_map(|bytes| predictions_of(bytes))
        .collect();
    Ok(Evaluation::of(predictions, loss[0], set.classes()))
}

/// Predictions as bytes: index (u64), label, predicted, confidence (f64), label probability
/// (f64), little-endian.
fn prediction_bytes(predictions: &[Prediction]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(predictions.len() * PREDICTION_BYTES);
    for p in predictions {
        bytes.extend_from_slice(&(p.index as u64).to_le_bytes());
        bytes.extend_from_slice(&[p.label, p.predicted]);
        bytes.extend_from_slice(&p.confidence.to_le_bytes());
        bytes.extend_from_slice(&p.label_probability.to_le_bytes());
    }
    bytes
}

const PREDICTION_BYTES: usize = 8 + 2 + 8 + 8;

/// The predictions of [`prediction_bytes`].
fn predictions_of(bytes: &[u8]) -> Vec<Prediction> {
    let f64_at = |b: &[u8], at: usize| f64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    bytes
        .chunks_exact(PREDICTION_BYTES)
        .map(|b| Prediction {
            index: u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])) as usize,
            label: b[8],
            predicted: b[9],
            confidence: f64_at(b, 10),
            label_probability: f64_at(b, 18),
        })
        .collect()
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::data::images::ImageShape;

    /// Class scores that are a linear function of the pixels: `[b, values] x [values, classes]`.
    struct Linear {
        weights: Vec<f32>,
        classes: usize,
    }

    impl Classifier for Linear {
        fn logits(&self, images: Tensor<4>) -> Tensor<2> {
            let [b, c, h, w] = images.dims();
            let device = images.device();
            let weights =
                Tensor::<1>::from_floats(self.weights.as_slice(), &device).reshape([c * h * w, self.classes]);
            images.reshape([b, c * h * w]).matmul(weights)
        }
    }

    /// Pseudo-random values in [-1, 1), from a seed.
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn colour_pictures_are_evaluated_in_smaller_passes_with_the_same_results() {
        let shape = ImageShape { side: 64, channels: 3, classes: 5 };
        assert_eq!(evaluation_batch(&ImageSet::with_shape(Vec::new(), Vec::new(), shape)), 32);
        assert_eq!(evaluation_batch(&ImageSet::new(Vec::new(), Vec::new(), 28)), 512);
        assert_eq!(evaluation_batch(&ImageSet::new(Vec::new(), Vec::new(), 8)), 512);

        // 70 pictures: passes of 32, 32 and 6, against log-softmax in f64 picture by picture.
        let (count, per_image) = (70, shape.channels * shape.side * shape.side);
        let labels: Vec<u8> = (0..count).map(|i| (i * 7 % shape.classes) as u8).collect();
        let set = ImageSet::with_shape(values(count * per_image, 1), labels, shape);
        let model = Linear {
            weights: values(per_image * shape.classes, 2).iter().map(|w| w * 0.02).collect(),
            classes: 5,
        };
        let indices: Vec<usize> = (0..count).rev().collect();
        let evaluation = evaluate(&model, &set, &indices, &Device::flex()).unwrap();

        let mut loss = 0.0;
        for (p, &index) in evaluation.predictions.iter().zip(&indices) {
            let image = set.image(index);
            let scores: Vec<f64> = (0..shape.classes)
                .map(|k| {
                    image
                        .iter()
                        .enumerate()
                        .map(|(v, &x)| f64::from(x) * f64::from(model.weights[v * shape.classes + k]))
                        .sum()
                })
                .collect();
            let top = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = top + scores.iter().map(|s| (s - top).exp()).sum::<f64>().ln();
            let label = usize::from(set.label(index));
            let predicted = scores.iter().position(|&s| s == top).unwrap();
            assert_eq!((p.index, usize::from(p.label), usize::from(p.predicted)), (index, label, predicted));
            assert!((p.label_probability - (scores[label] - log_sum).exp()).abs() < 1e-4, "image {index}");
            loss -= scores[label] - log_sum;
        }
        assert!(
            (evaluation.loss - loss / count as f64).abs() < 1e-4,
            "{} vs {}",
            evaluation.loss,
            loss / count as f64
        );
        assert_eq!(evaluation.confusion.iter().flatten().sum::<usize>(), count);
    }

    /// Test-time augmentation against averaging by hand: each image and its copies, moved pixel
    /// by pixel here, scored in f64, their softmaxes averaged.
    #[test]
    fn tta_averages_the_probabilities_of_the_image_and_its_moved_copies() {
        let shape = ImageShape { side: 6, channels: 2, classes: 4 };
        let (count, per_image, side) = (600, 2 * 6 * 6, 6isize);
        let labels: Vec<u8> = (0..count).map(|i| (i * 3 % 4) as u8).collect();
        let set = ImageSet::with_shape(values(count * per_image, 3), labels, shape);
        let model =
            Linear { weights: values(per_image * 4, 4).iter().map(|w| w * 0.3).collect(), classes: 4 };
        let tta = Tta { copies: 3, seed: 9, shift: 2, flip: true };
        let indices: Vec<usize> = (0..count).rev().collect();
        let evaluation = evaluate_with(&model, &set, &indices, &Device::flex(), Some(&tta)).unwrap();
        let moved = |image: &[f32], m: Move| -> Vec<f32> {
            let mut out = vec![0.0; image.len()];
            for (c, r, col) in grid(2, side) {
                let (sr, sc) = (r - m.dy, col - m.dx);
                if (0..side).contains(&sr) && (0..side).contains(&sc) {
                    let sc = if m.flip { side - 1 - sc } else { sc };
                    out[(c * side * side + r * side + col) as usize] =
                        image[(c * side * side + sr * side + sc) as usize];
                }
            }
            out
        };
        let probabilities = |image: &[f32]| -> Vec<f64> {
            let scores: Vec<f64> = (0..4)
                .map(|k| {
                    image
                        .iter()
                        .enumerate()
                        .map(|(v, &x)| f64::from(x) * f64::from(model.weights[v * 4 + k]))
                        .sum()
                })
                .collect();
            let total: f64 = scores.iter().map(|s| s.exp()).sum();
            scores.iter().map(|s| s.exp() / total).collect()
        };
        let (mut loss, mut changed) = (0.0, 0);
        for (p, &index) in evaluation.predictions.iter().zip(&indices) {
            let image = set.image(index);
            let mut mean = probabilities(image);
            for copy in 0..3 {
                let copy = probabilities(&moved(image, tta.moved(copy, index)));
                mean.iter_mut().zip(copy).for_each(|(m, c)| *m += c);
            }
            mean.iter_mut().for_each(|m| *m /= 4.0);
            let best = mean.iter().cloned().fold(0.0, f64::max);
            let label = usize::from(set.label(index));
            assert_eq!(
                usize::from(p.predicted),
                mean.iter().position(|&m| m == best).unwrap(),
                "image {index}"
            );
            assert!((p.confidence - best).abs() < 1e-5, "image {index}: {} vs {best}", p.confidence);
            assert!((p.label_probability - mean[label]).abs() < 1e-5, "image {index}");
            loss -= mean[label].ln();
            let plain = probabilities(image);
            changed += usize::from(
                plain.iter().position(|&v| v == plain.iter().cloned().fold(0.0, f64::max))
                    != Some(usize::from(p.predicted)),
            );
        }
        assert!((evaluation.loss - loss / count as f64).abs() < 1e-4);
        assert!(changed > 0, "the copies changed some predictions");
        // The copies are drawn per image: the same whatever else is evaluated with it.
        let one = evaluate_with(&model, &set, &[17], &Device::flex(), Some(&tta)).unwrap();
        let within = evaluation.predictions.iter().find(|p| p.index == 17).unwrap();
        assert!((one.predictions[0].confidence - within.confidence).abs() < 1e-6);
        // No copies: the plain evaluation.
        let none = Tta { copies: 0, ..tta };
        let plain = evaluate(&model, &set, &indices, &Device::flex()).unwrap();
        let zero = evaluate_with(&model, &set, &indices, &Device::flex(), Some(&none)).unwrap();
        assert_eq!(
            plain.predictions.iter().map(|p| p.predicted).collect::<Vec<_>>(),
            zero.predictions.iter().map(|p| p.predicted).collect::<Vec<_>>()
        );
    }

    /// Every (channel, row, column) of `channels` images of `side` pixels.
    fn grid(channels: isize, side: isize) -> impl Iterator<Item = (isize, isize, isize)> {
        (0..channels).flat_map(move |c| (0..side).flat_map(move |r| (0..side).map(move |col| (c, r, col))))
    }
}
