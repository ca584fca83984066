use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};
use std::string::String;
use std::vec::Vec;

use std::string::ToString;

use super::*;
use crate::cpu::CoreId;
use crate::testing::{CORES, instance, run_on};

/// A per-core counter with `!Sync` reps, at a fixed id.
struct Counter {
    core: CoreId,
    hits: Cell<u64>,
}
impl PerCore for Counter {
    type Root = AtomicU64; // counts reps built
    fn new_rep(root: &'static PerCoreRoot<Self>, core: CoreId) -> Self {
        root.data().fetch_add(1, Ordering::Relaxed);
        Counter {
            core,
            hits: Cell::new(0),
        }
    }
    fn new_root() -> Option<AtomicU64> {
        Some(AtomicU64::new(0))
    }
}
impl Ebb for Counter {
    fn miss(id: EbbId) -> &'static Self {
        per_core_miss(id)
    }
}
// SAFETY: app(900 - 256) is used by no other test type.
unsafe impl StaticEbb for Counter {
    const ID: EbbId = ids::app(700);
}
static COUNTER: EbbRef<Counter> = EbbRef::fixed();

/// A per-core Ebb with `Sync` reps, created at run time.
struct SyncCount {
    n: AtomicU64,
}
impl PerCore for SyncCount {
    type Root = String;
    fn new_rep(_: &'static PerCoreRoot<Self>, _: CoreId) -> Self {
        SyncCount {
            n: AtomicU64::new(0),
        }
    }
}
impl Ebb for SyncCount {
    fn miss(id: EbbId) -> &'static Self {
        per_core_miss(id)
    }
}

/// A per-core tally with `!Sync` reps, created at run time.
struct Tally {
    core: CoreId,
    hits: Cell<u64>,
}
impl PerCore for Tally {
    type Root = ();
    fn new_rep(_: &'static PerCoreRoot<Self>, core: CoreId) -> Self {
        Tally {
            core,
            hits: Cell::new(0),
        }
    }
}
impl Ebb for Tally {
    fn miss(id: EbbId) -> &'static Self {
        per_core_miss(id)
    }
}

struct Config {
    name: &'static str,
}
impl Shared for Config {}
impl Ebb for Config {
    fn miss(id: EbbId) -> &'static Self {
        shared_miss(id)
    }
}

#[test]
fn ebb_ref_is_small_copy_and_static() {
    assert!(core::mem::size_of::<EbbRef<Counter>>() <= core::mem::size_of::<usize>());
    let a = COUNTER;
    let b = a;
    assert_eq!(a, b);
    assert_eq!(a.id(), ids::app(700));
    fn assert_send_sync<T: Send + Sync + Copy>() {}
    assert_send_sync::<EbbRef<Counter>>();
}

#[test]
fn per_core_reps_are_lazy_distinct_and_cached() {
    instance();
    let (addr0, core0) = run_on(0, || async {
        COUNTER.hits.set(COUNTER.hits.get() + 1);
        (&*COUNTER as *const Counter as usize, COUNTER.core)
    });
    let (addr1, core1) = run_on(1, || async {
        COUNTER.hits.set(COUNTER.hits.get() + 1);
        (&*COUNTER as *const Counter as usize, COUNTER.core)
    });
    assert_ne!(addr0, addr1, "each core has its own rep");
    assert_eq!((core0, core1), (CoreId(0), CoreId(1)));
    // Same rep the second time (cached in the translation table).
    let again = run_on(0, || async { &*COUNTER as *const Counter as usize });
    assert_eq!(again, addr0);
    // Never touched on core 3: no rep there.
    let root: &'static PerCoreRoot<Counter> = root::get(COUNTER.id()).unwrap();
    assert!(!root.cores_with_reps().any(|c| c == CoreId(3)));
    assert!(root.data().load(Ordering::Relaxed) >= 2);
}

#[test]
fn root_gathers_from_not_sync_reps() {
    let tally = run_on(0, || async { Tally::create(()).unwrap() });
    for core in [1u32, 3] {
        run_on(core, move || async move {
            tally.hits.set(tally.hits.get() + 100 * core as u64);
        });
    }
    let per_core = run_on(2, move || async move {
        let root: &'static PerCoreRoot<Tally> = root::get(tally.id()).unwrap();
        root.gather(|rep| (rep.core, rep.hits.get())).await
    });
    // Only the cores that used the Ebb have reps: gather visits just those.
    let cores: Vec<CoreId> = per_core.iter().map(|(c, _)| *c).collect();
    assert_eq!(cores, [CoreId(1), CoreId(3)]);
    for (core, (rep_core, hits)) in &per_core {
        assert_eq!(core, rep_core, "gather ran on the rep's own core");
        assert_eq!(*hits, 100 * core.0 as u64);
    }
    let sum: u64 = per_core.iter().map(|(_, (_, h))| h).sum();
    assert_eq!(sum, 400);
}

#[test]
fn run_time_ebbs_get_fresh_ids_and_sync_reps_enumerate() {
    instance();
    let (a, b) = run_on(0, || async {
        (
            SyncCount::create(String::from("a")).unwrap(),
            SyncCount::create(String::from("b")).unwrap(),
        )
    });
    assert_ne!(a.id(), b.id());
    assert!(a.id().raw() >= ids::FIRST_DYNAMIC);
    for core in 0..CORES as u32 {
        run_on(core, move || async move {
            a.n.fetch_add(core as u64 + 1, Ordering::Relaxed);
            b.n.fetch_add(10, Ordering::Relaxed);
        });
    }
    let root: &'static PerCoreRoot<SyncCount> = root::get(a.id()).unwrap();
    assert_eq!(root.data(), "a");
    let sum: u64 = root.reps().map(|(_, r)| r.n.load(Ordering::Relaxed)).sum();
    assert_eq!(sum, (1..=CORES as u64).sum::<u64>());
    let root_b: &'static PerCoreRoot<SyncCount> = root::get(b.id()).unwrap();
    assert_eq!(root_b.reps().count(), CORES);
    assert_eq!(root.ebb_ref(), a);
}

#[test]
fn shared_ebb_is_one_instance() {
    instance();
    let cfg = run_on(0, || async {
        Config::create(Config { name: "cfg" }).unwrap()
    });
    let addrs: Vec<usize> = (0..CORES as u32)
        .map(|c| run_on(c, move || async move { &*cfg as *const Config as usize }))
        .collect();
    assert!(addrs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(run_on(3, move || async move { cfg.name }), "cfg");
}

#[test]
fn type_confusion_is_caught_on_the_slow_path() {
    instance();
    let cfg = run_on(1, || async {
        Config::create(Config { name: "x" }).unwrap()
    });
    let err = std::panic::catch_unwind(|| {
        let _: Option<&'static PerCoreRoot<SyncCount>> = root::get(cfg.id());
    })
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("two Ebb types share one id"), "{msg}");
    assert!(msg.contains("Config") && msg.contains("SyncCount"), "{msg}");
}

#[test]
fn deref_off_core_is_a_clear_panic() {
    let err = std::panic::catch_unwind(|| COUNTER.hits.get()).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("not running on an EbbRT core"), "{msg}");
}

#[test]
fn missing_root_is_a_clear_panic() {
    // An id nobody created, used with a type that has no well-known root.
    let id = EbbId::new(TABLE_SIZE as u32 - 1);
    let err = std::panic::catch_unwind(|| {
        per_core::miss::<SyncCount>(id);
    })
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("has no root"), "{msg}");
}

#[test]
fn id_allocator_runs_out_cleanly() {
    let alloc = ids::IdAllocator::new_for_test(TABLE_SIZE as u32 - 2);
    assert!(alloc.allocate().is_ok());
    assert_eq!(alloc.remaining(), 1);
    assert!(alloc.allocate().is_ok());
    for _ in 0..3 {
        assert_eq!(alloc.allocate(), Err(EbbError::IdsExhausted));
    }
    assert_eq!(alloc.remaining(), 0);
    assert!(EbbError::IdsExhausted.to_string().contains("no free EbbId"));
}

#[test]
fn install_twice_is_an_error() {
    let id = EbbId::new(TABLE_SIZE as u32 - 2);
    root::install(id, 5u32).unwrap();
    assert_eq!(root::install(id, 6u32), Err(EbbError::IdInUse(id)));
    assert_eq!(root::get::<u32>(id), Some(&5));
}
