//! Running a socket operation on the core that owns the stack.

use alloc::rc::Rc;
use core::future::Future;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};

use ebbrt_core::EbbRef;
use ebbrt_core::cpu::CoreId;
use ebbrt_core::exec;
use ebbrt_core::io;

use crate::manager::{NO_DEVICE, NetworkManager};
use crate::stack::Stack;

/// Ids of sockets that cores without a stack create in another core's
/// stack: chosen here, so that the creating core need not wait for an
/// answer (the owner runs requests from one core in order). Disjoint from
/// the ids a stack picks itself, which count up from 1.
static REMOTE_IDS: AtomicU64 = AtomicU64::new(1 << 62);

pub(crate) fn remote_id() -> u64 {
    REMOTE_IDS.fetch_add(1, Ordering::Relaxed)
}

/// A stack on another core: the manager to find it with, and its core.
/// `!Send`, like the sockets that hold it.
#[derive(Clone, Copy)]
pub(crate) struct RemoteStack {
    pub mgr: EbbRef<NetworkManager>,
    pub owner: CoreId,
    _not_send: PhantomData<*const ()>,
}

impl RemoteStack {
    pub(crate) fn new(mgr: EbbRef<NetworkManager>, owner: CoreId) -> Self {
        RemoteStack {
            mgr,
            owner,
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with the owner's stack, on the owner's core.
    pub(crate) fn run<F, Fut, R>(
        &self,
        f: F,
    ) -> impl Future<Output = io::Result<R>> + use<F, Fut, R>
    where
        F: FnOnce(Rc<Stack>) -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<R>> + 'static,
        R: Send + 'static,
    {
        let mgr = self.mgr;
        exec::spawn_on_with(self.owner, move || async move {
            match mgr.local_stack() {
                Some(s) => f(s).await,
                None => Err(NO_DEVICE),
            }
        })
    }

    /// Runs `f` on the owner's core without waiting for it.
    pub(crate) fn run_detached<F>(&self, f: F)
    where
        F: FnOnce(Rc<Stack>) + Send + 'static,
    {
        let mgr = self.mgr;
        exec::spawn_on_with(self.owner, move || async move {
            if let Some(s) = mgr.local_stack() {
                f(s);
            }
        })
        .detach();
    }
}
