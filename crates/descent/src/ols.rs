//! Closed-form least squares: the exact optimum that gradient descent on the MSE approaches.

use crate::data::Table;

/// The least-squares fit of a table and its mean squared error.
#[derive(Clone, Debug, PartialEq)]
pub struct LeastSquares {
    /// The parameters minimising the mean squared error, one per feature column.
    pub a: Vec<f64>,
    /// The mean squared error at `a`.
    pub mse: f64,
}

/// Why the normal equations have no unique solution.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum OlsError {
    /// `XᵀX` is singular: some feature column is a combination of the others (for example a
    /// constant column beside the column of ones, or fewer rows than features).
    #[error(
        "the normal equations are singular: the feature columns are linearly dependent (column {column})"
    )]
    Singular {
        /// The 0-based column where elimination found no pivot.
        column: usize,
    },
}

/// The sums a table's least squares and mean squared errors need: `XᵀX`, `Xᵀy`, `yᵀy` and the
/// row count, accumulated row by row in `f64`. They can be gathered while the rows stream past
/// (a generator's chunks), so that the rows themselves need not stay on the host: for a linear
/// model, `Σ (x·a − y)² = aᵀXᵀXa − 2aᵀXᵀy + yᵀy` for every `a`.
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    /// `XᵀX`, `features × features`, row-major.
    pub xtx: Vec<f64>,
    /// `Xᵀy`.
    pub xty: Vec<f64>,
    /// `yᵀy`.
    pub yty: f64,
    /// Rows added.
    pub rows: usize,
}

impl Moments {
    /// No rows yet, for `features` columns.
    pub fn new(features: usize) -> Self {
        Self { xtx: vec![0.0; features * features], xty: vec![0.0; features], yty: 0.0, rows: 0 }
    }

    /// The moments of every row of `table`.
    pub fn of(table: &Table) -> Self {
        let mut moments = Self::new(table.features());
        moments.add_rows(table.x(), table.y());
        moments
    }

    /// Feature columns.
    pub fn features(&self) -> usize {
        self.xty.len()
    }

    /// Add the rows `x` (`features` values each) with their targets `y`: summed in blocks of
    /// [`MOMENT_BLOCK`] rows, then the blocks added, so the rounding grows with the block's length
    /// and the blocks' count rather than with the rows' (10 million rows in one running sum would
    /// lose about 1e-9 of `yᵀy`, which the mean squared error's cancellation magnifies).
    pub fn add_rows(&mut self, x: &[f32], y: &[f32]) {
        let d = self.features();
        assert_eq!(x.len(), y.len() * d, "x must hold `features` values per target");
        for (x, y) in x.chunks(MOMENT_BLOCK * d.max(1)).zip(y.chunks(MOMENT_BLOCK)) {
            let mut block = Self::new(d);
            for (row, &y) in x.chunks_exact(d.max(1)).zip(y) {
                let y = f64::from(y);
                for (j, &xj) in row.iter().enumerate() {
                    let xj = f64::from(xj);
                    for (total, &xk) in block.xtx[j * d..(j + 1) * d].iter_mut().zip(row) {
                        *total += xj * f64::from(xk);
                    }
                    block.xty[j] += xj * y;
                }
                block.yty += y * y;
            }
            self.xtx.iter_mut().zip(&block.xtx).for_each(|(total, part)| *total += part);
            self.xty.iter_mut().zip(&block.xty).for_each(|(total, part)| *total += part);
            self.yty += block.yty;
            self.rows += y.len();
        }
    }

    /// The mean squared error of `a` over the rows, `(aᵀXᵀXa − 2aᵀXᵀy + yᵀy) / n`. In `f64` the
    /// cancellation magnifies the sums' rounding by about `yᵀy / Σr²` (about 100 near the
    /// lesson's optimum): some 1e-12 relative for 10 million rows, far below what `f32`
    /// training resolves. Never negative.
    pub fn mse(&self, a: &[f64]) -> f64 {
        let d = self.features();
        assert_eq!(a.len(), d, "one parameter per feature");
        let mut quadratic = 0.0;
        for j in 0..d {
            for k in 0..d {
                quadratic += a[j] * self.xtx[j * d + k] * a[k];
            }
        }
        let cross: f64 = a.iter().zip(&self.xty).map(|(a, b)| a * b).sum();
        ((quadratic - 2.0 * cross + self.yty) / self.rows.max(1) as f64).max(0.0)
    }

    /// The least-squares fit: the normal equations `XᵀX a = Xᵀy` solved in `f64` (Gaussian
    /// elimination with partial pivoting; the systems here are a few features wide). Each
    /// feature is first scaled to unit length (`XᵀX`'s diagonal to 1), so that a feature of
    /// values near 1e38 beside the column of ones is judged by how independent the columns
    /// are, not by how different their sizes are.
    pub fn least_squares(&self) -> Result<LeastSquares, OlsError> {
        let d = self.features();
        let lengths: Vec<f64> = (0..d).map(|j| self.xtx[j * d + j].sqrt()).collect();
        if let Some(column) = lengths.iter().position(|&l| !(l.is_finite() && l > 0.0)) {
            return Err(OlsError::Singular { column });
        }
        // The augmented matrix [XᵀX | Xᵀy], scaled.
        let mut m: Vec<Vec<f64>> = (0..d)
            .map(|j| {
                let row = (0..d).map(|k| self.xtx[j * d + k] / (lengths[j] * lengths[k]));
                row.chain([self.xty[j] / lengths[j]]).collect()
            })
            .collect();
        for column in 0..d {
            let pivot = (column..d)
                .max_by(|&p, &q| m[p][column].abs().total_cmp(&m[q][column].abs()))
                .unwrap_or(column);
            if m[pivot][column].abs().is_nan() || m[pivot][column].abs() <= 1e-12 {
                return Err(OlsError::Singular { column });
            }
            m.swap(column, pivot);
            let pivot_row = m[column].clone();
            for (r, row) in m.iter_mut().enumerate() {
                if r != column {
                    let factor = row[column] / pivot_row[column];
                    for (value, pivot_value) in row[column..].iter_mut().zip(&pivot_row[column..]) {
                        *value -= factor * pivot_value;
                    }
                }
            }
        }
        let a: Vec<f64> = (0..d).map(|j| m[j][d] / m[j][j] / lengths[j]).collect();
        let mse = self.mse(&a);
        Ok(LeastSquares { a, mse })
    }
}

/// Rows per block of [`Moments::add_rows`]' sums.
const MOMENT_BLOCK: usize = 4096;

/// The least-squares fit of `table` ([`Moments::least_squares`]), its mean squared error summed
/// over the rows themselves.
pub fn least_squares(table: &Table) -> Result<LeastSquares, OlsError> {
    let fit = Moments::of(table).least_squares()?;
    let mse = table.mse(&fit.a);
    Ok(LeastSquares { mse, ..fit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_line() {
        // y = 3x + 2 exactly, on x = -1, 0, 1, 2.
        let table = Table::new(vec![-1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0], vec![-1.0, 2.0, 5.0, 8.0], 2);
        let fit = least_squares(&table).unwrap();
        assert!((fit.a[0] - 3.0).abs() < 1e-12 && (fit.a[1] - 2.0).abs() < 1e-12, "{:?}", fit.a);
        assert!(fit.mse < 1e-20);
    }

    #[test]
    fn matches_the_textbook_formula_for_a_line() {
        // slope = cov(x, y) / var(x), intercept = mean(y) - slope * mean(x).
        let table = crate::data::LessonData::default().generate();
        let n = table.len() as f64;
        let xs: Vec<f64> = (0..table.len()).map(|i| f64::from(table.row(i)[0])).collect();
        let ys: Vec<f64> = table.y().iter().map(|&v| f64::from(v)).collect();
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let slope = cov / var;
        let fit = least_squares(&table).unwrap();
        assert!((fit.a[0] - slope).abs() < 1e-10);
        assert!((fit.a[1] - (my - slope * mx)).abs() < 1e-10);
    }

    /// The mean squared error from the moments against the direct sum over the rows, at the
    /// optimum (where the cancellation is worst) and away from it, on the lesson's data. The
    /// direct sum, one running `f64` sum, is itself good to about `n · 1e-16`.
    #[test]
    fn moments_give_the_direct_mean_squared_error() {
        for n in [100, 100_000] {
            let table = crate::data::LessonData { n, ..Default::default() }.generate();
            let moments = Moments::of(&table);
            let fit = moments.least_squares().unwrap();
            for a in [fit.a.clone(), vec![-1.0, 1.0], vec![3.0, 2.0]] {
                let (streamed, direct) = (moments.mse(&a), table.mse(&a));
                assert!(
                    (streamed - direct).abs() <= 1e-10 * direct,
                    "n {n}, a {a:?}: {streamed} vs {direct}"
                );
            }
            assert_eq!(least_squares(&table).unwrap().a, fit.a);
        }
    }

    #[test]
    fn a_feature_near_f32_max_beside_the_ones_is_not_taken_for_singular() {
        // y = 2 + 1e-38·x on x of ±3.3e38 and 1e38: a well-posed line whose columns differ in
        // size by 38 orders of magnitude.
        let xs = [3.3e38f32, -3.3e38, 1e38];
        let x: Vec<f32> = xs.iter().flat_map(|&x| [x, 1.0]).collect();
        let y: Vec<f32> = xs.iter().map(|&x| 2.0 + 1e-38 * x).collect();
        let fit = least_squares(&Table::new(x, y, 2)).unwrap();
        assert!((fit.a[0] - 1e-38).abs() < 1e-44, "{:?}", fit.a);
        assert!((fit.a[1] - 2.0).abs() < 1e-5, "{:?}", fit.a);
        // The same x values with a constant x are still one point's worth of information.
        let same: Vec<f32> = [1e38f32; 3].iter().flat_map(|&x| [x, 1.0]).collect();
        assert!(matches!(
            least_squares(&Table::new(same, vec![1.0, 2.0, 3.0], 2)),
            Err(OlsError::Singular { .. })
        ));
    }

    #[test]
    fn dependent_columns_are_reported() {
        let table = Table::new(vec![1.0, 1.0, 1.0, 1.0], vec![1.0, 2.0], 2);
        assert!(matches!(least_squares(&table), Err(OlsError::Singular { .. })));
    }
}
