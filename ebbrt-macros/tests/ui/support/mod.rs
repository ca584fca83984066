//! A minimal runtime for the passing UI tests, which depend on `ebbrt-core`
//! only: `cores` std threads, each one EbbRT core, idling on a condvar.

use std::future::Future;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::exec::{self, AppResult};
use ebbrt_core::platform::{self, Platform};
use ebbrt_core::time::Instant;

struct Threads {
    start: std::time::Instant,
    woken: Vec<(Mutex<bool>, Condvar)>,
}

impl Platform for Threads {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }
    fn wake(&self, core: CoreId) {
        let (flag, cv) = &self.woken[core.index()];
        *flag.lock().unwrap() = true;
        cv.notify_one();
    }
    fn idle(&self, deadline: Option<Instant>) {
        let (flag, cv) = &self.woken[cpu::current().index()];
        let mut woken = flag.lock().unwrap();
        if !*woken {
            let wait = deadline.map_or(Duration::from_millis(50), |d| d - self.now());
            woken = cv.wait_timeout(woken, wait).unwrap().0;
        }
        *woken = false;
    }
    fn poll(&self) {}
}

fn report(code: i32, err: Option<String>) {
    if let Some(e) = err {
        eprintln!("{e}");
    }
    assert_eq!(code, 0, "the test's main future failed");
}

/// Runs the future `make` builds as the main task of a `cores`-core
/// instance; returns when it finishes (it must succeed).
pub fn run<M, F, R>(cores: usize, make: M)
where
    M: FnOnce() -> F,
    F: Future<Output = R> + 'static,
    R: AppResult + 'static,
{
    let p: &'static Threads = Box::leak(Box::new(Threads {
        start: std::time::Instant::now(),
        woken: (0..cores)
            .map(|_| (Mutex::new(false), Condvar::new()))
            .collect(),
    }));
    platform::install(p);
    cpu::set_count(cores).unwrap();
    if let Err(e) = ebbrt_core::registry::check_static_ids() {
        panic!("{e}");
    }
    let others: Vec<_> = (1..cores as u32)
        .map(|i| {
            std::thread::spawn(move || {
                // SAFETY: each thread enters a distinct core, once.
                unsafe { cpu::enter(CoreId(i)) };
                exec::run()
            })
        })
        .collect();
    // SAFETY: the main thread is core 0, for the rest of the process.
    unsafe { cpu::enter(CoreId(0)) };
    exec::spawn_main(make(), report);
    assert_eq!(exec::run(), 0);
    for t in others {
        assert_eq!(t.join().unwrap(), 0);
    }
}
