//! Idle pollers: work the loop polls whenever it has no task to run.
//!
//! While at least one poller is registered the core never sleeps: that is
//! the polling mode drivers switch to under load, and leave (by dropping
//! their [`IdlePoller`]) when their rings drain.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::marker::PhantomData;

use crate::cpu;

type PollFn = Box<dyn FnMut() -> bool>;

pub(crate) struct IdlePollers {
    list: RefCell<Vec<(u64, Option<PollFn>)>>,
    next_id: Cell<u64>,
}

impl IdlePollers {
    pub(crate) const fn new() -> Self {
        IdlePollers {
            list: RefCell::new(Vec::new()),
            next_id: Cell::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.borrow().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.borrow().is_empty()
    }

    /// Polls each registered poller once; true if any made progress.
    /// Pollers may add or remove pollers while running.
    pub(crate) fn run(&self) -> bool {
        let mut progress = false;
        let mut i = 0;
        loop {
            let (id, mut f) = {
                let mut list = self.list.borrow_mut();
                let Some(slot) = list.get_mut(i) else { break };
                match slot.1.take() {
                    Some(f) => (slot.0, f),
                    None => {
                        i += 1;
                        continue;
                    }
                }
            };
            progress |= f();
            let mut list = self.list.borrow_mut();
            // The poller may have removed itself (or others) meanwhile.
            if let Some(pos) = list.iter().position(|(pid, _)| *pid == id) {
                list[pos].1 = Some(f);
                i = pos + 1;
            }
        }
        progress
    }
}

/// A registered idle poller; dropping it unregisters the poller. It belongs
/// to the core that registered it (`!Send`).
#[must_use = "dropping the handle unregisters the poller at once"]
pub struct IdlePoller {
    id: u64,
    _not_send: PhantomData<*const ()>,
}

/// Registers `poll` on the current core: it runs whenever the loop has no
/// ready task, and returns whether it made progress.
pub fn add_idle_poller(poll: impl FnMut() -> bool + 'static) -> IdlePoller {
    cpu::current();
    let pollers = &crate::percore::local().exec.idle;
    let id = pollers.next_id.get();
    pollers.next_id.set(id + 1);
    pollers.list.borrow_mut().push((id, Some(Box::new(poll))));
    IdlePoller {
        id,
        _not_send: PhantomData,
    }
}

impl Drop for IdlePoller {
    fn drop(&mut self) {
        let pollers = &crate::percore::local().exec.idle;
        pollers.list.borrow_mut().retain(|(id, _)| *id != self.id);
    }
}
