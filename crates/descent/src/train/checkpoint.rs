//! Checkpoints: everything a run needs to continue exactly where it stopped, in one file.
//!
//! A checkpoint holds the model's parameters, the optimizer's state (momentum, moment estimates,
//! step counts), the schedule's state, the position (epoch and step), the metrics so far and the
//! run's configuration. The data order needs no state of its own: it is drawn from the seed, and
//! a resumed run replays the draws of the epochs it skips (see
//! [`BatchSource::skip_epochs`](super::BatchSource::skip_epochs)); the random draws of a step
//! (dropout masks) come from the run's seed and the step (see [`Plan::seed`](super::Plan::seed)),
//! so a resumed run draws what the uninterrupted run drew.
//!
//! The file is `checkpoint.bin` in the run folder, written atomically (a temporary file in the
//! same folder, then a rename), so a run killed while writing leaves the previous checkpoint
//! whole. Its layout:
//!
//! ```text
//! magic "descent-checkpoint-v1\n"
//! 4 sections, each a little-endian u64 length then that many bytes:
//!   state (JSON), model (burnpack), optimizer (burnpack), schedule (burnpack)
//! checksum: little-endian u64, FNV-1a of every byte before it
//! ```

use std::path::{Path, PathBuf};

use burn::lr_scheduler::LrSchedulerRecord;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::MetricsRow;

/// The name of the checkpoint file in a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";

const MAGIC: &[u8] = b"descent-checkpoint-v1\n";
const SECTIONS: [&str; 4] = ["state", "model", "optimizer", "schedule"];

/// Where a run stands, and what it needs to continue: the part of a checkpoint that is not
/// tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The model the parameters belong to: `linear` or `cnn`.
    pub model: String,
    /// Epochs finished.
    pub epoch: usize,
    /// Updates made.
    pub step: usize,
    /// Batches of the next epoch already trained on (an interrupted run's; 0 at an epoch's end).
    #[serde(default)]
    pub batch: usize,
    /// Those batches' summed, example-weighted loss, and their examples.
    #[serde(default)]
    pub partial_loss: f64,
    /// Examples in those batches.
    #[serde(default)]
    pub partial_rows: usize,
    /// Training time so far, seconds.
    pub seconds: f64,
    /// The metrics rows so far (what `metrics.csv` holds).
    pub metrics: Vec<MetricsRow>,
    /// The run's configuration, as TOML.
    pub config: String,
    /// Early stopping's state (`training.early_stop`): the best epoch so far and how many epochs
    /// have passed without improving on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStopState>,
    /// Every update's loss so far, as (step, loss): the curve `loss.png` draws.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_losses: Vec<(usize, f64)>,
    /// Every update's learning rate, as (updates made before it, rate), from the first: what
    /// `lr.png` draws. Empty in checkpoints written before descent recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<(usize, f64)>,
}

/// Where early stopping stands: the best epoch so far, its monitored value, and the epochs since
/// without an improvement.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopState {
    /// The epoch with the best monitored value (1-based).
    pub best_epoch: usize,
    /// That value.
    pub best: f64,
    /// Epochs after it that did not improve on it.
    pub stale: usize,
}

impl EarlyStopState {
    /// The state after an epoch whose monitored value is `value` (`improves(value, best)` says
    /// whether it is better), and whether it is the new best.
    pub fn after(
        state: Option<Self>,
        epoch: usize,
        value: f64,
        improves: impl Fn(f64, f64) -> bool,
    ) -> (Self, bool) {
        match state {
            Some(state) if !(value.is_finite() && improves(value, state.best)) => {
                (Self { stale: state.stale + 1, ..state }, false)
            }
            _ => (Self { best_epoch: epoch, best: value, stale: 0 }, true),
        }
    }
}

/// A whole checkpoint, in memory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Position, metrics and configuration.
    pub state: CheckpointState,
    /// The file it was read from (empty for a checkpoint made in memory).
    pub path: PathBuf,
    model: Vec<u8>,
    optimizer: Vec<u8>,
    schedule: Vec<u8>,
}

/// Why a checkpoint cannot be written, read or applied. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file does not exist.
    #[error("{} does not exist: the folder holds no checkpoint (is it a run folder of `descent train`, `descent lesson2` or `descent cnn`?)", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file cannot be read.
    #[error("cannot read {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        message: String,
    },
    /// The file is not a checkpoint, is cut short or does not match its checksum.
    #[error("{} is not a usable checkpoint: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint is whole but does not fit the model or optimizer it is applied to.
    #[error("{} does not fit this run: {message}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// A record could not be serialized.
    #[error("cannot serialize the checkpoint: {0}")]
    Serialize(String),
}

impl Checkpoint {
    /// Capture the training state at the end of an epoch.
    pub fn capture<M: Module>(
        state: CheckpointState,
        model: &M,
        optimizer: &ModuleOptimizer,
        schedule: &ModuleLrScheduler,
    ) -> Result<Self, CheckpointError> {
        let failed = |what: &str, error: &dyn std::fmt::Debug| {
            CheckpointError::Serialize(format!("the {what}: {error:?}"))
        };
        // Batch norm's running statistics may lag one update behind until something syncs them;
        // `valid()` does (it is what evaluation calls), so the checkpoint holds what the
        // uninterrupted run goes on with.
        drop(model.valid());
        let model = model.clone().into_record().into_bytes().map_err(|e| failed("model", &e))?;
        let optimizer = optimizer.to_record().into_bytes().map_err(|e| failed("optimizer", &e))?;
        let schedule = schedule.to_record().into_bytes().map_err(|e| failed("schedule", &e))?;
        Ok(Self {
            state,
            path: PathBuf::new(),
            model: model.to_vec(),
            optimizer: optimizer.to_vec(),
            schedule: schedule.to_vec(),
        })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let state = serde_json::to_vec(&self.state).map_err(|e| CheckpointError::Serialize(e.to_string()))?;
        let mut bytes = MAGIC.to_vec();
        for section in [&state, &self.model, &self.optimizer, &self.schedule] {
            bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
            bytes.extend_from_slice(section);
        }
        let checksum = fnv1a(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        Ok(bytes)
    }

    /// Parse a checkpoint from its file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        let corrupt = |message: String| CheckpointError::Corrupt { path: path.into(), message };
        if !bytes.starts_with(MAGIC) {
            return Err(corrupt("it does not start with a descent checkpoint header".into()));
        }
        let mut offset = MAGIC.len();
        let mut sections = Vec::with_capacity(SECTIONS.len());
        for name in SECTIONS {
            let length = read_u64(bytes, offset).ok_or_else(|| {
                corrupt(format!("it is cut short at byte {} (the length of the {name} section)", bytes.len()))
            })?;
            offset += 8;
            let end = usize::try_from(length)
                .ok()
                .and_then(|length| offset.checked_add(length))
                .filter(|&end| end <= bytes.len())
                .ok_or_else(|| {
                    corrupt(format!(
                        "it is cut short: the {name} section needs {length} bytes from byte {offset}, the file has {}",
                        bytes.len()
                    ))
                })?;
            sections.push(&bytes[offset..end]);
            offset = end;
        }
        let stored = read_u64(bytes, offset)
            .ok_or_else(|| corrupt(format!("it is cut short at byte {} (the checksum)", bytes.len())))?;
        if bytes.len() != offset + 8 {
            return Err(corrupt(format!("{} unexpected bytes after the checksum", bytes.len() - offset - 8)));
        }
        if fnv1a(&bytes[..offset]) != stored {
            return Err(corrupt(
                "its checksum does not match its contents (the file was altered or damaged)".into(),
            ));
        }
        let state: CheckpointState = serde_json::from_slice(sections[0])
            .map_err(|e| corrupt(format!("its state section does not parse: {e}")))?;
        Ok(Self {
            state,
            path: path.into(),
            model: sections[1].to_vec(),
            optimizer: sections[2].to_vec(),
            schedule: sections[3].to_vec(),
        })
    }

    /// Read `path`, after checking that its size fits in memory (it is read whole, and its
    /// sections copied once).
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        if let Ok(metadata) = std::fs::metadata(path) {
            crate::limits::check_memory(metadata.len().checked_mul(2)).map_err(|message| {
                CheckpointError::Read {
                    path: path.into(),
                    message: format!(
                        "it holds {}, and reading it {message}",
                        crate::limits::Bytes(metadata.len())
                    ),
                }
            })?;
        }
        let bytes = crate::limits::read_file(path).map_err(|error| match error {
            crate::limits::FileError::Io(error) if error.kind() == std::io::ErrorKind::NotFound => {
                CheckpointError::Missing { path: path.into() }
            }
            error => CheckpointError::Read { path: path.into(), message: error.to_string() },
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Put the checkpoint's parameters into `model` (a freshly initialised model of the run's
    /// configuration) and its state into `optimizer` and `schedule` (built for the run).
    pub fn restore<M: Module>(
        &self,
        model: M,
        optimizer: ModuleOptimizer,
        schedule: ModuleLrScheduler,
    ) -> Result<(M, ModuleOptimizer, ModuleLrScheduler), CheckpointError> {
        let path = &self.path;
        let mismatch = |what: &str, error: &dyn std::fmt::Debug| CheckpointError::Mismatch {
            path: path.into(),
            message: format!("the {what}: {error:?}"),
        };
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.model.clone()))
            .map_err(|e| mismatch("model's parameters do not parse", &e))?;
        let model = model.try_load_record(record).map_err(|e| mismatch("model's parameters", &e))?;
        let optimizer_record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(self.optimizer.clone()))
            .map_err(|e| mismatch("optimizer state does not parse", &e))?;
        let schedule_record = LrSchedulerRecord::from_bytes(Bytes::from_bytes_vec(self.schedule.clone()))
            .map_err(|e| mismatch("schedule state does not parse", &e))?;
        Ok((model, optimizer.load_record(optimizer_record), schedule.load_record(schedule_record)))
    }
}

fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let slice = bytes.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(slice.try_into().ok()?))
}

/// 64-bit FNV-1a: enough to tell a damaged file from a whole one (not an authenticity check).
fn fnv1a(bytes: &[u8]) -> u64 {
    crate::world::fingerprint(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LinearModel;
    use burn::optim::SgdConfig;
    use burn::prelude::*;

    fn state() -> CheckpointState {
        CheckpointState {
            model: "linear".into(),
            epoch: 3,
            step: 30,
            batch: 0,
            partial_loss: 0.0,
            partial_rows: 0,
            seconds: 0.5,
            metrics: vec![MetricsRow { step: 10, epoch: 1, lr: 0.1, train_loss: 1.5, ..Default::default() }],
            config: "seed = 42\n".into(),
            early_stop: None,
            batch_losses: Vec::new(),
            rates: Vec::new(),
        }
    }

    fn checkpoint(a: [f32; 2]) -> Checkpoint {
        let device = Device::flex().autodiff();
        let model = LinearModel::new(&a, &device);
        let optimizer = SgdConfig::new().init();
        let schedule = ModuleLrScheduler::new(0.1);
        Checkpoint::capture(state(), &model, &optimizer, &schedule).unwrap()
    }

    /// The parameters `checkpoint` puts into a fresh linear model.
    fn restored_parameters(checkpoint: &Checkpoint) -> Vec<f32> {
        let device = Device::flex().autodiff();
        let fresh = LinearModel::new(&[0.0, 0.0], &device);
        let (model, _, _) =
            checkpoint.restore(fresh, SgdConfig::new().init(), ModuleLrScheduler::new(0.1)).unwrap();
        model.parameters().unwrap()
    }

    #[test]
    fn a_checkpoint_round_trips_through_its_bytes() {
        let original = checkpoint([1.5, -2.0]);
        let bytes = original.to_bytes().unwrap();
        let read = Checkpoint::from_bytes(&bytes, Path::new("checkpoint.bin")).unwrap();
        assert_eq!(read.state, original.state);
        assert_eq!(restored_parameters(&read), vec![1.5, -2.0]);
    }

    #[test]
    fn damaged_files_are_refused_with_the_reason() {
        let bytes = checkpoint([1.0, 2.0]).to_bytes().unwrap();
        let path = Path::new("run/checkpoint.bin");
        let message = |bytes: &[u8]| Checkpoint::from_bytes(bytes, path).unwrap_err().to_string();

        assert!(
            message(&bytes[..bytes.len() / 2]).contains("cut short"),
            "{}",
            message(&bytes[..bytes.len() / 2])
        );
        assert!(message(&bytes[..bytes.len() - 3]).contains("cut short"));
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 20] ^= 1;
        assert!(message(&flipped).contains("checksum"), "{}", message(&flipped));
        assert!(message(b"PK\x03\x04 a zip file").contains("header"));
        assert!(message(&bytes[..bytes.len() - 3]).contains("run/checkpoint.bin"));
    }

    #[test]
    fn a_write_that_fails_before_its_rename_leaves_the_previous_checkpoint_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let folder = crate::report::RunFolder::create(Some(&dir.path().join("run")), "test").unwrap();
        folder.write(CHECKPOINT_FILE, &checkpoint([1.0, 2.0]).to_bytes().unwrap()).unwrap();

        let newer = checkpoint([5.0, 6.0]).to_bytes().unwrap();
        let interrupted = folder.write_with(CHECKPOINT_FILE, &newer, |temporary| {
            assert_eq!(std::fs::read(temporary).unwrap(), newer, "the new checkpoint was written in full");
            Err(std::io::Error::other("killed between write and rename"))
        });
        // The message names the file the user knows, not the hidden temporary one, and says that
        // nothing earlier was lost.
        let message = interrupted.unwrap_err().to_string();
        assert!(message.contains("run/checkpoint.bin") && !message.contains(".tmp-"), "{message}");
        assert!(message.contains("nothing was replaced"), "{message}");

        let read = Checkpoint::read(&folder.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(restored_parameters(&read), vec![1.0, 2.0], "the previous checkpoint is intact");
        let names: Vec<_> =
            std::fs::read_dir(folder.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CHECKPOINT_FILE)]);
    }

    #[test]
    fn a_missing_file_says_so() {
        let error = Checkpoint::read(Path::new("/nonexistent/checkpoint.bin")).unwrap_err();
        assert!(matches!(error, CheckpointError::Missing { .. }), "{error}");
    }
}
