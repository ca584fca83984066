//! One hosted instance per unit-test process, started on first use with the
//! real platform and reactors (unpinned, without the exiting panic hook),
//! that tests submit work to from the test harness's threads.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use ebbrt_core::cpu::CoreId;
use ebbrt_core::exec;

/// Cores of the test instance. Core 2 is reserved for tests that measure
/// the CPU time its thread spends.
pub(crate) const CORES: usize = 3;

/// Starts the shared test instance (once).
pub(crate) fn instance() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let polls = crate::start::boot(CORES).expect("start the test instance");
        for (i, poll) in polls.into_iter().enumerate() {
            thread::Builder::new()
                .name(format!("test-core-{i}"))
                .spawn(move || {
                    crate::start::enter_core(CoreId(i as u32), poll, None);
                    exec::run();
                })
                .expect("spawn a core thread");
        }
    });
}

struct ThreadWaker(thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Blocks this (non-core) thread on `f`.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_millis(50));
    }
}

/// Polls a future, catching a panic so that it reaches the test thread
/// instead of killing a core thread (which would hang the test).
struct CatchUnwind<F>(F);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning; the inner future is never moved.
        let f = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match catch_unwind(AssertUnwindSafe(|| f.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

/// Runs the future `make` builds on `core` of the test instance, and waits.
/// A panic in it is re-raised here.
pub(crate) fn run_on<M, F>(core: u32, make: M) -> F::Output
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    instance();
    let out = block_on(exec::spawn_on_with(CoreId(core), move || {
        CatchUnwind(make())
    }));
    match out {
        Ok(v) => v,
        Err(p) => resume_unwind(p),
    }
}
