//! The run folder: every training command writes its effective configuration and its summary
//! into one folder (`--out DIR`, default `runs/<command>-<UTC time>`), and nothing outside it.
//! Files are written atomically: to a temporary file in the same folder, then renamed.
//!
//! A run holds an exclusive lock on its folder for its whole life (`flock` on the folder itself:
//! an OS lock that dies with the process, so a killed run leaves no stale lock). A second run
//! with the same `--out`, or a `--resume` of a folder whose run is still going, is refused before
//! it writes anything.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::files::{CONFIG_FILE, METRICS_FILE};

use burn::module::Module;

/// A folder that holds one run's outputs, locked for as long as any clone of it lives.
#[derive(Clone, Debug)]
pub struct RunFolder {
    path: PathBuf,
    /// The open folder (or lock file) holding the exclusive lock until the last clone is
    /// dropped; `None` for a folder written into without being a run's (the parent of
    /// `--output FILE`).
    _lock: Option<Arc<fs::File>>,
    /// Writes nothing: the folder of a process other than rank 0 in a job of several (MPI),
    /// where only rank 0 writes. Every write succeeds without touching the disk.
    discard: bool,
}

/// Why the run folder cannot be used. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    /// The folder exists and holds files: a run is never written over another.
    #[error("{} already holds files: choose another --out folder (nothing was changed in it)", path.display())]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// Another process's run holds the folder's lock.
    #[error("{} is in use by another descent run that is still going (it holds the folder's lock): wait for it to end, or choose another folder (nothing was changed in it)", path.display())]
    InUse {
        /// The folder.
        path: PathBuf,
    },
    /// The folder does not exist.
    #[error("{} is not a folder (no such run folder)", path.display())]
    Missing {
        /// The folder.
        path: PathBuf,
    },
    /// A file in the folder cannot be read.
    #[error("cannot read {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The folder or a file in it cannot be created or written.
    #[error("cannot write {}: {message}", path.display())]
    Write {
        /// The folder or file.
        path: PathBuf,
        /// What the operating system said.
        message: String,
    },
}

impl RunFolder {
    /// Create `out`, or `runs/<command>-<UTC time>` when `out` is `None`, and lock it. An
    /// existing empty folder is used, and so is the folder of a run that ended before its first
    /// checkpoint ([`is_stillborn`]: its start's files are replaced); one with other files in
    /// it, or locked by a run that is still going, is refused.
    pub fn create(out: Option<&Path>, command: &str) -> Result<Self, RunFolderError> {
        let (path, stillborn) = match out {
            Some(path) => {
                let stillborn = match check_empty(path) {
                    Ok(()) => false,
                    Err(RunFolderError::NotEmpty { .. }) if is_stillborn(path) => true,
                    Err(error) => return Err(error),
                };
                fs::create_dir_all(path).map_err(|e| write_error(path, e))?;
                (path.to_path_buf(), stillborn)
            }
            None => {
                let stamp = utc_stamp(SystemTime::now());
                (create_unique(&Path::new("runs").join(format!("{command}-{stamp}")))?, false)
            }
        };
        let lock = lock(&path)?;
        // Under the lock (a run still going before its first checkpoint holds it): the files of
        // a start that never reached a checkpoint go, and nothing else.
        if stillborn && is_stillborn(&path) {
            for entry in fs::read_dir(&path).map_err(|e| write_error(&path, e))?.flatten() {
                if !is_lock_file(&entry.file_name()) {
                    fs::remove_file(entry.path()).map_err(|e| write_error(&entry.path(), e))?;
                }
            }
        }
        // Another run may have written here between the check above and the lock.
        check_empty(&path)?;
        Ok(Self { path, _lock: Some(lock), discard: false })
    }

    /// An existing run folder, locked, to continue its run (`--resume DIR`).
    pub fn open(path: &Path) -> Result<Self, RunFolderError> {
        let folder = Self::open_unlocked(path)?;
        let lock = lock(path)?;
        Ok(Self { _lock: Some(lock), ..folder })
    }

    /// An existing run folder, to read only (`descent config show --resume DIR`): not locked,
    /// so it works while the run goes on.
    pub fn open_unlocked(path: &Path) -> Result<Self, RunFolderError> {
        if !path.is_dir() {
            return Err(RunFolderError::Missing { path: path.into() });
        }
        Ok(Self { path: path.into(), _lock: None, discard: false })
    }

    /// A run folder that writes nothing, for a process other than rank 0 in a job of several:
    /// `path` is rank 0's folder, for messages; nothing is created, locked or written.
    pub fn discarding(path: &Path) -> Self {
        Self { path: path.into(), _lock: None, discard: true }
    }

    /// Whether the folder writes nothing ([`Self::discarding`]).
    pub fn discards(&self) -> bool {
        self.discard
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write `name` in the folder atomically: readers see the old file or the new one, never a
    /// part of it.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, RunFolderError> {
        self.write_with(name, contents, |_| Ok(()))
    }

    /// [`Self::write`], calling `before_rename` with the temporary file once it is written and
    /// synced (tests use it to fail there, as a process killed at that moment would). On an
    /// error the temporary file is removed and the old file, if any, is left as it was.
    pub(crate) fn write_with(
        &self,
        name: &str,
        contents: &[u8],
        before_rename: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<PathBuf, RunFolderError> {
        let target = self.path.join(name);
        if self.discard {
            return Ok(target);
        }
        let temporary = self.path.join(crate::limits::private_name(name, "tmp"));
        // Errors name the file being written, not the hidden temporary one, and say that what was
        // there before is intact (the rename that replaces it is the last step).
        let kept = |e: std::io::Error| RunFolderError::Write {
            path: target.clone(),
            message: format!("{e} (nothing was replaced: the earlier {name}, if any, is as it was)"),
        };
        let written = crate::limits::create_new(&temporary)
            .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()))
            .and_then(|()| before_rename(&temporary))
            .and_then(|()| fs::rename(&temporary, &target))
            .map_err(kept);
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written.map(|()| target)
    }
}

impl RunFolder {
    /// Save `model`'s parameters as `model.bpk` (Burn's burnpack format), atomically, and its
    /// SHA-256 as `model.sha256` (`sha256sum -c model.sha256` checks it; so does
    /// [`load_saved`](super::load_saved)). Load it back with `Module::load_file` on a model of
    /// the same configuration, or with [`load_saved`](super::load_saved).
    pub fn save_model<M: Module>(&self, model: M) -> Result<PathBuf, RunFolderError> {
        if self.discard {
            return Ok(self.path.join(super::MODEL_FILE));
        }
        let bytes = model.into_record().into_bytes().map_err(|e| RunFolderError::Write {
            path: self.path.join(super::MODEL_FILE),
            message: format!("cannot serialize the model: {e:?}"),
        })?;
        let path = self.write(super::MODEL_FILE, &bytes)?;
        let line = format!("{}  {}\n", sha256_hex(&bytes), super::MODEL_FILE);
        self.write(super::CHECKSUM_FILE, line.as_bytes())?;
        Ok(path)
    }
}

/// Whether `path` is written into rather than replaced: standard output (`-`), or an existing
/// special file (a FIFO, a terminal, `/dev/null`, `/dev/stdout`), followed through links.
fn written_into(path: &Path) -> bool {
    path.as_os_str() == "-"
        || fs::metadata(path).is_ok_and(|metadata| !metadata.is_file() && !metadata.is_dir())
}

/// Write `contents` to `path` atomically (a temporary file in the same folder, then a rename), for
/// files outside a run folder (`descent predict --output`, `descent export --output`). `-` is
/// standard output, and an existing special file (a FIFO, a device such as `/dev/null`, a link to
/// one) is written into, never replaced.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), RunFolderError> {
    if written_into(path) {
        let written = if path.as_os_str() == "-" {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(contents).and_then(|()| stdout.flush())
        } else {
            fs::OpenOptions::new().write(true).open(path).and_then(|mut file| file.write_all(contents))
        };
        return written.map_err(|e| write_error(path, e));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RunFolderError::Write { path: path.into(), message: "not a file name".into() })?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(RunFolderError::Missing { path: parent.into() });
    }
    RunFolder { path: parent.into(), _lock: None, discard: false }.write(name, contents).map(|_| ())
}

/// Check, before the work that produces it, that [`write_atomic`] can write `path`: a file name
/// in an existing folder where a file can be created, and not a folder itself. Nothing is left
/// behind.
pub fn check_writable(path: &Path) -> Result<(), RunFolderError> {
    if written_into(path) {
        return Ok(()); // written into, not replaced: nothing to create beside it
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| RunFolderError::Write { path: path.into(), message: "not a file name".into() })?;
    if path.is_dir() {
        return Err(RunFolderError::Write {
            path: path.into(),
            message: "it is a folder, not a file".into(),
        });
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(RunFolderError::Write {
            path: path.into(),
            message: format!("{} is not a folder", parent.display()),
        });
    }
    let probe = parent.join(crate::limits::private_name(name, "probe"));
    crate::limits::create_new(&probe).map_err(|e| write_error(path, e))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

fn write_error(path: &Path, error: std::io::Error) -> RunFolderError {
    RunFolderError::Write { path: path.into(), message: error.to_string() }
}

/// The name of the lock file where a folder cannot be locked itself (not Unix).
const LOCK_FILE: &str = ".descent.lock";

/// Whether `name` is the folder's lock file, which listings pass over (there is one only where
/// a folder cannot be locked itself: not on Unix).
fn is_lock_file(name: &std::ffi::OsStr) -> bool {
    cfg!(not(unix)) && name == LOCK_FILE
}

/// Whether `path` holds what a run writes at its start and nothing more: its `config.toml`,
/// perhaps TensorBoard event files, a `metrics.csv` and temporaries of writes cut short, all
/// regular files, and no checkpoint or model. That is the folder of a run killed (or ended by a
/// closed pipe, `descent lesson2 | head -1`) before its first checkpoint: nothing in it can be
/// resumed, and starting the run again in it loses nothing.
pub fn is_stillborn(path: &Path) -> bool {
    let Ok(entries) = fs::read_dir(path) else { return false };
    let mut config = false;
    for entry in entries {
        let Ok(entry) = entry else { return false };
        if is_lock_file(&entry.file_name()) {
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let regular = entry.file_type().is_ok_and(|kind| kind.is_file());
        let started = name == CONFIG_FILE
            || name == METRICS_FILE
            || name.starts_with(super::tensorboard::EVENTS_PREFIX)
            || (name.starts_with('.') && name.contains(".tmp-"));
        if !regular || !started {
            return false;
        }
        config |= name == CONFIG_FILE;
    }
    config
}

/// Refuse a folder that holds files (the lock file aside).
fn check_empty(path: &Path) -> Result<(), RunFolderError> {
    if !path.exists() {
        return Ok(());
    }
    let mut entries = fs::read_dir(path).map_err(|e| write_error(path, e))?;
    if entries.any(|entry| entry.as_ref().map_or(true, |e| !is_lock_file(&e.file_name()))) {
        return Err(RunFolderError::NotEmpty { path: path.into() });
    }
    Ok(())
}

/// Take the folder's exclusive lock, without waiting: `flock` on the folder itself on Unix, on a
/// lock file in it elsewhere. The lock is released when the file closes, at the latest when the
/// process ends, however it ends.
fn lock(path: &Path) -> Result<Arc<fs::File>, RunFolderError> {
    #[cfg(unix)]
    let file = fs::File::open(path);
    #[cfg(not(unix))]
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(path.join(LOCK_FILE));
    let file = file.map_err(|e| write_error(path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Arc::new(file)),
        Err(fs::TryLockError::WouldBlock) => Err(RunFolderError::InUse { path: path.into() }),
        Err(fs::TryLockError::Error(error)) => Err(RunFolderError::Write {
            path: path.into(),
            message: format!("cannot lock it for this run: {error}"),
        }),
    }
}

/// Create a new folder at `path`, or `path-2`, `path-3`, ... when that exists already (two runs
/// started in the same second get one each: creating a folder is atomic).
fn create_unique(path: &Path) -> Result<PathBuf, RunFolderError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
    }
    let mut candidate = path.to_path_buf();
    let mut suffix = 1u64;
    loop {
        match fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                suffix += 1;
                candidate = PathBuf::from(format!("{}-{suffix}", path.display()));
            }
            Err(error) => return Err(write_error(&candidate, error)),
        }
    }
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn utc_stamp(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// `bytes` in lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The SHA-256 of `bytes`, in lowercase hex (`model.sha256` holds the model's).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        // 2026-11-22 05:21:13 UTC
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(1_795_324_873)), "20261122-052113");
        // 2024-02-29 23:59:59 UTC, a leap day
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(1_709_251_199)), "20240229-235959");
    }

    #[test]
    fn a_folder_with_files_is_refused_and_left_alone() {
        let folder = tempfile::tempdir().unwrap();
        fs::write(folder.path().join("summary.json"), "{}").unwrap();
        assert!(matches!(
            RunFolder::create(Some(folder.path()), "test"),
            Err(RunFolderError::NotEmpty { .. })
        ));
        assert_eq!(fs::read_to_string(folder.path().join("summary.json")).unwrap(), "{}");
    }

    #[test]
    fn a_folder_is_locked_while_its_run_lives() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("run");
        let run = RunFolder::create(Some(&path), "test").unwrap();
        // Another open file description (another process, or another open here) cannot take it.
        assert!(matches!(RunFolder::create(Some(&path), "test"), Err(RunFolderError::InUse { .. })));
        assert!(matches!(RunFolder::open(&path), Err(RunFolderError::InUse { .. })));
        // Reading without the lock still works.
        RunFolder::open_unlocked(&path).unwrap();
        let clone = run.clone();
        drop(run);
        assert!(matches!(RunFolder::open(&path), Err(RunFolderError::InUse { .. })), "a clone holds it");
        drop(clone);
        RunFolder::open(&path).expect("released when the last clone goes");
    }

    #[test]
    fn default_folders_of_one_second_are_distinct() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("lesson2-20260101-000000");
        let first = create_unique(&base).unwrap();
        let second = create_unique(&base).unwrap();
        assert_eq!(first, base);
        assert_eq!(second, root.path().join("lesson2-20260101-000000-2"));
    }

    #[test]
    fn check_writable_refuses_folders_and_missing_parents_and_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        check_writable(&root.path().join("out.json")).unwrap();
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0, "the probe is removed");
        assert!(check_writable(root.path()).unwrap_err().to_string().contains("a folder"));
        let missing = root.path().join("no/such/out.json");
        assert!(check_writable(&missing).unwrap_err().to_string().contains("is not a folder"));
    }

    #[test]
    fn writes_replace_files_whole() {
        let folder = tempfile::tempdir().unwrap();
        let run = RunFolder::create(Some(&folder.path().join("run")), "test").unwrap();
        run.write("config.toml", b"seed = 1\n").unwrap();
        run.write("config.toml", b"seed = 2\n").unwrap();
        assert_eq!(fs::read_to_string(run.path().join("config.toml")).unwrap(), "seed = 2\n");
        assert_eq!(fs::read_dir(run.path()).unwrap().count(), 1, "no temporary file left behind");
    }
}
