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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// On one core: objects are aligned to their class, never overlap
    /// (contents survive), and freeing everything then trimming leaves the
    /// core with no slab.
    #[test]
    fn slab_classes_on_one_core(ops in prop::collection::vec(
        prop_oneof![(0usize..NUM_CLASSES).prop_map(Op::Alloc), any::<usize>().prop_map(Op::Free)], 1..400)) {
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
    let n = objects_per_slab(class) * 100 + 7;
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
    assert_eq!(peak.slabs, 101);
    // The cache's free list is full (the rest of the current slab's last
    // batch, and the first objects freed, from the first slab): those two
    // slabs stay; the stash keeps at most its limit of the emptied ones and
    // the rest went back to the page allocator.
    assert_eq!(after_free.cached_objects, cache_limit(class));
    assert_eq!(after_free.slabs, 2);
    assert!(after_free.stashed_bytes <= STASH_LIMIT_BYTES);
    assert!(after_free.stashed_bytes >= STASH_LIMIT_BYTES - slab_bytes(class));
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
    const ROUNDS: usize = 20;
    const PER: usize = 3000;
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

#[test]
fn threads_that_are_not_cores_use_the_shared_cache() {
    let class = SizeClass::for_size(24).unwrap();
    let objs: Vec<usize> = (0..5000)
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
        // SAFETY (each free): refused frees change nothing; the others free
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
}

#[test]
fn registered_at_its_well_known_id() {
    let r = ebbrt_core::registry::find("SlabAllocator").unwrap();
    assert_eq!(r.id, Some(ids::SLAB_ALLOCATOR));
    assert_eq!(r.kind, ebbrt_core::EbbKind::PerCore);
    let core = on(2, || SLAB_ALLOCATOR.core());
    assert_eq!(core, Some(CoreId(2)));
}
