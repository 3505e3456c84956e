//! Every default of a run, defined once: the configuration's fields, the experiments' plans
//! and the command line's `--help` texts take them from here.

/// The seed of the data, the shuffle, the initial weights and the backend.
pub const SEED: u64 = 42;
/// The lesson's number of points.
pub const N: usize = 100;
/// The lesson's true slope and intercept.
pub const TRUE_A: [f64; 2] = [3.0, 2.0];
/// The standard deviation of the lesson's noise.
pub const NOISE: f64 = 0.25;
/// The lesson's initial guess, `a = (-1, 1)`.
pub const LESSON_INIT: [f64; 2] = [-1.0, 1.0];
/// The fraction of the rows or images held out for validation (fastai's `valid_pct=0.2`).
pub const VALID_FRACTION: f64 = 0.2;
/// Steps of full-batch descent when the configuration sets no length (the notebook's 100).
pub const STEPS: usize = 100;
/// Steps between printed losses with full batches (the notebook's 10).
pub const PRINT_EVERY_STEPS: usize = 10;
/// Epochs of mini-batch training when the configuration sets no length.
pub const EPOCHS: usize = 10;
/// Full-batch steps of `descent fit` when it sets no length: real tables have correlated
/// columns, which the lesson's 100 steps do not fit.
pub const FIT_STEPS: usize = 1000;
/// Steps between printed losses of such a fit.
pub const FIT_PRINT_EVERY: usize = 100;
/// The CNN's batch size (the PyTorch reference's).
pub const CNN_BATCH_SIZE: usize = 64;
/// The CNN's epochs.
pub const CNN_EPOCHS: usize = 10;
/// Where Debian's package `dataset-fashion-mnist` installs Fashion-MNIST's four IDX files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The largest shift of `--augment`, in pixels.
pub const AUGMENT_SHIFT: usize = 2;
/// The peak learning rate (Adam) of the CNN on Fashion-MNIST.
pub const FASHION_LR: f64 = 3e-3;
/// The schedule of the CNN on Fashion-MNIST: fastai's one cycle (warm up, then anneal), which
/// takes the default CNN past 91% test accuracy in 5 epochs (docs/models.md, "Fashion-MNIST by name").
pub const FASHION_SCHEDULE: &str = "one-cycle";

/// The side a folder's pictures are resized to (`data.side`, `--side`), in pixels.
pub const PICTURE_SIDE: usize = 64;
