//! Interrupts as events.
//!
//! An interrupt handler never runs application code: it records that its
//! vector fired (a bit in the core's pending set), acknowledges the APIC
//! and returns; the core's event loop, which is halted in
//! [`Platform::idle`](crate::platform::Platform::idle) whenever interrupts
//! are enabled at all, then wakes the tasks waiting for those vectors.
//!
//! Vectors: 0x20..0x30 the (masked) legacy PICs, [`FIRST_DEVICE_VECTOR`]..
//! [`LAST_DEVICE_VECTOR`] devices (allocated per core with [`allocate`]),
//! [`WAKE_VECTOR`] the wake IPI, [`TIMER_VECTOR`] the APIC timer,
//! [`SPURIOUS_VECTOR`] the APIC's spurious vector.

use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use super::idt::TrapFrame;
use super::{apic, percpu};
use crate::cpu::{self, CoreId, MAX_CORES};

/// The first vector handed to devices.
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;
/// The last vector handed to devices.
pub const LAST_DEVICE_VECTOR: u8 = 0xef;
/// The IPI that wakes an idle core.
pub const WAKE_VECTOR: u8 = 0xf0;
/// The local APIC timer.
pub const TIMER_VECTOR: u8 = 0xf1;
/// The local APIC's spurious-interrupt vector (no EOI).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Called from the interrupt stub (vectors 32..256), interrupts off.
pub(crate) extern "C" fn interrupt(f: &TrapFrame) {
    let vector = f.vector as u8;
    match vector {
        SPURIOUS_VECTOR => return,
        // The legacy PICs are masked; their spurious IRQ 7/15 need no EOI.
        0x20..=0x2f => return,
        WAKE_VECTOR | TIMER_VECTOR => {}
        v => {
            if let Some(cpu) = percpu::this() {
                cpu.irq_pending[usize::from(v / 64)].fetch_or(1 << (v % 64), Ordering::AcqRel);
            }
            // A level-triggered I/O APIC input stays masked until its driver
            // has quieted the device (see `ioapic`).
            super::ioapic::on_interrupt(v);
        }
    }
    apic::eoi();
}

/// Per-core: the waker waiting on each device vector.
static WAITERS: [spin::Mutex<Vec<(u8, Waker)>>; MAX_CORES] =
    [const { spin::Mutex::new(Vec::new()) }; MAX_CORES];
/// Per-core: device vectors handed out (bit = vector).
static ALLOCATED: [[AtomicU64; 4]; MAX_CORES] =
    [const { [const { AtomicU64::new(0) }; 4] }; MAX_CORES];
/// Per-core: vectors that fired and were dispatched but not yet consumed by
/// a waiter (so an interrupt before the first `wait` is not lost).
static LATCHED: [[AtomicU64; 4]; MAX_CORES] =
    [const { [const { AtomicU64::new(0) }; 4] }; MAX_CORES];

/// Wakes the tasks waiting for vectors that fired on this core; returns
/// whether any had fired.
pub(crate) fn dispatch() -> bool {
    let Some(core) = cpu::try_current() else {
        return false;
    };
    let cpu = percpu::of(core);
    let mut any = false;
    for (word, pending) in cpu.irq_pending.iter().enumerate() {
        if pending.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let bits = pending.swap(0, Ordering::AcqRel);
        LATCHED[core.index()][word].fetch_or(bits, Ordering::AcqRel);
        any = true;
        let mut waiters = WAITERS[core.index()].lock();
        waiters.retain(|(v, w)| {
            if usize::from(*v / 64) == word && bits & (1 << (v % 64)) != 0 {
                w.wake_by_ref();
                false
            } else {
                true
            }
        });
    }
    any
}

/// Whether the calling core has interrupts enabled: never while kernel or
/// application code runs, only inside the idle `hlt`.
pub fn enabled() -> bool {
    x86_64::instructions::interrupts::are_enabled()
}

/// Whether an interrupt is pending dispatch on this core.
pub(crate) fn any_pending(cpu: &percpu::Cpu) -> bool {
    cpu.irq_pending
        .iter()
        .any(|p| p.load(Ordering::Relaxed) != 0)
}

/// A device interrupt vector on one core. Program the device to send
/// [`IrqVector::msi_message`] (MSI/MSI-X), then `wait().await` on that core.
#[derive(Debug)]
pub struct IrqVector {
    core: CoreId,
    vector: u8,
}

/// Allocates a free device vector on `core`; `None` when all are taken.
pub fn allocate(core: CoreId) -> Option<IrqVector> {
    let words = &ALLOCATED[core.index()];
    for v in FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR {
        let (w, bit) = (usize::from(v / 64), 1u64 << (v % 64));
        if words[w].fetch_or(bit, Ordering::AcqRel) & bit == 0 {
            return Some(IrqVector { core, vector: v });
        }
    }
    None
}

impl IrqVector {
    /// The vector number.
    pub fn vector(&self) -> u8 {
        self.vector
    }

    /// The core the interrupt is delivered to.
    pub fn core(&self) -> CoreId {
        self.core
    }

    /// The MSI address and data that deliver this vector to its core
    /// (fixed delivery, edge triggered, physical destination). The address
    /// format holds 8-bit APIC ids: cores with larger x2APIC ids need
    /// interrupt remapping, which this kernel does not set up.
    pub fn msi_message(&self) -> (u64, u32) {
        let apic_id = percpu::of(self.core).apic_id.load(Ordering::Relaxed);
        (
            0xfee0_0000 | (u64::from(apic_id & 0xff) << 12),
            u32::from(self.vector),
        )
    }

    /// Sends this vector to its core as an IPI: the same event a device
    /// would raise (for tests, and for software-triggered events).
    pub fn raise(&self) {
        apic::send_ipi(
            percpu::of(self.core).apic_id.load(Ordering::Relaxed),
            self.vector,
        );
    }

    /// Completes once the vector has fired since the last completed wait.
    /// Await it on the vector's core.
    pub fn wait(&self) -> IrqWait<'_> {
        IrqWait { irq: self }
    }
}

impl Drop for IrqVector {
    fn drop(&mut self) {
        let (w, bit) = (usize::from(self.vector / 64), 1u64 << (self.vector % 64));
        WAITERS[self.core.index()]
            .lock()
            .retain(|(v, _)| *v != self.vector);
        LATCHED[self.core.index()][w].fetch_and(!bit, Ordering::AcqRel);
        ALLOCATED[self.core.index()][w].fetch_and(!bit, Ordering::AcqRel);
    }
}

/// The future of [`IrqVector::wait`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct IrqWait<'a> {
    irq: &'a IrqVector,
}

impl Future for IrqWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let IrqVector { core, vector } = *self.irq;
        assert_eq!(
            cpu::try_current(),
            Some(core),
            "IrqVector::wait polled off its core ({core})"
        );
        let (w, bit) = (usize::from(vector / 64), 1u64 << (vector % 64));
        if LATCHED[core.index()][w].fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
            return Poll::Ready(());
        }
        let mut waiters = WAITERS[core.index()].lock();
        match waiters.iter_mut().find(|(v, _)| *v == vector) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => waiters.push((vector, cx.waker().clone())),
        }
        Poll::Pending
    }
}
