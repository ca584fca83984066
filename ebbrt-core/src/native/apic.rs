//! The local APIC: x2APIC (MSRs) when CPUID offers it, xAPIC (MMIO)
//! otherwise. Interrupt acknowledgement, IPIs and the per-core timer
//! (TSC-deadline mode when offered, one-shot otherwise).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use raw_cpuid::CpuId;
use x86_64::registers::model_specific::{ApicBase, ApicBaseFlags, Msr};

use super::clock;
use super::irq::{SPURIOUS_VECTOR, TIMER_VECTOR};

const IA32_TSC_DEADLINE: u32 = 0x6e0;
const X2APIC_MSR_BASE: u32 = 0x800;

const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_LINT0: u32 = 0x350;
const REG_LVT_ERROR: u32 = 0x370;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const ICR_PENDING: u32 = 1 << 12;
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_LEVEL: u32 = 1 << 15;

static X2APIC: AtomicBool = AtomicBool::new(false);
static XAPIC_BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);
static TSC_DEADLINE: AtomicBool = AtomicBool::new(false);
/// LAPIC timer ticks per second (one-shot mode, divide by 1).
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// How the local APICs are driven.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// x2APIC (MSR) access rather than xAPIC MMIO.
    pub x2apic: bool,
    /// The timer runs in TSC-deadline mode.
    pub tsc_deadline: bool,
}

/// Chooses the APIC mode for every core (from CPUID) and the xAPIC base.
pub(crate) fn choose_mode(xapic_base: Option<u64>) -> Mode {
    let f = CpuId::new().get_feature_info();
    let x2 = f.as_ref().is_some_and(|f| f.has_x2apic());
    let dl = f.as_ref().is_some_and(|f| f.has_tsc_deadline());
    X2APIC.store(x2, Ordering::Relaxed);
    TSC_DEADLINE.store(dl, Ordering::Relaxed);
    if let Some(b) = xapic_base {
        XAPIC_BASE.store(b, Ordering::Relaxed);
    }
    Mode {
        x2apic: x2,
        tsc_deadline: dl,
    }
}

fn read(reg: u32) -> u32 {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is enabled on this core; `reg` is a defined
        // register, whose MSR is 0x800 + reg/16.
        unsafe { Msr::new(X2APIC_MSR_BASE + (reg >> 4)).read() as u32 }
    } else {
        let p = (XAPIC_BASE.load(Ordering::Relaxed) + u64::from(reg)) as *const u32;
        // SAFETY: the xAPIC page is identity mapped (low 4 GiB); `reg` is a
        // defined register offset.
        unsafe { core::ptr::read_volatile(p) }
    }
}

fn write(reg: u32, value: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: as in `read`.
        unsafe { Msr::new(X2APIC_MSR_BASE + (reg >> 4)).write(u64::from(value)) }
    } else {
        let p = (XAPIC_BASE.load(Ordering::Relaxed) + u64::from(reg)) as *mut u32;
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(p, value) }
    }
}

/// Enables the calling core's local APIC in the chosen mode, with the
/// spurious vector set, LINT0 (the legacy PIC) and errors masked, and the
/// timer masked until armed.
pub(crate) fn init_local() {
    let (frame, flags) = ApicBase::read_raw();
    let enabled = flags | ApicBaseFlags::LAPIC_ENABLE.bits();
    // SAFETY: IA32_APIC_BASE exists on every x86_64; the base address stays
    // as it is; the enable bit is set, and the x2APIC bit only when CPUID
    // offers x2APIC. xAPIC must be enabled before switching to x2APIC (the
    // direct disabled -> x2APIC transition faults).
    unsafe {
        ApicBase::write_raw(frame, enabled);
        if X2APIC.load(Ordering::Relaxed) {
            ApicBase::write_raw(frame, enabled | ApicBaseFlags::X2APIC_ENABLE.bits());
        }
    }
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_TPR, 0);
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_ERROR, LVT_MASKED);
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        write(REG_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(TIMER_VECTOR));
        // The switch to TSC-deadline mode must be visible before the first
        // write of the deadline MSR (Intel SDM 10.5.4.1; Linux fences too).
        core::sync::atomic::fence(Ordering::SeqCst);
    } else {
        write(REG_TIMER_DIVIDE, 0b1011);
        write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
        write(REG_TIMER_INITIAL, 0);
    }
}

/// The calling core's APIC id.
pub(crate) fn id() -> u32 {
    let v = read(REG_ID);
    if X2APIC.load(Ordering::Relaxed) {
        v
    } else {
        v >> 24
    }
}

/// Acknowledges the interrupt being handled.
pub(crate) fn eoi() {
    write(REG_EOI, 0);
}

fn send_icr(dest: u32, low: u32) {
    if X2APIC.load(Ordering::Relaxed) {
        // SAFETY: the x2APIC ICR (MSR 0x830) takes destination and command
        // in one write.
        unsafe {
            Msr::new(X2APIC_MSR_BASE + (REG_ICR_LOW >> 4))
                .write((u64::from(dest) << 32) | u64::from(low))
        };
    } else {
        // Interrupts are off whenever kernel code runs, so the two writes
        // cannot be split by a handler that also sends an IPI.
        while read(REG_ICR_LOW) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
        write(REG_ICR_HIGH, dest << 24);
        write(REG_ICR_LOW, low);
    }
}

/// Sends a fixed interrupt `vector` to the core with APIC id `dest`.
pub(crate) fn send_ipi(dest: u32, vector: u8) {
    send_icr(dest, u32::from(vector));
}

/// Sends INIT to `dest` (then, in xAPIC mode, the INIT de-assert that old
/// processors need; x2APIC does not support it).
pub(crate) fn send_init(dest: u32) {
    send_icr(dest, ICR_INIT | ICR_ASSERT | ICR_LEVEL);
    if !X2APIC.load(Ordering::Relaxed) {
        send_icr(dest, ICR_INIT | ICR_LEVEL);
    }
}

/// Sends a start-up IPI: `dest` starts in real mode at `page << 12`.
pub(crate) fn send_startup(dest: u32, page: u8) {
    send_icr(dest, ICR_STARTUP | ICR_ASSERT | u32::from(page));
}

/// A one-shot timer measurement in progress: the TSC when the count
/// started.
pub(crate) struct TimerCalibration(Option<u64>);

/// Starts measuring the one-shot timer's rate (only needed without
/// TSC-deadline mode): the timer counts down, masked, while the boot core
/// calibrates the TSC, so the two measurements share one wait.
pub(crate) fn start_timer_calibration() -> TimerCalibration {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        return TimerCalibration(None);
    }
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(REG_TIMER_DIVIDE, 0b1011);
    write(REG_TIMER_INITIAL, u32::MAX);
    TimerCalibration(Some(clock::rdtsc()))
}

/// Finishes the measurement; the TSC must be calibrated by now.
pub(crate) fn finish_timer_calibration(c: TimerCalibration) {
    let Some(t0) = c.0 else { return };
    let left = read(REG_TIMER_CURRENT);
    let ns = clock::ticks_to_ns(clock::rdtsc() - t0);
    write(REG_TIMER_INITIAL, 0);
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
    let hz = u128::from(u32::MAX - left) * 1_000_000_000 / u128::from(ns.max(1));
    TIMER_HZ.store(
        u64::try_from(hz).unwrap_or(u64::MAX).max(1),
        Ordering::Relaxed,
    );
}

/// LAPIC one-shot timer ticks per second (0 in TSC-deadline mode).
pub(crate) fn timer_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

/// Arms the calling core's timer to fire at clock time `deadline_ns`
/// (an interrupt on [`TIMER_VECTOR`]). A one-shot timer that cannot reach
/// that far fires earlier; the event loop then re-arms it.
pub(crate) fn arm_timer(deadline_ns: u64) {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        // SAFETY: TSC-deadline mode is on (CPUID); the write arms the timer.
        unsafe { Msr::new(IA32_TSC_DEADLINE).write(clock::tsc_at(deadline_ns).max(1)) };
    } else {
        let ns = deadline_ns.saturating_sub(clock::now_ns());
        let ticks =
            (u128::from(ns) * u128::from(TIMER_HZ.load(Ordering::Relaxed)) / 1_000_000_000).max(1);
        write(REG_TIMER_INITIAL, u32::try_from(ticks).unwrap_or(u32::MAX));
    }
}

/// Disarms the calling core's timer.
pub(crate) fn disarm_timer() {
    if TSC_DEADLINE.load(Ordering::Relaxed) {
        // SAFETY: writing 0 disarms the TSC deadline.
        unsafe { Msr::new(IA32_TSC_DEADLINE).write(0) };
    } else {
        write(REG_TIMER_INITIAL, 0);
    }
}

/// Remaps the legacy 8259 PICs above the exception vectors and masks them:
/// the firmware leaves them on vectors 8..16, where a stray timer tick
/// would look like a double fault.
pub(crate) fn disable_legacy_pic() {
    use x86_64::instructions::port::Port;
    let io = |port: u16, v: u8| {
        // SAFETY: ports 0x20/0x21/0xa0/0xa1 are the two PICs; this is the
        // standard ICW1..ICW4 sequence followed by masking every line.
        unsafe { Port::<u8>::new(port).write(v) }
    };
    io(0x20, 0x11);
    io(0xa0, 0x11);
    io(0x21, 0x20);
    io(0xa1, 0x28);
    io(0x21, 4);
    io(0xa1, 2);
    io(0x21, 1);
    io(0xa1, 1);
    io(0x21, 0xff);
    io(0xa1, 0xff);
}
