//! Ctrl-C (SIGINT) and SIGTERM during training: the first stops the run after the update under
//! way (the library's [`Interrupter`]: a checkpoint is written, exit 130); a second exits at
//! once. Every file is written atomically, so exiting at once loses at most the checkpoint being
//! written, never a whole file. A failing standard output stops the run the same way.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use descent::train::Interrupter;

/// Signals received since [`install`].
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Whether this process is one of an MPI job's: a second signal then does not exit at once.
/// A Ctrl-C at a terminal reaches each process twice (from the terminal, and passed on by
/// `mpirun`), and every process must reach the update the job stops at, so that rank 0 can
/// write its checkpoint; the launcher kills whatever still runs when it gives up waiting.
static IN_JOB: AtomicBool = AtomicBool::new(false);

/// The command's run's handle, which the signal handler and a failed write to standard output
/// stop.
static RUN: OnceLock<Interrupter> = OnceLock::new();

/// The handle of the command's run: stopped by Ctrl-C and SIGTERM from now on, and by a failure
/// to write to standard output.
pub fn install() -> Interrupter {
    let interrupter = RUN.get_or_init(Interrupter::new).clone();
    IN_JOB.store(descent::world::World::current().is_parallel(), Ordering::Relaxed);
    #[cfg(unix)]
    // SAFETY: `on_signal` only touches atomics (through an initialised `OnceLock`) and calls
    // `_exit`, all async-signal-safe.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    interrupter
}

/// Stop the command's run (standard output failed): the one under way, or the one about to
/// start.
pub fn stop() {
    RUN.get_or_init(Interrupter::new).stop();
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    if SIGNALS.fetch_add(1, Ordering::Relaxed) > 0 && !IN_JOB.load(Ordering::Relaxed) {
        // SAFETY: `_exit` is async-signal-safe; the second signal means "now".
        unsafe { libc::_exit(130) };
    }
    // `install` made the handle before it installed this handler: `get` only reads.
    if let Some(interrupter) = RUN.get() {
        interrupter.stop();
    }
}
