//! A test instance for this crate's host tests: `CORES` std threads, each
//! an EbbRT core. Core 0 runs on a *virtual clock*: when its loop idles
//! with a timer armed and nothing woke it, the clock jumps to the timer's
//! deadline instead of sleeping. Simulated links, TCP retransmission
//! timeouts and delayed ACKs then cost no real time, and a run is as
//! deterministic as the link's seed. The other cores keep real time (they
//! host the clients of single-stack tests).

use std::boxed::Box;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::vec::Vec;

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::platform::Platform;
use ebbrt_core::time::Instant;

pub(crate) const CORES: usize = 3;
/// The core with the virtual clock.
pub(crate) const SIM_CORE: u32 = 0;

struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

struct TestPlatform {
    start: std::time::Instant,
    parkers: Vec<Parker>,
    skipped: Vec<AtomicU64>,
}

impl Platform for TestPlatform {
    fn now(&self) -> Instant {
        let real = self.start.elapsed().as_nanos() as u64;
        let skip = match cpu::try_current() {
            Some(c) => self.skipped[c.index()].load(Ordering::Relaxed),
            None => 0,
        };
        Instant::from_nanos(real + skip)
    }
    fn wake(&self, core: CoreId) {
        let p = &self.parkers[core.index()];
        *p.woken.lock().unwrap() = true;
        p.cv.notify_one();
    }
    fn idle(&self, deadline: Option<Instant>) {
        let core = cpu::current();
        let p = &self.parkers[core.index()];
        let mut woken = p.woken.lock().unwrap();
        while !*woken {
            match deadline {
                None => woken = p.cv.wait(woken).unwrap(),
                Some(d) => {
                    let now = self.now();
                    if now >= d {
                        break;
                    }
                    if core.0 == SIM_CORE {
                        self.skipped[core.index()]
                            .fetch_add(d.as_nanos() - now.as_nanos(), Ordering::Relaxed);
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
            skipped: (0..CORES).map(|_| AtomicU64::new(0)).collect(),
        }));
        ebbrt_core::platform::install(p);
        cpu::set_count(CORES).unwrap();
        for i in 0..CORES {
            thread::Builder::new()
                .name(std::format!("test-core-{i}"))
                .spawn(move || {
                    enter(i);
                    // A panicking task would take the core down and hang
                    // every later test: note it (the waiting test fails)
                    // and keep the loop running.
                    while catch_unwind(ebbrt_core::exec::run).is_err() {
                        CORE_PANICS.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .unwrap();
        }
    });
}

#[allow(unsafe_code)]
fn enter(i: usize) {
    // SAFETY: each test-core thread enters a distinct core id, once, and
    // stays that core until the process exits.
    unsafe { cpu::enter(CoreId(i as u32)) };
}

/// Panics of tasks on the test cores (outside `run_on`'s own future).
static CORE_PANICS: AtomicU64 = AtomicU64::new(0);

struct ThreadWaker(thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let panics = CORE_PANICS.load(Ordering::SeqCst);
    loop {
        assert_eq!(
            CORE_PANICS.load(Ordering::SeqCst),
            panics,
            "a task panicked on a test core (see its message above)"
        );
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(std::time::Duration::from_millis(50));
    }
}

/// Polls a future, catching a panic so that it reaches the test thread.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let f = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| f.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

/// Runs the future `make` builds on `core`, and waits; a panic in it is
/// raised here.
pub(crate) fn run_on<M, F>(core: u32, make: M) -> F::Output
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    instance();
    let out = block_on(ebbrt_core::exec::spawn_on_with(CoreId(core), move || {
        CatchUnwind(Box::pin(make()))
    }));
    match out {
        Ok(v) => v,
        Err(p) => resume_unwind(p),
    }
}
