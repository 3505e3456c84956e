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

/// Solve the normal equations `XᵀX a = Xᵀy` in `f64` (Gaussian elimination with partial
/// pivoting; the systems here are a few features wide).
pub fn least_squares(table: &Table) -> Result<LeastSquares, OlsError> {
    let d = table.features();
    // The augmented matrix [XᵀX | Xᵀy], accumulated row by row in f64.
    let mut m = vec![vec![0.0f64; d + 1]; d];
    for i in 0..table.len() {
        let row = table.row(i);
        let y = f64::from(table.y()[i]);
        for j in 0..d {
            let xj = f64::from(row[j]);
            for k in 0..d {
                m[j][k] += xj * f64::from(row[k]);
            }
            m[j][d] += xj * y;
        }
    }
    let scale = m.iter().flat_map(|r| r[..d].iter()).fold(0.0f64, |s, v| s.max(v.abs()));
    for column in 0..d {
        let pivot =
            (column..d).max_by(|&p, &q| m[p][column].abs().total_cmp(&m[q][column].abs())).unwrap_or(column);
        if m[pivot][column].abs() <= scale * 1e-12 || scale == 0.0 {
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
    let a: Vec<f64> = (0..d).map(|j| m[j][d] / m[j][j]).collect();
    let mse = table.mse(&a);
    Ok(LeastSquares { a, mse })
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

    #[test]
    fn dependent_columns_are_reported() {
        let table = Table::new(vec![1.0, 1.0, 1.0, 1.0], vec![1.0, 2.0], 2);
        assert!(matches!(least_squares(&table), Err(OlsError::Singular { .. })));
    }
}
