//! The hosted `Platform`: what the executor of `ebbrt-core` asks of Linux.
//!
//! - `now`: `CLOCK_MONOTONIC` (through `std::time::Instant`), in nanoseconds
//!   since the instance started.
//! - `wake(core)`: a write to that core's `mio::Waker` (an `eventfd`
//!   registered edge-triggered in the core's epoll set). Every write makes a
//!   new edge, and a write done before the core calls `epoll_wait` stays
//!   pending in the eventfd, so the next `idle` returns at once: a wake is
//!   never lost, whichever of `wake` and `idle` comes first. The wakers are
//!   created for every core before any core runs, so a wake can never find
//!   a core without one.
//! - `idle(deadline)`: `epoll_wait` until an event, with the core's
//!   `timerfd` armed for the deadline.
//! - `poll`: a zero-timeout `epoll_wait`.

use std::time::Duration;

use ebbrt_core::cpu::CoreId;
use ebbrt_core::platform::Platform;
use ebbrt_core::time::Instant;
use std::sync::atomic::AtomicU32;

use crate::reactor;

/// The platform of a hosted instance.
pub(crate) struct HostedPlatform {
    start: std::time::Instant,
    wakers: Box<[mio::Waker]>,
}

impl HostedPlatform {
    /// Builds the platform and one `mio::Poll` per core, each with its
    /// waker registered. Core `i` must install `polls[i]` as its reactor.
    pub(crate) fn new(cores: usize) -> std::io::Result<(HostedPlatform, Vec<mio::Poll>)> {
        let mut polls = Vec::with_capacity(cores);
        let mut wakers = Vec::with_capacity(cores);
        for _ in 0..cores {
            let poll = mio::Poll::new()?;
            wakers.push(mio::Waker::new(poll.registry(), reactor::WAKE_TOKEN)?);
            polls.push(poll);
        }
        let platform = HostedPlatform {
            start: std::time::Instant::now(),
            wakers: wakers.into_boxed_slice(),
        };
        Ok((platform, polls))
    }
}

impl Platform for HostedPlatform {
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn wake(&self, core: CoreId) {
        let Some(w) = self.wakers.get(core.index()) else {
            panic!(
                "wake of {core}, but this instance has {} cores",
                self.wakers.len()
            );
        };
        // An eventfd write fails only if the descriptor is gone; going on
        // would leave the core asleep with work queued.
        if let Err(e) = w.wake() {
            panic!("cannot wake {core}: {e}");
        }
    }

    fn idle(&self, deadline: Option<Instant>) {
        match deadline {
            None => reactor::turn(None),
            Some(d) => {
                let after = d.saturating_duration_since(self.now());
                reactor::turn_until(d.as_nanos(), after);
            }
        }
    }

    fn poll(&self) {
        reactor::turn(Some(Duration::ZERO));
    }

    fn lock_wait(&self, word: &AtomicU32, expected: u32) {
        crate::futex::wait(word, expected);
    }

    fn lock_wake(&self, word: &AtomicU32) {
        crate::futex::wake_one(word);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use ebbrt_core::cpu::{self, CoreId};
    use ebbrt_core::exec;
    use ebbrt_core::time::Instant;

    use crate::testing::{CORES, block_on, instance, run_on};

    #[test]
    fn cross_core_wakes_are_not_lost() {
        instance();
        let done = Arc::new(AtomicUsize::new(0));
        let rounds = 3000;
        let d = done.clone();
        // Ping-pong between cores 0 and 1: each round trip sleeps and wakes
        // both cores, racing `wake` against `idle` thousands of times.
        block_on(exec::spawn_on(CoreId(0), async move {
            for i in 0..rounds {
                let d = d.clone();
                let target = CoreId(1 + (i % (CORES as u32 - 1)));
                exec::spawn_on(target, async move {
                    d.fetch_add(1, Ordering::Relaxed);
                })
                .await;
            }
        }));
        assert_eq!(done.load(Ordering::Relaxed), rounds as usize);
    }

    #[test]
    fn wakes_from_plain_threads_reach_idle_cores() {
        instance();
        for round in 0..200u32 {
            let core = CoreId(round % CORES as u32);
            assert_eq!(
                block_on(exec::spawn_on(core, async { cpu::current() })),
                core
            );
        }
    }

    #[test]
    fn timers_are_precise_below_a_millisecond() {
        // epoll alone would round each sleep up to a millisecond; the
        // timerfd makes short sleeps short. The fastest of a few is taken,
        // so that a busy machine does not fail the test.
        let fastest = run_on(1, || async {
            let mut best = Duration::MAX;
            for _ in 0..8 {
                let t0 = Instant::now();
                exec::sleep(Duration::from_micros(200)).await;
                best = best.min(t0.elapsed());
            }
            best
        });
        assert!(fastest >= Duration::from_micros(200), "{fastest:?}");
        assert!(
            fastest < Duration::from_micros(900),
            "a 200 µs sleep took {fastest:?}"
        );
    }

    #[test]
    fn the_clock_is_monotonic_and_in_nanoseconds() {
        instance();
        let a = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let b = Instant::now();
        assert!(b - a >= Duration::from_millis(2));
        assert!(b - a < Duration::from_secs(5));
    }
}
