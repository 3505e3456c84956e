//! Dropout whose masks come from a seed the caller gives, not from the device's generator.
//!
//! Burn's `Dropout` draws its masks from the backend's generator, which Burn's CPU backends keep
//! once per process: two runs in one process (a notebook, the tests, a library user training two
//! models) would then draw from each other's stream. [`Dropout::forward`] takes the batch's seed
//! ([`crate::data::ImageBatch::seed`], which the engine sets from the run's seed and the step),
//! draws the mask on the host and sends it to the device with the activations' shape, so a run's
//! masks depend on its own seed alone.

use burn::module::{Flag, Param};
use burn::prelude::*;

/// Dropout with the masks drawn from an explicit seed: in training (an autodiff device and the
/// training flag on, as Burn's `Dropout` decides), each value is zeroed with probability `prob`
/// and the others scaled by `1 / (1 - prob)`; otherwise the identity.
#[derive(Module, Debug)]
pub struct Dropout {
    /// The probability of zeroing a value, in `[0, 1)`.
    pub prob: f64,
    /// Off after `Module::valid()` or `no_grad`, as Burn's own flag.
    pub training: Param<Flag>,
}

impl Dropout {
    /// Dropout with probability `prob`, which must be in `[0, 1)` (the configurations check it).
    pub fn new(prob: f64) -> Self {
        Self { prob, training: Param::from_bool(true) }
    }

    /// `input` with its dropout mask for `seed` applied (in training), or unchanged.
    pub fn forward<const D: usize>(&self, input: Tensor<D>, seed: u64) -> Tensor<D> {
        if !self.training.is_enabled() || !input.device().is_autodiff() || self.prob == 0.0 {
            return input;
        }
        let (shape, device) = (input.shape(), input.device());
        let mask = mask(seed, shape.num_elements(), self.prob);
        input * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
    }
}

impl crate::onnx::ToOnnx for Dropout {
    /// Nothing: dropout only acts in training, and an exported model infers.
    fn to_onnx(
        &self,
        _graph: &mut crate::onnx::Graph,
        _name: &str,
        input: &str,
    ) -> Result<String, crate::onnx::OnnxError> {
        Ok(input.to_string())
    }
}

/// `n` values, each 0 with probability `prob` and `1 / (1 - prob)` otherwise, from `seed`:
/// SplitMix64, each draw giving two 32-bit uniforms.
pub fn mask(seed: u64, n: usize, prob: f64) -> Vec<f32> {
    let keep = 1.0 / (1.0 - prob) as f32;
    // A value is dropped when its 32-bit uniform is below this threshold.
    let threshold = (prob * 4_294_967_296.0).min(u32::MAX as f64) as u64;
    let mut state = seed ^ 0xD1B5_4A32_D192_ED03;
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for half in [z & 0xFFFF_FFFF, z >> 32] {
            values.push(if half < threshold { 0.0 } else { keep });
        }
    }
    values.truncate(n);
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_drops_about_prob_of_the_values_and_scales_the_rest_to_keep_the_mean() {
        for prob in [0.1, 0.25, 0.5, 0.9] {
            let values = mask(7, 200_000, prob);
            let dropped = values.iter().filter(|&&v| v == 0.0).count() as f64 / values.len() as f64;
            assert!((dropped - prob).abs() < 0.005, "prob {prob}: dropped {dropped}");
            let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
            assert!((mean - 1.0).abs() < 0.02, "prob {prob}: mean {mean}");
            let kept = values.iter().find(|&&v| v != 0.0).copied().unwrap();
            assert_eq!(kept, (1.0 / (1.0 - prob)) as f32);
        }
    }

    #[test]
    fn a_seed_gives_one_mask_and_another_seed_another() {
        assert_eq!(mask(42, 1001, 0.5), mask(42, 1001, 0.5));
        assert_ne!(mask(42, 1001, 0.5), mask(43, 1001, 0.5));
        assert_eq!(mask(42, 1001, 0.5)[..1000], mask(42, 1000, 0.5)[..]);
    }

    #[test]
    fn outside_training_dropout_is_the_identity() {
        let device = crate::device::select("ndarray").unwrap().device;
        let x = Tensor::<2>::ones([4, 8], &device);
        let y = Dropout::new(0.5).forward(x.clone(), 1);
        assert_eq!(crate::device::read_f32(y).unwrap(), crate::device::read_f32(x).unwrap());
    }
}
