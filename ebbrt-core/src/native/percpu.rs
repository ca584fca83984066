//! The native half of per-core state.
//!
//! The platform-independent [`CoreLocal`] (this core's id, Ebb translation
//! table, executor) is reached through the GS base; the fields below are
//! what the kernel needs besides, and what *other* cores touch (the wake
//! flags, the APIC id), so they are atomics in one static array indexed by
//! core id.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

use crate::cpu::{CoreId, MAX_CORES};
use crate::percore::{self, CoreLocal};

/// What the kernel keeps per core besides [`CoreLocal`].
#[repr(align(64))]
pub(crate) struct Cpu {
    /// The core's local APIC id (the IPI destination).
    pub(crate) apic_id: AtomicU32,
    /// A wake was requested since the core last idled.
    pub(crate) wake_pending: AtomicBool,
    /// The core is about to halt or halted: wakes must send an IPI.
    pub(crate) sleeping: AtomicBool,
    /// Device vectors that fired and are not yet dispatched (bit = vector).
    pub(crate) irq_pending: [AtomicU64; 4],
    /// Set while the core reports a panic (a second one exits at once).
    pub(crate) panicking: AtomicBool,
    /// The core's main stack, for backtraces: `[bottom, top)`.
    pub(crate) stack: [AtomicU64; 2],
}

impl Cpu {
    const fn new() -> Self {
        Cpu {
            apic_id: AtomicU32::new(0),
            wake_pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            irq_pending: [const { AtomicU64::new(0) }; 4],
            panicking: AtomicBool::new(false),
            stack: [const { AtomicU64::new(0) }; 2],
        }
    }
}

static CPUS: [Cpu; MAX_CORES] = [const { Cpu::new() }; MAX_CORES];

/// The native state of `core`.
pub(crate) fn of(core: CoreId) -> &'static Cpu {
    &CPUS[core.index()]
}

/// The current core's index, once it has entered ([`crate::cpu::enter`]).
pub(crate) fn current_index() -> Option<usize> {
    percore::core_id().map(CoreId::index)
}

/// The current core's native state, once it has entered.
pub(crate) fn this() -> Option<&'static Cpu> {
    current_index().map(|i| &CPUS[i])
}

/// The boot core's block: static, so that GS is valid from the first Rust
/// instruction on, before any allocator exists. Zero-initialised (in
/// `.bss`, not in the image) and filled in by [`install_boot`].
struct BootBlock(UnsafeCell<MaybeUninit<CoreLocal>>);
// SAFETY: only the boot core ever touches the block: `install_boot` writes
// it once before anything reads it, then it is that core's GS block.
unsafe impl Sync for BootBlock {}
static BOOT_BLOCK: BootBlock = BootBlock(UnsafeCell::new(MaybeUninit::zeroed()));

/// Points GS at `block` and makes `gs:[0]` find it.
///
/// # Safety
/// `block` must be used by the calling core only, for the rest of the run.
pub(crate) unsafe fn install(block: &'static CoreLocal) {
    // SAFETY: the caller hands this core exclusive use of `block`.
    unsafe { percore::install_native(block) };
    // Nothing else uses GS: `gs:[0]` now finds this core's block.
    GsBase::write(VirtAddr::from_ptr(block));
}

/// Installs the boot core's static block.
///
/// # Safety
/// Called once, on the boot core, before anything reads GS.
pub(crate) unsafe fn install_boot() {
    // SAFETY: called once, on the boot core, before any reference to the
    // block exists (caller): writing it cannot race or alias; afterwards it
    // is initialised and used by the boot core only.
    let block: &'static CoreLocal = unsafe {
        let slot = &mut *BOOT_BLOCK.0.get();
        slot.write(CoreLocal::new())
    };
    // SAFETY: the boot block is used by the boot core only (caller).
    unsafe { install(block) };
}

/// Records `core`'s APIC id and stack (called by the core itself).
pub(crate) fn register(core: CoreId, apic_id: u32, stack: core::ops::Range<u64>) {
    let c = of(core);
    c.apic_id.store(apic_id, Ordering::Relaxed);
    c.stack[0].store(stack.start, Ordering::Relaxed);
    c.stack[1].store(stack.end, Ordering::Relaxed);
}
