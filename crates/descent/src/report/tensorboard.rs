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
//! **Buffered.** Records go through a buffer, written out at an epoch's end (at most twice a
//! second: a full-batch epoch is one step) and when the run ends, fails or is interrupted
//! ([`EventLog::flush`], or dropping the log). An interrupted or diverged run keeps what it
//! logged.
//!
//! **Resumed runs append, without repeating steps.** [`EventLog::resume`] first rewrites the
//! folder's event file (atomically) without what was logged after the checkpoint it continues
//! from (a run killed after its last checkpoint logged further), and without a torn last record.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;

use crate::config::RunConfig;
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
    /// When the buffer was last written out.
    flushed: Instant,
    /// The record being encoded.
    scratch: Vec<u8>,
}

/// The least time between two flushes at epoch ends without a checkpoint (before a checkpoint
/// the log is always flushed): a full-batch epoch is one step, and a write per step would cost
/// the lesson's 12 µs step about 4%.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Why the log could not be written.
pub type EventLogError = RunFolderError;

impl EventLog {
    /// A new event file in `folder` for a run of configuration `config`, starting with the
    /// configuration as text.
    pub fn create(folder: &RunFolder, config: &RunConfig) -> Result<Self, EventLogError> {
        Self::new_file(folder, config, (0, 0))
    }

    /// The event file of `folder` continued at update `step`, with `rows` of `metrics.csv`
    /// already logged (the checkpoint's): what the earlier run logged from `step` on is removed
    /// first. A folder without an event file (written before descent logged them), or whose
    /// last file is damaged, gets a new one; so does one whose event files are not regular files
    /// (a link, a directory, a FIFO), which are left untouched.
    pub fn resume(
        folder: &RunFolder,
        config: &RunConfig,
        (step, rows): (usize, usize),
    ) -> Result<Self, EventLogError> {
        let full_batch = full_batch(config);
        let keep = |tag: &str, at: i64| keeps(tag, at, step as i64, full_batch);
        // Only the folder's own regular files are read, rewritten or appended to: a link (which
        // could lead out of the folder), a directory or a FIFO under an event file's name is left
        // as it is, and the run logs into a file of its own.
        let existing: Vec<PathBuf> = event_files(folder.path())
            .into_iter()
            .filter(|path| fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_file()))
            .collect();
        let Some((last, earlier)) = existing.split_last() else {
            return Self::new_file(folder, config, (step, rows));
        };
        for path in earlier {
            truncate_to(folder, path, keep)?;
        }
        if !truncate_to(folder, last, keep)? {
            return Self::new_file(folder, config, (step, rows));
        }
        let file = OpenOptions::new().append(true).open(last).map_err(|error| write_error(last, &error))?;
        let mut log = Self::open(last.clone(), file, full_batch, rows);
        log.text("config", step, &as_markdown(&config.to_toml()));
        log.flush()?;
        Ok(log)
    }

    /// A new file, named as TensorFlow names them (with a count after it when a file of that
    /// second exists), its header written and the configuration logged at `step`.
    fn new_file(
        folder: &RunFolder,
        config: &RunConfig,
        (step, rows): (usize, usize),
    ) -> Result<Self, EventLogError> {
        let name = file_name();
        let mut path = folder.path().join(&name);
        let mut count = 0;
        let file = loop {
            match File::create_new(&path) {
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && count < 100 => {
                    count += 1;
                    path = folder.path().join(format!("{name}.{count}"));
                }
                opened => break opened.map_err(|error| write_error(&path, &error))?,
            }
        };
        let mut log = Self::open(path, file, full_batch(config), rows);
        let header =
            Event { wall_time: now(), file_version: Some("brain.Event:2".into()), ..Event::default() };
        log.append(&header);
        log.text("config", step, &as_markdown(&config.to_toml()));
        log.flush()?;
        Ok(log)
    }

    fn open(path: PathBuf, file: File, full_batch: bool, rows_logged: usize) -> Self {
        let file = BufWriter::with_capacity(64 * 1024, file);
        Self {
            path,
            file,
            full_batch,
            rows_logged,
            error: None,
            flushed: Instant::now(),
            scratch: Vec::new(),
        }
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
        self.flushed = Instant::now();
        match &self.error {
            Some(error) => Err(write_error(&self.path, error)),
            None => Ok(()),
        }
    }

    /// Log `value` under `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: usize, value: f64) {
        self.scalar_at(now(), tag, step, value);
    }

    /// [`Self::scalar`] with its wall time. A scalar's event is encoded by hand (the bytes
    /// prost writes for `Event { wall_time, step, summary: { value: [{ tag, simple_value }] } }`,
    /// a test checks), which halves the cost of logging the lesson's steps.
    fn scalar_at(&mut self, wall_time: f64, tag: &str, step: usize, value: f64) {
        if self.error.is_some() {
            return;
        }
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let value_len = 1 + varint_len(tag.len() as u64) + tag.len() + 5;
        let summary_len = 1 + varint_len(value_len as u64) + value_len;
        let buffer = &mut self.scratch;
        buffer.clear();
        buffer.push(0x09); // field 1, 64-bit: wall_time
        buffer.extend_from_slice(&wall_time.to_le_bytes());
        if step != 0 {
            buffer.push(0x10); // field 2, varint: step
            push_varint(buffer, step as u64);
        }
        buffer.push(0x2a); // field 5, length-delimited: summary
        push_varint(buffer, summary_len as u64);
        buffer.push(0x0a); // Summary field 1: value
        push_varint(buffer, value_len as u64);
        buffer.push(0x0a); // Value field 1: tag
        push_varint(buffer, tag.len() as u64);
        buffer.extend_from_slice(tag.as_bytes());
        buffer.push(0x15); // Value field 2, 32-bit: simple_value
        buffer.extend_from_slice(&(value as f32).to_le_bytes());
        self.write_scratch();
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
        if self.error.is_some() {
            return;
        }
        // Encoded into a buffer kept between records, framed straight into the file's buffer.
        self.scratch.clear();
        event.encode_raw(&mut self.scratch);
        self.write_scratch();
    }

    /// Frame the encoded event in `scratch` as a record into the file's buffer.
    fn write_scratch(&mut self) {
        let length = (self.scratch.len() as u64).to_le_bytes();
        let written = [
            &length[..],
            &masked_crc(&length).to_le_bytes(),
            &self.scratch,
            &masked_crc(&self.scratch).to_le_bytes(),
        ]
        .into_iter()
        .try_for_each(|part| self.file.write_all(part));
        if let Err(error) = written {
            self.error = Some(error);
        }
    }
}

impl Observer for EventLog {
    fn scalar(&mut self, tag: &str, step: usize, value: f64) {
        EventLog::scalar(self, tag, step, value);
    }

    fn batch(&mut self, end: &BatchEnd) {
        if let Some(update) = end.update {
            // The loss was measured before the update: after `end.step - 1` updates.
            let (step, wall_time) = (end.step.saturating_sub(1), now());
            let tag = if self.full_batch { "train_loss" } else { "batch_loss" };
            self.scalar_at(wall_time, tag, step, update.loss);
            self.scalar_at(wall_time, "lr", step, update.lr);
        }
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
        if self.flushed.elapsed() >= FLUSH_INTERVAL {
            let _ = EventLog::flush(self);
        }
    }

    fn flush(&mut self) {
        // An error is kept and reported when the run ends (`EventLog::flush`).
        let _ = EventLog::flush(self);
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Whether `config` trains with full batches: every update's loss is then `train_loss`.
fn full_batch(config: &RunConfig) -> bool {
    config.training.batch_size.is_none()
}

/// Whether a resumed run, continuing at update `resume`, keeps a value `tag` logged at `step`:
/// everything logged before it, and at its step the epoch's figures (logged when the epoch
/// ended, before its checkpoint); every update's values from `resume` on come again.
fn keeps(tag: &str, step: i64, resume: i64, full_batch: bool) -> bool {
    let per_epoch =
        matches!(tag, "valid_loss" | "accuracy" | "error_rate") || (tag == "train_loss" && !full_batch);
    step < resume || (step == resume && per_epoch)
}

/// Protobuf's base-128 varint.
fn push_varint(buffer: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buffer.push((value as u8) | 0x80);
        value >>= 7;
    }
    buffer.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
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
/// and without a torn last record (one a killed run left half-written). Whether the resumed run
/// may append to it: a file that is damaged elsewhere (a checksum that does not match, a record
/// that is not an event) or too large to read is left as it is, and the resumed run logs into a
/// new file instead, so that nothing is lost.
fn truncate_to(
    folder: &RunFolder,
    path: &Path,
    keep: impl Fn(&str, i64) -> bool,
) -> Result<bool, EventLogError> {
    let too_large = fs::metadata(path).map(|meta| meta.len() > MAX_RESUMED_BYTES).unwrap_or(true);
    if too_large {
        return Ok(false);
    }
    let bytes = crate::limits::read_file(path)
        .map_err(|error| RunFolderError::Read { path: path.into(), message: error.to_string() })?;
    let (payloads, tail) = parse(&bytes);
    if tail == Tail::Damaged {
        return Ok(false);
    }
    let mut kept = Vec::with_capacity(bytes.len());
    for payload in payloads {
        let Ok(mut event) = Event::decode(payload) else { return Ok(false) };
        if let Some(summary) = &mut event.summary {
            summary.value.retain(|value| keep(&value.tag, event.step));
            if summary.value.is_empty() {
                continue;
            }
        }
        kept.extend(record(&event.encode_to_vec()));
    }
    if kept != bytes {
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        folder.write(name, &kept)?;
    }
    Ok(true)
}

/// How the records of a file end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// With a whole record.
    Whole,
    /// With the start of a record, cut short (a run killed while writing).
    Torn,
    /// With a record whose checksum does not match.
    Damaged,
}

/// The scalars of the event file at `path`, in the order they were logged: `(tag, step, value)`
/// for each, from its whole, intact records (a record torn by a killed run ends the list).
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f32)>, crate::limits::FileError> {
    let bytes = crate::limits::read_file(path)?;
    Ok(parse(&bytes)
        .0
        .into_iter()
        .filter_map(|payload| Event::decode(payload).ok())
        .filter_map(|event| {
            let value = event.summary?.value.into_iter().next()?;
            Some((value.tag, event.step, value.simple_value?))
        })
        .collect())
}

/// The payloads of the whole, intact records at the start of `bytes`, and what follows them.
fn parse(mut bytes: &[u8]) -> (Vec<&[u8]>, Tail) {
    let mut payloads = Vec::new();
    loop {
        if bytes.is_empty() {
            return (payloads, Tail::Whole);
        }
        let Some(header) = bytes.get(..12) else { return (payloads, Tail::Torn) };
        let (length, length_crc) = header.split_at(8);
        if masked_crc(length).to_le_bytes() != length_crc {
            return (payloads, Tail::Damaged);
        }
        let length = u64::from_le_bytes(length.try_into().expect("8 bytes"));
        let end = usize::try_from(length).ok().and_then(|length| length.checked_add(16));
        let Some(end) = end.filter(|&end| end <= bytes.len()) else { return (payloads, Tail::Torn) };
        let (payload, crc) = (&bytes[12..end - 4], &bytes[end - 4..end]);
        if masked_crc(payload).to_le_bytes() != crc {
            return (payloads, Tail::Damaged);
        }
        payloads.push(payload);
        bytes = &bytes[end..];
    }
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
        read_scalars(path).unwrap()
    }

    /// The lesson's configuration, with full batches or in mini-batches of 10.
    fn config(full_batch: bool) -> RunConfig {
        let mut config = RunConfig::default();
        config.training.batch_size = (!full_batch).then_some(10);
        config
    }

    /// A new run folder in a temporary directory, and its new log.
    fn new_log(full_batch: bool) -> (tempfile::TempDir, RunFolder, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::create(Some(&dir.path().join("run")), "test").unwrap();
        let log = EventLog::create(&folder, &config(full_batch)).unwrap();
        (dir, folder, log)
    }

    fn batch(step: usize, loss: f64) -> BatchEnd {
        BatchEnd { epoch: 1, batch: step, batches: 10, step, loss, update: Some(Update { lr: 0.1, loss }) }
    }

    #[test]
    fn the_masked_crc_is_tensorflows() {
        // CRC-32C's check value (of "123456789") is 0xe3069283; masked as TFRecord masks it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let c: u32 = 0xe306_9283;
        assert_eq!(masked_crc(b"123456789"), c.rotate_right(15).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn a_scalar_is_encoded_as_prost_encodes_it() {
        let (_dir, _folder, mut log) = new_log(true);
        let long_tag = "t".repeat(200);
        for (tag, step, value) in
            [("lr", 0, 0.1), ("train_loss", 1, 6.39), (long_tag.as_str(), 300, -0.0), ("x", usize::MAX, 1e30)]
        {
            log.scalar_at(1.5e9, tag, step, value);
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            let value = Value { tag: tag.into(), simple_value: Some(value as f32), ..Value::default() };
            let event = Event {
                wall_time: 1.5e9,
                step,
                summary: Some(Summary { value: vec![value] }),
                ..Event::default()
            };
            assert_eq!(log.scratch, event.encode_to_vec(), "{tag} at {step}");
        }
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut buffer = Vec::new();
            push_varint(&mut buffer, value);
            assert_eq!(buffer.len(), varint_len(value), "{value}");
            assert_eq!(buffer.len(), prost::encoding::encoded_len_varint(value), "{value}");
        }
    }

    #[test]
    fn records_frame_and_read_back_and_a_torn_tail_is_told_from_damage() {
        let mut bytes = record(b"first");
        bytes.extend(record(b""));
        bytes.extend(record(b"third"));
        assert_eq!(parse(&bytes), (vec![&b"first"[..], b"", b"third"], Tail::Whole));
        for cut in [3, 10, 17] {
            let (payloads, tail) = parse(&bytes[..bytes.len() - cut]);
            assert_eq!((payloads.len(), tail), (2, Tail::Torn), "cut {cut}");
        }
        let mut damaged = bytes.clone();
        damaged[13] ^= 1; // a bit of "first"
        assert_eq!(parse(&damaged), (vec![], Tail::Damaged));
        damaged[13] ^= 1;
        damaged[22] ^= 1; // a bit of the second record's length
        assert_eq!(parse(&damaged), (vec![&b"first"[..]], Tail::Damaged));
    }

    #[test]
    fn a_damaged_file_is_left_whole_and_the_resumed_run_logs_beside_it() {
        let (_dir, folder, mut log) = new_log(true);
        for step in 1..=4 {
            log.batch(&batch(step, 1.0));
        }
        drop(log);
        let first = event_files(folder.path())[0].clone();
        let mut bytes = fs::read(&first).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        let mut log = EventLog::resume(&folder, &config(true), (2, 0)).unwrap();
        log.batch(&batch(3, 2.0));
        drop(log);
        assert_eq!(fs::read(&first).unwrap(), bytes, "the damaged file is left as it was");
        let files = event_files(folder.path());
        assert_eq!(files.len(), 2);
        assert_eq!(scalars(&files[1]).iter().filter(|(tag, ..)| tag == "train_loss").count(), 1);
    }

    #[test]
    fn a_zero_is_written_and_a_resume_keeps_each_step_once() {
        let (_dir, folder, mut log) = new_log(false);
        // Two epochs of 3 updates each; the run is killed after update 5, its checkpoint at 3.
        for step in 1..=5 {
            log.batch(&batch(step, step as f64));
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

        let mut log = EventLog::resume(&folder, &config(false), (3, 1)).unwrap();
        for step in 4..=6 {
            log.batch(&batch(step, 10.0 * step as f64));
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
