//! RCU for plain threads (feature `std`): host tests of RCU data structures
//! without an EbbRT instance, including under Miri, which cannot run the
//! hosted runtime.
//!
//! Each thread takes a participant ([`Threads::enter`]) and reports its own
//! quiescent states ([`Participant::quiescent`]) where an event loop would
//! pass: between operations, holding no reference into the structure.

use std::boxed::Box;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};
use std::vec::Vec;

use crate::Reclaim;
use crate::domain::Domain;
use crate::local::Local;

/// An RCU domain of up to `n` threads.
pub struct Threads {
    domain: Domain,
    /// Which participant numbers are taken, and by which thread (to wake it).
    taken: Mutex<Vec<Option<Thread>>>,
}

struct State {
    threads: Arc<Threads>,
    me: usize,
    local: Local,
}

std::thread_local! {
    static CURRENT: RefCell<Option<Rc<State>>> = const { RefCell::new(None) };
}

impl Threads {
    /// A domain with room for `n` threads at once.
    pub fn new(n: usize) -> Arc<Threads> {
        Arc::new(Threads {
            domain: Domain::new(n),
            taken: Mutex::new((0..n).map(|_| None).collect()),
        })
    }

    /// The calling thread becomes a participant (online) until the
    /// returned handle is dropped.
    ///
    /// # Panics
    /// When all `n` places are taken, or the thread already is one.
    pub fn enter(self: &Arc<Self>) -> Participant {
        let me = {
            let mut taken = self.taken.lock().unwrap();
            let me = taken
                .iter()
                .position(Option::is_none)
                .expect("every participant place of this Threads is taken");
            taken[me] = Some(thread::current());
            me
        };
        let state = Rc::new(State {
            threads: self.clone(),
            me,
            local: Local::default(),
        });
        self.domain.online(me);
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            assert!(c.is_none(), "this thread already is an RCU participant");
            *c = Some(state.clone());
        });
        Participant { state }
    }

    /// The grace-period state.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    fn wake(&self, p: usize) {
        if let Some(t) = &self.taken.lock().unwrap()[p] {
            t.unpark();
        }
    }

    fn current(&self) -> Rc<State> {
        let s = CURRENT
            .with(|c| c.borrow().clone())
            .expect("not an RCU participant: call Threads::enter first");
        assert!(
            core::ptr::eq(Arc::as_ptr(&s.threads), self),
            "this thread is a participant of another Threads"
        );
        s
    }
}

/// The calling thread's place in a [`Threads`] domain. Dropping it waits
/// (offline, so holding nobody back) for its callbacks to run.
pub struct Participant {
    state: Rc<State>,
}

impl Participant {
    /// A quiescent state: the thread holds no reference obtained in a read
    /// section. Runs the callbacks whose grace period is over.
    pub fn quiescent(&self) {
        let s = &self.state;
        s.local.pass(&s.threads.domain, s.me, |p| s.threads.wake(p));
    }

    /// The thread goes idle (offline) until its next [`quiescent`](Self::quiescent).
    pub fn offline(&self) {
        let s = &self.state;
        s.local.idle(&s.threads.domain, s.me, |p| s.threads.wake(p));
    }

    /// Callbacks queued by this thread and not run yet.
    pub fn pending(&self) -> usize {
        self.state.local.pending()
    }

    /// Reports quiescent states until every callback queued so far has run
    /// (other participants must keep passing quiescent states, or leave).
    pub fn barrier(&self) {
        while self.pending() != 0 {
            self.quiescent();
            if self.pending() != 0 {
                self.offline();
                thread::park_timeout(std::time::Duration::from_millis(1));
            }
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.barrier();
        let s = &self.state;
        s.threads.domain.offline(s.me, |p| s.threads.wake(p));
        CURRENT.with(|c| c.borrow_mut().take());
        s.threads.taken.lock().unwrap()[s.me] = None;
    }
}

/// A read-side section of a thread of a [`Threads`] domain.
pub struct ThreadGuard {
    state: Rc<State>,
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        self.state.local.read_exit();
    }
}

impl Reclaim for Arc<Threads> {
    type Guard = ThreadGuard;

    fn read_lock(&self) -> ThreadGuard {
        let state = self.current();
        state.local.read_enter(&self.domain, state.me);
        ThreadGuard { state }
    }

    fn defer(&self, f: Box<dyn FnOnce()>) {
        self.current().local.call_rcu(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[test]
    fn callbacks_wait_for_every_thread_in_a_read_section() {
        let t = Threads::new(2);
        let ran = Arc::new(AtomicBool::new(false));
        let reading = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let reader = {
            let (t, reading, release) = (t.clone(), reading.clone(), release.clone());
            thread::spawn(move || {
                let p = t.enter();
                let g = t.read_lock();
                reading.store(true, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    thread::yield_now();
                }
                drop(g);
                p.quiescent();
            })
        };
        while !reading.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        let p = t.enter();
        {
            let ran = ran.clone();
            t.defer(Box::new(move || ran.store(true, Ordering::SeqCst)));
        }
        for _ in 0..100 {
            p.quiescent();
            assert!(!ran.load(Ordering::SeqCst), "ran during a read section");
        }
        release.store(true, Ordering::SeqCst);
        p.barrier();
        assert!(ran.load(Ordering::SeqCst));
        reader.join().unwrap();
    }

    #[test]
    fn a_guard_keeps_its_thread_from_being_quiescent() {
        let t = Threads::new(1);
        let p = t.enter();
        let ran = Arc::new(AtomicUsize::new(0));
        let g = t.read_lock();
        {
            let ran = ran.clone();
            t.defer(Box::new(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }));
        }
        p.quiescent();
        p.quiescent();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        drop(g);
        p.quiescent();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_idle_thread_holds_nothing_back_and_is_woken_for_its_callbacks() {
        let t = Threads::new(2);
        let busy_done = Arc::new(AtomicBool::new(false));
        let ran = Arc::new(AtomicBool::new(false));
        // This thread queues a callback and goes offline while the other
        // is online: the other's quiescent state completes the grace
        // period, and its unpark wakes us.
        let p = t.enter();
        let other = {
            let (t, busy_done) = (t.clone(), busy_done.clone());
            thread::spawn(move || {
                let q = t.enter();
                while !busy_done.load(Ordering::SeqCst) {
                    q.quiescent();
                    thread::yield_now();
                }
            })
        };
        {
            let ran = ran.clone();
            t.defer(Box::new(move || ran.store(true, Ordering::SeqCst)));
        }
        while !ran.load(Ordering::SeqCst) {
            p.offline();
            thread::park_timeout(std::time::Duration::from_millis(10));
            p.quiescent();
        }
        busy_done.store(true, Ordering::SeqCst);
        other.join().unwrap();
    }
}
