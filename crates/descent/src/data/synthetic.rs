//! The lesson's data: `x = [U(-1, 1), 1]`, `y = x·a_true + sigma·N(0, 1)`.

use super::Table;
use super::random::SeededRng;

/// How to generate the lesson's data. The defaults are the notebook's constants and seed 42.
#[derive(Clone, Debug, PartialEq)]
pub struct LessonData {
    /// Number of rows (the notebook's `n = 100`).
    pub n: usize,
    /// The true slope and intercept (the notebook's `a = tensor(3., 2)`).
    pub true_a: [f64; 2],
    /// Standard deviation of the noise (the notebook's `0.25 * torch.randn(n)`).
    pub noise: f64,
    /// Seed of the generator; the same seed gives the same data on every machine.
    pub seed: u64,
}

impl Default for LessonData {
    fn default() -> Self {
        Self { n: 100, true_a: [3.0, 2.0], noise: 0.25, seed: 42 }
    }
}

impl LessonData {
    /// Generate the table, drawing as the notebook does: first the `n` uniforms of column 0, then
    /// the `n` normals of the noise.
    pub fn generate(&self) -> Table {
        let mut rng = SeededRng::new(self.seed);
        let x0 = rng.uniform(self.n, -1.0, 1.0);
        let noise = rng.normal(self.n);
        let mut x = Vec::with_capacity(2 * self.n);
        let mut y = Vec::with_capacity(self.n);
        for (&slope_input, &epsilon) in x0.iter().zip(&noise) {
            x.extend_from_slice(&[slope_input, 1.0]);
            let clean = f64::from(slope_input) * self.true_a[0] + self.true_a[1];
            y.push((clean + self.noise * f64::from(epsilon)) as f32);
        }
        Table::new(x, y, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_the_lesson_shape() {
        let table = LessonData::default().generate();
        assert_eq!(table.len(), 100);
        for i in 0..table.len() {
            let row = table.row(i);
            assert!((-1.0..1.0).contains(&row[0]));
            assert_eq!(row[1], 1.0);
        }
    }

    #[test]
    fn without_noise_y_is_exactly_the_line() {
        let spec = LessonData { noise: 0.0, ..LessonData::default() };
        let table = spec.generate();
        for i in 0..table.len() {
            let expected = (f64::from(table.row(i)[0]) * 3.0 + 2.0) as f32;
            assert_eq!(table.y()[i], expected);
        }
    }

    #[test]
    fn seeds_decide_the_data() {
        let a = LessonData::default().generate();
        let b = LessonData::default().generate();
        let c = LessonData { seed: 7, ..LessonData::default() }.generate();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
