//! One participant's side of RCU: its live read guards and its callbacks,
//! batched per grace period. A core's representative of the RCU Ebb is one;
//! so is a thread of [`Threads`](crate::threads) in host tests.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use crate::domain::Domain;

/// Work deferred until a grace period has passed.
pub(crate) type Callback = Box<dyn FnOnce()>;

/// How many rounds a pass gives callbacks that queue callbacks (whose grace
/// period, on a lone core, is over at once) before leaving them for the
/// next pass.
const ROUNDS: usize = 2;

/// A participant's read guards and callbacks. Owned by one core or thread
/// (`!Sync`).
#[derive(Default)]
pub(crate) struct Local {
    /// Live read guards: while any is, this participant is never quiescent.
    readers: Cell<u32>,
    /// Callbacks queued since the batch in `current` started.
    next: RefCell<Vec<Callback>>,
    /// Callbacks waiting for grace period `target`.
    current: RefCell<Vec<Callback>>,
    target: Cell<u64>,
}

impl Local {
    pub(crate) fn call_rcu(&self, f: Callback) {
        self.next.borrow_mut().push(f);
    }

    /// Callbacks queued and not run yet.
    pub(crate) fn pending(&self) -> usize {
        self.next.borrow().len() + self.current.borrow().len()
    }

    /// A read section begins: come online if this participant was not.
    pub(crate) fn read_enter(&self, d: &Domain, me: usize) {
        let n = self.readers.get();
        if n == 0 && !d.is_online(me) {
            d.online(me);
        }
        self.readers.set(n + 1);
    }

    pub(crate) fn read_exit(&self) {
        self.readers.set(self.readers.get() - 1);
    }

    /// A quiescent state of the participant (a pass of its event loop):
    /// reports it, runs the callbacks whose grace period is over, and starts
    /// one for those queued since. Nothing happens while a read guard is
    /// alive (held outside the loop, or across an `await`): the participant
    /// is not quiescent then.
    pub(crate) fn pass(&self, d: &Domain, me: usize, mut wake: impl FnMut(usize)) {
        if self.readers.get() != 0 {
            return;
        }
        if d.is_online(me) {
            d.quiescent(me, &mut wake);
        } else {
            d.online(me);
        }
        self.advance(d, me, wake);
    }

    /// Runs what is due and starts a grace period for what was queued.
    /// Called online, at a quiescent state.
    fn advance(&self, d: &Domain, me: usize, mut wake: impl FnMut(usize)) {
        for _ in 0..ROUNDS {
            let mut progress = false;
            let waiting = !self.current.borrow().is_empty();
            let due = waiting && d.poll(me, self.target.get(), &mut wake);
            if due {
                // Taken out first: a callback may queue callbacks.
                let batch = core::mem::take(&mut *self.current.borrow_mut());
                for f in batch {
                    f();
                }
                progress = true;
            }
            if self.current.borrow().is_empty() && !self.next.borrow().is_empty() {
                core::mem::swap(
                    &mut *self.current.borrow_mut(),
                    &mut *self.next.borrow_mut(),
                );
                self.target.set(d.start());
                // This is a quiescent state too: report it at once, so a
                // participant alone online completes the grace period now.
                d.quiescent(me, &mut wake);
                progress = true;
            }
            if !progress {
                break;
            }
        }
    }

    /// The participant goes idle: a last quiescent state, then offline,
    /// asking to be woken (`wake(me)`) when its callbacks' grace period is
    /// over. It must call [`Local::pass`] (which brings it online) before
    /// its next read section.
    pub(crate) fn idle(&self, d: &Domain, me: usize, mut wake: impl FnMut(usize)) {
        if self.readers.get() != 0 {
            return;
        }
        self.pass(d, me, &mut wake);
        for _ in 0..ROUNDS {
            if self.current.borrow().is_empty() {
                d.offline(me, &mut wake);
                return;
            }
            let t = self.target.get();
            if !d.wake_me_for(me, t) {
                d.offline(me, &mut wake);
                if !d.is_complete(t) {
                    // Whoever completes `t` wakes this participant.
                    return;
                }
                // Leaving completed it, and the scan never wakes the one
                // scanning: run the callbacks now, online.
                d.cancel_wake(me);
                d.online(me);
            }
            self.advance(d, me, &mut wake);
        }
        d.offline(me, &mut wake);
        if !self.current.borrow().is_empty() {
            // Callbacks that keep queueing callbacks: come back soon.
            wake(me);
        }
    }
}
