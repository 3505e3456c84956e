//! The training commands' flags as clap argument groups, and the one typed step from flags to a
//! checked run configuration: a configuration file (or the command's defaults), then
//! `--optim` and `--schedule`, the single flags, and `--set`, validated once.
//!
//! The `descent` command line is built from these; a program of your own can flatten them into
//! its own clap parser (`#[command(flatten)] flags: descent::flags::FitArgs`) and get the same
//! flags, the same defaults in `--help` and the same configuration:
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     run: descent::flags::CnnArgs,
//! }
//!
//! let config = Cli::parse().run.config().expect("a valid configuration");
//! ```

mod common;
pub mod help;
mod images;
mod lesson;
mod table;
pub mod values;

pub use common::CommonArgs;
pub use images::CnnArgs;
pub use lesson::RunArgs;
pub use table::FitArgs;

/// A flag, or the configuration it changes, that cannot be used: one sentence naming the flag
/// or the field, what was found and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(pub String);

impl FlagError {
    /// The error of `message`.
    pub fn new(message: impl ToString) -> Self {
        Self(message.to_string())
    }
}
