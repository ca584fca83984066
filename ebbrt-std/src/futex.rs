//! Waiting on a lock word (`futex(2)`), for `ebbrt_core::sync::Mutex`.

use std::sync::atomic::AtomicU32;

/// Sleeps until `word` is woken by [`wake_one`] or no longer holds
/// `expected` (checked atomically by the kernel), or a signal arrives.
pub(crate) fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT reads the u32 at `word`'s address, which is a live
    // AtomicU32 borrowed for the whole call; a null timeout waits without
    // one; the other arguments are ignored by this operation. Spurious
    // returns (EAGAIN, EINTR) are fine: the caller looks at the word again.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes one thread sleeping in [`wait`] on `word`.
pub(crate) fn wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses `word`'s address as a key (a live
    // AtomicU32); it writes nothing.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}
