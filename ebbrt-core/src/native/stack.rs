//! Core stacks with guard pages.
//!
//! The identity map uses large pages, so a stack in it could overflow into
//! whatever lies below without a trace. Each core's stacks instead live in
//! its own 1 MiB slot of a virtual region outside the identity map (PML4
//! entry 256, `STACKS_BASE`), mapped with 4 KiB pages (read/write, no
//! execute); everything else in the slot stays unmapped:
//!
//! ```text
//! slot + 1 MiB   ┬ main stack (256 KiB)            ← the core's stack pointer starts here
//!                ┴ unmapped (guard of the main stack, ~700 KiB)
//!                ┬ machine-check IST stack (16 KiB)
//!                ┴ guard page
//!                ┬ NMI IST stack (16 KiB)
//!                ┴ guard page
//!                ┬ double-fault IST stack (16 KiB)
//! slot           ┴ guard page
//! ```
//!
//! Overflowing the main stack faults, the fault cannot be delivered on the
//! exhausted stack, and the double fault handler (on its own IST stack)
//! reports it; overflowing an IST stack faults on its guard page. The boot
//! stack (`boot.rs`) has its guard page in `.bss`.

use alloc::alloc::{Layout, alloc};
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use super::paging;
use crate::cpu::MAX_CORES;

/// Start of the stack region (the first address of the upper half).
const STACKS_BASE: u64 = 0xffff_8000_0000_0000;
/// Virtual space per core: its stacks and their guards.
const SLOT: u64 = 1 << 20;
/// Bytes of each core's main stack.
pub(crate) const STACK_SIZE: u64 = 256 * 1024;
/// Bytes of each interrupt stack (IST).
pub(crate) const IST_SIZE: u64 = 16 * 1024;
/// Bytes of a guard page.
const GUARD: u64 = 4096;
/// Interrupt stacks per core: double fault, NMI, machine check (in the
/// order of their TSS slots, `gdt::IST_*`).
pub(crate) const IST_COUNT: usize = 3;
const IST_NAMES: [&str; IST_COUNT] = ["double-fault", "NMI", "machine-check"];

/// Slots whose main stack is mapped (bit = core index).
static MAPPED: [AtomicU64; MAX_CORES / 64] = [const { AtomicU64::new(0) }; MAX_CORES / 64];
/// Slots whose interrupt stacks are mapped (bit = core index).
static IST_MAPPED: [AtomicU64; MAX_CORES / 64] = [const { AtomicU64::new(0) }; MAX_CORES / 64];

fn is_set(bits: &[AtomicU64; MAX_CORES / 64], index: usize) -> bool {
    index < MAX_CORES && bits[index / 64].load(Ordering::Acquire) & (1 << (index % 64)) != 0
}

fn slot_base(index: usize) -> u64 {
    STACKS_BASE + index as u64 * SLOT
}

/// The range of interrupt stack `k` (0-based) in core `index`'s slot.
fn ist_range(index: usize, k: usize) -> Range<u64> {
    let bottom = slot_base(index) + GUARD + k as u64 * (IST_SIZE + GUARD);
    bottom..bottom + IST_SIZE
}

/// Why a stack could not be made.
#[derive(Debug)]
pub(crate) enum StackError {
    /// The heap could not back it.
    OutOfMemory,
    /// A page-table page could not be allocated.
    PageTables,
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("no memory for a core stack"),
            Self::PageTables => f.write_str("no memory for the stack page tables"),
        }
    }
}

/// Backs `range` (page-aligned, outside the identity map) with fresh heap
/// memory, mapped read/write and no-execute.
fn map_fresh(range: Range<u64>) -> Result<(), StackError> {
    let size = (range.end - range.start) as usize;
    let layout = Layout::from_size_align(size, 4096).map_err(|_| StackError::OutOfMemory)?;
    // SAFETY: the layout has a non-zero size.
    let backing = unsafe { alloc(layout) };
    if backing.is_null() {
        return Err(StackError::OutOfMemory);
    }
    for off in (0..size as u64).step_by(4096) {
        // The heap is identity mapped: its virtual address is physical.
        paging::map_4k(range.start + off, backing as u64 + off)
            .map_err(|_| StackError::PageTables)?;
    }
    Ok(())
}

/// Maps a fresh stack for core `index`; returns its address range (the
/// top is where the stack pointer starts). Called on the boot core, before
/// the core runs.
pub(crate) fn new_stack(index: usize) -> Result<Range<u64>, StackError> {
    let top = slot_base(index) + SLOT;
    let bottom = top - STACK_SIZE;
    map_fresh(bottom..top)?;
    MAPPED[index / 64].fetch_or(1 << (index % 64), Ordering::Release);
    Ok(bottom..top)
}

/// Maps fresh interrupt stacks for core `index`, each with a guard page
/// below it; returns their tops, in TSS slot order. Called on the boot
/// core, before the core runs.
pub(crate) fn new_ist_stacks(index: usize) -> Result<[u64; IST_COUNT], StackError> {
    let mut tops = [0; IST_COUNT];
    for (k, top) in tops.iter_mut().enumerate() {
        let r = ist_range(index, k);
        map_fresh(r.clone())?;
        *top = r.end;
    }
    IST_MAPPED[index / 64].fetch_or(1 << (index % 64), Ordering::Release);
    Ok(tops)
}

/// Whether `r` lies inside a mapped core stack (main or interrupt stack).
pub(crate) fn contains(r: Range<u64>) -> bool {
    if r.start < STACKS_BASE || r.end < r.start {
        return false;
    }
    let index = ((r.start - STACKS_BASE) / SLOT) as usize;
    let top = slot_base(index) + SLOT;
    let within = |s: Range<u64>| r.start >= s.start && r.end <= s.end;
    (is_set(&MAPPED, index) && within(top - STACK_SIZE..top))
        || (is_set(&IST_MAPPED, index) && (0..IST_COUNT).any(|k| within(ist_range(index, k))))
}

/// The stack whose guard holds an address: an access there is an
/// overflow of that stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guarded {
    /// The main stack of core `.0`.
    Core(usize),
    /// Interrupt stack `.1` (0-based TSS slot) of core `.0`.
    Interrupt(usize, usize),
    /// The boot core's first stack (`boot.rs`).
    Boot,
}

impl core::fmt::Display for Guarded {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Core(i) => write!(f, "core {i}'s stack"),
            Self::Interrupt(i, k) => write!(f, "core {i}'s {} stack", IST_NAMES[k]),
            Self::Boot => f.write_str("the boot stack"),
        }
    }
}

/// The stack whose guard contains `addr`, if any: a fault there is a
/// stack overflow.
pub(crate) fn guard_owner(addr: u64) -> Option<Guarded> {
    if super::boot::boot_stack_guard().contains(&addr) {
        return Some(Guarded::Boot);
    }
    if addr < STACKS_BASE {
        return None;
    }
    let index = ((addr - STACKS_BASE) / SLOT) as usize;
    if !is_set(&MAPPED, index) {
        return None;
    }
    let off = addr - slot_base(index);
    if is_set(&IST_MAPPED, index) {
        for k in 0..IST_COUNT {
            let guard = ist_range(index, k).start - GUARD - slot_base(index);
            if (guard..guard + GUARD).contains(&off) {
                return Some(Guarded::Interrupt(index, k));
            }
            if off < guard + GUARD + IST_SIZE {
                // Inside interrupt stack k: mapped, not a guard.
                return None;
            }
        }
    }
    (off < SLOT - STACK_SIZE).then_some(Guarded::Core(index))
}

/// Moves the calling core onto the stack ending at `top` and calls `f`
/// there. The old stack is abandoned.
///
/// # Safety
/// `top` is the 16-byte-aligned end of a mapped, writable stack that no one
/// else uses, large enough for `f`; nothing on the old stack is used again.
pub(crate) unsafe fn switch_to(top: u64, f: extern "C" fn() -> !) -> ! {
    // SAFETY: the caller's contract: `top` is the 16-byte-aligned end of a
    // mapped stack that no one else uses; `f` never returns, so nothing on
    // the old stack is needed.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {f}",
            "ud2",
            top = in(reg) top,
            f = in(reg) f,
            options(noreturn)
        )
    }
}
