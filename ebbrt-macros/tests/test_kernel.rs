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

/// The `EbbRef` reaches the root, so a `Default` rep can be summed across
/// cores without holding a pointer to its root.
#[ebbrt::test]
async fn an_ebb_ref_reaches_its_root() -> Result<(), String> {
    #[ebbrt::ebb(per_core, id = ids::app(701))]
    #[derive(Default)]
    struct Seen {
        n: Cell<u32>,
    }
    static SEEN: EbbRef<Seen> = EbbRef::fixed();
    on_each_core(|_| async {
        SEEN.n.set(SEEN.n.get() + 2);
    })
    .await;
    let root = SEEN.root();
    let per_core = root.gather(|rep| rep.n.get()).await;
    let total: u32 = per_core.iter().map(|(_, n)| n).sum();
    if root.id() == SEEN.id() && total == 2 * cpu::count() as u32 {
        Ok(())
    } else {
        Err(format!("root of {:?}: per core {per_core:?}", root.id()))
    }
}

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
