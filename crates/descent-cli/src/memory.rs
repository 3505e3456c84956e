//! Running out of memory ends the command with one sentence, not a bare abort.
//!
//! descent checks the sizes it can foresee (a data set, a picture's frame, a model's tensors)
//! against what the process may allocate before it allocates, and refuses them by name. What it
//! cannot foresee (a run whose steps need more than a tight `ulimit -v` leaves, a batch system's
//! cap lowered mid-run) ends in Rust's allocation-failure handler, which prints `memory
//! allocation of N bytes failed` and aborts (SIGABRT, exit code 134, or a core dump). Stable Rust
//! has no hook into that handler, so the allocator remembers the size of a request it could not
//! meet, and a SIGABRT handler that finds one says what happened and what to do, and exits with
//! code 2 as the foreseen refusals do. Files are written atomically, so none is left half
//! written; the run's last checkpoint is whole.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// mimalloc, remembering the size of the last request it could not meet.
pub struct Allocator;

/// The size of the last allocation request that failed; 0 while none has.
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// A request that failed: remembered (a request handled by its caller, such as
/// `Vec::try_reserve`'s, is remembered too, which matters only if an abort follows).
fn note(pointer: *mut u8, size: usize) -> *mut u8 {
    if pointer.is_null() {
        FAILED.store(size.max(1), Ordering::Relaxed);
    }
    pointer
}

// SAFETY: every call goes to mimalloc with the caller's arguments; only a null result is noted.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(unsafe { mimalloc::MiMalloc.alloc(layout) }, layout.size())
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }, layout.size())
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(unsafe { mimalloc::MiMalloc.realloc(pointer, layout, new_size) }, new_size)
    }
}

/// Say "out of memory" on the abort that follows a failed allocation (Unix).
pub fn install() {
    #[cfg(unix)]
    // SAFETY: `on_abort` only reads an atomic, formats into a stack buffer and calls
    // async-signal-safe functions (`write`, `_exit`, `signal`, `raise`).
    unsafe {
        let handler = on_abort as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGABRT, handler);
    }
}

#[cfg(unix)]
extern "C" fn on_abort(_: libc::c_int) {
    let size = FAILED.load(Ordering::Relaxed);
    // SAFETY: async-signal-safe calls only; the buffer outlives the `write`.
    unsafe {
        if size == 0 {
            // Not an allocation failure: abort as before.
            libc::signal(libc::SIGABRT, libc::SIG_DFL);
            libc::raise(libc::SIGABRT);
            return;
        }
        let mut line = [0u8; 320];
        let length = sentence(size, &mut line);
        libc::write(2, line.as_ptr().cast(), length);
        libc::_exit(2);
    }
}

/// The sentence for a failed request of `size` bytes, written into `out` without allocating;
/// returns its length.
fn sentence(size: usize, out: &mut [u8]) -> usize {
    const BEFORE: &[u8] = b"error: out of memory: an allocation of ";
    const AFTER: &[u8] = b" bytes failed, beyond what this process may use (its memory or address-space \
        limit, such as `ulimit -v` or a container's cap); raise the limit, or use a smaller \
        --batch-size (files already written are whole)\n";
    let mut digits = [0u8; 20];
    let mut count = 0;
    let mut rest = size;
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut length = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(out.len() - length);
        out[length..length + n].copy_from_slice(&bytes[..n]);
        length += n;
    };
    put(BEFORE);
    for i in (0..count).rev() {
        put(&digits[i..=i]);
    }
    put(AFTER);
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentence_names_the_size_and_the_remedy() {
        let mut out = [0u8; 320];
        let length = sentence(8_400_000_000, &mut out);
        let text = std::str::from_utf8(&out[..length]).unwrap();
        assert!(text.starts_with("error: out of memory: an allocation of 8400000000 bytes failed"), "{text}");
        assert!(text.contains("ulimit -v") && text.contains("--batch-size") && text.ends_with('\n'));
        let length = sentence(1, &mut out);
        assert!(std::str::from_utf8(&out[..length]).unwrap().contains(" of 1 bytes"));
    }
}
