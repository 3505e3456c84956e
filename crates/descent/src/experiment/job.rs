//! A run started as several processes (an MPI job): before anything trains, every process must
//! hold the same configuration and read the same data, or the job is refused, naming the
//! process that differs.

use std::path::PathBuf;

use crate::config::{DataConfig, RunConfig};
use crate::data::DataError;
use crate::optim::InvalidValue;
use crate::world::{World, fingerprint, first_difference};

use super::RunError;

/// Refuse a job whose processes would not train one model: data whose SHA-256 (a folder's
/// fingerprint) differs from rank 0's, naming the file, or a configuration that differs from
/// rank 0's (paths to the data aside: each machine may keep it in a place of its own).
pub(super) fn check_agreement(config: &RunConfig, world: &World) -> Result<(), RunError> {
    if !world.is_parallel() {
        return Ok(());
    }
    let mut shared = config.clone();
    let (path, identity) = take_data_identity(&mut shared.data);
    let data = world.gather(fingerprint(identity.unwrap_or_default().as_bytes()));
    if let (Some((rank, _, _)), Some(path)) = (first_difference(&data), path) {
        return Err(DataError::Rows {
            path,
            message: format!(
                "rank {rank} reads different data from rank 0 (the files' SHA-256 differ): every process of a job must read the same data; nothing was trained"
            ),
        }
        .into());
    }
    let configurations = world.gather(fingerprint(shared.to_toml().as_bytes()));
    if let Some((rank, _, _)) = first_difference(&configurations) {
        return Err(InvalidValue {
            field: "configuration".into(),
            message: format!(
                "the processes of this job were started with different configurations: rank {rank}'s differs from rank 0's (give every process the same flags and files: compare `descent config show` with them on each machine); nothing was trained"
            ),
        }
        .into());
    }
    Ok(())
}

/// Take the data's place and identity out of `data` (its path, its SHA-256 or fingerprint),
/// leaving what every process must share.
fn take_data_identity(data: &mut DataConfig) -> (Option<PathBuf>, Option<String>) {
    match data {
        DataConfig::Points { path, sha256 }
        | DataConfig::Mnist { dir: path, sha256, .. }
        | DataConfig::FashionMnist { dir: path, sha256, .. } => (Some(std::mem::take(path)), sha256.take()),
        DataConfig::Digits { path, sha256, .. } => (path.take(), sha256.take()),
        DataConfig::Csv(source) => (Some(std::mem::take(&mut source.path)), source.sha256.take()),
        DataConfig::Folder { dir, fingerprint, .. } => (Some(std::mem::take(dir)), fingerprint.take()),
        DataConfig::Lesson { .. } => (None, None),
    }
}
