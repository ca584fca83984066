#![allow(unsafe_code)]

use std::boxed::Box;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
#[cfg(debug_assertions)]
use ebbrt_page_alloc::pages;

const CORES: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// Plain threads entered as EbbRT cores (no executor needed: the allocator
/// only uses the core identity and the translation table).
fn pool() -> &'static [Mutex<Sender<Job>>] {
    static POOL: OnceLock<Vec<Mutex<Sender<Job>>>> = OnceLock::new();
    POOL.get_or_init(|| {
        cpu::set_count(CORES).unwrap();
        (0..CORES)
            .map(|i| {
                let (tx, rx) = channel::<Job>();
                thread::spawn(move || {
                    // SAFETY: each pool thread enters a distinct core, once.
                    unsafe { cpu::enter(CoreId(i as u32)) };
                    for job in rx {
                        job();
                    }
                });
                Mutex::new(tx)
            })
            .collect()
    })
}

/// Runs `f` on `core` and waits for its result.
fn on<R: Send + 'static>(core: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = channel();
    pool()[core]
        .lock()
        .unwrap()
        .send(Box::new(move || tx.send(f()).unwrap()))
        .unwrap();
    rx.recv().unwrap()
}

/// Tests that look at a core's slab counts run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Obj {
    addr: usize,
    class: SizeClass,
}
// SAFETY: test objects are plain addresses, moved between test threads on
// purpose (that is what cross-core frees are).
unsafe impl Send for Obj {}

fn fill(o: Obj, v: u8) {
    // SAFETY: the object is allocated and `class.size()` bytes long.
    unsafe { core::ptr::write_bytes(o.addr as *mut u8, v, o.class.size()) }
}

fn filled(o: Obj, v: u8) -> bool {
    // SAFETY: as in `fill`.
    let s = unsafe { core::slice::from_raw_parts(o.addr as *const u8, o.class.size()) };
    s.iter().all(|b| *b == v)
}

fn class(i: usize) -> SizeClass {
    SizeClass::from_index(i % NUM_CLASSES).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize),
    Free(usize),
}

/// Sizes cut down under Miri, which interprets every step (the same
/// properties, on fewer and smaller cases).
const CASES: u32 = if cfg!(miri) { 1 } else { 32 };
const MAX_OPS: usize = if cfg!(miri) { 16 } else { 400 };

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// On one core: objects are aligned to their class, never overlap
    /// (contents survive), and freeing everything then trimming leaves the
    /// core with no slab.
    #[test]
    fn slab_classes_on_one_core(ops in prop::collection::vec(
        prop_oneof![(0usize..NUM_CLASSES).prop_map(Op::Alloc), any::<usize>().prop_map(Op::Free)], 1..MAX_OPS)) {
        let _s = serial();
        let ok = on(1, move || {
            let rep = &*SLAB_ALLOCATOR;
            let mut live: Vec<(Obj, u8)> = Vec::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Alloc(c) => {
                        let class = class(c);
                        let p = rep.alloc(class).unwrap();
                        let o = Obj { addr: p.as_ptr() as usize, class };
                        assert_eq!(o.addr % class.align(), 0, "aligned to its class");
                        assert!(live.iter().all(|(l, _)| l.addr != o.addr));
                        fill(o, i as u8);
                        live.push((o, i as u8));
                    }
                    Op::Free(k) if !live.is_empty() => {
                        let (o, v) = live.swap_remove(k % live.len());
                        assert!(filled(o, v), "no other object overlapped it");
                        // SAFETY: allocated above, freed once.
                        unsafe { rep.free(NonNull::new(o.addr as *mut u8).unwrap(), o.class) }.unwrap();
                    }
                    Op::Free(_) => {}
                }
            }
            for (o, v) in live {
                assert!(filled(o, v));
                // SAFETY: as above.
                unsafe { rep.free(NonNull::new(o.addr as *mut u8).unwrap(), o.class) }.unwrap();
            }
            rep.trim();
            rep.stats()
        });
        prop_assert_eq!(ok, CacheStats { slabs: 0, stashed_bytes: 0, cached_objects: 0 });
    }
}

#[test]
fn many_objects_fill_many_slabs_and_empty_slabs_return_pages() {
    let _s = serial();
    let class = SizeClass::for_size(64).unwrap();
    let full = if cfg!(miri) { 1 } else { 100 };
    let n = objects_per_slab(class) * full + 7;
    let (peak, after_free, after_trim) = on(2, move || {
        let rep = &*SLAB_ALLOCATOR;
        rep.trim();
        let objs: Vec<usize> = (0..n)
            .map(|_| rep.alloc(class).unwrap().as_ptr() as usize)
            .collect();
        let peak = rep.stats();
        for p in objs {
            // SAFETY: allocated above.
            unsafe { rep.free(NonNull::new(p as *mut u8).unwrap(), class) }.unwrap();
        }
        let after_free = rep.stats();
        rep.trim();
        (peak, after_free, rep.stats())
    });
    assert_eq!(peak.slabs, full + 1);
    // The cache's free list is full (the rest of the current slab's last
    // batch, and the first objects freed, from the first slab): those two
    // slabs stay; the stash keeps at most its limit of the emptied ones and
    // the rest went back to the page allocator.
    assert_eq!(after_free.cached_objects, cache_limit(class));
    assert_eq!(after_free.slabs, 2);
    let emptied = (full + 1 - 2) * slab_bytes(class);
    assert!(after_free.stashed_bytes <= STASH_LIMIT_BYTES.min(emptied));
    assert!(after_free.stashed_bytes >= (STASH_LIMIT_BYTES - slab_bytes(class)).min(emptied));
    assert_eq!(
        after_trim,
        CacheStats {
            slabs: 0,
            stashed_bytes: 0,
            cached_objects: 0,
        }
    );
}

/// Objects allocated on each core are freed on the others (and on a thread
/// that is no core); every core gets its objects back and ends empty.
#[test]
fn cross_core_frees_return_to_the_owner() {
    let _s = serial();
    const ROUNDS: usize = if cfg!(miri) { 1 } else { 20 };
    const PER: usize = if cfg!(miri) { 12 } else { 3000 };
    for round in 0..ROUNDS {
        let batches: Vec<Vec<Obj>> = (0..CORES)
            .map(|c| {
                on(c, move || {
                    (0..PER)
                        .map(|i| {
                            let class = class(i * 7 + round);
                            let p = SLAB_ALLOCATOR.alloc(class).unwrap();
                            let o = Obj {
                                addr: p.as_ptr() as usize,
                                class,
                            };
                            fill(o, c as u8);
                            o
                        })
                        .collect()
                })
            })
            .collect();
        // Core c frees what core c+1 allocated; every third object is freed
        // by this thread, which is no core.
        let mut handles = Vec::new();
        for (c, batch) in batches.into_iter().enumerate() {
            let (mine, theirs): (Vec<_>, Vec<_>) =
                batch.into_iter().enumerate().partition(|(i, _)| i % 3 == 0);
            for (_, o) in mine {
                assert!(filled(o, c as u8));
                // SAFETY: allocated above, freed once.
                unsafe { free(NonNull::new(o.addr as *mut u8).unwrap(), o.class) }.unwrap();
            }
            let to = (c + CORES - 1) % CORES;
            let theirs: Vec<Obj> = theirs.into_iter().map(|(_, o)| o).collect();
            handles.push(thread::spawn(move || {
                on(to, move || {
                    for o in theirs {
                        assert!(filled(o, c as u8), "object intact when freed remotely");
                        // SAFETY: as above.
                        unsafe {
                            SLAB_ALLOCATOR.free(NonNull::new(o.addr as *mut u8).unwrap(), o.class)
                        }
                        .unwrap();
                    }
                })
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
    }
    // Remote frees wait in the freeing core's outboxes until its next slow
    // path or drain: send them all on first.
    for c in 0..CORES {
        on(c, || SLAB_ALLOCATOR.drain_remote_frees());
    }
    for c in 0..CORES {
        let s = on(c, || {
            SLAB_ALLOCATOR.trim();
            SLAB_ALLOCATOR.stats()
        });
        assert_eq!(
            s,
            CacheStats {
                slabs: 0,
                stashed_bytes: 0,
                cached_objects: 0,
            },
            "core {c} got every object back"
        );
    }
}

/// A core that frees another core's objects keeps up to `cache_limit` of
/// them and hands them out again itself, last freed first; the rest go
/// home at once. The owner counts the kept ones as in use (their slab stays)
/// until the freeing core drains, which sends them home; then the owner
/// gets every page back.
#[test]
fn foreign_frees_are_reused_where_freed_within_the_limit_and_go_home_on_drain() {
    let _s = serial();
    let class = SizeClass::for_size(1000).unwrap();
    let limit = cache_limit(class);
    assert!((4..=256).contains(&limit));
    let n = 3 * limit + 5;
    let objs: Vec<usize> = on(1, move || {
        SLAB_ALLOCATOR.trim();
        (0..n)
            .map(|_| SLAB_ALLOCATOR.alloc(class).unwrap().as_ptr() as usize)
            .collect()
    });
    let first: Vec<usize> = objs[..limit].to_vec();
    let (kept, reused) = on(2, move || {
        SLAB_ALLOCATOR.trim();
        for &p in &objs {
            // SAFETY: allocated on core 1, freed once.
            unsafe { SLAB_ALLOCATOR.free(NonNull::new(p as *mut u8).unwrap(), class) }.unwrap();
        }
        let kept = SLAB_ALLOCATOR.stats().cached_objects;
        let reused: Vec<usize> = (0..limit)
            .map(|_| SLAB_ALLOCATOR.alloc(class).unwrap().as_ptr() as usize)
            .collect();
        for &p in &reused {
            // SAFETY: allocated just above, freed once.
            unsafe { SLAB_ALLOCATOR.free(NonNull::new(p as *mut u8).unwrap(), class) }.unwrap();
        }
        (kept, reused)
    });
    assert_eq!(kept, limit, "the freeing core keeps at most the limit");
    let mut expect = first.clone();
    expect.reverse();
    assert_eq!(
        reused, expect,
        "the kept objects are handed out there, last freed first"
    );
    // The owner got the overflow back, but not the kept objects' slab.
    let owner = on(1, || {
        SLAB_ALLOCATOR.trim();
        SLAB_ALLOCATOR.stats()
    });
    assert!(
        owner.slabs >= 1,
        "objects kept on core 2 hold their slab: {owner:?}"
    );
    let after = on(2, || {
        SLAB_ALLOCATOR.drain_remote_frees();
        SLAB_ALLOCATOR.stats()
    });
    assert_eq!(after.cached_objects, 0, "core 2 sent them home");
    let owner = on(1, || {
        SLAB_ALLOCATOR.trim();
        SLAB_ALLOCATOR.stats()
    });
    assert_eq!(
        owner,
        CacheStats {
            slabs: 0,
            stashed_bytes: 0,
            cached_objects: 0,
        }
    );
}

/// Draining looks only at what was freed since the last drain, and keeps
/// the core's own objects (in their order) while sending others' home.
#[test]
fn drain_keeps_own_objects_and_sends_only_foreign_ones_home() {
    let _s = serial();
    let class = SizeClass::for_size(48).unwrap();
    let (theirs, theirs2): (Vec<usize>, Vec<usize>) = on(3, move || {
        SLAB_ALLOCATOR.trim();
        let all: Vec<usize> = (0..20)
            .map(|_| SLAB_ALLOCATOR.alloc(class).unwrap().as_ptr() as usize)
            .collect();
        (all[..10].to_vec(), all[10..].to_vec())
    });
    let (before, after, order_kept, second) = on(0, move || {
        let rep = &*SLAB_ALLOCATOR;
        rep.trim();
        let mine: Vec<usize> = (0..6)
            .map(|_| rep.alloc(class).unwrap().as_ptr() as usize)
            .collect();
        // Trim again: the free list is empty, so it holds exactly what we
        // free below: ours and core 3's, interleaved.
        rep.trim();
        assert_eq!(rep.stats().cached_objects, 0);
        let mut objs: Vec<usize> = Vec::new();
        for (i, &p) in mine.iter().enumerate() {
            objs.push(p);
            objs.push(theirs[i]);
        }
        objs.extend_from_slice(&theirs[6..]);
        for &p in &objs {
            // SAFETY: each object allocated above (here or on core 3), freed once.
            unsafe { rep.free(NonNull::new(p as *mut u8).unwrap(), class) }.unwrap();
        }
        let before = rep.stats().cached_objects;
        rep.drain_remote_frees();
        let after = rep.stats().cached_objects;
        // A second drain has nothing new to look at and changes nothing.
        rep.drain_remote_frees();
        assert_eq!(rep.stats().cached_objects, after);
        // The own objects come back out last freed first.
        let out: Vec<usize> = (0..6)
            .map(|_| rep.alloc(class).unwrap().as_ptr() as usize)
            .collect();
        let mut expect = mine.clone();
        expect.reverse();
        let order_kept = out == expect;
        for &p in &out {
            // SAFETY: allocated just above.
            unsafe { rep.free(NonNull::new(p as *mut u8).unwrap(), class) }.unwrap();
        }
        rep.trim();
        // Foreign objects freed onto a list that allocations had shortened
        // (below the part a drain or refill vouched for) are found too.
        let fresh = rep.alloc(class).unwrap();
        let listed = rep.stats().cached_objects;
        let popped: Vec<usize> = (0..20)
            .map(|_| rep.alloc(class).unwrap().as_ptr() as usize)
            .collect();
        for &p in &theirs2 {
            // SAFETY: allocated on core 3, freed once.
            unsafe { rep.free(NonNull::new(p as *mut u8).unwrap(), class) }.unwrap();
        }
        rep.drain_remote_frees();
        let second = (listed, rep.stats().cached_objects);
        for p in popped.into_iter().chain([fresh.as_ptr() as usize]) {
            // SAFETY: allocated just above.
            unsafe { rep.free(NonNull::new(p as *mut u8).unwrap(), class) }.unwrap();
        }
        rep.trim();
        (before, after, order_kept, second)
    });
    assert_eq!((before, after), (16, 6));
    assert!(order_kept, "own objects kept in their order");
    let (listed, left) = second;
    assert!(listed > 20, "a refill listed {listed} objects");
    assert_eq!(left, listed - 20, "only core 3's objects left");
    let s = on(3, || {
        SLAB_ALLOCATOR.trim();
        SLAB_ALLOCATOR.stats()
    });
    assert_eq!(s.slabs, 0, "core 3 got its objects back: {s:?}");
}

#[test]
fn threads_that_are_not_cores_use_the_shared_cache() {
    let class = SizeClass::for_size(24).unwrap();
    let objs: Vec<usize> = (0..if cfg!(miri) { 40 } else { 5000 })
        .map(|_| alloc(class).unwrap().as_ptr() as usize)
        .collect();
    // Freed on a core: they go back to the shared cache.
    on(3, move || {
        for p in objs {
            // SAFETY: allocated above, freed once.
            unsafe { SLAB_ALLOCATOR.free(NonNull::new(p as *mut u8).unwrap(), class) }.unwrap();
        }
    });
    let p = alloc(class).unwrap();
    // SAFETY: allocated above.
    unsafe { free(p, class) }.unwrap();
    with_shared(|s| assert_eq!(s.core(), None));
}

#[cfg(debug_assertions)]
#[test]
fn bad_frees_are_caught_in_debug_builds() {
    let _s = serial();
    on(0, || {
        let rep = &*SLAB_ALLOCATOR;
        let c16 = SizeClass::for_size(16).unwrap();
        let c32 = SizeClass::for_size(32).unwrap();
        let a = rep.alloc(c16).unwrap();
        let b = rep.alloc(c32).unwrap();
        // SAFETY: (each free) refused frees change nothing; the others free
        // objects allocated above, once.
        unsafe {
            assert_eq!(rep.free(b, c16).unwrap_err().kind, FreeErrorKind::WrongSize);
            let inner = NonNull::new(b.as_ptr().add(8)).unwrap();
            assert_eq!(
                rep.free(inner, c32).unwrap_err().kind,
                FreeErrorKind::NotAllocated
            );
            let mut local = 0u64;
            let foreign = NonNull::new(&mut local as *mut u64 as *mut u8).unwrap();
            let e = rep.free(foreign, c16).unwrap_err();
            assert_eq!(e.kind, FreeErrorKind::Foreign);
            assert!(std::format!("{e}").contains("foreign pointer"), "{e}");
            // Inside the arena but not in a slab.
            let (page, order) = pages().alloc_bytes(1 << 20, 1 << 20).unwrap();
            assert_eq!(
                rep.free(page, c16).unwrap_err().kind,
                FreeErrorKind::Foreign
            );
            pages().free(page, order).unwrap();
            rep.free(a, c16).unwrap();
            let e = rep.free(a, c16).unwrap_err();
            assert_eq!(e.kind, FreeErrorKind::DoubleFree);
            assert!(std::format!("{e}").contains("double free"), "{e}");
            rep.free(b, c32).unwrap();
            assert_eq!(
                rep.free(b, c32).unwrap_err().kind,
                FreeErrorKind::DoubleFree
            );
        }
    });
    // A double free on another core is caught too.
    let p = on(1, || {
        SLAB_ALLOCATOR
            .alloc(SizeClass::for_size(8).unwrap())
            .unwrap()
            .as_ptr() as usize
    });
    let c8 = SizeClass::for_size(8).unwrap();
    let p = NonNull::new(p as *mut u8).unwrap();
    // SAFETY: allocated on core 1, freed once here (no core), then again.
    unsafe {
        free(p, c8).unwrap();
        assert_eq!(free(p, c8).unwrap_err().kind, FreeErrorKind::DoubleFree);
    }
    // An object freed on another core waits on that core's free list: a
    // second free, on a third core, is still caught; handed out again on
    // the freeing core it can be freed anywhere once more.
    let c96 = SizeClass::for_size(96).unwrap();
    let p = on(1, move || {
        SLAB_ALLOCATOR.alloc(c96).unwrap().as_ptr() as usize
    });
    on(2, move || {
        SLAB_ALLOCATOR.drain_remote_frees();
        // SAFETY: allocated on core 1, freed once.
        unsafe { SLAB_ALLOCATOR.free(NonNull::new(p as *mut u8).unwrap(), c96) }.unwrap();
    });
    let again = on(3, move || {
        // SAFETY: a double free, refused without effect.
        unsafe { SLAB_ALLOCATOR.free(NonNull::new(p as *mut u8).unwrap(), c96) }
            .unwrap_err()
            .kind
    });
    assert_eq!(again, FreeErrorKind::DoubleFree);
    let q = on(2, move || {
        SLAB_ALLOCATOR.alloc(c96).unwrap().as_ptr() as usize
    });
    assert_eq!(q, p, "core 2 reuses the object it freed");
    on(1, move || {
        // SAFETY: handed out again on core 2, freed once on its owner.
        unsafe { SLAB_ALLOCATOR.free(NonNull::new(q as *mut u8).unwrap(), c96) }.unwrap();
    });
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot read linkme's link sections (COMPONENTS)")]
fn registered_at_its_well_known_id() {
    let r = ebbrt_core::registry::find("SlabAllocator").unwrap();
    assert_eq!(r.id, Some(ids::SLAB_ALLOCATOR));
    assert_eq!(r.kind, ebbrt_core::EbbKind::PerCore);
    let core = on(2, || SLAB_ALLOCATOR.core());
    assert_eq!(core, Some(CoreId(2)));
}

/// The crate docs promise this bound on the objects a core keeps from other
/// cores (the sum over the classes of `cache_limit` objects).
#[test]
fn the_bound_on_objects_kept_from_other_cores_is_as_documented() {
    let total: usize = (0..NUM_CLASSES)
        .map(|i| {
            let c = SizeClass::from_index(i).unwrap();
            cache_limit(c) * c.size()
        })
        .sum();
    assert_eq!(total, 1_132_544);
    assert!(
        (0..NUM_CLASSES)
            .map(|i| cache_limit(SizeClass::from_index(i).unwrap()))
            .all(|n| (4..=256).contains(&n))
    );
}
