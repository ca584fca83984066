//! Grace periods over a fixed set of participants (cores, or threads in host
//! tests): the part of RCU that only counts.
//!
//! Every participant owns a slot holding the last grace-period number it saw
//! at a quiescent state, or 0 while it is *offline* (idle: quiescent for as
//! long as it stays so). Starting a grace period bumps the global number
//! `gp` to `t`; `t` is over once every online participant has seen a number
//! `>= t`. Whoever observes that — the participant whose quiescent state (or
//! departure) was the last one missing — raises `completed` and wakes the
//! offline participants that asked to be woken for it.
//!
//! Memory ordering, in words (the loom test `tests/loom.rs` checks the
//! always-online part):
//! - *Updater → reader*: an unlink is sequenced before the `gp` bump
//!   (release). A participant that later sees `gp >= t` (acquire) at a
//!   quiescent state sees the unlink in every read section after it.
//! - *Reader → reclaimer*: a quiescent state stores `seen` with release; the
//!   scan loads it with acquire and publishes `completed` with release; the
//!   reclaimer loads `completed` with acquire. So every read section before
//!   the quiescent state happens before the reclamation.
//! - *Coming online* is the store-buffering case: the participant stores its
//!   `seen`, then a SeqCst fence, then reads; a scan loads `gp`, then a
//!   SeqCst fence, then reads the slots. Either the scan sees the new `seen`
//!   (and waits if it is old), or the participant's reads come after the
//!   scan's fence and see every unlink the scanned `gp` covers.
//! - *Sleeping waiters*: a participant sets `waiting`, fences, then checks
//!   `completed`; a scan raises `completed`, fences, then reads `waiting`.
//!   One of the two sees the other, so no wake is lost.

use alloc::boxed::Box;

use crate::sync::{AtomicU64, Ordering, fence};

/// One participant's slot, alone on its cache line: only its owner writes
/// it, scans read it.
#[repr(align(64))]
struct Slot {
    /// The grace-period number seen at the last quiescent state; 0: offline.
    seen: AtomicU64,
    /// A grace period this (offline) participant must be woken for; 0: none.
    waiting: AtomicU64,
}

/// `gp` and `completed`, each alone on its cache line.
#[repr(align(64))]
struct Counter(AtomicU64);

/// The grace-period state of one RCU domain: `n` participants, numbered
/// `0..n`, each driven by its owner through [`Domain::quiescent`],
/// [`Domain::offline`] and [`Domain::online`].
///
/// The methods taking a participant number must be called only by that
/// participant (one core or thread): they are not unsafe to misuse, but a
/// participant reporting a quiescent state for another voids the guarantee
/// that grace periods wait for readers.
pub struct Domain {
    gp: Counter,
    completed: Counter,
    slots: Box<[Slot]>,
}

impl Domain {
    /// A domain of `n` participants, all offline, no grace period started.
    pub fn new(n: usize) -> Domain {
        Domain {
            gp: Counter(AtomicU64::new(1)),
            completed: Counter(AtomicU64::new(1)),
            slots: (0..n)
                .map(|_| Slot {
                    seen: AtomicU64::new(0),
                    waiting: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// The number of participants.
    pub fn participants(&self) -> usize {
        self.slots.len()
    }

    /// Whether participant `me` is online (its read sections are waited
    /// for).
    pub fn is_online(&self, me: usize) -> bool {
        self.slots[me].seen.load(Ordering::Relaxed) != 0
    }

    /// Participant `me` comes online: grace periods wait for its read
    /// sections from now on. Call before the first read section, and after
    /// [`Domain::offline`] before reading again.
    pub fn online(&self, me: usize) {
        let g = self.gp.0.load(Ordering::Acquire);
        self.slots[me].seen.store(g, Ordering::Relaxed);
        // Pairs with the fence in `scan`: see the module doc.
        fence(Ordering::SeqCst);
    }

    /// Participant `me` (online) is at a quiescent state: none of its read
    /// sections is in progress. Cheap when no grace period started since
    /// its last one (a load and a compare). `wake(p)` is called for
    /// offline participants waiting for a grace period this completes.
    pub fn quiescent(&self, me: usize, wake: impl FnMut(usize)) {
        let g = self.gp.0.load(Ordering::Acquire);
        let slot = &self.slots[me].seen;
        if slot.load(Ordering::Relaxed) != g {
            slot.store(g, Ordering::Release);
            self.scan(me, wake);
        }
    }

    /// Participant `me` goes offline (idle): it is quiescent until it calls
    /// [`Domain::online`] again, and holds back no grace period meanwhile.
    pub fn offline(&self, me: usize, wake: impl FnMut(usize)) {
        let slot = &self.slots[me].seen;
        let seen = slot.load(Ordering::Relaxed);
        slot.store(0, Ordering::Release);
        // Store-buffering again: a grace period started meanwhile either
        // shows in the `gp` load below (and this participant scans) or its
        // starter's scan sees this slot at 0.
        fence(Ordering::SeqCst);
        // Only a participant behind the latest grace period may have been
        // the last one it waited for: only then is a scan worth it.
        if seen != 0 && seen != self.gp.0.load(Ordering::Acquire) {
            self.scan(me, wake);
        }
    }

    /// Starts a new grace period and returns its number: it is over
    /// ([`Domain::is_complete`]) once every participant online now has
    /// passed a quiescent state or gone offline. Everything the caller
    /// unlinked before this call is unreachable to read sections after it.
    pub fn start(&self) -> u64 {
        self.gp.0.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether grace period `t` (from [`Domain::start`]) is over; when it
    /// is, everything unlinked before it started may be reclaimed.
    pub fn is_complete(&self, t: u64) -> bool {
        self.completed.0.load(Ordering::Acquire) >= t
    }

    /// The latest grace period known to be over.
    pub fn completed(&self) -> u64 {
        self.completed.0.load(Ordering::Acquire)
    }

    /// Participant `me` (online, at a quiescent state) checks whether grace
    /// period `t` is over, scanning the others if no one has said so yet:
    /// what a participant waiting for `t` does on each pass, so that its
    /// wait never depends on whether another participant's scan saw it.
    pub fn poll(&self, me: usize, t: u64, mut wake: impl FnMut(usize)) -> bool {
        if self.is_complete(t) {
            return true;
        }
        self.quiescent(me, &mut wake);
        if !self.is_complete(t) {
            self.scan(me, wake);
        }
        self.is_complete(t)
    }

    /// Participant `me` is about to go offline with work waiting for grace
    /// period `t`: whoever completes `t` wakes it. Returns whether `t` is
    /// already over (then nobody will).
    pub fn wake_me_for(&self, me: usize, t: u64) -> bool {
        self.slots[me].waiting.store(t, Ordering::Relaxed);
        // Pairs with the fence in `scan`: see the module doc.
        fence(Ordering::SeqCst);
        if self.is_complete(t) {
            self.slots[me].waiting.store(0, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Participant `me` no longer needs the wake it asked for with
    /// [`Domain::wake_me_for`].
    pub fn cancel_wake(&self, me: usize) {
        self.slots[me].waiting.store(0, Ordering::Relaxed);
    }

    /// Computes the latest grace period over, publishes it, and wakes the
    /// participants waiting for it (except `me`, who is awake).
    fn scan(&self, me: usize, mut wake: impl FnMut(usize)) {
        let mut over = self.gp.0.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        for s in self.slots.iter() {
            let seen = s.seen.load(Ordering::Acquire);
            if seen != 0 && seen < over {
                over = seen;
            }
        }
        let before = self.completed.0.fetch_max(over, Ordering::AcqRel);
        if before >= over {
            return;
        }
        fence(Ordering::SeqCst);
        for (p, s) in self.slots.iter().enumerate() {
            let t = s.waiting.load(Ordering::Relaxed);
            if p != me
                && t != 0
                && t <= over
                && s.waiting
                    .compare_exchange(t, 0, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                wake(p);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn none(_: usize) {
        panic!("nobody waits");
    }

    #[test]
    fn a_grace_period_waits_for_every_online_participant() {
        let d = Domain::new(3);
        d.online(0);
        d.online(1);
        let t = d.start();
        assert!(!d.is_complete(t));
        d.quiescent(0, none);
        assert!(!d.is_complete(t), "participant 1 has not passed one");
        d.quiescent(1, none);
        assert!(d.is_complete(t), "2 is offline, so it is not waited for");
    }

    #[test]
    fn an_idle_participant_does_not_hold_grace_periods_back() {
        let d = Domain::new(2);
        d.online(0);
        d.online(1);
        let t = d.start();
        d.quiescent(0, none);
        assert!(!d.is_complete(t));
        d.offline(1, none);
        assert!(d.is_complete(t));
    }

    #[test]
    fn a_participant_online_again_is_waited_for_again() {
        let d = Domain::new(2);
        d.online(0);
        d.quiescent(0, none);
        d.online(1);
        let t = d.start();
        d.quiescent(0, none);
        assert!(!d.is_complete(t));
        d.quiescent(1, none);
        assert!(d.is_complete(t));
    }

    #[test]
    fn quiescent_states_before_the_start_do_not_count() {
        let d = Domain::new(2);
        d.online(0);
        d.online(1);
        d.quiescent(1, none);
        let t = d.start();
        d.quiescent(0, none);
        assert!(!d.is_complete(t));
    }

    #[test]
    fn the_last_quiescent_state_wakes_the_offline_waiter() {
        let d = Domain::new(2);
        d.online(0);
        d.online(1);
        let t = d.start();
        d.quiescent(0, none);
        assert!(!d.wake_me_for(0, t));
        d.offline(0, none);
        let mut woken = Vec::new();
        d.quiescent(1, |p| woken.push(p));
        assert_eq!(woken, [0]);
        assert!(d.is_complete(t));
        // Woken once only.
        let t2 = d.start();
        let mut again = Vec::new();
        d.quiescent(1, |p| again.push(p));
        assert!(d.is_complete(t2));
        assert!(again.is_empty());
    }

    #[test]
    fn a_waiter_told_it_is_over_is_not_woken() {
        let d = Domain::new(1);
        d.online(0);
        let t = d.start();
        d.quiescent(0, none);
        assert!(d.wake_me_for(0, t));
    }
}
