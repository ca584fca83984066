//! Two small single-core primitives for the messenger's tasks (all on its
//! home core, so `RefCell` and `Rc`, no atomics).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

/// Wakes every task waiting on it. A waiter that started listening before
/// a [`notify`](Notify::notify) sees it, even if it had not polled yet.
#[derive(Default)]
pub(crate) struct Notify {
    version: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    /// Wakes every listener.
    pub(crate) fn notify(&self) {
        self.version.set(self.version.get() + 1);
        for w in self.wakers.take() {
            w.wake();
        }
    }

    /// A future that completes at the next `notify` after this call.
    pub(crate) fn listen(self: &Rc<Self>) -> Notified {
        Notified {
            notify: self.clone(),
            version: self.version.get(),
        }
    }
}

/// The future of [`Notify::listen`].
pub(crate) struct Notified {
    notify: Rc<Notify>,
    version: u64,
}

impl Future for Notified {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.version.get() != self.version {
            return Poll::Ready(());
        }
        let mut w = self.notify.wakers.borrow_mut();
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A one-shot slot: one side puts a value, the other awaits it.
pub(crate) struct Slot<T> {
    value: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Rc<Slot<T>> {
        Rc::new(Slot {
            value: RefCell::new(None),
            waker: RefCell::new(None),
        })
    }

    /// Puts the value (the first one wins) and wakes the waiter.
    pub(crate) fn put(&self, v: T) {
        let mut slot = self.value.borrow_mut();
        if slot.is_none() {
            *slot = Some(v);
            drop(slot);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }

    /// Waits for the value.
    pub(crate) fn wait(self: &Rc<Self>) -> SlotWait<T> {
        SlotWait { slot: self.clone() }
    }
}

/// The future of [`Slot::wait`].
pub(crate) struct SlotWait<T> {
    slot: Rc<Slot<T>>,
}

impl<T> Future for SlotWait<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(v) = self.slot.value.borrow_mut().take() {
            return Poll::Ready(v);
        }
        *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
