//! A lock for data that cores share, e.g. a shared Ebb's writer side.
//!
//! [`Mutex`] is [`lock_api`]'s mutex over [`RawLock`], a lock word that a
//! waiter first spins on and then hands to the platform
//! ([`Platform::lock_wait`](crate::platform::Platform::lock_wait)):
//! natively the platform spins on (a core is never preempted, so the
//! holder is running); hosted the thread sleeps on a futex until the holder
//! releases the lock. A spin lock alone is wrong hosted: Linux may preempt
//! the holder, and a waiter spinning on another CPU then holds that CPU
//! for the rest of its time slice while the holder waits for one.
//! Outside a runtime (plain threads in host tests) waiters spin.
//!
//! ```
//! use ebbrt_core::sync::Mutex;
//!
//! let m = Mutex::new(1);
//! *m.lock() += 1;
//! assert_eq!(*m.lock(), 2);
//! ```

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use lock_api::GuardSend;

use crate::platform;

/// Free.
const UNLOCKED: u32 = 0;
/// Held, no waiter asleep (as far as the holder knows).
const LOCKED: u32 = 1;
/// Held, and a waiter may be asleep: the release must wake one.
const CONTENDED: u32 = 2;
/// How many times a waiter looks at the word before it asks the platform
/// to wait: long enough for a short critical section on another core.
const SPINS: u32 = 100;

/// The lock word of a [`Mutex`].
#[derive(Debug)]
pub struct RawLock {
    state: AtomicU32,
}

impl RawLock {
    #[cold]
    fn lock_contended(&self) {
        for _ in 0..SPINS {
            if self.state.load(Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        // From here the word says CONTENDED while anyone waits, so the
        // holder's release wakes a sleeper.
        while self.state.swap(CONTENDED, Acquire) != UNLOCKED {
            match platform::try_get() {
                Some(p) => p.lock_wait(&self.state, CONTENDED),
                None => core::hint::spin_loop(),
            }
        }
    }
}

// SAFETY: `lock` and `try_lock` return only after moving the word from
// UNLOCKED to LOCKED or CONTENDED with an atomic read-modify-write, so at
// most one caller holds the lock at a time; `unlock` (called only by the
// holder, as `RawMutex` requires) stores UNLOCKED with Release, which the
// next holder's Acquire pairs with. The guard may cross threads: the word
// does not care which thread releases it.
unsafe impl lock_api::RawMutex for RawLock {
    // An associated const of a lock type is what `lock_api` requires here;
    // each use makes a fresh, unlocked word.
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: RawLock = RawLock {
        state: AtomicU32::new(UNLOCKED),
    };
    type GuardMarker = GuardSend;

    #[inline]
    fn lock(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            .is_ok()
    }

    // SAFETY: the caller holds the lock (`RawMutex::unlock`'s contract,
    // which `lock_api`'s guard keeps); the body itself does nothing unsafe:
    // one atomic swap and, if someone may sleep, a wake of the word.
    #[inline]
    unsafe fn unlock(&self) {
        if self.state.swap(UNLOCKED, Release) == CONTENDED
            && let Some(p) = platform::try_get()
        {
            p.lock_wake(&self.state);
        }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.state.load(Relaxed) != UNLOCKED
    }
}

/// A mutual-exclusion lock for data shared between cores (see the module
/// docs for how its waiters wait).
pub type Mutex<T> = lock_api::Mutex<RawLock, T>;

/// The guard of a locked [`Mutex`]; the lock is released when it drops.
pub type MutexGuard<'a, T> = lock_api::MutexGuard<'a, RawLock, T>;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use std::thread;

    #[test]
    fn threads_that_contend_lose_no_update() {
        // No platform here: waiters spin, and through the CONTENDED path.
        let m = Arc::new(Mutex::new(0u64));
        let threads: alloc::vec::Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    for _ in 0..20_000 {
                        let mut g = m.lock();
                        *g += 1;
                        if *g % 1000 == 0 {
                            // Hold it a while so that others go past spinning.
                            for _ in 0..2000 {
                                core::hint::spin_loop();
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 80_000);
        assert!(!m.is_locked());
    }

    #[test]
    fn try_lock_fails_while_held() {
        let m = Mutex::new(());
        let g = m.lock();
        assert!(m.try_lock().is_none());
        drop(g);
        assert!(m.try_lock().is_some());
    }
}
