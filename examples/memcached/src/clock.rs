//! Where the cache reads the time: whole seconds of Unix time, as memcached
//! keeps it (`current_time` ticks once a second).

use core::sync::atomic::{AtomicU64, Ordering};

/// The wall clock the cache reads. Hosted, the system's real-time clock;
/// natively, an epoch handed over at boot plus the monotonic clock (the
/// kernel has no wall clock of its own).
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// A clock that says what it was last told; for tests, and for a runtime
/// that pushes the time in from outside.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock that reads `now`.
    pub const fn new(now: u64) -> Self {
        ManualClock(AtomicU64::new(now))
    }
    /// Sets the time.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::Relaxed);
    }
    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Relative expiry times up to this many seconds (30 days) count from now;
/// larger ones are absolute Unix times (memcached's `REALTIME_MAXDELTA`).
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// When an item with the client's expiry time `exptime` expires, as an
/// absolute Unix time: `None` never, `Some(t)` at `t` (an item whose time
/// is at or before now is already gone). `started` is when the server
/// started: like memcached, an absolute time at or before it means
/// "already expired".
pub fn expiry(exptime: i64, now: u64, started: u64) -> Option<u64> {
    if exptime == 0 {
        return None;
    }
    if exptime < 0 {
        // Negative: expired at once.
        return Some(now.saturating_sub(1).max(1));
    }
    if exptime > REALTIME_MAXDELTA {
        let at = exptime as u64;
        if at <= started {
            return Some(1);
        }
        return Some(at);
    }
    Some(now + exptime as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_memcached() {
        let now = 2_000_000_000;
        let started = now - 100;
        assert_eq!(expiry(0, now, started), None);
        assert_eq!(expiry(10, now, started), Some(now + 10));
        assert_eq!(
            expiry(REALTIME_MAXDELTA, now, started),
            Some(now + 2_592_000)
        );
        // One more second and it is an absolute time.
        assert_eq!(expiry(REALTIME_MAXDELTA + 1, now, started), Some(1));
        assert_eq!(expiry(now as i64 + 50, now, started), Some(now + 50));
        assert!(expiry(-1, now, started).unwrap() < now);
        assert!(expiry(started as i64, now, started).unwrap() < now);
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let c = ManualClock::new(5);
        c.advance(3);
        assert_eq!(c.now(), 8);
        c.set(1);
        assert_eq!(c.now(), 1);
    }
}
