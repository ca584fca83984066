//! The monotonic clock: the TSC, scaled to nanoseconds.
//!
//! The TSC frequency comes, in order of preference, from KVM's pvclock
//! (the hypervisor's own scale factors), the hypervisor timing leaf
//! (CPUID 0x4000_0010), CPUID 0x15 (crystal ratio), CPUID 0x16 (base MHz);
//! otherwise it is measured against the HPET (`HPET_WINDOW_NS`), or the PIT
//! when there is no HPET. Under TCG none of the CPUID sources exist and the
//! TSC is the host's, so the HPET measurement is what runs; each end of it
//! is bracketed by two TSC reads, which bounds the error (logged at boot).
//!
//! Measured under TCG (docs/benchmarks.md, "Native (issue 3)"): the HPET
//! calibration lands within 5 ppm of the host's TSC frequency, the PIT one
//! within 41 ppm; over ten seconds the guest clock kept to the host's
//! within the ~100 ppm resolution of that check.
//!
//! The TSC is assumed invariant and synchronised across cores (QEMU and
//! KVM provide that); `Instant` 0 is the kernel's first instruction.

use core::sync::atomic::{AtomicU64, Ordering};

use raw_cpuid::CpuId;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// How long the HPET measurement lasts.
const HPET_WINDOW_NS: u64 = 2_000_000;
/// How long the PIT measurement lasts (1.193182 MHz ticks: 10 ms).
const PIT_TICKS: u64 = 11_932;
const PIT_HZ: u64 = 1_193_182;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick, as a 32.32 fixed-point number.
static NS_PER_TICK_32: AtomicU64 = AtomicU64::new(0);
/// TSC ticks per microsecond, 32.32, for deadlines.
static TICKS_PER_NS_32: AtomicU64 = AtomicU64::new(0);

/// Where the frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// KVM pvclock scale factors.
    KvmPvclock,
    /// CPUID 0x4000_0010 (hypervisor timing leaf).
    HypervisorLeaf,
    /// CPUID 0x15 (TSC/crystal ratio and crystal frequency).
    Cpuid15,
    /// CPUID 0x16 (processor base frequency).
    Cpuid16,
    /// Measured against the HPET.
    Hpet,
    /// Measured against the PIT.
    Pit,
}

/// The calibration result.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// TSC ticks per second.
    pub hz: u64,
    /// Where it came from.
    pub source: Source,
    /// Bound on the relative error, in parts per million (0: exact by
    /// specification).
    pub error_ppm: u64,
}

/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads a counter (CR4.TSD is clear in ring 0).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks per second (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since the kernel's first instruction.
#[inline]
pub fn now_ns() -> u64 {
    ticks_to_ns(rdtsc().wrapping_sub(super::boot::boot_tsc()))
}

/// Converts TSC ticks to nanoseconds.
#[inline]
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((u128::from(ticks) * u128::from(NS_PER_TICK_32.load(Ordering::Relaxed))) >> 32) as u64
}

/// The TSC value at `ns` nanoseconds on the clock (saturating).
pub fn tsc_at(ns: u64) -> u64 {
    let ticks = (u128::from(ns) * u128::from(TICKS_PER_NS_32.load(Ordering::Relaxed))) >> 32;
    super::boot::boot_tsc().saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
}

/// Busy-waits `ns` nanoseconds.
pub fn spin_for_ns(ns: u64) {
    let end = now_ns().saturating_add(ns);
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

fn set_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
    NS_PER_TICK_32.store(
        ((1_000_000_000u128 << 32) / u128::from(hz)) as u64,
        Ordering::Relaxed,
    );
    TICKS_PER_NS_32.store(
        ((u128::from(hz) << 32) / 1_000_000_000) as u64,
        Ordering::Relaxed,
    );
}

/// Finds the TSC frequency and starts the clock.
pub(crate) fn init(hpet: Option<u64>) -> Calibration {
    let c = from_cpuid()
        .or_else(|| hpet.and_then(measure_hpet))
        .unwrap_or_else(measure_pit);
    set_hz(c.hz);
    c
}

fn plausible(hz: u64) -> bool {
    (100_000_000..=20_000_000_000).contains(&hz)
}

fn from_cpuid() -> Option<Calibration> {
    let cpuid = CpuId::new();
    let exact = |hz: u64, source| {
        plausible(hz).then_some(Calibration {
            hz,
            source,
            error_ppm: 0,
        })
    };
    if let Some(hv) = cpuid.get_hypervisor_info() {
        if matches!(hv.identify(), raw_cpuid::Hypervisor::KVM)
            && let Some(c) = kvm_pvclock().and_then(|hz| exact(hz, Source::KvmPvclock))
        {
            return Some(c);
        }
        if let Some(khz) = hv.tsc_frequency()
            && let Some(c) = exact(u64::from(khz) * 1000, Source::HypervisorLeaf)
        {
            return Some(c);
        }
    }
    if let Some(t) = cpuid.get_tsc_info()
        && let Some(hz) = t.tsc_frequency()
        && let Some(c) = exact(hz, Source::Cpuid15)
    {
        return Some(c);
    }
    if let Some(f) = cpuid.get_processor_frequency_info() {
        let hz = u64::from(f.processor_base_frequency()) * 1_000_000;
        // Base MHz is rounded to whole MHz: up to 0.5 MHz off.
        if plausible(hz) {
            return Some(Calibration {
                hz,
                source: Source::Cpuid16,
                error_ppm: 500_000_000_000 / hz,
            });
        }
    }
    None
}

/// KVM's pvclock gives the host's TSC→ns scale for this vCPU.
fn kvm_pvclock() -> Option<u64> {
    const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
    const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
    // CPUID 0x4000_0001 exists when the KVM signature is present.
    let features = core::arch::x86_64::__cpuid(0x4000_0001).eax;
    if features & KVM_FEATURE_CLOCKSOURCE2 == 0 {
        return None;
    }
    #[repr(C, align(64))]
    #[derive(Default)]
    struct PvClock {
        version: u32,
        pad0: u32,
        tsc_timestamp: u64,
        system_time: u64,
        tsc_to_system_mul: u32,
        tsc_shift: i8,
        flags: u8,
        pad: [u8; 2],
    }
    let area = alloc::boxed::Box::new(PvClock::default());
    let addr = &raw const *area as u64;
    let mut msr = Msr::new(MSR_KVM_SYSTEM_TIME_NEW);
    // SAFETY: the MSR exists (feature bit above); `area` stays alive until
    // the MSR is cleared again below, and KVM writes only inside it.
    unsafe { msr.write(addr | 1) };
    // KVM fills the area before the vCPU runs again; bound the wait anyway.
    let mut tries = 0u32;
    let (mul, shift) = loop {
        tries += 1;
        if tries > 1_000_000 {
            // SAFETY: disables the clock area before it is freed.
            unsafe { msr.write(0) };
            return None;
        }
        // SAFETY: KVM updates the structure; volatile reads observe it.
        let v1 = unsafe { core::ptr::read_volatile(&raw const area.version) };
        // SAFETY: as above.
        let (mul, shift) = unsafe {
            (
                core::ptr::read_volatile(&raw const area.tsc_to_system_mul),
                core::ptr::read_volatile(&raw const area.tsc_shift),
            )
        };
        // SAFETY: as above.
        let v2 = unsafe { core::ptr::read_volatile(&raw const area.version) };
        if v1 == v2 && v1 & 1 == 0 && v1 != 0 {
            break (mul, shift);
        }
        core::hint::spin_loop();
    };
    // SAFETY: disables the clock area before it is freed.
    unsafe { msr.write(0) };
    drop(area);
    if mul == 0 {
        return None;
    }
    // ns = ((ticks << shift) * mul) >> 32  =>  hz = 1e9 * 2^32 / mul / 2^shift
    let hz = (1_000_000_000u128 << 32) / u128::from(mul);
    let hz = if shift >= 0 {
        hz >> shift
    } else {
        hz << -shift
    };
    u64::try_from(hz).ok()
}

/// The narrowest of a few TSC pairs bracketing a reference-clock read:
/// (TSC midpoint, TSC half-width, reference value).
fn bracket(read_ref: &mut impl FnMut() -> u64) -> (u64, u64, u64) {
    let mut best = (0, u64::MAX, 0);
    for _ in 0..3 {
        let t0 = rdtsc();
        let r = read_ref();
        let t1 = rdtsc();
        let half = (t1 - t0) / 2 + 1;
        if half < best.1 {
            best = (t0 + (t1 - t0) / 2, half, r);
        }
    }
    best
}

/// Measures the TSC against a reference counter that counts up at
/// `ref_hz`, modulo `mask + 1`, over `window` reference ticks.
fn measure(
    mut read: impl FnMut() -> u64,
    ref_hz: u64,
    mask: u64,
    window: u64,
    source: Source,
) -> Option<Calibration> {
    let (ta, ea, ra) = bracket(&mut read);
    while read().wrapping_sub(ra) & mask < window {
        core::hint::spin_loop();
    }
    let (tb, eb, rb) = bracket(&mut read);
    let ref_ticks = rb.wrapping_sub(ra) & mask;
    let ticks = tb - ta;
    let hz = (u128::from(ticks) * u128::from(ref_hz) / u128::from(ref_ticks.max(1))) as u64;
    // Each end is known to within its bracket, and to one reference tick.
    let error_ppm = (ea + eb) * 1_000_000 / ticks.max(1) + 2 * 1_000_000 / ref_ticks.max(1) + 1;
    plausible(hz).then_some(Calibration {
        hz,
        source,
        error_ppm,
    })
}

fn measure_hpet(base: u64) -> Option<Calibration> {
    let reg = |off: u64| (base + off) as *mut u64;
    // SAFETY: `base` is the HPET's MMIO block (ACPI), identity mapped;
    // offset 0 is its capabilities register.
    let caps = unsafe { core::ptr::read_volatile(reg(0)) };
    let period_fs = caps >> 32;
    if period_fs == 0 || period_fs > 100_000_000 {
        return None;
    }
    // SAFETY: offset 0x10 is the general configuration; bit 0 starts the
    // main counter (nobody else uses the HPET).
    unsafe { core::ptr::write_volatile(reg(0x10), core::ptr::read_volatile(reg(0x10)) | 1) };
    let ref_hz = 1_000_000_000_000_000 / period_fs;
    // SAFETY: offset 0xf0 is the main counter.
    let read = || unsafe { core::ptr::read_volatile(reg(0xf0)) };
    measure(
        read,
        ref_hz,
        u64::MAX,
        HPET_WINDOW_NS * ref_hz / 1_000_000_000,
        Source::Hpet,
    )
}

fn measure_pit() -> Calibration {
    let mut gate: Port<u8> = Port::new(0x61);
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch2: Port<u8> = Port::new(0x42);
    // SAFETY: ports 0x42/0x43/0x61 are the PC's PIT channel 2 and its gate;
    // channel 2 drives only the speaker, which stays off. Mode 2 with a
    // reload of 0 (65536) counts down continuously.
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        cmd.write(0b1011_0100);
        ch2.write(0);
        ch2.write(0);
    }
    let read = move || {
        // SAFETY: latch channel 2, then read its count, low byte first.
        let count = unsafe {
            cmd.write(0b1000_0000);
            u16::from(ch2.read()) | (u16::from(ch2.read()) << 8)
        };
        u64::from(0u16.wrapping_sub(count))
    };
    measure(read, PIT_HZ, 0xffff, PIT_TICKS, Source::Pit).unwrap_or(Calibration {
        hz: 1_000_000_000,
        source: Source::Pit,
        error_ppm: u64::MAX,
    })
}
