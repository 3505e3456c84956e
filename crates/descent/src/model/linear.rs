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
        Self { a: Param::from_tensor(a) }
    }

    /// Predictions `x·a` for features `x` of shape `[n, d]`: shape `[n, 1]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.a.val())
    }

    /// The parameters, read back to the host.
    ///
    /// # Errors
    /// If the device cannot return the values (a device failure, not a user error).
    pub fn parameters(&self) -> Result<Vec<f32>, crate::device::ReadBackError> {
        crate::device::read_f32(self.a.val())
    }
}

/// Mean squared error: `((y_hat - y)²).mean()`, without a 1/2 factor, as the notebook's `mse`.
pub fn mse(y_hat: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    (y_hat - y).powi_scalar(2).mean()
}

/// Rows per block in [`LinearModel`]'s loss on large batches.
///
/// Summing millions of f32 values in one pass loses precision on some backends: a plain
/// `mean()` over 4,000,000 squared residuals was off by 3.3e-3 (relative) on Flex and wgpu and
/// by 1.5e-4 on NdArray, and the gradient's `Xᵀr` by up to 7e-4. Summing blocks of this many rows
/// first, then the block sums, keeps both errors near 1e-6.
pub const BLOCK_ROWS: usize = crate::nn::LOSS_BLOCK_ROWS;

impl Objective<RegressionBatch> for LinearModel {
    /// The mean squared error of the batch. Up to [`BLOCK_ROWS`] rows this is exactly the
    /// notebook's `mse(x@a, y)`; above, the same value summed block by block (see
    /// [`BLOCK_ROWS`]), so that reported losses and gradients stay accurate at any size.
    fn loss(&self, batch: RegressionBatch) -> Tensor<1> {
        let rows = batch.len();
        if rows <= BLOCK_ROWS {
            return mse(self.forward(batch.x), batch.y);
        }
        // On Flex, one fused parallel pass over x and y (the same block sums, in f64): no
        // temporaries the size of the data, and the gradient comes out of the same pass.
        #[cfg(feature = "flex")]
        if crate::nn::flex::on_flex(&batch.x) {
            return crate::nn::flex::mean_squared_residual(batch.x, self.a.val(), batch.y);
        }
        let [_, features] = batch.x.dims();
        let blocks = rows / BLOCK_ROWS;
        let head = blocks * BLOCK_ROWS;
        // [blocks, BLOCK_ROWS, d] @ [1, d, 1]: the batched matmul's backward sums each block's
        // contribution to the gradient first, then the blocks (the broadcast dimension).
        let a = self.a.val().unsqueeze::<3>();
        let x = batch.x.clone().slice(0..head).reshape([blocks, BLOCK_ROWS, features]);
        let y = batch.y.clone().slice(0..head).reshape([blocks, BLOCK_ROWS, 1]);
        let mut total = (x.matmul(a) - y).powi_scalar(2).sum_dim(1).sum();
        if head < rows {
            let x = batch.x.slice(head..rows);
            let y = batch.y.slice(head..rows);
            total = total + (self.forward(x) - y).powi_scalar(2).sum();
        }
        total.div_scalar(rows as f64)
    }
}
