//! TensorBoard event files: every run folder holds one, so `tensorboard --logdir runs` shows
//! every run's curves side by side.
//!
//! **What is logged.** The scalars are named as the columns of `metrics.csv`, at the same `step`
//! (updates made before the value was measured):
//! - `train_loss`: with full batches (the lesson), every update's loss; with mini-batches, each
//!   epoch's mean, as `metrics.csv` has it, and `batch_loss`, every update's own;
//! - `lr`: every update's learning rate, at the step its loss was measured (an epoch row of
//!   `metrics.csv` at step `s` gives the rate of the update at `s - 1`, its last);
//! - `valid_loss`, `accuracy` and `error_rate`: each epoch's, when the run validates;
//! - `config`: the run's `config.toml` as text (a Markdown TOML block), at the step the run (or
//!   its resumption) starts.
//!
//! **Written here, not by a crate.** The Rust crates that write event files are stale
//! (tensorboard-rs 0.5.9 from 2022 on protobuf 2, tfrecord 0.15 from 2023 on prost 0.12) and
//! bring more than is needed. The format is small: TFRecord framing (length, masked CRC-32C,
//! payload, masked CRC-32C) around five protobuf messages, declared below with prost's derive
//! (field numbers from TensorBoard's `event.proto`, `summary.proto` and `tensor.proto`), and the
//! CRC-32C from the maintained `crc32c` crate.
//!
//! **Buffered.** Records go through a buffer, flushed at each epoch's end and when the log is
//! flushed or dropped, so logging costs a step a few hundred nanoseconds. An interrupted or
//! diverged run keeps what it logged.
//!
//! **Resumed runs append, without repeating steps.** [`EventLog::resume`] first rewrites the
//! folder's event file (atomically) without what was logged after the checkpoint it continues
//! from (a run killed after its last checkpoint logged further), and without a torn last record.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message as _;

use crate::observe::Observer;
use crate::report::{MetricsRow, RunFolder, RunFolderError};
use crate::train::BatchEnd;

/// The start of an event file's name; TensorBoard reads every file whose name holds `tfevents`.
pub const EVENTS_PREFIX: &str = "events.out.tfevents.";

/// The largest event file a resumed run reads back (larger ones are left as they are, and the
/// resumed run logs into a new file).
const MAX_RESUMED_BYTES: u64 = 1 << 30;

/// A run's TensorBoard log, an [`Observer`] of its training.
pub struct EventLog {
    path: PathBuf,
    file: BufWriter<File>,
    /// Full-batch training: every update's loss is `train_loss`, not `batch_loss`.
    full_batch: bool,
    /// The rows of `metrics.csv` already logged.
    rows_logged: usize,
    /// The first write that failed; logging stops there, and [`EventLog::flush`] reports it.
    error: Option<std::io::Error>,
}

/// Why the log could not be written.
pub type EventLogError = RunFolderError;

impl EventLog {
    /// A new event file in `folder` for a run trained with full batches or not, starting with
    /// the run's configuration `config_toml`.
    pub fn create(folder: &RunFolder, full_batch: bool, config_toml: &str) -> Result<Self, EventLogError> {
        let path = folder.path().join(file_name());
        let file = File::create_new(&path).map_err(|error| write_error(&path, &error))?;
        let mut log = Self::open(path, file, full_batch, 0);
        log.append(&Event {
            wall_time: now(),
            file_version: Some("brain.Event:2".into()),
            ..Event::default()
        });
        log.text("config", 0, &as_markdown(config_toml));
        log.flush()?;
        Ok(log)
    }

    /// The event file of `folder` continued at update `step`, with `rows` of `metrics.csv`
    /// already logged (the checkpoint's): what the earlier run logged from `step` on is removed
    /// first. A folder without an event file (written before descent logged them) gets a new one.
    pub fn resume(
        folder: &RunFolder,
        full_batch: bool,
        (step, rows): (usize, usize),
        config_toml: &str,
    ) -> Result<Self, EventLogError> {
        let existing = event_files(folder.path());
        let Some(last) = existing.last() else {
            let mut log = Self::create(folder, full_batch, config_toml)?;
            log.rows_logged = rows;
            return Ok(log);
        };
        for path in &existing {
            truncate_to(folder, path, |tag, at| keeps(tag, at, step as i64, full_batch))?;
        }
        let file = OpenOptions::new().append(true).open(last).map_err(|error| write_error(last, &error))?;
        let mut log = Self::open(last.clone(), file, full_batch, rows);
        log.text("config", step, &as_markdown(config_toml));
        log.flush()?;
        Ok(log)
    }

    fn open(path: PathBuf, file: File, full_batch: bool, rows_logged: usize) -> Self {
        Self { path, file: BufWriter::with_capacity(64 * 1024, file), full_batch, rows_logged, error: None }
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write what is buffered; the first write that failed, if one did.
    pub fn flush(&mut self) -> Result<(), EventLogError> {
        if self.error.is_none()
            && let Err(error) = self.file.flush()
        {
            self.error = Some(error);
        }
        match &self.error {
            Some(error) => Err(write_error(&self.path, error)),
            None => Ok(()),
        }
    }

    /// Log `value` under `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: usize, value: f64) {
        let value = Value { tag: tag.into(), simple_value: Some(value as f32), ..Value::default() };
        self.summary(step, value);
    }

    /// Log `text` under `tag` at `step` (TensorBoard's Text tab; Markdown).
    pub fn text(&mut self, tag: &str, step: usize, text: &str) {
        let value = Value {
            tag: tag.into(),
            tensor: Some(TensorProto { dtype: DT_STRING, string_val: vec![text.as_bytes().to_vec()] }),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData { plugin_name: "text".into(), content: Vec::new() }),
            }),
            ..Value::default()
        };
        self.summary(step, value);
    }

    fn summary(&mut self, step: usize, value: Value) {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let event = Event {
            wall_time: now(),
            step,
            summary: Some(Summary { value: vec![value] }),
            ..Event::default()
        };
        self.append(&event);
    }

    fn append(&mut self, event: &Event) {
        if self.error.is_none()
            && let Err(error) = self.file.write_all(&record(&event.encode_to_vec()))
        {
            self.error = Some(error);
        }
    }
}

impl Observer for EventLog {
    fn batch(&mut self, end: &BatchEnd) -> std::ops::ControlFlow<()> {
        if let Some(update) = end.update {
            // The loss was measured before the update: after `end.step - 1` updates.
            let step = end.step.saturating_sub(1);
            self.scalar(if self.full_batch { "train_loss" } else { "batch_loss" }, step, update.loss);
            self.scalar("lr", step, update.lr);
        }
        std::ops::ControlFlow::Continue(())
    }

    fn epoch(&mut self, _epoch: usize, rows: &[MetricsRow]) {
        for row in rows.iter().skip(self.rows_logged) {
            if !self.full_batch {
                self.scalar("train_loss", row.step, row.train_loss);
            }
            for (tag, value) in
                [("valid_loss", row.valid_loss), ("accuracy", row.accuracy), ("error_rate", row.error_rate)]
            {
                if let Some(value) = value {
                    self.scalar(tag, row.step, value);
                }
            }
        }
        self.rows_logged = self.rows_logged.max(rows.len());
        let _ = self.flush();
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Whether a resumed run, continuing at update `resume`, keeps a value `tag` logged at `step`:
/// everything logged before it, and at its step the epoch's figures (logged when the epoch
/// ended, before its checkpoint); every update's values from `resume` on come again.
fn keeps(tag: &str, step: i64, resume: i64, full_batch: bool) -> bool {
    let per_epoch =
        matches!(tag, "valid_loss" | "accuracy" | "error_rate") || (tag == "train_loss" && !full_batch);
    step < resume || (step == resume && per_epoch)
}

/// The event files in `dir`, by name (TensorBoard reads them in that order).
pub fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter(|entry| {
                    entry.file_name().to_str().is_some_and(|name| name.starts_with(EVENTS_PREFIX))
                })
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Rewrite the event file `path` of `folder` (atomically) with only the values `keep` accepts,
/// and without anything after its last whole record.
fn truncate_to(
    folder: &RunFolder,
    path: &Path,
    keep: impl Fn(&str, i64) -> bool,
) -> Result<(), EventLogError> {
    let too_large = fs::metadata(path).map(|meta| meta.len() > MAX_RESUMED_BYTES).unwrap_or(true);
    if too_large {
        return Ok(());
    }
    let bytes = fs::read(path).map_err(|error| write_error(path, &error))?;
    let mut kept = Vec::with_capacity(bytes.len());
    for payload in records(&bytes) {
        let Ok(mut event) = Event::decode(payload) else { break };
        if let Some(summary) = &mut event.summary {
            summary.value.retain(|value| keep(&value.tag, event.step));
            if summary.value.is_empty() {
                continue;
            }
        }
        kept.extend(record(&event.encode_to_vec()));
    }
    if kept == bytes {
        return Ok(());
    }
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    folder.write(name, &kept).map(drop)
}

/// The payloads of the whole, intact records at the start of `bytes`.
fn records(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let header = bytes.get(..12)?;
        let (length, length_crc) = header.split_at(8);
        if masked_crc(length).to_le_bytes() != length_crc {
            return None;
        }
        let length = usize::try_from(u64::from_le_bytes(length.try_into().ok()?)).ok()?;
        let end = length.checked_add(16)?;
        let (payload, crc) = (bytes.get(12..12 + length)?, bytes.get(12 + length..end)?);
        if masked_crc(payload).to_le_bytes() != crc {
            return None;
        }
        bytes = &bytes[end..];
        Some(payload)
    })
}

/// One TFRecord: the payload's length (u64), its masked CRC, the payload, the payload's masked
/// CRC, all little-endian.
fn record(payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
    out
}

/// TFRecord's masked CRC-32C (Castagnoli): rotated right by 15 bits, plus a constant.
fn masked_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// `events.out.tfevents.<seconds>.<host>`, as TensorFlow names its files.
fn file_name() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let host: String =
        host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')).collect();
    format!("{EVENTS_PREFIX}{seconds:010}.{}", if host.is_empty() { "localhost" } else { &host })
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn write_error(path: &Path, error: &std::io::Error) -> EventLogError {
    RunFolderError::Write { path: path.into(), message: error.to_string() }
}

/// The configuration as TensorBoard's Text tab shows it: Markdown, so in a TOML code block.
fn as_markdown(config_toml: &str) -> String {
    format!("```toml\n{}\n```", config_toml.trim_end())
}

/// `DT_STRING` of TensorFlow's `DataType`.
const DT_STRING: i32 = 7;

/// `tensorboard.Event`, the fields written: `wall_time` 1, `step` 2, `file_version` 3,
/// `summary` 5.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// `tensorboard.Summary`: `value` 1.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<Value>,
}

/// `tensorboard.Summary.Value`: `tag` 1, `simple_value` 2 (optional, so that 0.0 is written),
/// `tensor` 8, `metadata` 9.
#[derive(Clone, PartialEq, prost::Message)]
struct Value {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
}

/// `tensorboard.SummaryMetadata`: `plugin_data` 1.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

/// `tensorboard.SummaryMetadata.PluginData`: `plugin_name` 1, `content` 2.
#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

/// `tensorboard.TensorProto`, a rank-0 string: `dtype` 1, `string_val` 8.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(bytes = "vec", repeated, tag = "8")]
    string_val: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Update;

    fn scalars(path: &Path) -> Vec<(String, i64, f32)> {
        let bytes = fs::read(path).unwrap();
        records(&bytes)
            .map(|payload| Event::decode(payload).unwrap())
            .filter_map(|event| {
                let value = event.summary?.value.into_iter().next()?;
                Some((value.tag, event.step, value.simple_value?))
            })
            .collect()
    }

    fn batch(step: usize, loss: f64) -> BatchEnd {
        BatchEnd { epoch: 1, batch: step, batches: 10, step, loss, update: Some(Update { lr: 0.1, loss }) }
    }

    #[test]
    fn the_masked_crc_is_tensorflows() {
        // CRC-32C's check value (of "123456789") is 0xe3069283; masked as TFRecord masks it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let c: u32 = 0xe306_9283;
        assert_eq!(masked_crc(b"123456789"), ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn records_frame_and_read_back_and_a_torn_tail_is_dropped() {
        let mut bytes = record(b"first");
        bytes.extend(record(b""));
        bytes.extend(record(b"third"));
        let whole: Vec<&[u8]> = records(&bytes).collect();
        assert_eq!(whole, [&b"first"[..], b"", b"third"]);
        let torn = &bytes[..bytes.len() - 3];
        assert_eq!(records(torn).count(), 2);
        let mut damaged = bytes.clone();
        damaged[13] ^= 1; // a bit of "first"
        assert_eq!(records(&damaged).count(), 0);
    }

    #[test]
    fn a_zero_is_written_and_a_resume_keeps_each_step_once() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::create(Some(&dir.path().join("run")), "test").unwrap();
        let mut log = EventLog::create(&folder, false, "seed = 1").unwrap();
        // Two epochs of 3 updates each; the run is killed after update 5, its checkpoint at 3.
        for step in 1..=5 {
            let _ = log.batch(&batch(step, step as f64));
            if step == 3 {
                let row = MetricsRow {
                    step: 3,
                    epoch: 1,
                    train_loss: 0.0,
                    valid_loss: Some(1.5),
                    ..Default::default()
                };
                log.epoch(1, &[row]);
            }
        }
        drop(log);
        let before = scalars(&event_files(folder.path())[0]);
        assert!(before.contains(&("train_loss".into(), 3, 0.0)), "{before:?}");
        assert_eq!(before.iter().filter(|(tag, ..)| tag == "batch_loss").count(), 5);

        let mut log = EventLog::resume(&folder, false, (3, 1), "seed = 1").unwrap();
        for step in 4..=6 {
            let _ = log.batch(&batch(step, 10.0 * step as f64));
        }
        drop(log);
        assert_eq!(event_files(folder.path()).len(), 1);
        let after = scalars(&event_files(folder.path())[0]);
        let losses: Vec<(i64, f32)> = after
            .iter()
            .filter(|(tag, ..)| tag == "batch_loss")
            .map(|(_, step, value)| (*step, *value))
            .collect();
        assert_eq!(losses, [(0, 1.0), (1, 2.0), (2, 3.0), (3, 40.0), (4, 50.0), (5, 60.0)]);
        let epoch: Vec<_> =
            after.iter().filter(|(tag, ..)| tag == "valid_loss" || tag == "train_loss").collect();
        assert_eq!(epoch, [&("train_loss".into(), 3, 0.0), &("valid_loss".into(), 3, 1.5)]);
    }

    #[test]
    fn keeps_what_came_before_the_resumed_step() {
        assert!(keeps("lr", 2, 3, true));
        assert!(!keeps("lr", 3, 3, true));
        assert!(!keeps("train_loss", 3, 3, true));
        assert!(keeps("train_loss", 3, 3, false));
        assert!(keeps("accuracy", 3, 3, false));
        assert!(!keeps("accuracy", 4, 3, false));
        assert!(!keeps("config", 3, 3, false));
        assert!(keeps("config", 0, 3, false));
    }
}
