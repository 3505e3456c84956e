//! The lesson's model: predictions `x·a`, one parameter per feature column, no separate bias
//! (the column of ones in `x` makes `a[1]` the intercept).

use burn::module::Param;
use burn::prelude::*;

use crate::data::RegressionBatch;
use crate::train::Objective;

/// The linear model `y_hat = x·a` as a Burn module. `a` is stored as a `[d, 1]` column so that
/// `x.matmul(a)` is exactly the notebook's `x@a`.
#[derive(Module, Debug)]
pub struct LinearModel {
    /// The parameters: slope then intercept in the lesson.
    pub a: Param<Tensor<2>>,
}

impl LinearModel {
    /// A model whose parameters start at `init` (the lesson starts at `(-1, 1)`), on `device`.
    /// Use an autodiff device (`device.autodiff()`) to train it.
    pub fn new(init: &[f32], device: &Device) -> Self {
        let a = Tensor::from_data(TensorData::new(init.to_vec(), [init.len(), 1]), device);
        Self {
            a: Param::from_tensor(a),
        }
    }

    /// Predictions `x·a` for features `x` of shape `[n, d]`: shape `[n, 1]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.a.val())
    }

    /// The parameters, read back to the host.
    ///
    /// # Errors
    /// If the device cannot return the values (a device failure, not a user error).
    pub fn parameters(&self) -> Result<Vec<f32>, String> {
        self.a
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|error| format!("{error:?}"))
    }
}

/// Mean squared error: `((y_hat - y)²).mean()`, without a 1/2 factor, as the notebook's `mse`.
pub fn mse(y_hat: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    (y_hat - y).powi_scalar(2).mean()
}

impl Objective<RegressionBatch> for LinearModel {
    fn loss(&self, batch: RegressionBatch) -> Tensor<1> {
        mse(self.forward(batch.x), batch.y)
    }
}
