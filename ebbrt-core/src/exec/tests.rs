use core::cell::Cell;
use core::time::Duration;
use std::boxed::Box;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::vec;
use std::vec::Vec;

use super::*;
use crate::testing::{CORES, block_on, instance, run_on};
use crate::time::Instant;

/// `n` milliseconds of the tests that compare timers with one another or
/// with the work a loop does meanwhile. Miri's clock advances a few
/// microseconds per basic block interpreted, so a loop turn takes
/// milliseconds there: stretch those durations under Miri.
fn ms(n: u64) -> Duration {
    Duration::from_millis(if cfg!(miri) { n * 100 } else { n })
}

#[test]
fn spawn_local_runs_not_send_futures_in_order() {
    let out = run_on(0, || async {
        let log = Rc::new(core::cell::RefCell::new(Vec::new()));
        let a = {
            let log = log.clone();
            spawn_local(async move {
                log.borrow_mut().push(1);
                yield_now().await;
                log.borrow_mut().push(3);
                7
            })
        };
        let b = {
            let log = log.clone();
            spawn_local(async move { log.borrow_mut().push(2) })
        };
        let seven = a.await;
        b.await;
        (seven, log.borrow().clone())
    });
    assert_eq!(out, (7, vec![1, 2, 3]));
}

#[test]
fn spawn_on_runs_on_the_target_core() {
    instance();
    for target in 0..CORES as u32 {
        let ran_on = block_on(spawn_on(CoreId(target), async { cpu::current() }));
        assert_eq!(ran_on, CoreId(target));
    }
    // From a core to another and back.
    let (there, back) = run_on(0, || async {
        let there = spawn_on(CoreId(3), async { cpu::current() }).await;
        (there, cpu::current())
    });
    assert_eq!((there, back), (CoreId(3), CoreId(0)));
}

#[test]
fn spawn_on_with_builds_not_send_futures_there() {
    instance();
    let n = block_on(spawn_on_with(CoreId(2), || {
        let local = Rc::new(Cell::new(40));
        async move {
            yield_now().await;
            local.set(local.get() + 2);
            (cpu::current(), local.get())
        }
    }));
    assert_eq!(n, (CoreId(2), 42));
}

#[test]
fn on_each_core_returns_in_core_order() {
    instance();
    let cores = run_on(1, || on_each_core(|c| async move { (c, cpu::current()) }));
    assert_eq!(cores.len(), CORES);
    for (i, (asked, ran)) in cores.into_iter().enumerate() {
        assert_eq!(asked, CoreId(i as u32));
        assert_eq!(ran, asked);
    }
}

#[test]
fn sleep_waits_and_timeout_elapses() {
    let (slept, timed_out, fast) = run_on(3, || async {
        let t0 = Instant::now();
        sleep(Duration::from_millis(20)).await;
        let slept = t0.elapsed();
        let timed_out = timeout(Duration::from_millis(5), sleep(Duration::from_secs(60))).await;
        let fast = timeout(Duration::from_secs(60), async { 5 }).await;
        (slept, timed_out, fast)
    });
    assert!(slept >= Duration::from_millis(20), "{slept:?}");
    assert_eq!(timed_out, Err(Elapsed));
    assert_eq!(fast, Ok(5));
    // The cancelled 60 s sleep left no timer behind.
    let timers = run_on(3, || async { stats().timers });
    assert_eq!(timers, 0);
}

#[test]
fn many_timers_fire_in_deadline_order() {
    let order = run_on(2, || async {
        let log = Rc::new(core::cell::RefCell::new(Vec::new()));
        let hs: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|n| {
                let log = log.clone();
                spawn_local(async move {
                    sleep(ms(n)).await;
                    log.borrow_mut().push(n);
                })
            })
            .collect();
        for h in hs {
            h.await;
        }
        log.borrow().clone()
    });
    assert_eq!(order, vec![10, 20, 30]);
}

#[test]
fn idle_pollers_run_until_dropped() {
    let polls = run_on(1, || async {
        let count = Rc::new(Cell::new(0u32));
        let c = count.clone();
        let poller = add_idle_poller(move || {
            c.set(c.get() + 1);
            false
        });
        assert_eq!(stats().idle_pollers, 1);
        // While we sleep the loop has nothing to run: it must poll.
        sleep(ms(10)).await;
        drop(poller);
        let seen = count.get();
        sleep(ms(5)).await;
        assert_eq!(count.get(), seen, "a dropped poller is not polled");
        (seen, stats().idle_pollers)
    });
    assert!(polls.0 > 10, "polled {} times", polls.0);
    assert_eq!(polls.1, 0);
}

#[test]
fn a_poller_may_remove_itself() {
    let n = run_on(0, || async {
        let count = Rc::new(Cell::new(0u32));
        let slot: Rc<Cell<Option<IdlePoller>>> = Rc::new(Cell::new(None));
        let (c, s) = (count.clone(), slot.clone());
        slot.set(Some(add_idle_poller(move || {
            c.set(c.get() + 1);
            if c.get() == 3 {
                drop(s.take());
            }
            true
        })));
        sleep(ms(5)).await;
        count.get()
    });
    assert_eq!(n, 3);
}

#[test]
fn cross_core_wakes_are_not_lost() {
    instance();
    let done = Arc::new(AtomicUsize::new(0));
    let rounds = if cfg!(miri) { 60 } else { 2000 };
    let d = done.clone();
    block_on(spawn_on(CoreId(0), async move {
        for i in 0..rounds {
            let target = CoreId(1 + (i % (CORES as u32 - 1)));
            let d = d.clone();
            spawn_on(target, async move {
                d.fetch_add(1, Ordering::Relaxed);
            })
            .await;
        }
    }));
    assert_eq!(done.load(Ordering::Relaxed), rounds as usize);
}

#[test]
fn cancel_drops_the_task() {
    let (out, dropped) = run_on(2, || async {
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = Rc::new(Cell::new(false));
        let f = Flag(dropped.clone());
        let h = spawn_local(async move {
            let _f = f;
            sleep(Duration::from_secs(60)).await;
        });
        yield_now().await;
        let out = h.cancel().await;
        (out, dropped.get())
    });
    assert_eq!(out, None);
    assert!(dropped);
}

#[test]
fn app_results_map_to_exit_codes() {
    assert_eq!(().into_outcome(), (0, None));
    assert_eq!(3.into_outcome(), (3, None));
    let (code, msg) = Err::<(), _>("boom").into_outcome();
    assert_eq!(code, 1);
    assert!(msg.unwrap().contains("boom"));
}

// `block_on` alone is the test helper of `crate::testing` (for threads that
// are not cores); `crate::exec::block_on` is the one under test.
fn panic_message(p: std::boxed::Box<dyn core::any::Any + Send>) -> std::string::String {
    match p.downcast::<std::string::String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().copied().unwrap_or("?").into(),
    }
}

#[test]
fn block_on_and_run_refuse_to_nest_inside_a_task() {
    let (block, run_again, after) = run_on(1, || async {
        let block =
            std::panic::catch_unwind(|| crate::exec::block_on(async { 1 })).map_err(panic_message);
        let run_again = std::panic::catch_unwind(run).map_err(panic_message);
        // The refusals left the loop running: tasks still run.
        let after = spawn_local(async { 2 }).await;
        (block, run_again, after)
    });
    let block = block.unwrap_err();
    assert!(
        block.contains("exec::block_on called while this core's event loop is already running"),
        "{block}"
    );
    let run_again = run_again.unwrap_err();
    assert!(run_again.contains("exec::run called while"), "{run_again}");
    assert_eq!(after, 2);
}

#[test]
fn block_on_refuses_threads_that_are_not_cores() {
    instance();
    let e = std::thread::spawn(|| {
        std::panic::catch_unwind(|| crate::exec::block_on(async { 1 })).map_err(panic_message)
    })
    .join()
    .unwrap()
    .unwrap_err();
    assert!(e.contains("not running on an EbbRT core"), "{e}");
}

static IDLE_HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

#[linkme::distributed_slice(BEFORE_IDLE)]
static COUNT_IDLE: fn() = || {
    IDLE_HOOK_CALLS.fetch_add(1, Ordering::Relaxed);
};

#[test]
#[cfg_attr(miri, ignore = "Miri cannot read linkme's link sections (BEFORE_IDLE)")]
fn before_idle_hooks_run_when_a_core_goes_idle() {
    instance();
    let before = IDLE_HOOK_CALLS.load(Ordering::Relaxed);
    // Each sleep leaves core 3 with nothing to do: it must idle (and call
    // the hooks) before the timer fires. (Core 3: no test registers idle
    // pollers there, which would keep it from idling.)
    run_on(3, || async {
        for _ in 0..3 {
            sleep(Duration::from_millis(2)).await;
        }
    });
    assert!(IDLE_HOOK_CALLS.load(Ordering::Relaxed) >= before + 3);
}

/// Passes of each test core's loop seen by the [`QUIESCENT`] hook, and the
/// tasks of each core being polled at that moment (must be none).
static PASSES: [AtomicUsize; CORES] = [const { AtomicUsize::new(0) }; CORES];
static PASSES_INSIDE_A_TASK: AtomicUsize = AtomicUsize::new(0);

std::thread_local! {
    static POLLING: Cell<bool> = const { Cell::new(false) };
}

#[linkme::distributed_slice(QUIESCENT)]
static COUNT_PASS: fn() = || {
    if POLLING.with(Cell::get) {
        PASSES_INSIDE_A_TASK.fetch_add(1, Ordering::Relaxed);
    }
    PASSES[cpu::current().index()].fetch_add(1, Ordering::Relaxed);
};

/// A future that marks its polls so the hook can tell it ran inside one.
struct MarkPolls<F>(F);
impl<F: Future + Unpin> Future for MarkPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        POLLING.with(|p| p.set(true));
        let r = Pin::new(&mut self.0).poll(cx);
        POLLING.with(|p| p.set(false));
        r
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot read linkme's link sections (QUIESCENT)")]
fn quiescent_hooks_run_between_tasks_on_every_pass() {
    instance();
    let before = PASSES[2].load(Ordering::Relaxed);
    // A yielded task may run again in the same batch (up to `BATCH` polls
    // a pass), so `BATCH + 1` yields take the loop through at least one
    // more pass, which calls the hook, but never from inside a poll.
    let passes_seen = run_on(2, || async {
        let mut seen = Vec::new();
        for _ in 0..5 {
            let p0 = PASSES[2].load(Ordering::Relaxed);
            for _ in 0..=BATCH {
                MarkPolls(Box::pin(yield_now())).await;
            }
            seen.push(PASSES[2].load(Ordering::Relaxed) - p0);
        }
        seen
    });
    assert!(passes_seen.iter().all(|&n| n >= 1), "{passes_seen:?}");
    assert!(PASSES[2].load(Ordering::Relaxed) >= before + 5);
    assert_eq!(PASSES_INSIDE_A_TASK.load(Ordering::Relaxed), 0);
}
