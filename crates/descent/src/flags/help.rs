//! The `--help` texts that state a default: each quotes the value defined once in the library
//! (`crate::defaults`, the optimizers' own defaults), so the two cannot drift apart.

use crate::config::builtin;
use crate::defaults::{
    CNN_BATCH_SIZE, EPOCHS, FASHION_LR, FASHION_SCHEDULE, FIT_PRINT_EVERY, FIT_STEPS, LESSON_INIT, N, NOISE,
    PRINT_EVERY_STEPS, SEED, STEPS, TRUE_A, VALID_FRACTION,
};
use crate::optim::{Adam, OptimizerConfig};

/// The names of built-in configuration files, from their one table (`config::builtin`).
fn names(files: &[(&str, &str)]) -> String {
    files.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

/// `n` with a comma between thousands (`1,000`).
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A learning rate as people write it: `0.1`, `1e-3`.
fn rate(lr: f64) -> String {
    if lr < 0.01 { format!("{lr:e}") } else { format!("{lr}") }
}

/// A pair as the flags take it: `3,2`.
fn pair([a, b]: [f64; 2]) -> String {
    format!("{a},{b}")
}

pub fn optim() -> String {
    format!(
        "Optimizer: a built-in name ({}) or a TOML file with an [optimizer] table [default: sgd at lr {} for the lesson, adam at {} for the cnn ({} on fashion-mnist)]",
        names(&builtin::OPTIMIZERS),
        rate(OptimizerConfig::default().lr()),
        rate(OptimizerConfig::Adam(Adam::default()).lr()),
        rate(FASHION_LR)
    )
}

pub fn schedule() -> String {
    format!(
        "Learning-rate schedule: a built-in name ({}) or a TOML file with a [schedule] table [default: constant; {FASHION_SCHEDULE} for the cnn on fashion-mnist]",
        names(&builtin::SCHEDULES)
    )
}

pub fn seed() -> String {
    format!("Seed of the data, the shuffle, the initial weights and the backend [default: {SEED}]")
}

pub fn batch_size() -> String {
    format!(
        "Examples per mini-batch; without it every step uses all the rows (the lesson) [default: {CNN_BATCH_SIZE} for the cnn]"
    )
}

pub fn steps() -> String {
    format!(
        "Number of updates [default: {STEPS} with full batches ({} for fit); with mini-batches, --epochs decides]",
        thousands(FIT_STEPS)
    )
}

pub fn epochs() -> String {
    format!("Passes over the data [default: {EPOCHS} with mini-batches; a full-batch epoch is one step]")
}

pub fn print_every() -> String {
    format!(
        "Print the loss every this many steps (full batch) or epochs (mini-batches) [default: {PRINT_EVERY_STEPS} steps with full batches ({FIT_PRINT_EVERY} for fit), 1 epoch with mini-batches]"
    )
}

pub fn n() -> String {
    format!("Number of generated points [default: {N}]")
}

pub fn noise() -> String {
    format!("Standard deviation of the noise added to y [default: {NOISE}]")
}

pub fn true_a() -> String {
    format!("True slope and intercept of the generated data [default: {}]", pair(TRUE_A))
}

pub fn init() -> String {
    format!("Initial guess of the parameters a (slope, intercept) [default: {}]", pair(LESSON_INIT))
}

pub fn digits_valid_fraction() -> String {
    format!("Fraction of the digits held out for validation [default: {VALID_FRACTION}]")
}

pub fn fit_valid_fraction() -> String {
    format!(
        "Fraction of the rows held out for validation, chosen at random from the seed; 0 trains on every row [default: {VALID_FRACTION}]"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(rate(0.1), "0.1");
        assert_eq!(rate(1e-3), "1e-3");
        assert_eq!(pair([-1.0, 1.0]), "-1,1");
    }
}
