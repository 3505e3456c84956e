//! The lesson's flags (`descent lesson2`, `descent train`, `descent config show`): the shared
//! ones, and the generated data and initial guess of the linear model.

use std::path::PathBuf;

use clap::Args;

use super::values::{non_negative_finite, pair, positive_count};
use super::{CommonArgs, FlagError};
use crate::config::{DataConfig, ModelConfig, RunConfig};

/// The lesson's flags: the shared ones, and the data and initial guess of the linear model.
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[arg(help = super::help::n(), long, value_parser = positive_count, allow_hyphen_values = true, conflicts_with_all = ["data", "resume"])]
    pub n: Option<usize>,

    #[arg(help = super::help::noise(), long, value_parser = non_negative_finite, allow_hyphen_values = true,
          conflicts_with_all = ["data", "resume"])]
    pub noise: Option<f64>,

    #[arg(help = super::help::true_a(), long, value_name = "SLOPE,INTERCEPT", value_parser = pair, allow_hyphen_values = true,
          conflicts_with_all = ["data", "resume"])]
    pub true_a: Option<[f64; 2]>,

    #[arg(help = super::help::init(), long, value_name = "SLOPE,INTERCEPT", value_parser = pair, allow_hyphen_values = true,
          conflicts_with = "resume")]
    pub init: Option<[f64; 2]>,

    /// Read the points from a CSV file with a header and the columns x,y instead of generating
    /// them; the column of ones is added as in the lesson.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub data: Option<PathBuf>,

    /// Also write animation.gif: the notebook's animation of the line moving onto the points,
    /// one frame per gradient step for 100 steps from the initial guess, 20 ms per frame.
    #[arg(long)]
    pub animate: bool,
}

impl RunArgs {
    /// The effective configuration: the lesson's defaults, then `--config`, `--optim`,
    /// `--schedule`, the single flags, and `--set`.
    pub fn config(&self) -> Result<RunConfig, FlagError> {
        let mut config = self.common.base(RunConfig::default())?;
        if let Some(path) = &self.data {
            config.data = DataConfig::Points { path: path.clone(), sha256: None };
        }
        if self.n.is_some() || self.noise.is_some() || self.true_a.is_some() {
            let DataConfig::Lesson { n, true_a, noise } = config.data else {
                return Err(FlagError::new(
                    "--n, --noise and --true-a describe generated data, but the configuration reads its data from a file",
                ));
            };
            config.data = DataConfig::Lesson {
                n: self.n.unwrap_or(n),
                true_a: self.true_a.unwrap_or(true_a),
                noise: self.noise.unwrap_or(noise),
            };
        }
        if let Some(init) = self.init {
            config.model = ModelConfig::Linear { init: Some(init.to_vec()) };
        }
        self.common.finish(config)
    }
}
