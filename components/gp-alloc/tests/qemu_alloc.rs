//! The allocator stack in a running EbbRT instance, natively in QEMU (where
//! the `ebbrt` facade makes the general-purpose allocator Ebb the
//! `#[global_allocator]`) and hosted (where this file installs it): every
//! core allocates, objects are freed on other cores, and Hoard's threadtest
//! reports cycles per allocation/free pair.
//!
//! It uses whichever general-purpose allocator the facade selected
//! (`ebbrt::allocator`), so it is also the application built both ways:
//! `cargo test -p ebbrt-gp-alloc --test qemu_alloc` (the default) and
//! `cargo test -p ebbrt-gp-alloc --test qemu_alloc --features ebbrt/talc`.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use ebbrt::cpu::{self, CoreId};
use ebbrt::{on_each_core, spawn_on};

#[cfg(not(target_os = "none"))]
#[global_allocator]
static GLOBAL: ebbrt::allocator::Global = ebbrt::allocator::Global;

fn pattern(core: usize, i: usize) -> u8 {
    (core * 31 + i) as u8
}

/// Each core fills boxes of assorted sizes; each batch is checked and
/// dropped on the next core: every free is a cross-core free.
#[ebbrt::test]
async fn objects_freed_on_other_cores_go_home() -> Result<(), String> {
    const PER_CORE: usize = 4000;
    let n = cpu::count();
    for round in 0..3 {
        let batches = on_each_core(move |core| async move {
            let c = core.index();
            (0..PER_CORE)
                .map(|i| {
                    let len = 1 + (i * 53 + round * 7) % 2500;
                    alloc::vec![pattern(c, i); len].into_boxed_slice()
                })
                .collect::<Vec<Box<[u8]>>>()
        })
        .await;
        let mut checks = Vec::new();
        for (c, batch) in batches.into_iter().enumerate() {
            let to = CoreId(((c + 1) % n) as u32);
            checks.push(spawn_on(to, async move {
                batch
                    .iter()
                    .enumerate()
                    .all(|(i, b)| b.iter().all(|x| *x == pattern(c, i)))
            }));
        }
        for (c, h) in checks.into_iter().enumerate() {
            if !h.await {
                return Err(format!("round {round}: a box of core {c} was overwritten"));
            }
        }
    }
    Ok(())
}

/// A core that frees another core's slab objects keeps a few for reuse
/// there (at most the class's `cache_limit`), and sends them home before
/// it goes idle. Through the slab allocator Ebb directly, whichever
/// general-purpose allocator the facade selected.
#[ebbrt::test]
async fn foreign_objects_kept_by_a_core_go_home_when_it_idles() -> Result<(), String> {
    use ebbrt_slab_alloc::{SLAB_ALLOCATOR, SizeClass, cache_limit};
    if cpu::count() < 2 {
        ebbrt::println!("one core: nothing is freed across cores");
        return Ok(());
    }
    // A class nothing else here uses.
    let class = SizeClass::for_size(5000).ok_or("no class for 5000 bytes")?;
    let k = cache_limit(class).min(4);
    let objs = spawn_on(CoreId(0), async move {
        (0..k)
            .map(|_| SLAB_ALLOCATOR.alloc(class).map(|p| p.as_ptr() as usize))
            .collect::<Result<Vec<usize>, _>>()
    })
    .await
    .map_err(|e| format!("{e}"))?;
    spawn_on(CoreId(1), async move {
        SLAB_ALLOCATOR.trim();
        let before = SLAB_ALLOCATOR.cached_objects(class);
        for p in objs {
            let p = core::ptr::NonNull::new(p as *mut u8).ok_or("null object")?;
            // SAFETY: allocated on core 0 above, freed once.
            unsafe { SLAB_ALLOCATOR.free(p, class) }.map_err(|e| format!("{e}"))?;
        }
        let kept = SLAB_ALLOCATOR.cached_objects(class);
        // Nothing else runs on this core: it idles while this task sleeps.
        ebbrt::exec::sleep(core::time::Duration::from_millis(20)).await;
        let after = SLAB_ALLOCATOR.cached_objects(class);
        if (before, kept, after) != (0, k, 0) {
            return Err(format!(
                "objects of core 0 on core 1's list: {before} before the frees, {kept} after, \
                 {after} after idling (expected 0, {k}, 0)"
            ));
        }
        Ok(())
    })
    .await
}

/// Large blocks, odd alignments and reallocation on every core.
#[ebbrt::test]
async fn large_aligned_and_reallocated_blocks() -> Result<(), String> {
    let bad = on_each_core(|core| async move {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..200_000u64 {
            v.push(i ^ core.0 as u64);
        }
        let ok_vec = v
            .iter()
            .enumerate()
            .all(|(i, x)| *x == i as u64 ^ core.0 as u64);
        let mut ok_align = true;
        for shift in [4u32, 6, 12, 16, 21] {
            let l = Layout::from_size_align(100, 1 << shift).unwrap();
            // SAFETY: a non-zero layout, freed below with the same layout.
            unsafe {
                let p = alloc::alloc::alloc(l);
                ok_align &= !p.is_null() && (p as usize).is_multiple_of(1 << shift);
                alloc::alloc::dealloc(p, l);
            }
        }
        !(ok_vec && ok_align)
    })
    .await;
    match bad.iter().position(|b| *b) {
        Some(c) => Err(format!("core {c}: wrong contents or alignment")),
        None => Ok(()),
    }
}

/// Exactly one general-purpose allocator is registered, at its id.
#[ebbrt::test]
fn one_general_purpose_allocator_is_registered() -> Result<(), String> {
    ebbrt::registry::check_static_ids().map_err(|e| format!("{e}"))?;
    let gp: Vec<&str> = ebbrt::registry::COMPONENTS
        .iter()
        .filter(|r| r.id == Some(ebbrt::ebb::ids::GP_ALLOCATOR))
        .map(|r| r.name)
        .collect();
    if gp.len() != 1 {
        return Err(format!("general-purpose allocators registered: {gp:?}"));
    }
    ebbrt::println!("general-purpose allocator: {}", gp[0]);
    Ok(())
}

fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

struct Barrier {
    n: usize,
    count: AtomicUsize,
    generation: AtomicUsize,
}

impl Barrier {
    fn wait(&self) {
        let g = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.generation.store(g + 1, Ordering::Release);
        } else {
            while self.generation.load(Ordering::Acquire) == g {
                core::hint::spin_loop();
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Foo {
    x: i32,
    y: i32,
}

/// The selected allocator, called the way a `#[global_allocator]` is
/// (through a function that is not inlined into its caller), as in the
/// hosted benchmark.
struct Shim;

// SAFETY: forwards every call unchanged.
unsafe impl GlobalAlloc for Shim {
    #[inline(never)]
    // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { ebbrt::allocator::Global.alloc(layout) }
    }
    #[inline(never)]
    // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract, passed on.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { ebbrt::allocator::Global.dealloc(ptr, layout) }
    }
}

/// One core's share of Hoard's threadtest; the cycles it took.
fn threadtest(nobjects: usize, iterations: usize, start: &Barrier) -> u64 {
    let a = &Shim;
    let layout = Layout::new::<Foo>();
    let mut ptrs: Vec<*mut Foo> = alloc::vec![core::ptr::null_mut(); nobjects];
    start.wait();
    let t = rdtsc();
    for _ in 0..iterations {
        for p in ptrs.iter_mut() {
            // SAFETY: a non-zero layout; checked for null.
            let q = unsafe { a.alloc(layout) } as *mut Foo;
            assert!(!q.is_null());
            // SAFETY: `q` is a fresh block for one `Foo`.
            unsafe { q.write(Foo { x: 14, y: 29 }) };
            *p = q;
        }
        for p in ptrs.iter() {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe {
                core::hint::black_box((**p).x + (**p).y);
                a.dealloc(*p as *mut u8, layout);
            }
        }
    }
    rdtsc() - t
}

/// Hoard's threadtest through the selected general-purpose allocator on 1 and
/// 2 cores, in cycles (TSC ticks) per allocation+free pair. A tenth of the
/// paper's iterations in release builds (I: N=100,000, i=100; II: N=100,
/// i=100,000), a thousandth in debug builds: QEMU's TCG emulates every
/// instruction. Reports; asserts nothing about speed.
#[ebbrt::test]
async fn threadtest_cycles_per_operation() {
    let div = if cfg!(debug_assertions) { 1000 } else { 10 };
    for (name, n, iters) in [
        ("I", 100_000usize, 1000 / div),
        ("II", 100, 1_000_000 / div),
    ] {
        let iters = iters.max(1);
        for threads in 1..=cpu::count().min(2) {
            let start = alloc::sync::Arc::new(Barrier {
                n: threads,
                count: AtomicUsize::new(0),
                generation: AtomicUsize::new(0),
            });
            let cycles = on_each_core(move |core| {
                let start = start.clone();
                async move {
                    if core.index() < threads {
                        threadtest(n / threads, iters, &start)
                    } else {
                        0
                    }
                }
            })
            .await;
            let wall = cycles.iter().max().copied().unwrap_or(0);
            let ops = (n / threads * threads * iters) as u64;
            ebbrt::println!(
                "threadtest {name} (N={n}, i={iters}), {threads} core(s): {:.1} cycles per alloc+free",
                wall as f64 / ops as f64
            );
        }
    }
}

ebbrt::test_main!();
