//! `predict --input` from a stream: standard input (`-`, `/dev/stdin`), a pipe or a FIFO.
//!
//! Every reader of `predict` opens its input by path, and deciding which one to call means
//! looking at the input's first bytes: on a regular file that is harmless, but a stream would
//! lose what the look consumed, and a second open of `/dev/stdin` reads on from there. A
//! stream is therefore read once, whole, into a private temporary file named after what its
//! first bytes say it is (`input.png`, `input.jpg`, `input-idx3-ubyte`, `input-idx3-ubyte.gz`
//! or `input.csv`), and the readers read that; their messages name the stream the user gave.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::data::PNG_SIGNATURE;
use crate::limits::{Bytes, MAX_CSV_RECORD_BYTES, check_memory, memory_budget, private_name};

/// Whether `input` is a stream to spool: `-`, or something that exists and is neither a
/// regular file nor a folder (a pipe, a FIFO, a character device such as `/dev/stdin`).
pub fn is_stream(input: &Path) -> bool {
    input.as_os_str() == "-"
        || std::fs::metadata(input).is_ok_and(|metadata| !metadata.is_file() && !metadata.is_dir())
}

/// The name messages give the stream: `standard input` for `-`, the path otherwise.
pub fn stream_name(input: &Path) -> String {
    if input.as_os_str() == "-" { "standard input".to_string() } else { input.display().to_string() }
}

/// A stream's bytes in a private temporary folder, removed when dropped.
#[derive(Debug)]
pub struct Spooled {
    folder: PathBuf,
    /// The file the readers are given.
    pub path: PathBuf,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Read the stream `input` whole and write it to a new private folder under the system's
/// temporary folder. Never more than this process could hold in memory (where every reader
/// puts it anyway); and a text stream stops at its first line longer than a CSV record may be
/// (the copy then ends inside that line, and the CSV reader refuses it by its number, as it
/// would the stream itself), so `--input /dev/zero` ends at once. The errors are sentences
/// naming the stream.
pub fn spool(input: &Path) -> Result<Spooled, String> {
    let name = stream_name(input);
    let mut reader = open_stream(input).map_err(|e| format!("--input {name}: {e}"))?;
    let mut first = Vec::new();
    (&mut reader).take(SNIFF_BYTES).read_to_end(&mut first).map_err(|e| format!("--input {name}: {e}"))?;
    let suffix = suffix(&first);
    let folder = std::env::temp_dir().join(private_name("descent-predict", "input"));
    let path = folder.join(format!("input{suffix}"));
    let copied = create_folder(&folder).and_then(|()| {
        let mut out = std::io::BufWriter::new(crate::limits::create_new(&path)?);
        copy(&first, reader, &mut out, suffix == ".csv")?;
        std::io::Write::flush(&mut out)
    });
    match copied {
        Ok(()) => Ok(Spooled { folder, path }),
        Err(error) => {
            let _ = std::fs::remove_dir_all(&folder);
            let place = std::env::temp_dir();
            Err(match error.kind() {
                std::io::ErrorKind::OutOfMemory => format!("--input {name}: {error}"),
                _ => format!(
                    "--input {name}: cannot keep a copy of it in {} to read it: {error}",
                    place.display()
                ),
            })
        }
    }
}

/// How much of a stream is looked at to tell what it is.
const SNIFF_BYTES: u64 = 64 << 10;

fn open_stream(input: &Path) -> std::io::Result<Box<dyn Read>> {
    Ok(if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(input)?)
    })
}

/// Copy `first`, then the rest of `reader`, into `out`: refused past the memory budget, and for
/// `text`, stopped once a line is longer than a CSV record may be.
fn copy(
    first: &[u8],
    mut reader: impl Read,
    out: &mut impl std::io::Write,
    text: bool,
) -> std::io::Result<()> {
    let limit = memory_budget().unwrap_or(u64::MAX);
    let (mut total, mut line) = (0u64, 0u64);
    let mut buffer = vec![0u8; first.len().max(64 << 10)];
    let mut chunk = first.len();
    buffer[..chunk].copy_from_slice(first);
    while chunk > 0 {
        let bytes = &buffer[..chunk];
        total += chunk as u64;
        if total > limit {
            let detail = check_memory(Some(total))
                .err()
                .map_or_else(|| format!("more than {}", Bytes(limit)), |e| e.to_string());
            return Err(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                format!("the stream is too large to hold in memory: {detail}"),
            ));
        }
        out.write_all(bytes)?;
        if text {
            line = match bytes.iter().rposition(|&b| b == b'\n') {
                Some(at) => (chunk - at - 1) as u64,
                None => line + chunk as u64,
            };
            if line > MAX_CSV_RECORD_BYTES {
                return Ok(());
            }
        }
        chunk = loop {
            match reader.read(&mut buffer) {
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
    }
    Ok(())
}

/// A folder only this user can enter, failing if the name is taken (a planted link included).
fn create_folder(folder: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(folder)
}

/// What the first bytes say the stream is, as a file name's ending the readers dispatch on.
fn suffix(start: &[u8]) -> &'static str {
    if start.starts_with(PNG_SIGNATURE) {
        ".png"
    } else if start.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ".jpg"
    } else if start.starts_with(&[0, 0, 8, 3]) {
        "-idx3-ubyte"
    } else if start.starts_with(&[0x1F, 0x8B]) {
        "-idx3-ubyte.gz"
    } else {
        ".csv"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_name_the_copy() {
        assert_eq!(suffix(b"\x89PNG\r\n\x1a\n...."), ".png");
        assert_eq!(suffix(&[0xFF, 0xD8, 0xFF, 0xE0]), ".jpg");
        assert_eq!(suffix(&[0, 0, 8, 3, 0, 0, 0, 1]), "-idx3-ubyte");
        assert_eq!(suffix(&[0x1F, 0x8B, 8, 0]), "-idx3-ubyte.gz");
        assert_eq!(suffix(b"x\n1\n"), ".csv");
        assert_eq!(suffix(b""), ".csv");
    }

    #[test]
    fn a_fifo_is_read_once_whole_and_its_copy_removed() {
        let dir = std::env::temp_dir().join(private_name("descent-spool-test", "dir"));
        std::fs::create_dir(&dir).unwrap();
        let fifo = dir.join("rows");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.is_ok_and(|s| s.success()) {
            return; // no mkfifo here: the integration tests cover pipes
        }
        assert!(is_stream(&fifo));
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, b"x\n0.5\n-1\n").unwrap())
        };
        let spooled = spool(&fifo).unwrap();
        writer.join().unwrap();
        assert_eq!(std::fs::read(&spooled.path).unwrap(), b"x\n0.5\n-1\n");
        assert!(spooled.path.to_string_lossy().ends_with("input.csv"));
        let folder = spooled.folder.clone();
        drop(spooled);
        assert!(!folder.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
