//! In-QEMU tests of the native kernel core (and, hosted, of the same
//! behaviour on the hosted runtime): per-core representatives, roots built
//! once when every core misses together, work moving between cores, timers,
//! wakes of halted cores, the clock across cores, device-interrupt events
//! and the memory map.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use ebbrt::cpu::{self, CoreId};
use ebbrt::ebb::ids;
use ebbrt::exec::{self, sleep, timeout};
use ebbrt::time::Instant;
use ebbrt::{EbbRef, on_each_core, spawn_on};

/// One rep per core; each remembers the core that built it.
#[ebbrt::ebb(per_core, id = ids::app(600))]
#[derive(Default)]
struct Probe {
    built_on: Cell<Option<CoreId>>,
    calls: Cell<u32>,
}

impl Probe {
    fn touch(&self) -> (usize, CoreId, u32) {
        if self.built_on.get().is_none() {
            self.built_on.set(Some(cpu::current()));
        }
        self.calls.set(self.calls.get() + 1);
        (
            self as *const Probe as usize,
            self.built_on.get().unwrap(),
            self.calls.get(),
        )
    }
}

static PROBE: EbbRef<Probe> = EbbRef::fixed();

#[ebbrt::test]
async fn per_core_reps_are_distinct_and_stay_home() -> Result<(), String> {
    let seen = on_each_core(|_| async { (PROBE.touch(), PROBE.touch()) }).await;
    let mut addrs: Vec<usize> = seen.iter().map(|((a, _, _), _)| *a).collect();
    for (i, ((a1, c1, n1), (a2, c2, n2))) in seen.iter().enumerate() {
        if a1 != a2 || *c1 != CoreId(i as u32) || c1 != c2 || n2 != &(n1 + 1) {
            return Err(format!("core {i}: {seen:?}"));
        }
    }
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.len() != cpu::count() {
        return Err(format!(
            "{} distinct reps for {} cores",
            addrs.len(),
            cpu::count()
        ));
    }
    Ok(())
}

/// Constructions of the Ebbs below, counted.
static ONCE_SHARED_BUILT: AtomicUsize = AtomicUsize::new(0);
static ONCE_ROOTS_BUILT: AtomicUsize = AtomicUsize::new(0);
static ONCE_REPS_BUILT: AtomicUsize = AtomicUsize::new(0);

/// Keeps a constructor busy for a while, so that the other cores' misses
/// overlap it (no timing is asserted).
fn dawdle() {
    for _ in 0..20_000 {
        core::hint::spin_loop();
    }
}

/// A shared Ebb at a fixed id that counts its constructions.
#[ebbrt::ebb(shared, id = ids::app(601), new = OnceShared::new)]
struct OnceShared {
    serial: usize,
}

impl OnceShared {
    fn new() -> Self {
        let serial = ONCE_SHARED_BUILT.fetch_add(1, Ordering::Relaxed);
        dawdle();
        OnceShared { serial }
    }
}

/// A per-core Ebb at a fixed id that counts its root and rep constructions.
#[ebbrt::ebb(per_core, id = ids::app(602), new = OncePerCore::new, root_new = OncePerCore::new_root)]
struct OncePerCore {
    core: CoreId,
}

impl OncePerCore {
    fn new(_: &'static ebbrt::PerCoreRoot<Self>, core: CoreId) -> Self {
        ONCE_REPS_BUILT.fetch_add(1, Ordering::Relaxed);
        OncePerCore { core }
    }
    fn new_root() {
        ONCE_ROOTS_BUILT.fetch_add(1, Ordering::Relaxed);
        dawdle();
    }
}

static ONCE_SHARED: EbbRef<OnceShared> = EbbRef::fixed();
static ONCE_PER_CORE: EbbRef<OncePerCore> = EbbRef::fixed();

#[ebbrt::test]
async fn a_root_is_built_once_when_every_core_misses_at_once() -> Result<(), String> {
    // Every core waits at a barrier, then misses on both fresh Ebbs. (The
    // spin blocks each core's loop, which is fine: each core's only work is
    // this task.)
    static ARRIVED: AtomicUsize = AtomicUsize::new(0);
    let seen = on_each_core(|_| async {
        ARRIVED.fetch_add(1, Ordering::AcqRel);
        while ARRIVED.load(Ordering::Acquire) < cpu::count() {
            core::hint::spin_loop();
        }
        let shared = &*ONCE_SHARED;
        let rep = &*ONCE_PER_CORE;
        (
            shared as *const OnceShared as usize,
            shared.serial,
            rep.core,
        )
    })
    .await;
    let counts = (
        ONCE_SHARED_BUILT.load(Ordering::Relaxed),
        ONCE_ROOTS_BUILT.load(Ordering::Relaxed),
        ONCE_REPS_BUILT.load(Ordering::Relaxed),
    );
    if counts != (1, 1, cpu::count()) {
        return Err(format!(
            "{} cores built {} shared instances, {} per-core roots, {} reps: {seen:?}",
            cpu::count(),
            counts.0,
            counts.1,
            counts.2
        ));
    }
    for (i, s) in seen.iter().enumerate() {
        if (s.0, s.1) != (seen[0].0, 0) || s.2 != CoreId(i as u32) {
            return Err(format!("core {i}: {seen:?}"));
        }
    }
    Ok(())
}

#[ebbrt::test]
async fn spawn_on_round_trips_to_every_core() -> Result<(), String> {
    for round in 0..50u32 {
        for core in cpu::all() {
            let (ran_on, v) = spawn_on(core, async move { (cpu::current(), round * 2) }).await;
            if ran_on != core || v != round * 2 {
                return Err(format!("round {round}: sent to {core}, ran on {ran_on}"));
            }
        }
    }
    Ok(())
}

#[ebbrt::test]
async fn many_tasks_from_every_core_complete() {
    let sums = on_each_core(|me| async move {
        let mut hs = Vec::new();
        for k in 0..200u64 {
            let to = CoreId(((me.0 as u64 + k) % cpu::count() as u64) as u32);
            hs.push(spawn_on(to, async move { k }));
        }
        let mut s = 0;
        for h in hs {
            s += h.await;
        }
        s
    })
    .await;
    assert!(sums.iter().all(|&s| s == 199 * 200 / 2), "{sums:?}");
}

/// How far ahead of the test's start its timers' origin lies.
const LEAD: Duration = Duration::from_millis(50);

#[ebbrt::test]
async fn timers_fire_in_order_and_not_early() -> Result<(), String> {
    let results = on_each_core(|_| async {
        // Deadlines from one origin well ahead (`LEAD`): every timer is
        // armed before any is due, however long the emulator takes to
        // first poll the tasks (under TCG a cold core took over 7 ms), so
        // the order is the timers' own.
        let t0 = Instant::now() + LEAD;
        let order = alloc::rc::Rc::new(core::cell::RefCell::new(Vec::new()));
        let mut hs = Vec::new();
        for ms in [7u64, 1, 4] {
            let order = order.clone();
            hs.push(ebbrt::spawn_local(async move {
                exec::sleep_until(t0 + Duration::from_millis(ms)).await;
                order
                    .borrow_mut()
                    .push((ms, Instant::now().saturating_duration_since(t0)));
            }));
        }
        for h in hs {
            h.await;
        }
        order.borrow().clone()
    })
    .await;
    for (core, v) in results.iter().enumerate() {
        let ms: Vec<u64> = v.iter().map(|(m, _)| *m).collect();
        if ms != [1, 4, 7] {
            return Err(format!("core {core}: fired in order {ms:?}"));
        }
        if let Some((m, at)) = v.iter().find(|(m, at)| *at < Duration::from_millis(*m)) {
            return Err(format!("core {core}: {m} ms timer fired after {at:?}"));
        }
    }
    Ok(())
}

#[ebbrt::test]
async fn timeout_elapses_and_passes_through() {
    let slow = timeout(Duration::from_millis(3), sleep(Duration::from_secs(10))).await;
    assert!(slow.is_err());
    let fast = timeout(Duration::from_secs(10), async { 5 }).await;
    assert_eq!(fast, Ok(5));
}

#[ebbrt::test]
async fn a_halted_core_wakes_for_work_promptly() -> Result<(), String> {
    let last = CoreId(cpu::count() as u32 - 1);
    // Let the target go idle (halt) first.
    sleep(Duration::from_millis(20)).await;
    let t0 = Instant::now();
    spawn_on(last, async {}).await;
    let took = t0.elapsed();
    if took > Duration::from_millis(200) {
        return Err(format!("waking {last} took {took:?}"));
    }
    Ok(())
}

#[ebbrt::test]
async fn the_clock_is_monotonic_across_cores() -> Result<(), String> {
    for core in cpu::all() {
        let a = Instant::now();
        let b = spawn_on(core, async { Instant::now() }).await;
        let c = Instant::now();
        if !(a <= b && b <= c) {
            return Err(format!("{core}: {a:?} {b:?} {c:?}"));
        }
    }
    Ok(())
}

#[ebbrt::test]
async fn shutdown_is_not_requested_during_tests() {
    assert_eq!(exec::exit_requested(), None);
}

#[cfg(target_os = "none")]
mod native {
    use super::*;
    use ebbrt::runtime::{irq, mem};

    #[ebbrt::test]
    async fn a_raised_vector_wakes_its_waiter_on_its_core() -> Result<(), String> {
        let target = CoreId(cpu::count() as u32 - 1);
        let irq = alloc::sync::Arc::new(irq::allocate(target).ok_or("no free vector")?);
        // An interrupt that fires before anyone waits is latched.
        irq.raise();
        let waiter = {
            let irq = irq.clone();
            ebbrt::exec::spawn_on_with(target, move || async move {
                irq.wait().await;
                irq.wait().await;
                cpu::current()
            })
        };
        sleep(Duration::from_millis(5)).await;
        irq.raise();
        let got = timeout(Duration::from_secs(2), waiter)
            .await
            .map_err(|_| "waiter never woke")?;
        if got != target {
            return Err(format!("woke on {got}"));
        }
        let (addr, data) = irq.msi_message();
        if addr & 0xfff0_0000 != 0xfee0_0000 || data != u32::from(irq.vector()) {
            return Err(format!("MSI message {addr:#x}/{data:#x}"));
        }
        Ok(())
    }

    #[ebbrt::test]
    async fn events_run_with_interrupts_off() {
        let on = on_each_core(|_| async {
            let before = irq::enabled();
            sleep(Duration::from_millis(2)).await;
            before || irq::enabled()
        })
        .await;
        assert!(
            on.iter().all(|on| !on),
            "interrupts were on while a task ran: {on:?}"
        );
    }

    #[ebbrt::test]
    fn the_console_is_a_registered_shared_ebb() {
        // The facade's default native console, bound to the interface.
        let b = ebbrt::ebb::binding::<dyn ebbrt::console::Console>().expect("one console");
        assert_eq!(b.component, "UartConsole");
        let r = ebbrt::registry::find("UartConsole").expect("UartConsole is registered");
        assert_eq!(r.kind, ebbrt::EbbKind::Shared);
        assert_eq!(r.id, Some(ids::CONSOLE));
        assert_eq!(r.interface, "ebbrt_core::console::Console");
        ebbrt::registry::check_start().expect("the components fit together");
    }

    #[ebbrt::test]
    fn vectors_are_allocated_once() {
        let a = irq::allocate(CoreId(0)).unwrap();
        let b = irq::allocate(CoreId(0)).unwrap();
        assert_ne!(a.vector(), b.vector());
        let v = a.vector();
        drop(a);
        let c = irq::allocate(CoreId(0)).unwrap();
        assert_eq!(c.vector(), v, "a dropped vector is reused");
    }

    #[ebbrt::test]
    fn free_memory_excludes_the_kernel_and_live_allocations() {
        let kernel = mem::kernel_image();
        // Larger than one heap chunk: the heap (if it is the boot heap) must
        // grow, or another allocator must have the memory; either way the
        // block is no longer free.
        let big: Vec<u8> = alloc::vec![7; (mem::HEAP_CHUNK + (4 << 20)) as usize];
        let block = big.as_ptr() as u64..big.as_ptr() as u64 + big.len() as u64;
        for r in mem::free_regions().iter() {
            assert!(
                r.end <= kernel.start || kernel.end <= r.start,
                "free {r:x?} overlaps the kernel {kernel:x?}"
            );
            assert!(
                r.end <= block.start || block.end <= r.start,
                "free {r:x?} overlaps a live block {block:x?}"
            );
            assert!(r.start >= 0x10_0000, "free {r:x?} is in the first MiB");
            assert!(mem::is_ram(r.clone()), "free {r:x?} is not RAM");
        }
        assert!(mem::is_ram(kernel.clone()));
        assert!(big.iter().all(|&b| b == 7));
    }

    #[ebbrt::test]
    fn all_ram_is_mapped() {
        let mapped = ebbrt::runtime::paging::mapped_bytes();
        let top = mem::ram().iter().map(|r| r.end).max().unwrap();
        assert!(top <= mapped, "RAM up to {top:#x}, mapped {mapped:#x}");
        // Touch the last page of RAM: it must not fault.
        let last = (top - 8) as *const u64;
        // SAFETY: usable RAM, identity mapped; a read has no side effects.
        let _ = unsafe { last.read_volatile() };
    }

    #[ebbrt::test]
    fn the_tsc_is_calibrated() {
        let hz = ebbrt::runtime::clock::tsc_hz();
        assert!((100_000_000..20_000_000_000).contains(&hz), "TSC {hz} Hz");
    }
}

ebbrt::test_main!();
