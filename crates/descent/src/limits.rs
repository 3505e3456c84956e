//! Bounds on what input may ask for: every file is read through a limit, and every size that
//! comes from input is checked against the memory it implies before anything is allocated.
//!
//! - Configuration files (`--config`, `--optim`, `--schedule`, a token file) are refused above
//!   [`MAX_CONFIG_BYTES`].
//! - A CSV record (a line, or several when a quoted field holds line breaks) is refused above
//!   [`MAX_CSV_RECORD_BYTES`], with the file and the line where it starts.
//! - Sizes (`data.n`, an IDX header's image count and side, the CNN's channels and kernel) are
//!   multiplied out with checked arithmetic and compared with [`memory_budget`]: what this
//!   process may still allocate, the least of the memory the system has available, the address
//!   space left under `ulimit -v`, and the room left in its cgroup.
//! - Whole files (a run's model, checkpoint and event files) are read by [`read_file`]: regular
//!   files only, never past the size they had when opened.
//! - Files descent creates beside others (temporary files before a rename, probes) are new
//!   files under unguessable names ([`create_private`]), so a link planted there is never
//!   followed.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest finite `f32`, as `f64`: real values from input must lie within ±this, or they
/// become infinite on the device.
pub const F32_MAX: f64 = f32::MAX as f64;

/// Whether `value` is finite and within the f32 range.
pub fn within_f32(value: f64) -> bool {
    value.is_finite() && value.abs() <= F32_MAX
}

/// The largest configuration file read: 1 MiB (the built-in ones are under 1 KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The longest CSV record read: 1 MiB, about 50,000 numeric columns.
pub const MAX_CSV_RECORD_BYTES: u64 = 1 << 20;

/// Read the text file at `path`, refusing one larger than `limit` bytes without reading past it
/// (so `/dev/zero` or an endless pipe costs `limit` bytes, not all the memory).
pub fn read_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    String::from_utf8(bytes)
        .map_err(|error| ReadError::NotUtf8 { valid_up_to: error.utf8_error().valid_up_to() })
}

/// Why [`read_text`] could not read a file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The operating system could not open or read it.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is larger than the limit.
    #[error("the file is larger than {}; a configuration file is at most that", Bytes(*limit))]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// It is not UTF-8 text.
    #[error("the file is not UTF-8 text (byte {valid_up_to} is not valid UTF-8)")]
    NotUtf8 {
        /// The offset of the first byte that is not.
        valid_up_to: usize,
    },
}

/// `.NAME.KIND-PID-RANDOM`: the name of a temporary or probe file beside `NAME`, with 64 random
/// bits (from the standard library's per-process random hash keys), so that nobody can plant a
/// file or link under it beforehand.
pub fn private_name(name: &str, kind: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    format!(".{name}.{kind}-{}-{:016x}", std::process::id(), hasher.finish())
}

/// Create `path` for writing, failing if anything is there already, a link included
/// (`O_CREAT | O_EXCL`: a link planted under the name is never followed).
pub fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

/// A new file in `folder` named after `name` ([`private_name`]), created with `O_EXCL`: for
/// temporary and probe files anywhere descent writes.
pub fn create_private(
    folder: &Path,
    name: &str,
    kind: &str,
) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let path = folder.join(private_name(name, kind));
    create_new(&path).map(|file| (path, file))
}

/// Read the whole of the regular file at `path`, never more than the size it had when opened,
/// and only when that size fits in memory ([`check_memory`]). The size comes from the opened
/// file, so a link is judged by what it points at: a link to `/dev/zero` or a FIFO (whose size
/// says nothing of what reading it gives) is refused as not a regular file instead of being read
/// until memory runs out, and a file that grows while it is read is read as it was.
pub fn read_file(path: &Path) -> Result<Vec<u8>, FileError> {
    let regular = |metadata: std::fs::Metadata| match metadata.is_file() {
        true => Ok(metadata),
        false => Err(FileError::NotRegular { kind: file_kind(&metadata.file_type()) }),
    };
    // Checked before opening (opening a FIFO for reading waits for a writer), and again on the
    // opened file (the name may have been replaced in between).
    regular(std::fs::metadata(path)?)?;
    let file = std::fs::File::open(path)?;
    let size = regular(file.metadata()?)?.len();
    check_memory(Some(size)).map_err(|error| FileError::TooLarge { size, error })?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(size).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// What a file that is not a regular file is, for messages.
pub fn file_kind(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        for (is, name) in [
            (kind.is_fifo(), "a FIFO (named pipe)"),
            (kind.is_char_device(), "a character device"),
            (kind.is_block_device(), "a block device"),
            (kind.is_socket(), "a socket"),
        ] {
            if is {
                return name;
            }
        }
    }
    "a special file"
}

/// Why [`read_file`] could not read a file: the sentence after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The operating system could not open or read it.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A directory, a device, a FIFO or a socket.
    #[error("it is {kind}, not a regular file")]
    NotRegular {
        /// What it is.
        kind: &'static str,
    },
    /// Larger than the memory the process may still use.
    #[error("it holds {}, and reading it {error}", Bytes(*size))]
    TooLarge {
        /// Its size in bytes.
        size: u64,
        /// The memory check's refusal.
        error: MemoryError,
    },
}

/// Why [`check_memory`] refused a size: the sentence after what asked for it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The size overflows 64 bits.
    #[error("would need more memory than any machine has (the size overflows 64 bits)")]
    Overflow,
    /// The size is beyond what the process may allocate.
    #[error("would need about {} of memory; this process can allocate about {} more", Bytes(*needed), Bytes(*available))]
    Exceeds {
        /// Bytes asked for.
        needed: u64,
        /// Bytes the process may still allocate.
        available: u64,
    },
}

/// A byte count written for people: `512 bytes`, `1.0 MiB`, `23.4 GiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        if self.0 < 1024 {
            return write!(f, "{} bytes", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

/// The product of `factors`, or `None` when it overflows `u64` (which no memory holds anyway).
pub fn product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |total, &factor| total.checked_mul(factor))
}

/// How many bytes this process may still allocate, when the system says: the least of
/// `MemAvailable`, the address space left under `RLIMIT_AS` (`ulimit -v`), and the room left
/// in the process's cgroup (v2). `None` where none of them can be read (not Linux).
pub fn memory_budget() -> Option<u64> {
    [available_memory(), address_space_left(), cgroup_room()].into_iter().flatten().min()
}

/// Check that `bytes` (or an overflow, `None`) fits in [`memory_budget`]; the error is the
/// sentence "would need about X of memory; this process can allocate about Y more", for the caller to prefix
/// with what asked for it. Where the budget is unknown only an overflow is refused.
pub fn check_memory(bytes: Option<u64>) -> Result<(), MemoryError> {
    match (bytes, memory_budget()) {
        (None, _) => Err(MemoryError::Overflow),
        (Some(needed), Some(available)) if needed > available => {
            Err(MemoryError::Exceeds { needed, available })
        }
        _ => Ok(()),
    }
}

/// `MemAvailable` from `/proc/meminfo`.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kibibytes_field(&text, "MemAvailable:")
}

/// `RLIMIT_AS` less the address space in use (`VmSize`), from `/proc/self`.
fn address_space_left() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max address space"))?;
    let soft: u64 = line["Max address space".len()..].split_whitespace().next()?.parse().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = kibibytes_field(&status, "VmSize:").unwrap_or(0);
    Some(soft.saturating_sub(used))
}

/// `memory.max` less `memory.current` of the process's cgroup (v2), when it has a limit.
fn cgroup_room() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = membership.lines().find_map(|line| line.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(relative.trim_start_matches('/'));
    let max: u64 = std::fs::read_to_string(dir.join("memory.max")).ok()?.trim().parse().ok()?;
    let current: u64 = std::fs::read_to_string(dir.join("memory.current")).ok()?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// The value of a `Name:   1234 kB` line, in bytes.
fn kibibytes_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Text from input (a CSV header, a file name) made safe to print: control characters escaped as
/// `\u{1b}`, and cut to `max_chars` characters with `…` after it.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Start the pool of worker threads every parallel kernel runs on (rayon's global pool, of
/// `RAYON_NUM_THREADS` threads or one per core) now, rather than at the first parallel loop:
/// there a thread that cannot be started (its stack's address space refused under `ulimit -v`,
/// or a cap on processes) would be a panic in the middle of a run. Here it is a sentence before
/// anything starts. Calling it again, or after the pool started, does nothing.
pub fn start_workers() -> Result<(), String> {
    static STARTED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    STARTED
        .get_or_init(|| {
            rayon::ThreadPoolBuilder::new().build_global().map_err(|error| {
                format!(
                    "cannot start the worker threads: {error}; each needs address space for its stack: \
                     raise the process's limit (`ulimit -v`), or set RAYON_NUM_THREADS=1"
                )
            })
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(Bytes(512).to_string(), "512 bytes");
        assert_eq!(Bytes(1 << 20).to_string(), "1.0 MiB");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
        assert_eq!(Bytes(u64::MAX).to_string(), "16.0 EiB");
    }

    #[test]
    fn products_overflow_to_none() {
        assert_eq!(product(&[4, 1 << 31, 1 << 31]), None);
        assert_eq!(product(&[1 << 33, 1 << 31]), None);
        assert_eq!(product(&[60_000, 28, 28, 4]), Some(188_160_000));
        assert_eq!(product(&[]), Some(1));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_after_reading_only_the_limit() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&[b'a'; 2000]).unwrap();
        let error = read_text(file.path(), 1024).unwrap_err().to_string();
        assert!(error.contains("larger than 1.0 KiB"), "{error}");
        assert_eq!(read_text(file.path(), 2000).unwrap().len(), 2000);
        // An endless file: read up to the limit, then refused.
        let error = read_text(Path::new("/dev/zero"), MAX_CONFIG_BYTES).unwrap_err().to_string();
        assert!(error.contains("larger than 1.0 MiB"), "{error}");
    }

    #[test]
    fn the_budget_is_known_on_linux_and_refuses_the_impossible() {
        if cfg!(target_os = "linux") {
            let budget = memory_budget().expect("Linux reports available memory");
            assert!(budget > 1 << 20, "{budget}");
            // Not `budget + 1`: other tests free memory while this one runs, so the budget read
            // a moment later may be larger. No machine has 8 EiB available.
            let error = check_memory(Some(u64::MAX / 2)).unwrap_err().to_string();
            assert!(error.contains("would need about 8.0 EiB"), "{error}");
        }
        assert!(check_memory(Some(1024)).is_ok());
        assert_eq!(check_memory(None), Err(MemoryError::Overflow));
    }

    #[test]
    fn printable_escapes_and_truncates() {
        assert_eq!(printable("a\u{1b}[31mb", 80), "a\\u{1b}[31mb");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("line\nbreak", 80), "line\\nbreak");
    }
}
