//! The small interface a runtime implements for the executor.
//!
//! The executor in [`crate::exec`] is platform-independent; it asks the
//! platform for only four things. The hosted runtime (`ebbrt-std`) implements
//! them over `mio`; the native kernel core over the LAPIC, IPIs and `hlt`.
//! Core identity and the core count are not here: they live in the per-core
//! block that the runtime sets up with [`crate::cpu::enter`].

use core::sync::atomic::AtomicU32;

use crate::cpu::CoreId;
use crate::time::Instant;

/// What a runtime provides to the per-core event loops.
pub trait Platform: Sync + 'static {
    /// The monotonic clock.
    fn now(&self) -> Instant;

    /// Makes `core` return from [`Platform::idle`] soon (an IPI on native,
    /// the event loop's waker hosted). May be called from any core, and must
    /// not be lost if `core` is not idle yet: the next `idle` returns at once.
    fn wake(&self, core: CoreId);

    /// Called by the current core's event loop when it has nothing to run.
    /// Arms a timer for `deadline` (if any), then waits until a wake, a
    /// platform event (I/O readiness, a device interrupt) or the deadline,
    /// dispatching the platform events it finds (they wake futures).
    /// With `deadline` already past, it only dispatches pending events.
    fn idle(&self, deadline: Option<Instant>);

    /// Dispatches pending platform events without waiting. The loop calls it
    /// between batches of tasks so that I/O is not starved by busy cores.
    fn poll(&self);

    /// Dispatches pending platform events without waiting, as an idle core
    /// that polls instead of halting does: natively it also lets pending
    /// interrupts in (they are otherwise taken only while halted) and
    /// clears this core's pending wake, which the loop sees in its queues.
    fn idle_poll(&self) {
        self.poll()
    }

    /// Called by a [`crate::sync::Mutex`] waiter that has spun for a while
    /// on a lock whose word `word` still holds `expected`: returns when it
    /// may be worth trying again. The default spins, reading the word
    /// until it changes (a native core is never preempted, so the holder is
    /// running and will release soon; reading, not writing, keeps the line
    /// shared among the waiters); hosted, the thread sleeps until
    /// [`Platform::lock_wake`] (a futex), so that a holder that Linux
    /// preempted can have this CPU.
    fn lock_wait(&self, word: &AtomicU32, expected: u32) {
        while word.load(core::sync::atomic::Ordering::Relaxed) == expected {
            core::hint::spin_loop();
        }
    }

    /// Wakes one waiter sleeping in [`Platform::lock_wait`] on `word`. The
    /// default does nothing (its waiters spin).
    fn lock_wake(&self, word: &AtomicU32) {
        let _ = word;
    }
}

static PLATFORM: spin::Once<&'static dyn Platform> = spin::Once::new();

/// Installs the platform. Called once, by the runtime, before any core runs.
/// A second call is ignored and returns `false`.
pub fn install(p: &'static dyn Platform) -> bool {
    let mut installed = false;
    PLATFORM.call_once(|| {
        installed = true;
        p
    });
    installed
}

/// The running platform, if a runtime has started.
#[inline]
pub fn try_get() -> Option<&'static dyn Platform> {
    PLATFORM.get().copied()
}

/// The running platform.
///
/// # Panics
/// If no runtime has started.
#[inline]
pub fn get() -> &'static dyn Platform {
    match PLATFORM.get() {
        Some(p) => *p,
        None => panic!("no EbbRT runtime is running (platform not installed)"),
    }
}
