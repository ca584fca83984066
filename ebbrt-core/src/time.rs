//! Monotonic time as seen by the event loops, and the clock Ebb.

use core::ops::{Add, Sub};
use core::time::Duration;

use crate::EbbRef;
use crate::ebb::ids;

/// The clock: the monotonic time of this instance, from the platform's
/// timer hardware (natively the TSC, calibrated at boot against pvclock,
/// CPUID or the HPET/PIT; hosted `CLOCK_MONOTONIC`).
///
/// A shared Ebb at the well-known id [`ids::CLOCK`] in static storage.
/// [`Instant::now`] reads the same clock without the Ebb call; the Ebb is
/// where the clock's service is named, listed and reached like every other
/// system service.
#[crate::ebb(shared, id = ids::CLOCK, static_rep = clock)]
pub struct Clock {
    _private: (),
}

static CLOCK_INSTANCE: Clock = Clock { _private: () };

fn clock() -> &'static Clock {
    &CLOCK_INSTANCE
}

/// The clock Ebb.
pub static CLOCK: EbbRef<Clock> = EbbRef::fixed();

impl Clock {
    /// The current instant.
    #[inline]
    pub fn now(&self) -> Instant {
        crate::platform::get().now()
    }
}

/// A point on the platform's monotonic clock, in nanoseconds since an
/// arbitrary per-instance origin (boot on native, process start hosted).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// An instant from nanoseconds since the clock's origin.
    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }
    /// Nanoseconds since the clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// The current time, from the running platform.
    pub fn now() -> Self {
        crate::platform::get().now()
    }
    /// Time elapsed since `self` (zero if `self` is in the future).
    pub fn elapsed(self) -> Duration {
        Self::now().saturating_duration_since(self)
    }
    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ns))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}
