//! Recording allocator failures: an allocation failure is kept for
//! [`last_failure`] and printed (it is then returned as a null pointer, and
//! Rust's allocation error handler stops the program). The printing, and
//! stopping the program on a bad free, are the page allocator crate's
//! ([`ebbrt_page_alloc::report_alloc_failure`], [`ebbrt_page_alloc::bad_free`]),
//! shared with the talc allocator.

use core::sync::atomic::{AtomicBool, Ordering};

use ebbrt_page_alloc::AllocError;

/// The last allocation failure, kept for diagnostics.
static LAST: spin::Mutex<Option<AllocError>> = spin::Mutex::new(None);

/// The most recent allocation failure of the general-purpose allocator.
pub fn last_failure() -> Option<AllocError> {
    *LAST.lock()
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
    ebbrt_page_alloc::report_alloc_failure(e);
    REPORTING.store(false, Ordering::Release);
}
