//! A minimal std-thread platform for this crate's unit tests: one process-wide
//! instance of `CORES` cores, started on first use, that tests submit work to.

use std::boxed::Box;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::vec::Vec;

use crate::cpu::{self, CoreId};
use crate::platform::Platform;
use crate::time::Instant;

pub(crate) const CORES: usize = 4;

struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

struct TestPlatform {
    start: std::time::Instant,
    parkers: Vec<Parker>,
}

impl Platform for TestPlatform {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }
    fn wake(&self, core: CoreId) {
        let p = &self.parkers[core.index()];
        *p.woken.lock().unwrap() = true;
        p.cv.notify_one();
    }
    fn idle(&self, deadline: Option<Instant>) {
        let p = &self.parkers[cpu::current().index()];
        let mut woken = p.woken.lock().unwrap();
        while !*woken {
            match deadline {
                None => woken = p.cv.wait(woken).unwrap(),
                Some(d) => {
                    let now = self.now();
                    if now >= d {
                        break;
                    }
                    woken = p.cv.wait_timeout(woken, d - now).unwrap().0;
                }
            }
        }
        *woken = false;
    }
    fn poll(&self) {}
}

/// Starts the shared test instance (once).
pub(crate) fn instance() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let p: &'static TestPlatform = Box::leak(Box::new(TestPlatform {
            start: std::time::Instant::now(),
            parkers: (0..CORES)
                .map(|_| Parker {
                    woken: Mutex::new(false),
                    cv: Condvar::new(),
                })
                .collect(),
        }));
        crate::platform::install(p);
        cpu::set_count(CORES).unwrap();
        for i in 0..CORES {
            thread::Builder::new()
                .name(std::format!("test-core-{i}"))
                .spawn(move || {
                    // SAFETY: each thread enters a distinct core id, once.
                    unsafe { cpu::enter(CoreId(i as u32)) };
                    crate::exec::run();
                })
                .unwrap();
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
        thread::park_timeout(std::time::Duration::from_millis(50));
    }
}

/// Runs the future `make` builds on `core` of the test instance, and waits.
pub(crate) fn run_on<M, F>(core: u32, make: M) -> F::Output
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    instance();
    block_on(crate::exec::spawn_on_with(CoreId(core), make))
}
