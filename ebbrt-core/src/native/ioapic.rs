//! The I/O APIC: legacy PCI interrupts (INTx) as events on one core.
//!
//! For devices without MSI/MSI-X. A PCI INTx line is level-triggered: it
//! stays asserted until the driver acknowledges its device, which only a
//! task can do. So the interrupt handler masks the line when its vector
//! fires ([`on_interrupt`], called from `irq::interrupt`), and the driver
//! unmasks it ([`unmask`]) once it has read its device's interrupt status.
//! Otherwise the line would interrupt again right after the EOI, forever.
//!
//! The I/O APIC is taken at QEMU's (and the PC's) standard address; a
//! missing one reads as all ones and [`route_level`] refuses.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use super::irq::IrqVector;
use super::percpu;
use crate::cpu;

/// The standard I/O APIC address (inside the identity map).
const BASE: usize = 0xfec0_0000;
const IOREGSEL: usize = 0x00;
const IOWIN: usize = 0x10;
const REG_VERSION: u32 = 0x01;
const REDIRECTION: u32 = 0x10;
const MASKED: u32 = 1 << 16;
const LEVEL: u32 = 1 << 15;

/// Serialises the select/window register pairs across cores.
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Level-triggered routes: `1 << 31 | core << 16 | vector << 8 | gsi`.
static ROUTES: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];
const USED: u32 = 1 << 31;

/// Why a line could not be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoApicError {
    /// No I/O APIC answers at the standard address.
    Missing,
    /// The I/O APIC has no input `gsi`.
    NoSuchInput(u8),
    /// Every route slot is taken.
    Full,
}

impl fmt::Display for IoApicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoApicError::Missing => write!(f, "no I/O APIC at {BASE:#x}"),
            IoApicError::NoSuchInput(g) => write!(f, "the I/O APIC has no input {g}"),
            IoApicError::Full => write!(f, "all {} level-triggered routes are taken", ROUTES.len()),
        }
    }
}

fn read(reg: u32) -> u32 {
    let _g = LOCK.lock();
    // SAFETY: the I/O APIC's registers are MMIO in the identity map; the
    // lock keeps the select/window pair together.
    unsafe {
        ((BASE + IOREGSEL) as *mut u32).write_volatile(reg);
        ((BASE + IOWIN) as *const u32).read_volatile()
    }
}

fn write(reg: u32, v: u32) {
    let _g = LOCK.lock();
    // SAFETY: as in `read`.
    unsafe {
        ((BASE + IOREGSEL) as *mut u32).write_volatile(reg);
        ((BASE + IOWIN) as *mut u32).write_volatile(v);
    }
}

fn inputs() -> Option<u8> {
    let v = read(REG_VERSION);
    (v != u32::MAX).then_some(((v >> 16) & 0xff) as u8 + 1)
}

/// Routes input `gsi` (level-triggered, active high: a PCI INTx line as
/// QEMU's i440fx wires it) to `irq`'s vector on its core, unmasked.
pub fn route_level(gsi: u8, irq: &IrqVector) -> Result<(), IoApicError> {
    let n = inputs().ok_or(IoApicError::Missing)?;
    if gsi >= n {
        return Err(IoApicError::NoSuchInput(gsi));
    }
    let entry =
        USED | (irq.core().0 & 0x7fff) << 16 | u32::from(irq.vector()) << 8 | u32::from(gsi);
    ROUTES
        .iter()
        .find(|r| {
            r.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
        .ok_or(IoApicError::Full)?;
    let apic_id = percpu::of(irq.core()).apic_id.load(Ordering::Relaxed);
    let reg = redirection(entry);
    write(reg, MASKED);
    write(reg + 1, (apic_id & 0xff) << 24);
    write(reg, low_word(entry));
    Ok(())
}

/// The low redirection word of a route: level-triggered, to its vector;
/// the same word `route_level` wrote, so masking and unmasking need not read
/// the register back (each MMIO access is a VM exit under KVM).
fn low_word(entry: u32) -> u32 {
    LEVEL | ((entry >> 8) & 0xff)
}

fn redirection(entry: u32) -> u32 {
    REDIRECTION + 2 * (entry & 0xff)
}

/// Unmasks input `gsi` (after the driver acknowledged its device).
pub fn unmask(gsi: u8) {
    let route = ROUTES
        .iter()
        .map(|r| r.load(Ordering::Acquire))
        .find(|e| e & USED != 0 && (e & 0xff) as u8 == gsi);
    match route {
        Some(e) => write(redirection(e), low_word(e)),
        // Not routed by `route_level`: keep whatever else the entry says.
        None => {
            let reg = REDIRECTION + 2 * u32::from(gsi);
            let low = read(reg);
            write(reg, low & !MASKED);
        }
    }
}

/// Called by the interrupt handler when `vector` fired on this core:
/// masks the level-triggered input routed to it, if any.
pub(crate) fn on_interrupt(vector: u8) {
    let Some(core) = cpu::try_current() else {
        return;
    };
    for r in &ROUTES {
        let e = r.load(Ordering::Acquire);
        if e & USED != 0 && (e >> 16) & 0x7fff == core.0 && (e >> 8) as u8 == vector {
            write(redirection(e), low_word(e) | MASKED);
        }
    }
}
