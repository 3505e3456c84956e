//! `descent fit`'s flags: the table (file, target, features, delimiter, split, scaling, bad
//! rows), and the shared ones.

use std::path::PathBuf;

use clap::Args;

use super::{CommonArgs, FlagError};
use crate::config::{DataConfig, ModelConfig, RunConfig};
use crate::data::csv_table::parse_delimiter;
use crate::regression::CsvSource;

/// `descent fit`'s flags: the table, and the shared training flags.
#[derive(Args, Debug, Default)]
pub struct FitArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The CSV file: a header row naming the columns, then one row per example.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub data: Option<PathBuf>,

    /// The column to predict.
    #[arg(long, value_name = "COLUMN", conflicts_with = "resume")]
    pub target: Option<String>,

    /// The feature columns, comma-separated [default: every column but the target].
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', conflicts_with = "resume")]
    pub features: Option<Vec<String>>,

    /// The field delimiter: one character such as ; or |, or `tab` or `space` [default: ,].
    #[arg(long, value_name = "CHAR", value_parser = delimiter, conflicts_with = "resume")]
    pub delimiter: Option<String>,

    /// Train on the features as they are, without standardising them (mean 0, variance 1).
    #[arg(long, conflicts_with = "resume")]
    pub no_standardize: bool,

    #[arg(help = super::help::fit_valid_fraction(), long, value_parser = fraction, allow_hyphen_values = true, conflicts_with = "resume")]
    pub valid_fraction: Option<f64>,

    /// Skip rows that are ragged or hold a bad value (not a number, NaN, infinity, empty) in a
    /// chosen column, and report how many and where, instead of stopping at the first.
    #[arg(long, conflicts_with = "resume")]
    pub skip_bad_rows: bool,
}

fn delimiter(text: &str) -> Result<String, String> {
    parse_delimiter(text).map(|_| text.to_string()).map_err(|error| error.to_string())
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if (0.0..1.0).contains(&value) => Ok(value),
        Ok(value) => Err(format!("must be at least 0 and less than 1, got {value}")),
        Err(_) => Err(format!("expected a number in [0, 1), got `{text}`")),
    }
}

impl FitArgs {
    /// The effective configuration: `--config` (or full-batch SGD at lr 0.1 as in the lesson; on
    /// a table the library's plan takes 1,000 steps), the table from the flags, the shared
    /// flags, `--set`.
    pub fn config(&self) -> Result<RunConfig, FlagError> {
        let defaults = RunConfig { model: ModelConfig::Linear { init: None }, ..RunConfig::default() };
        let mut config = self.common.base(defaults)?;
        if let Some(path) = &self.data {
            let target = self.target.clone().ok_or_else(|| {
                FlagError::new("--target COLUMN is required with --data: name the column to predict")
            })?;
            config.data = DataConfig::Csv(CsvSource::new(path.clone(), target));
            if config.model == ModelConfig::default() {
                // A configuration file's lesson guess does not fit a table.
                config.model = ModelConfig::Linear { init: None };
            }
        }
        let DataConfig::Csv(csv) = &mut config.data else {
            return Err(FlagError::new(
                "descent fit needs a table: --data FILE --target COLUMN (or --config FILE with source = \"csv\" data)",
            ));
        };
        if let Some(name) = &self.target {
            csv.target = name.clone();
        }
        if let Some(names) = &self.features {
            csv.features = Some(names.iter().map(|name| name.trim().to_string()).collect());
        }
        if let Some(text) = &self.delimiter {
            csv.delimiter = text.clone();
        }
        if self.no_standardize {
            csv.standardize = false;
        }
        if let Some(fraction) = self.valid_fraction {
            csv.valid_fraction = fraction;
        }
        if self.skip_bad_rows {
            csv.skip_bad_rows = true;
        }
        self.common.finish(config).map_err(|mut failure| {
            if let Some(rest) = failure.0.strip_prefix("data.features: ") {
                failure.0 = format!("--features (data.features): {rest}");
            }
            failure
        })
    }
}
