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

// ---- Exactly-once construction of fixed-id roots (issue 9) ----

use core::sync::atomic::AtomicUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Barrier};
use std::thread;

/// Plain threads that race in the tests below (few under Miri, which runs
/// every thread interleaving slowly).
const RACERS: usize = if cfg!(miri) { 3 } else { 16 };

/// The message of a caught panic.
fn panic_message(err: &(dyn core::any::Any + Send)) -> String {
    match (err.downcast_ref::<String>(), err.downcast_ref::<&str>()) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => s.to_string(),
        (None, None) => String::from("<not a string>"),
    }
}

/// Lets other threads run inside a constructor, to widen the race window.
fn dawdle() {
    for _ in 0..if cfg!(miri) { 2 } else { 50 } {
        thread::yield_now();
    }
}

/// A shared Ebb at a fixed id whose constructions are counted.
struct RacyShared {
    serial: usize,
}
static RACY_SHARED_BUILT: AtomicUsize = AtomicUsize::new(0);
impl Shared for RacyShared {
    fn new_instance() -> Option<Self> {
        let serial = RACY_SHARED_BUILT.fetch_add(1, Ordering::Relaxed);
        dawdle();
        Some(RacyShared { serial })
    }
}
impl Ebb for RacyShared {
    fn miss(id: EbbId) -> &'static Self {
        shared_miss(id)
    }
}
// SAFETY: used by no other type.
unsafe impl StaticEbb for RacyShared {
    const ID: EbbId = ids::app(701);
}

#[test]
fn a_fixed_shared_root_is_built_once_when_plain_threads_race() {
    // Plain threads (not EbbRT cores) may miss too: they call the miss path
    // directly, as a hosted helper thread would.
    let barrier = Arc::new(Barrier::new(RACERS));
    let threads: Vec<_> = (0..RACERS)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let r = <RacyShared as Ebb>::miss(RacyShared::ID);
                (r as *const RacyShared as usize, r.serial)
            })
        })
        .collect();
    let seen: Vec<(usize, usize)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        RACY_SHARED_BUILT.load(Ordering::Relaxed),
        1,
        "constructions"
    );
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
}

/// A per-core Ebb at a fixed id: its root constructions are counted in a
/// static, its rep constructions in the root.
struct RacyPerCore {
    core: CoreId,
}
static RACY_ROOTS_BUILT: AtomicUsize = AtomicUsize::new(0);
impl PerCore for RacyPerCore {
    type Root = AtomicUsize;
    fn new_rep(root: &'static PerCoreRoot<Self>, core: CoreId) -> Self {
        root.data().fetch_add(1, Ordering::Relaxed);
        RacyPerCore { core }
    }
    fn new_root() -> Option<AtomicUsize> {
        RACY_ROOTS_BUILT.fetch_add(1, Ordering::Relaxed);
        dawdle();
        Some(AtomicUsize::new(0))
    }
}
impl Ebb for RacyPerCore {
    fn miss(id: EbbId) -> &'static Self {
        per_core_miss(id)
    }
}
// SAFETY: used by no other type.
unsafe impl StaticEbb for RacyPerCore {
    const ID: EbbId = ids::app(702);
}

/// A second shared Ebb, raced by the cores themselves.
struct CoreRacyShared;
static CORE_RACY_SHARED_BUILT: AtomicUsize = AtomicUsize::new(0);
impl Shared for CoreRacyShared {
    fn new_instance() -> Option<Self> {
        CORE_RACY_SHARED_BUILT.fetch_add(1, Ordering::Relaxed);
        dawdle();
        Some(CoreRacyShared)
    }
}
impl Ebb for CoreRacyShared {
    fn miss(id: EbbId) -> &'static Self {
        shared_miss(id)
    }
}
// SAFETY: used by no other type.
unsafe impl StaticEbb for CoreRacyShared {
    const ID: EbbId = ids::app(703);
}

#[test]
fn all_cores_missing_at_once_build_each_root_once() {
    instance();
    // Every core blocks on the barrier, then misses on both Ebbs at once.
    // (This is the only test that blocks its cores' threads: two such tests
    // could each hold some cores and wait for the others forever.)
    let barrier = Arc::new(Barrier::new(CORES));
    let seen = crate::testing::block_on(crate::exec::on_each_core(move |_| {
        let barrier = barrier.clone();
        async move {
            barrier.wait();
            let per_core: EbbRef<RacyPerCore> = EbbRef::fixed();
            let shared: EbbRef<CoreRacyShared> = EbbRef::fixed();
            let rep = &*per_core;
            (
                rep.core,
                rep as *const RacyPerCore as usize,
                &*shared as *const CoreRacyShared as usize,
            )
        }
    }));
    assert_eq!(
        RACY_ROOTS_BUILT.load(Ordering::Relaxed),
        1,
        "per-core roots built"
    );
    assert_eq!(
        CORE_RACY_SHARED_BUILT.load(Ordering::Relaxed),
        1,
        "shared instances built"
    );
    let root: &'static PerCoreRoot<RacyPerCore> = root::get(RacyPerCore::ID).unwrap();
    assert_eq!(
        root.data().load(Ordering::Relaxed),
        CORES,
        "one rep per core"
    );
    for (i, (core, _, shared)) in seen.iter().enumerate() {
        assert_eq!(*core, CoreId(i as u32));
        assert_eq!(*shared, seen[0].2, "one shared instance");
    }
    let mut reps: Vec<usize> = seen.iter().map(|s| s.1).collect();
    reps.sort_unstable();
    reps.dedup();
    assert_eq!(reps.len(), CORES, "distinct reps");
}

/// A shared Ebb whose constructor uses the Ebb itself.
struct SelfUser;
impl Shared for SelfUser {
    fn new_instance() -> Option<Self> {
        // The id is claimed by this very thread: neither a second root nor
        // an install can slip in meanwhile.
        assert_eq!(
            root::install(SelfUser::ID, 0u8),
            Err(EbbError::IdInUse(SelfUser::ID))
        );
        let _ = <SelfUser as Ebb>::miss(SelfUser::ID);
        Some(SelfUser)
    }
}
impl Ebb for SelfUser {
    fn miss(id: EbbId) -> &'static Self {
        shared_miss(id)
    }
}
// SAFETY: used by no other type.
unsafe impl StaticEbb for SelfUser {
    const ID: EbbId = ids::app(704);
}

#[test]
fn a_root_constructor_using_its_own_ebb_panics_instead_of_hanging() {
    for _ in 0..2 {
        let err = catch_unwind(|| {
            <SelfUser as Ebb>::miss(SelfUser::ID);
        })
        .unwrap_err();
        let msg = panic_message(&*err);
        assert!(msg.contains("must not use its own Ebb"), "{msg}");
        assert!(msg.contains("SelfUser"), "names the type: {msg}");
        // The claim was released on the way out: the id is empty again, and
        // the second round fails the same way rather than spinning.
        assert!(root::get::<SelfUser>(SelfUser::ID).is_none());
    }
}

/// A shared Ebb whose first construction panics (hosted: the panic
/// unwinds), once another thread has started to miss on it too.
struct Flaky {
    attempt: usize,
}
static FLAKY_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
static FLAKY_STARTED: AtomicUsize = AtomicUsize::new(0);
static FLAKY_SECOND_MISSING: AtomicUsize = AtomicUsize::new(0);
impl Shared for Flaky {
    fn new_instance() -> Option<Self> {
        let attempt = FLAKY_ATTEMPTS.fetch_add(1, Ordering::AcqRel);
        if attempt == 0 {
            FLAKY_STARTED.store(1, Ordering::Release);
            while FLAKY_SECOND_MISSING.load(Ordering::Acquire) == 0 {
                core::hint::spin_loop();
                thread::yield_now();
            }
            dawdle();
            panic!("flaky constructor fails once");
        }
        Some(Flaky { attempt })
    }
}
impl Ebb for Flaky {
    fn miss(id: EbbId) -> &'static Self {
        shared_miss(id)
    }
}
// SAFETY: used by no other type.
unsafe impl StaticEbb for Flaky {
    const ID: EbbId = ids::app(705);
}

#[test]
fn a_panicking_root_constructor_releases_its_claim() {
    let first = thread::spawn(|| catch_unwind(|| <Flaky as Ebb>::miss(Flaky::ID).attempt));
    let second = thread::spawn(|| {
        while FLAKY_STARTED.load(Ordering::Acquire) == 0 {
            core::hint::spin_loop();
            thread::yield_now();
        }
        FLAKY_SECOND_MISSING.store(1, Ordering::Release);
        // Waits for the first constructor (or finds the slot released),
        // then builds the root itself.
        <Flaky as Ebb>::miss(Flaky::ID).attempt
    });
    let err = first.join().unwrap().unwrap_err();
    assert!(panic_message(&*err).contains("fails once"));
    assert_eq!(second.join().unwrap(), 1);
    assert_eq!(FLAKY_ATTEMPTS.load(Ordering::Relaxed), 2);
    assert_eq!(<Flaky as Ebb>::miss(Flaky::ID).attempt, 1);
}

/// A per-core Ebb whose `new_rep` uses the Ebb itself.
struct SelfRep;
impl PerCore for SelfRep {
    type Root = ();
    fn new_rep(root: &'static PerCoreRoot<Self>, _: CoreId) -> Self {
        let _: &SelfRep = &root.ebb_ref();
        SelfRep
    }
}
impl Ebb for SelfRep {
    fn miss(id: EbbId) -> &'static Self {
        per_core_miss(id)
    }
}

#[test]
fn a_rep_constructor_using_its_own_ebb_panics_instead_of_recursing() {
    let msgs = run_on(2, || async {
        let r = SelfRep::create(()).unwrap();
        let mut msgs = Vec::new();
        for _ in 0..2 {
            let err = catch_unwind(AssertUnwindSafe(|| {
                let _: &SelfRep = &r;
            }))
            .unwrap_err();
            msgs.push(panic_message(&*err));
        }
        let root: &'static PerCoreRoot<SelfRep> = root::get(r.id()).unwrap();
        (msgs, root.cores_with_reps().count())
    });
    let (msgs, reps) = msgs;
    for msg in &msgs {
        assert!(
            msg.contains("SelfRep") && msg.contains("new_rep must not use its own Ebb"),
            "{msg}"
        );
    }
    assert_eq!(reps, 0, "the slot was cleared when new_rep unwound");
}
