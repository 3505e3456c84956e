//! Checked writes to standard output and standard error. A write that fails (`> /dev/full`, a
//! disk that fills) never panics, as `println!` would: the first failure is remembered, training
//! stops at the next update as on Ctrl-C (with a checkpoint), no run folder is created after it,
//! and the command ends with that error (exit 2). A closed pipe (`descent lesson2 | head`) still
//! ends the program quietly through SIGPIPE, as for other command-line tools.

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

use crate::Failure;

/// Why standard output could not be written, once it could not.
static FAILED: OnceLock<String> = OnceLock::new();

/// This process's rank in the job `main` joined (0 alone): only rank 0 prints; the others print
/// their errors alone, each line prefixed with their rank.
fn rank() -> usize {
    descent::world::World::current().rank()
}

/// Whether this process prints (it is not a rank other than 0 of a job).
pub fn prints() -> bool {
    rank() == 0
}

/// Write `text` and a line break to standard output.
pub fn line(text: fmt::Arguments<'_>) {
    write_stdout(text, true);
}

/// Write `text` to standard output, without a line break.
pub fn text(text: fmt::Arguments<'_>) {
    write_stdout(text, false);
}

fn write_stdout(text: fmt::Arguments<'_>, newline: bool) {
    if FAILED.get().is_some() || rank() != 0 {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let written =
        stdout.write_fmt(text).and_then(|()| if newline { stdout.write_all(b"\n") } else { Ok(()) });
    if let Err(error) = written {
        let _ = FAILED.set(error.to_string());
        crate::interrupt::stop();
    }
}

/// Write `text` and a line break to standard error; a failure there is ignored (there is nowhere
/// left to report it).
pub fn error_line(text: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let rank = rank();
    let prefix = if rank == 0 { Ok(()) } else { write!(stderr, "rank {rank}: ") };
    let _ = prefix.and_then(|()| stderr.write_fmt(text)).and_then(|()| stderr.write_all(b"\n"));
}

/// Why standard output failed, if it did.
pub fn failed() -> Option<&'static str> {
    FAILED.get().map(String::as_str)
}

/// The failure to end with once standard output failed.
pub fn failure() -> Option<Failure> {
    failed().map(|error| Failure::input(format!("cannot write to standard output: {error}")))
}

/// Flush standard output and report a failure so far: called before a run folder is created, so
/// that a run whose output is already lost writes nothing, and before the program ends.
pub fn check() -> Result<(), Failure> {
    if let Err(error) = std::io::stdout().lock().flush() {
        let _ = FAILED.set(error.to_string());
    }
    failure().map_or(Ok(()), Err)
}
