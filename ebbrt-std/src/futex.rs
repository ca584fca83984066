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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use ebbrt_core::sync::Mutex;

    #[test]
    fn a_contended_mutex_sleeps_and_every_waiter_is_woken() {
        // With the hosted platform installed, waiters past their spins
        // sleep here (futex) and are woken by the releases: a lost wake-up
        // would hang this test, a broken exclusion would lose an update.
        crate::testing::instance();
        assert!(ebbrt_core::platform::try_get().is_some());
        let m = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    for i in 0..2_000 {
                        let mut g = m.lock();
                        *g += 1;
                        if i % 100 == 0 {
                            // Held across a sleep: the others give up spinning.
                            thread::sleep(std::time::Duration::from_micros(200));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 12_000);
        assert!(!m.is_locked());
    }

    #[test]
    fn wait_returns_at_once_when_the_word_has_changed() {
        let word = std::sync::atomic::AtomicU32::new(1);
        // Expected 2, word 1: the kernel returns EAGAIN instead of sleeping.
        super::wait(&word, 2);
        super::wake_one(&word);
    }
}
