//! # ebbrt-rcu
//!
//! Read-copy-update over the event loops, as the original EbbRT had it: a
//! reader needs no lock and no atomic read-modify-write, because a core's
//! event loop is non-preemptive — a *read-side section* is simply code that
//! has not returned to the loop (one poll of a task, up to its next
//! `await`), and every pass of the loop is a *quiescent state*. An updater
//! unlinks an object and hands its reclamation to [`call_rcu`] (or awaits
//! [`synchronize`]); the callback runs, on the core that queued it, once
//! every core has passed a quiescent state since. A core that goes idle is
//! quiescent for as long as it sleeps, so halted cores never hold a grace
//! period back; the core that completes a grace period wakes the idle ones
//! waiting for it.
//!
//! What it owns: the [`Rcu`] Ebb (per-core, well-known id `RCU`) whose
//! representative keeps a core's callbacks and read guards; the grace-period
//! counting shared by all cores ([`Domain`]); the [`Reclaim`] trait through
//! which RCU data structures (the `ebbrt-rcu-hashtable` crate) defer their
//! frees, implemented for the cores ([`CoreRcu`]) and, with the `std`
//! feature, for plain threads ([`threads`], for host tests).
//!
//! How it hooks into the loop: a function in `ebbrt_core::exec::QUIESCENT`
//! (called once per pass of every core's loop) and one in
//! `ebbrt_core::exec::BEFORE_IDLE` (the core goes offline). Linking this
//! crate is what installs them; an image without it pays nothing.
//!
//! The rule for readers: a reference obtained inside a read-side section
//! must not be kept across an `await` (nor past the end of a harness's
//! synchronous code between two `block_on`s) unless a [`ReadGuard`] is held
//! for it; a live guard keeps its core from being quiescent, so holding one
//! across an `await` is safe but delays every grace period meanwhile.
//!
//! What it must not do: block a core (waiting is `synchronize().await`), or
//! run a callback on another core than the one that queued it (callbacks
//! need not be `Send`). It uses no `unsafe` code.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::ebb::{PerCoreRoot, ids};
use ebbrt_core::{EbbRef, ebb, exec, platform};

mod domain;
mod local;
mod sync;
#[cfg(all(feature = "std", not(loom)))]
pub mod threads;

pub use domain::Domain;
use local::Local;

/// Read-copy-update over the cores' event loops: deferred callbacks
/// ([`Rcu::call_rcu`]), waiting for a grace period
/// ([`Rcu::synchronize`]), read guards ([`Rcu::read_lock`]).
///
/// A per-core Ebb at the well-known id `RCU`. The representative on a core
/// holds that core's callbacks (batched: those queued while a grace period
/// is in progress wait for the next) and its count of live read guards;
/// the root is the [`Domain`] counting grace periods over all cores. The
/// event loop drives it: every pass reports a quiescent state and runs the
/// callbacks that are due, and a core going idle leaves the domain until
/// its next pass.
#[ebb(per_core, id = ids::RCU, root = Domain, new = Rcu::new_rep, root_new = Rcu::new_root)]
pub struct Rcu {
    local: Local,
    domain: &'static Domain,
    me: usize,
}

/// The RCU Ebb.
pub static RCU: EbbRef<Rcu> = EbbRef::fixed();

impl Rcu {
    fn new_rep(root: &'static PerCoreRoot<Rcu>, core: CoreId) -> Rcu {
        Rcu {
            local: Local::default(),
            domain: root.data(),
            me: core.index(),
        }
    }

    fn new_root() -> Domain {
        Domain::new(cpu::count())
    }

    /// Runs `f` on this core once every core has passed a quiescent state
    /// (or been idle) since this call: no read-side section that could see
    /// what the caller unlinked before the call is still running. `f` runs
    /// from the event loop, between tasks.
    pub fn call_rcu(&self, f: impl FnOnce() + 'static) {
        self.local.call_rcu(Box::new(f));
    }

    /// Resolves once a grace period has passed since the first poll: the
    /// asynchronous `synchronize_rcu`. The waiting task's core keeps running
    /// other tasks meanwhile.
    pub fn synchronize(&self) -> Synchronize {
        Synchronize { state: None }
    }

    /// Marks a read-side section that may outlive the current poll: while
    /// the guard lives, this core reports no quiescent state. Inside a task
    /// it is not needed for code that does not `await`; outside the event
    /// loop (a harness thread between `block_on`s) it also brings the core
    /// online, so that grace periods wait for it.
    pub fn read_lock(&'static self) -> ReadGuard {
        self.local.read_enter(self.domain, self.me);
        ReadGuard { rcu: self }
    }

    /// Callbacks queued on this core and not run yet.
    pub fn pending(&self) -> usize {
        self.local.pending()
    }

    /// The grace-period state of all cores.
    pub fn domain(&self) -> &'static Domain {
        self.domain
    }

    fn pass(&self) {
        self.local.pass(self.domain, self.me, wake_core);
    }

    fn idle(&self) {
        self.local.idle(self.domain, self.me, wake_core);
    }
}

fn wake_core(index: usize) {
    platform::get().wake(CoreId(index as u32));
}

// The loop's hooks: every pass is a quiescent state; a core going idle
// leaves the domain until its next pass.
#[ebbrt_core::__private::linkme::distributed_slice(exec::QUIESCENT)]
#[linkme(crate = ebbrt_core::__private::linkme)]
static PASS: fn() = || RCU.pass();

#[ebbrt_core::__private::linkme::distributed_slice(exec::BEFORE_IDLE)]
#[linkme(crate = ebbrt_core::__private::linkme)]
static IDLE: fn() = || RCU.idle();

/// [`Rcu::call_rcu`] on this core's representative.
pub fn call_rcu(f: impl FnOnce() + 'static) {
    RCU.call_rcu(f);
}

/// [`Rcu::synchronize`] on this core's representative.
pub fn synchronize() -> Synchronize {
    RCU.synchronize()
}

/// [`Rcu::read_lock`] on this core's representative.
pub fn read_lock() -> ReadGuard {
    RCU.get().read_lock()
}

/// A read-side section of this core (see [`Rcu::read_lock`]); `!Send`: it
/// belongs to its core.
pub struct ReadGuard {
    rcu: &'static Rcu,
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        self.rcu.local.read_exit();
    }
}

/// The future of [`Rcu::synchronize`]. `Send`, so that a task spawned on
/// another core can await it; the grace period is counted from its first
/// poll, on the core that polls it.
#[must_use = "a grace period is waited for only when the future is awaited"]
pub struct Synchronize {
    state: Option<Arc<SyncState>>,
}

struct SyncState {
    done: AtomicBool,
    waker: spin::Mutex<Option<Waker>>,
}

impl Future for Synchronize {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = match &self.state {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(SyncState {
                    done: AtomicBool::new(false),
                    waker: spin::Mutex::new(Some(cx.waker().clone())),
                });
                let theirs = s.clone();
                RCU.call_rcu(move || {
                    theirs.done.store(true, Ordering::Release);
                    if let Some(w) = theirs.waker.lock().take() {
                        w.wake();
                    }
                });
                self.state = Some(s);
                return Poll::Pending;
            }
        };
        if state.done.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *state.waker.lock() = Some(cx.waker().clone());
        if state.done.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// How an RCU data structure reaches the RCU it is used under: read guards
/// and deferred frees. [`CoreRcu`] is the cores' (the [`Rcu`] Ebb);
/// `threads::Threads` (feature `std`) serves plain threads in host tests.
pub trait Reclaim: Sync {
    /// A read-side section of the calling participant; while it lives,
    /// nothing retired after it began is reclaimed.
    type Guard;

    /// Begins a read-side section of the calling participant.
    fn read_lock(&self) -> Self::Guard;

    /// Runs `f` once a grace period has passed: on the calling participant,
    /// when no read-side section that began before this call is left.
    fn defer(&self, f: Box<dyn FnOnce()>);
}

/// The cores' RCU (the [`Rcu`] Ebb) as a [`Reclaim`]: guards and callbacks
/// go to the calling core's representative.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoreRcu;

impl Reclaim for CoreRcu {
    type Guard = ReadGuard;

    fn read_lock(&self) -> ReadGuard {
        read_lock()
    }

    fn defer(&self, f: Box<dyn FnOnce()>) {
        RCU.local.call_rcu(f);
    }
}
