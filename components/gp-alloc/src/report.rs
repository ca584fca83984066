//! Reporting allocator failures without allocating: an allocation failure
//! is printed (it is then returned as a null pointer, and Rust's allocation
//! error handler stops the program), a bad free detected in a debug build
//! stops the program at once.
//!
//! Hosted, messages go straight to file descriptor 2 from a stack buffer;
//! natively through the `log` logger (the serial console), and a bad free
//! panics (the native panic handler prints it and exits with a failure).
#![allow(unsafe_code)]

#[cfg(not(target_os = "none"))]
use core::fmt;
#[cfg(not(target_os = "none"))]
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use ebbrt_page_alloc::{AllocError, FreeError};

/// The last allocation failure, kept for diagnostics.
static LAST: spin::Mutex<Option<AllocError>> = spin::Mutex::new(None);

/// The most recent allocation failure of the general-purpose allocator.
pub fn last_failure() -> Option<AllocError> {
    *LAST.lock()
}

#[cfg(not(target_os = "none"))]
struct StackBuf {
    buf: [u8; 512],
    len: usize,
}

#[cfg(not(target_os = "none"))]
impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(not(target_os = "none"))]
fn emit(args: fmt::Arguments<'_>) {
    let mut b = StackBuf {
        buf: [0; 512],
        len: 0,
    };
    let _ = b.write_fmt(args);
    let _ = b.write_str("\n");
    // SAFETY: writes `len` initialised bytes of our buffer to stderr.
    unsafe { libc::write(2, b.buf.as_ptr().cast(), b.len) };
}

/// Records and prints an allocation failure (never recursively: a failure
/// while reporting one is only recorded).
pub(crate) fn alloc_failure(e: &AllocError) {
    static REPORTING: AtomicBool = AtomicBool::new(false);
    if let Some(mut last) = LAST.try_lock() {
        *last = Some(*e);
    }
    if REPORTING.swap(true, Ordering::Acquire) {
        return;
    }
    #[cfg(not(target_os = "none"))]
    emit(format_args!("ebbrt: {e}"));
    #[cfg(target_os = "none")]
    log::error!("{e}");
    REPORTING.store(false, Ordering::Release);
}

/// Stops the program on a bad free caught by a debug build.
#[cold]
pub(crate) fn bad_free(e: &FreeError) -> ! {
    #[cfg(not(target_os = "none"))]
    {
        emit(format_args!("ebbrt: fatal: {e}"));
        // SAFETY: aborting is always sound; unwinding out of an allocator
        // is not allowed, and the heap cannot be trusted any more.
        unsafe { libc::abort() }
    }
    #[cfg(target_os = "none")]
    panic!("ebbrt: fatal: {e}")
}
