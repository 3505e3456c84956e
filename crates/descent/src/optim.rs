//! Optimizers and learning-rate schedules as data: serde structs that round-trip through TOML
//! and map to Burn's own optimizers and schedulers.
//!
//! Defaults are PyTorch's where Burn's differ (Burn: Adam/AdamW/RMSProp/AdaGrad epsilon 1e-5,
//! SGD momentum dampening 0.1, AdamW weight decay 1e-4, RMSProp momentum 0.9); every value is
//! set explicitly when the Burn optimizer is built, so Burn's defaults never apply.

use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::exponential::ExponentialLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::lr_scheduler::step::StepLrSchedulerConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdaGradConfig, AdamConfig, AdamWConfig, LionConfig, ModuleOptimizer, RmsPropConfig, SgdConfig,
};
use serde::{Deserialize, Serialize};

/// A value in a configuration that is out of range. `field` is the dotted path users write in
/// `--set` (for example `optimizer.momentum`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidValue {
    /// The dotted path of the field.
    pub field: String,
    /// What was found and what is allowed.
    pub message: String,
}

fn invalid(field: &str, message: String) -> InvalidValue {
    InvalidValue { field: field.to_string(), message }
}

fn check_positive(field: &str, value: f64) -> Result<(), InvalidValue> {
    if crate::limits::within_f32(value) && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be a finite number greater than 0 and at most 3.4e38 (the f32 range), got {value}"),
        ))
    }
}

fn check_non_negative(field: &str, value: f64) -> Result<(), InvalidValue> {
    if crate::limits::within_f32(value) && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("must be a finite number from 0 to 3.4e38 (the f32 range), got {value}")))
    }
}

/// `value` in `[0, 1)`.
fn check_fraction(field: &str, value: f64) -> Result<(), InvalidValue> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be in [0, 1), got {value}")))
    }
}

/// The values Adam and AdamW share.
fn check_adam(beta_1: f64, beta_2: f64, epsilon: f64, weight_decay: f64) -> Result<(), InvalidValue> {
    check_fraction("optimizer.beta_1", beta_1)?;
    check_fraction("optimizer.beta_2", beta_2)?;
    check_positive("optimizer.epsilon", epsilon)?;
    check_non_negative("optimizer.weight_decay", weight_decay)
}

/// Gradient clipping, shared by every optimizer: by value (each component clamped to
/// `[-clip_value, clip_value]`) or by norm (each parameter's gradient rescaled to `clip_norm`).
fn check_clipping(clip_value: Option<f64>, clip_norm: Option<f64>) -> Result<(), InvalidValue> {
    if clip_value.is_some() && clip_norm.is_some() {
        return Err(invalid("optimizer.clip_value", "set clip_value or clip_norm, not both".into()));
    }
    if let Some(value) = clip_value {
        check_positive("optimizer.clip_value", value)?;
    }
    if let Some(norm) = clip_norm {
        check_positive("optimizer.clip_norm", norm)?;
    }
    Ok(())
}

fn clipping(clip_value: Option<f64>, clip_norm: Option<f64>) -> Option<GradientClippingConfig> {
    match (clip_value, clip_norm) {
        (Some(value), _) => Some(GradientClippingConfig::Value(value as f32)),
        (None, Some(norm)) => Some(GradientClippingConfig::Norm(norm as f32)),
        (None, None) => None,
    }
}

fn weight_decay(penalty: f64) -> Option<WeightDecayConfig> {
    (penalty > 0.0).then(|| WeightDecayConfig::new(penalty as f32))
}

macro_rules! defaults {
    ($($name:ident = $value:expr;)*) => { $(fn $name() -> f64 { $value })* };
}
defaults! {
    sgd_lr = 0.1;
    adam_lr = 1e-3;
    rmsprop_lr = 1e-2;
    adagrad_lr = 1e-2;
    lion_lr = 1e-4;
    beta_1 = 0.9;
    beta_2 = 0.999;
    lion_beta_2 = 0.99;
    adam_epsilon = 1e-8;
    adamw_weight_decay = 1e-2;
    rmsprop_alpha = 0.99;
    rmsprop_epsilon = 1e-8;
    adagrad_epsilon = 1e-10;
}

/// Stochastic gradient descent, optionally with momentum (PyTorch's `torch.optim.SGD`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
    /// Learning rate.
    #[serde(default = "sgd_lr")]
    pub lr: f64,
    /// With `--init-from`: the body's learning rate as a fraction of `lr`, the head's
    /// (discriminative rates); absent: 1, the same rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_lr_factor: Option<f64>,
    /// Momentum factor in [0, 1); 0 is plain gradient descent.
    #[serde(default)]
    pub momentum: f64,
    /// Dampening for momentum (PyTorch's default 0; Burn's is 0.1).
    #[serde(default)]
    pub dampening: f64,
    /// Nesterov momentum.
    #[serde(default)]
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
    /// Clamp each gradient component to this magnitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Rescale each parameter's gradient to at most this L2 norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

/// Adam (PyTorch's `torch.optim.Adam`; epsilon 1e-8 where Burn's default is 1e-5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adam {
    /// Learning rate.
    #[serde(default = "adam_lr")]
    pub lr: f64,
    /// With `--init-from`: the body's learning rate as a fraction of `lr`, the head's
    /// (discriminative rates); absent: 1, the same rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_lr_factor: Option<f64>,
    /// Decay of the first-moment average, in [0, 1).
    #[serde(default = "beta_1")]
    pub beta_1: f64,
    /// Decay of the second-moment average, in [0, 1).
    #[serde(default = "beta_2")]
    pub beta_2: f64,
    /// Added to the denominator for numerical stability.
    #[serde(default = "adam_epsilon")]
    pub epsilon: f64,
    /// L2 penalty added to the gradient (not decoupled: use `adamw` for that).
    #[serde(default)]
    pub weight_decay: f64,
    /// The AMSGrad variant.
    #[serde(default)]
    pub amsgrad: bool,
    /// Clamp each gradient component to this magnitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Rescale each parameter's gradient to at most this L2 norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

impl Default for Adam {
    /// PyTorch's `torch.optim.Adam()`: lr 1e-3, betas (0.9, 0.999), epsilon 1e-8.
    fn default() -> Self {
        Self {
            lr: adam_lr(),
            body_lr_factor: None,
            beta_1: beta_1(),
            beta_2: beta_2(),
            epsilon: adam_epsilon(),
            weight_decay: 0.0,
            amsgrad: false,
            clip_value: None,
            clip_norm: None,
        }
    }
}

/// AdamW: Adam with decoupled weight decay (PyTorch's defaults: weight decay 1e-2, epsilon 1e-8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamW {
    /// Learning rate.
    #[serde(default = "adam_lr")]
    pub lr: f64,
    /// With `--init-from`: the body's learning rate as a fraction of `lr`, the head's
    /// (discriminative rates); absent: 1, the same rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_lr_factor: Option<f64>,
    /// Decay of the first-moment average, in [0, 1).
    #[serde(default = "beta_1")]
    pub beta_1: f64,
    /// Decay of the second-moment average, in [0, 1).
    #[serde(default = "beta_2")]
    pub beta_2: f64,
    /// Added to the denominator for numerical stability.
    #[serde(default = "adam_epsilon")]
    pub epsilon: f64,
    /// Decoupled weight decay.
    #[serde(default = "adamw_weight_decay")]
    pub weight_decay: f64,
    /// The AMSGrad variant.
    #[serde(default)]
    pub amsgrad: bool,
    /// Clamp each gradient component to this magnitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Rescale each parameter's gradient to at most this L2 norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

/// RMSProp (PyTorch's defaults: momentum 0 where Burn's is 0.9, epsilon 1e-8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmsProp {
    /// Learning rate.
    #[serde(default = "rmsprop_lr")]
    pub lr: f64,
    /// With `--init-from`: the body's learning rate as a fraction of `lr`, the head's
    /// (discriminative rates); absent: 1, the same rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_lr_factor: Option<f64>,
    /// Smoothing constant of the squared-gradient average, in [0, 1).
    #[serde(default = "rmsprop_alpha")]
    pub alpha: f64,
    /// Momentum factor in [0, 1).
    #[serde(default)]
    pub momentum: f64,
    /// Added to the denominator for numerical stability.
    #[serde(default = "rmsprop_epsilon")]
    pub epsilon: f64,
    /// Normalise by the gradient's estimated variance instead of its second moment.
    #[serde(default)]
    pub centered: bool,
    /// L2 penalty added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
    /// Clamp each gradient component to this magnitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Rescale each parameter's gradient to at most this L2 norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

/// AdaGrad (PyTorch's defaults: epsilon 1e-10, learning-rate decay 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaGrad {
    /// Learning rate.
    #[serde(default = "adagrad_lr")]
    pub lr: f64,
    /// With `--init-from`: the body's learning rate as a fraction of `lr`, the head's
    /// (discriminative rates); absent: 1, the same rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_lr_factor: Option<f64>,
    /// Learning-rate decay.
    #[serde(default)]
    pub lr_decay: f64,
    /// Added to the denominator for numerical stability.
    #[serde(default = "adagrad_epsilon")]
    pub epsilon: f64,
    /// L2 penalty added to the gradient.
    #[serde(default)]
    pub weight_decay: f64,
    /// Clamp each gradient component to this magnitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Rescale each parameter's gradient to at most this L2 norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

/// Lion: sign of an interpolated momentum, decoupled weight decay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lion {
    /// Learning rate.
    #[serde(default = "lion_lr")]
    pub lr: f64,
    /// With `--init-from`: the body's learning rate as a fraction of `lr`, the head's
    /// (discriminative rates); absent: 1, the same rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_lr_factor: Option<f64>,
    /// Interpolation between momentum and gradient for the update, in [0, 1).
    #[serde(default = "beta_1")]
    pub beta_1: f64,
    /// Decay of the momentum, in [0, 1).
    #[serde(default = "lion_beta_2")]
    pub beta_2: f64,
    /// Decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Clamp each gradient component to this magnitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Rescale each parameter's gradient to at most this L2 norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

/// An optimizer, chosen by `name` in a file: `name = "adam"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `sgd`
    Sgd(Sgd),
    /// `adam`
    Adam(Adam),
    /// `adamw`
    AdamW(AdamW),
    /// `rmsprop`
    RmsProp(RmsProp),
    /// `adagrad`
    AdaGrad(AdaGrad),
    /// `lion`
    Lion(Lion),
}

impl Default for OptimizerConfig {
    /// The lesson's optimizer: plain SGD at lr 0.1.
    fn default() -> Self {
        OptimizerConfig::Sgd(Sgd {
            lr: sgd_lr(),
            body_lr_factor: None,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            clip_value: None,
            clip_norm: None,
        })
    }
}

impl OptimizerConfig {
    /// The optimizer's name as files write it.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "sgd",
            OptimizerConfig::Adam(_) => "adam",
            OptimizerConfig::AdamW(_) => "adamw",
            OptimizerConfig::RmsProp(_) => "rmsprop",
            OptimizerConfig::AdaGrad(_) => "adagrad",
            OptimizerConfig::Lion(_) => "lion",
        }
    }

    /// The learning rate (the peak of the schedule).
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd(c) => c.lr,
            OptimizerConfig::Adam(c) => c.lr,
            OptimizerConfig::AdamW(c) => c.lr,
            OptimizerConfig::RmsProp(c) => c.lr,
            OptimizerConfig::AdaGrad(c) => c.lr,
            OptimizerConfig::Lion(c) => c.lr,
        }
    }

    /// The body's rate as a fraction of the head's, in a fine-tuning (1 when not set).
    pub fn body_lr_factor(&self) -> Option<f64> {
        match self {
            OptimizerConfig::Sgd(c) => c.body_lr_factor,
            OptimizerConfig::Adam(c) => c.body_lr_factor,
            OptimizerConfig::AdamW(c) => c.body_lr_factor,
            OptimizerConfig::RmsProp(c) => c.body_lr_factor,
            OptimizerConfig::AdaGrad(c) => c.body_lr_factor,
            OptimizerConfig::Lion(c) => c.body_lr_factor,
        }
    }

    /// Set the learning rate (`--lr`); [`Self::validate`] checks it with the rest.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            OptimizerConfig::Sgd(c) => c.lr = lr,
            OptimizerConfig::Adam(c) => c.lr = lr,
            OptimizerConfig::AdamW(c) => c.lr = lr,
            OptimizerConfig::RmsProp(c) => c.lr = lr,
            OptimizerConfig::AdaGrad(c) => c.lr = lr,
            OptimizerConfig::Lion(c) => c.lr = lr,
        }
    }

    /// Set the momentum (`--momentum`) of an optimizer that has one (sgd, rmsprop); the others
    /// refuse it, naming the optimizer.
    pub fn set_momentum(&mut self, momentum: f64) -> Result<(), InvalidValue> {
        match self {
            OptimizerConfig::Sgd(c) => c.momentum = momentum,
            OptimizerConfig::RmsProp(c) => c.momentum = momentum,
            other => {
                return Err(invalid(
                    "optimizer.momentum",
                    format!("the {} optimizer has no momentum (sgd and rmsprop do)", other.name()),
                ));
            }
        }
        Ok(())
    }

    /// Check every value, naming the field of the first one out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check_positive("optimizer.lr", self.lr())?;
        if let Some(factor) = self.body_lr_factor()
            && !(factor > 0.0 && factor <= 1.0)
        {
            return Err(invalid("optimizer.body_lr_factor", format!("must be in (0, 1], got {factor}")));
        }
        match self {
            OptimizerConfig::Sgd(c) => {
                check_fraction("optimizer.momentum", c.momentum)?;
                if !(0.0..=1.0).contains(&c.dampening) {
                    return Err(invalid(
                        "optimizer.dampening",
                        format!("must be in [0, 1], got {}", c.dampening),
                    ));
                }
                if c.nesterov && (c.momentum == 0.0 || c.dampening != 0.0) {
                    return Err(invalid(
                        "optimizer.nesterov",
                        "Nesterov momentum needs momentum > 0 and dampening 0".into(),
                    ));
                }
                check_non_negative("optimizer.weight_decay", c.weight_decay)?;
                check_clipping(c.clip_value, c.clip_norm)
            }
            OptimizerConfig::Adam(c) => {
                check_adam(c.beta_1, c.beta_2, c.epsilon, c.weight_decay)?;
                check_clipping(c.clip_value, c.clip_norm)
            }
            OptimizerConfig::AdamW(c) => {
                check_adam(c.beta_1, c.beta_2, c.epsilon, c.weight_decay)?;
                check_clipping(c.clip_value, c.clip_norm)
            }
            OptimizerConfig::RmsProp(c) => {
                check_fraction("optimizer.alpha", c.alpha)?;
                check_fraction("optimizer.momentum", c.momentum)?;
                check_positive("optimizer.epsilon", c.epsilon)?;
                check_non_negative("optimizer.weight_decay", c.weight_decay)?;
                check_clipping(c.clip_value, c.clip_norm)
            }
            OptimizerConfig::AdaGrad(c) => {
                check_non_negative("optimizer.lr_decay", c.lr_decay)?;
                check_positive("optimizer.epsilon", c.epsilon)?;
                check_non_negative("optimizer.weight_decay", c.weight_decay)?;
                check_clipping(c.clip_value, c.clip_norm)
            }
            OptimizerConfig::Lion(c) => {
                check_fraction("optimizer.beta_1", c.beta_1)?;
                check_fraction("optimizer.beta_2", c.beta_2)?;
                check_non_negative("optimizer.weight_decay", c.weight_decay)?;
                check_clipping(c.clip_value, c.clip_norm)
            }
        }
    }

    /// Burn's optimizer with every setting given explicitly.
    pub fn build(&self) -> ModuleOptimizer {
        match self {
            OptimizerConfig::Sgd(c) => {
                let momentum = (c.momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(c.momentum)
                        .with_dampening(c.dampening)
                        .with_nesterov(c.nesterov)
                });
                SgdConfig::new()
                    .with_momentum(momentum)
                    .with_weight_decay(weight_decay(c.weight_decay))
                    .with_gradient_clipping(clipping(c.clip_value, c.clip_norm))
                    .init()
            }
            OptimizerConfig::Adam(c) => AdamConfig::new()
                .with_beta_1(c.beta_1 as f32)
                .with_beta_2(c.beta_2 as f32)
                .with_epsilon(c.epsilon as f32)
                .with_amsgrad(c.amsgrad)
                .with_weight_decay(weight_decay(c.weight_decay))
                .with_grad_clipping(clipping(c.clip_value, c.clip_norm))
                .init(),
            OptimizerConfig::AdamW(c) => AdamWConfig::new()
                .with_beta_1(c.beta_1 as f32)
                .with_beta_2(c.beta_2 as f32)
                .with_epsilon(c.epsilon as f32)
                .with_weight_decay(c.weight_decay as f32)
                .with_amsgrad(c.amsgrad)
                .with_grad_clipping(clipping(c.clip_value, c.clip_norm))
                .init(),
            OptimizerConfig::RmsProp(c) => RmsPropConfig::new()
                .with_alpha(c.alpha as f32)
                .with_momentum(c.momentum as f32)
                .with_epsilon(c.epsilon as f32)
                .with_centered(c.centered)
                .with_weight_decay(weight_decay(c.weight_decay))
                .with_grad_clipping(clipping(c.clip_value, c.clip_norm))
                .init(),
            OptimizerConfig::AdaGrad(c) => AdaGradConfig::new()
                .with_lr_decay(c.lr_decay)
                .with_epsilon(c.epsilon as f32)
                .with_weight_decay(weight_decay(c.weight_decay))
                .with_grad_clipping(clipping(c.clip_value, c.clip_norm))
                .init(),
            OptimizerConfig::Lion(c) => LionConfig::new()
                .with_beta_1(c.beta_1 as f32)
                .with_beta_2(c.beta_2 as f32)
                .with_weight_decay(c.weight_decay as f32)
                .with_grad_clipping(clipping(c.clip_value, c.clip_norm))
                .init(),
        }
    }
}

fn default_gamma() -> f64 {
    0.1
}
fn default_warmup() -> f64 {
    0.1
}
fn default_pct_start() -> f64 {
    0.25
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}

/// How the learning rate moves over a run, relative to the optimizer's `lr`. Lengths are
/// fractions of the run or counts of steps (updates), so one schedule file serves runs of any
/// length.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// `lr` at every step.
    #[default]
    Constant,
    /// `lr`, multiplied by `gamma` every `step_size` steps.
    Step {
        /// Steps between two decays.
        step_size: usize,
        /// Factor applied at each decay, in (0, 1].
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `lr · gamma^step`.
    Exponential {
        /// Factor applied every step, in (0, 1].
        gamma: f64,
    },
    /// Cosine annealing from `lr` to `min_lr` over the whole run.
    Cosine {
        /// The learning rate at the end.
        #[serde(default)]
        min_lr: f64,
    },
    /// Linear warm-up from `lr / 25` to `lr` over the first `warmup` fraction of the run, then
    /// cosine annealing to `min_lr`.
    WarmupCosine {
        /// Fraction of the run spent warming up, in (0, 1).
        #[serde(default = "default_warmup")]
        warmup: f64,
        /// The learning rate at the end.
        #[serde(default)]
        min_lr: f64,
    },
    /// fastai's one-cycle (`fit_one_cycle`): warm up from `lr / div_factor` to `lr` over the
    /// first `pct_start` of the run, then anneal to `lr / (div_factor · final_div_factor)`.
    /// Burn has no one-cycle scheduler: this chains Burn's linear warm-up and cosine annealing
    /// (fastai warms up along a cosine, we along a line).
    OneCycle {
        /// Fraction of the run spent warming up, in (0, 1).
        #[serde(default = "default_pct_start")]
        pct_start: f64,
        /// The starting learning rate is `lr / div_factor`.
        #[serde(default = "default_div_factor")]
        div_factor: f64,
        /// The final learning rate is `lr / (div_factor · final_div_factor)`.
        #[serde(default = "default_final_div_factor")]
        final_div_factor: f64,
    },
}

impl ScheduleConfig {
    /// The schedule's name as files write it.
    pub fn name(&self) -> &'static str {
        match self {
            ScheduleConfig::Constant => "constant",
            ScheduleConfig::Step { .. } => "step",
            ScheduleConfig::Exponential { .. } => "exponential",
            ScheduleConfig::Cosine { .. } => "cosine",
            ScheduleConfig::WarmupCosine { .. } => "warmup-cosine",
            ScheduleConfig::OneCycle { .. } => "one-cycle",
        }
    }

    /// Check every value, naming the field of the first one out of range.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let open_fraction = |field: &str, value: f64| {
            if value > 0.0 && value < 1.0 {
                Ok(())
            } else {
                Err(invalid(field, format!("must be in (0, 1), got {value}")))
            }
        };
        let gamma = |value: f64| {
            if value > 0.0 && value <= 1.0 {
                Ok(())
            } else {
                Err(invalid("schedule.gamma", format!("must be in (0, 1], got {value}")))
            }
        };
        match *self {
            ScheduleConfig::Constant => Ok(()),
            ScheduleConfig::Step { step_size, gamma: g } => {
                if step_size == 0 {
                    return Err(invalid("schedule.step_size", "must be at least 1, got 0".into()));
                }
                gamma(g)
            }
            ScheduleConfig::Exponential { gamma: g } => gamma(g),
            ScheduleConfig::Cosine { min_lr } => check_non_negative("schedule.min_lr", min_lr),
            ScheduleConfig::WarmupCosine { warmup, min_lr } => {
                open_fraction("schedule.warmup", warmup)?;
                check_non_negative("schedule.min_lr", min_lr)
            }
            ScheduleConfig::OneCycle { pct_start, div_factor, final_div_factor } => {
                open_fraction("schedule.pct_start", pct_start)?;
                if !(div_factor.is_finite() && div_factor >= 1.0) {
                    return Err(invalid(
                        "schedule.div_factor",
                        format!("must be at least 1, got {div_factor}"),
                    ));
                }
                if !(final_div_factor.is_finite() && final_div_factor >= 1.0) {
                    return Err(invalid(
                        "schedule.final_div_factor",
                        format!("must be at least 1, got {final_div_factor}"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Burn's scheduler for a run of `total_steps` updates whose peak learning rate is `lr`.
    ///
    /// # Errors
    /// Burn's schedulers other than `constant` and `step` take learning rates in (0, 1]; a larger
    /// `lr` is reported against `optimizer.lr`.
    pub fn build(&self, lr: f64, total_steps: usize) -> Result<ModuleLrScheduler, InvalidValue> {
        self.validate()?;
        let total = total_steps.max(1);
        let burn_error = |message: String| {
            invalid(
                "optimizer.lr",
                format!("{message} (the `{}` schedule uses Burn's schedulers)", self.name()),
            )
        };
        let built = match *self {
            ScheduleConfig::Constant => return Ok(ModuleLrScheduler::new(lr)),
            ScheduleConfig::Step { step_size, gamma } => {
                StepLrSchedulerConfig::new(lr, step_size).with_gamma(gamma).init()
            }
            ScheduleConfig::Exponential { gamma } => ExponentialLrSchedulerConfig::new(lr, gamma).init(),
            ScheduleConfig::Cosine { min_lr } => {
                check_min_lr(min_lr, lr)?;
                CosineAnnealingLrSchedulerConfig::new(lr, total).with_min_lr(min_lr).init()
            }
            ScheduleConfig::WarmupCosine { warmup, min_lr } => {
                check_min_lr(min_lr, lr)?;
                warmup_then_cosine(lr / 25.0, lr, min_lr, warmup, total)
            }
            ScheduleConfig::OneCycle { pct_start, div_factor, final_div_factor } => warmup_then_cosine(
                lr / div_factor,
                lr,
                lr / (div_factor * final_div_factor),
                pct_start,
                total,
            ),
        };
        built.map_err(burn_error)
    }
}

/// A linear warm-up from `start` to `peak` over `fraction` of `total` steps, then cosine
/// annealing from `peak` to `end` (Burn's `Sequential` of `Linear` and `CosineAnnealing`).
fn warmup_then_cosine(
    start: f64,
    peak: f64,
    end: f64,
    fraction: f64,
    total: usize,
) -> Result<ModuleLrScheduler, String> {
    let warmup = ((total as f64 * fraction).round() as usize).clamp(1, total.saturating_sub(1).max(1));
    let anneal = total.saturating_sub(warmup).max(1);
    if total < 2 {
        return CosineAnnealingLrSchedulerConfig::new(peak, 1).with_min_lr(end.min(peak)).init();
    }
    SequentialLrSchedulerConfig::new(
        vec![
            LinearLrSchedulerConfig::new(start, peak, warmup).into(),
            CosineAnnealingLrSchedulerConfig::new(peak, anneal).with_min_lr(end.min(peak)).into(),
        ],
        vec![warmup],
    )
    .init()
}

/// A cosine schedule's floor must not exceed the learning rate.
fn check_min_lr(min_lr: f64, lr: f64) -> Result<(), InvalidValue> {
    match min_lr > lr {
        true => {
            Err(invalid("schedule.min_lr", format!("must not exceed the learning rate {lr}, got {min_lr}")))
        }
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lrs(schedule: &ScheduleConfig, lr: f64, total: usize) -> Vec<f64> {
        let mut scheduler = schedule.build(lr, total).unwrap();
        (0..total).map(|_| scheduler.step().base()).collect()
    }

    #[test]
    fn constant_and_step() {
        assert!(lrs(&ScheduleConfig::Constant, 1.5, 10).iter().all(|&lr| lr == 1.5));
        let step = lrs(&ScheduleConfig::Step { step_size: 3, gamma: 0.5 }, 0.1, 7);
        let expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025];
        for (got, want) in step.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{step:?}");
        }
    }

    #[test]
    fn exponential_and_cosine() {
        let exponential = lrs(&ScheduleConfig::Exponential { gamma: 0.9 }, 0.1, 5);
        for (i, lr) in exponential.iter().enumerate() {
            assert!((lr - 0.1 * 0.9f64.powi(i as i32)).abs() < 1e-12, "{exponential:?}");
        }
        let cosine = lrs(&ScheduleConfig::Cosine { min_lr: 0.0 }, 0.1, 101);
        assert!((cosine[0] - 0.1).abs() < 1e-12);
        assert!((cosine[50] - 0.05).abs() < 1e-3, "{}", cosine[50]);
        assert!(cosine[100] < 1e-4);
    }

    #[test]
    fn one_cycle_starts_low_peaks_then_ends_low() {
        let schedule = ScheduleConfig::OneCycle { pct_start: 0.25, div_factor: 25.0, final_div_factor: 1e4 };
        let lr = lrs(&schedule, 0.4, 100);
        assert!((lr[0] - 0.4 / 25.0).abs() < 1e-9, "{}", lr[0]);
        let peak = lr.iter().cloned().fold(0.0, f64::max);
        let at = lr.iter().position(|&v| v == peak).unwrap();
        assert!((peak - 0.4).abs() < 1e-9 && (24..=26).contains(&at), "peak {peak} at {at}");
        assert!(lr[99] < 0.4 / 25.0 / 10.0, "{}", lr[99]);
        assert!(lr[..at].windows(2).all(|w| w[1] >= w[0]) && lr[at..].windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn warmup_cosine_warms_up_then_anneals() {
        let lr = lrs(&ScheduleConfig::WarmupCosine { warmup: 0.1, min_lr: 0.0 }, 0.1, 100);
        assert!(lr[0] < 0.01);
        assert!((lr[10] - 0.1).abs() < 1e-9, "{}", lr[10]);
        assert!(lr[99] < 0.001);
    }

    #[test]
    fn bad_values_name_the_field() {
        let OptimizerConfig::Sgd(default) = OptimizerConfig::default() else { panic!("the default is sgd") };
        let mut sgd = Sgd { momentum: 1.0, ..default };
        assert_eq!(OptimizerConfig::Sgd(sgd.clone()).validate().unwrap_err().field, "optimizer.momentum");
        sgd.momentum = 0.0;
        sgd.lr = f64::NAN;
        assert_eq!(OptimizerConfig::Sgd(sgd).validate().unwrap_err().field, "optimizer.lr");
        let adam: OptimizerConfig = toml::from_str("name = \"adam\"\nbeta_2 = 1.0").unwrap();
        assert_eq!(adam.validate().unwrap_err().field, "optimizer.beta_2");
        let Err(error) = ScheduleConfig::Cosine { min_lr: 0.0 }.build(5.0, 10) else {
            panic!("Burn's cosine scheduler takes lr <= 1");
        };
        assert_eq!(error.field, "optimizer.lr");
    }

    #[test]
    fn files_use_pytorch_defaults() {
        let adam: OptimizerConfig = toml::from_str("name = \"adam\"").unwrap();
        let OptimizerConfig::Adam(adam) = adam else { panic!() };
        assert_eq!((adam.lr, adam.epsilon, adam.beta_1, adam.beta_2), (1e-3, 1e-8, 0.9, 0.999));
        let rms: OptimizerConfig = toml::from_str("name = \"rmsprop\"").unwrap();
        let OptimizerConfig::RmsProp(rms) = rms else { panic!() };
        assert_eq!((rms.momentum, rms.alpha, rms.epsilon), (0.0, 0.99, 1e-8));
        let unknown = toml::from_str::<OptimizerConfig>("name = \"adam\"\nmomentum = 0.9").unwrap_err();
        assert!(unknown.to_string().contains("unknown field `momentum`"), "{unknown}");
    }
}
