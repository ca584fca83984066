//! Per-core timers: `sleep`, `sleep_until`, `timeout`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use crate::cpu::{self, CoreId};
use crate::platform::Platform;
use crate::time::Instant;

/// A core's armed timers, ordered by deadline (then by arming order).
pub(crate) struct Timers {
    armed: RefCell<BTreeMap<(u64, u64), Waker>>,
    seq: Cell<u64>,
}

impl Timers {
    pub(crate) const fn new() -> Self {
        Timers {
            armed: RefCell::new(BTreeMap::new()),
            seq: Cell::new(0),
        }
    }

    fn arm(&self, deadline: Instant, waker: Waker) -> u64 {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        self.armed
            .borrow_mut()
            .insert((deadline.as_nanos(), seq), waker);
        seq
    }

    fn rearm(&self, deadline: Instant, seq: u64, waker: &Waker) -> bool {
        match self.armed.borrow_mut().get_mut(&(deadline.as_nanos(), seq)) {
            Some(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    fn disarm(&self, deadline: Instant, seq: u64) {
        self.armed.borrow_mut().remove(&(deadline.as_nanos(), seq));
    }

    pub(crate) fn len(&self) -> usize {
        self.armed.borrow().len()
    }

    /// Wakes every timer that is due; returns the next deadline.
    pub(crate) fn fire_due(&self, p: &dyn Platform) -> Option<Instant> {
        if self.armed.borrow().is_empty() {
            return None;
        }
        let now = p.now().as_nanos();
        let mut due = Vec::new();
        let next = {
            let mut armed = self.armed.borrow_mut();
            while let Some(entry) = armed.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            armed.keys().next().map(|k| Instant::from_nanos(k.0))
        };
        // Wake after releasing the borrow: waking may arm timers.
        for w in due {
            w.wake();
        }
        next
    }
}

fn timers() -> &'static Timers {
    &crate::percore::local().exec.timers
}

/// A future that completes at a deadline. Its timer lives on the core that
/// polls it.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    armed: Option<(CoreId, u64)>,
}

/// Completes after `d`.
pub fn sleep(d: Duration) -> Sleep {
    sleep_until(Instant::now() + d)
}

/// Completes at `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        armed: None,
    }
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some((core, seq)) = self.armed.take()
                && cpu::try_current() == Some(core)
            {
                timers().disarm(self.deadline, seq);
            }
            return Poll::Ready(());
        }
        let core = cpu::current();
        let t = timers();
        match self.armed {
            Some((c, seq)) if c == core && t.rearm(self.deadline, seq, cx.waker()) => {}
            _ => {
                let seq = t.arm(self.deadline, cx.waker().clone());
                self.armed = Some((core, seq));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((core, seq)) = self.armed {
            // Off its core (a future moved by hand), the stale timer just
            // fires once into a waker nobody listens to.
            if cpu::try_current() == Some(core) {
                timers().disarm(self.deadline, seq);
            }
        }
    }
}

/// The error of a [`timeout`] that elapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl core::error::Error for Elapsed {}

/// Runs `future` for at most `d`.
pub fn timeout<F: Future>(d: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(d),
    }
}

/// The future of [`timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of `future`; `sleep` is `Unpin`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `future` is never moved out of the pinned `Timeout`.
        if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
