//! Ctrl-C (SIGINT) and SIGTERM during training: the first finishes the current step, writes a
//! checkpoint and exits with code 130; a second exits at once. Every file is written atomically,
//! so exiting at once loses at most the checkpoint being written, never a whole file.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Signals received since [`install`].
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Catch SIGINT and SIGTERM from now on (training commands call it just before training).
pub fn install() {
    #[cfg(unix)]
    // SAFETY: `on_signal` only touches an atomic and calls `_exit`, both async-signal-safe.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether a signal asked the run to stop.
pub fn requested() -> bool {
    SIGNALS.load(Ordering::Relaxed) > 0
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    if SIGNALS.fetch_add(1, Ordering::Relaxed) > 0 {
        // SAFETY: `_exit` is async-signal-safe; the second signal means "now".
        unsafe { libc::_exit(130) };
    }
}
