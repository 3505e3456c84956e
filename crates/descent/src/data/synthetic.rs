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
        let mut x = Vec::with_capacity(2 * self.n);
        let mut y = Vec::with_capacity(self.n);
        self.generate_chunks(|rows, targets| {
            x.extend_from_slice(rows);
            y.extend_from_slice(targets);
        });
        Table::new(x, y, 2)
    }

    /// The rows of [`Self::generate`] in order, a chunk of at most [`GENERATION_CHUNK`] rows at a
    /// time (`x` two values per row, `y` one): the same values, without the whole columns of
    /// uniforms and normals the notebook's order would otherwise keep (the normals' stream is
    /// started where the uniforms' ends, which ChaCha8 can seek to).
    pub fn generate_chunks(&self, mut each: impl FnMut(&[f32], &[f32])) {
        let mut uniforms = SeededRng::new(self.seed);
        let mut normals = SeededRng::new(self.seed);
        normals.skip_units(self.n as u64);
        let (mut x, mut y) = (Vec::with_capacity(2 * GENERATION_CHUNK), Vec::with_capacity(GENERATION_CHUNK));
        let mut done = 0;
        while done < self.n {
            // Even chunks keep Box–Muller's pairs whole, so the normals are the notebook's.
            let rows = GENERATION_CHUNK.min(self.n - done);
            let (x0, noise) = (uniforms.uniform(rows, -1.0, 1.0), normals.normal(rows));
            x.clear();
            y.clear();
            for (&slope_input, &epsilon) in x0.iter().zip(&noise) {
                x.extend_from_slice(&[slope_input, 1.0]);
                let clean = f64::from(slope_input) * self.true_a[0] + self.true_a[1];
                y.push((clean + self.noise * f64::from(epsilon)) as f32);
            }
            each(&x, &y);
            done += rows;
        }
    }
}

/// Rows per chunk of [`LessonData::generate_chunks`] (even: see there).
pub const GENERATION_CHUNK: usize = 1 << 16;

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

    /// The chunked generator draws exactly what drawing every uniform, then every normal, gives:
    /// sizes around a chunk's (odd, even, one short and one past).
    #[test]
    fn chunks_draw_the_notebooks_order() {
        for n in [1, 99, 100, GENERATION_CHUNK - 1, GENERATION_CHUNK + 1, 2 * GENERATION_CHUNK + 3] {
            let spec = LessonData { n, ..LessonData::default() };
            let mut rng = SeededRng::new(spec.seed);
            let (x0, noise) = (rng.uniform(n, -1.0, 1.0), rng.normal(n));
            let table = spec.generate();
            for i in 0..n {
                assert_eq!(table.row(i), &[x0[i], 1.0], "n {n}, row {i}");
                let clean = f64::from(x0[i]) * 3.0 + 2.0;
                assert_eq!(table.y()[i], (clean + 0.25 * f64::from(noise[i])) as f32, "n {n}, row {i}");
            }
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
