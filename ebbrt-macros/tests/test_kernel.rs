//! A test kernel written as an application would write one: `#[ebbrt::test]`
//! cases (async, plain, `Result`-returning, in a module) and
//! `ebbrt::test_main!()`, through the facade only. Run hosted by `cargo
//! test`: it prints the `ebbrt-test:` protocol lines and exits with 0 iff
//! every case passed. (The failure paths of the runner are unit-tested in
//! `ebbrt_core::test_support`.)
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::cell::Cell;

use ebbrt::cpu::{self, CoreId};
use ebbrt::ebb::ids;
use ebbrt::{EbbRef, on_each_core, spawn_local, spawn_on};

/// Hits counted per core, without atomics.
#[ebbrt::ebb(per_core, id = ids::app(700))]
#[derive(Default)]
struct Hits {
    n: Cell<u32>,
}

static HITS: EbbRef<Hits> = EbbRef::fixed();

#[ebbrt::test]
async fn reps_are_per_core() -> Result<(), &'static str> {
    let counts = on_each_core(|core| async move {
        for _ in 0..=core.0 {
            HITS.n.set(HITS.n.get() + 1);
        }
        HITS.n.get()
    })
    .await;
    let expected: Vec<u32> = (1..=cpu::count() as u32).collect();
    if counts == expected {
        Ok(())
    } else {
        Err("each core must see only its own rep")
    }
}

#[ebbrt::test]
fn a_plain_fn_runs_on_a_core() {
    assert!(cpu::try_current().is_some());
}

#[ebbrt::test]
async fn work_moves_between_cores() {
    let last = CoreId(cpu::count() as u32 - 1);
    assert_eq!(spawn_on(last, async { cpu::current() }).await, last);
    assert_eq!(spawn_local(async { 40 + 2 }).await, 42);
}

mod timers {
    #[ebbrt::test]
    async fn sleep_returns() -> Result<(), String> {
        let t0 = ebbrt::time::Instant::now();
        ebbrt::exec::sleep(core::time::Duration::from_millis(2)).await;
        let waited = t0.elapsed();
        if waited >= core::time::Duration::from_millis(2) {
            Ok(())
        } else {
            Err(format!("woke after {waited:?}"))
        }
    }
}

ebbrt::test_main!();
