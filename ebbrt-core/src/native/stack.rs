//! Core stacks with guard pages.
//!
//! The identity map uses large pages, so a stack in it could overflow into
//! whatever lies below without a trace. Each core's main stack instead
//! lives in its own 1 MiB slot of a virtual region outside the identity map
//! (PML4 entry 256, `STACKS_BASE`), mapped with 4 KiB pages at the top of
//! the slot; the rest of the slot stays unmapped. Overflowing a stack
//! faults, the fault cannot be delivered on the exhausted stack, and the
//! double fault handler (on its own IST stack) reports it.

use alloc::alloc::{Layout, alloc};
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use super::paging;
use crate::cpu::MAX_CORES;

/// Start of the stack region (the first address of the upper half).
const STACKS_BASE: u64 = 0xffff_8000_0000_0000;
/// Virtual space per core: the stack on top, the guard below it.
const SLOT: u64 = 1 << 20;
/// Bytes of each core's main stack.
pub(crate) const STACK_SIZE: u64 = 256 * 1024;

/// Slots whose stack is mapped (bit = core index).
static MAPPED: [AtomicU64; MAX_CORES / 64] = [const { AtomicU64::new(0) }; MAX_CORES / 64];

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

/// Maps a fresh stack for core `index`; returns its address range (the
/// top is where the stack pointer starts). Called on the boot core, before
/// the core runs.
pub(crate) fn new_stack(index: usize) -> Result<Range<u64>, StackError> {
    let layout =
        Layout::from_size_align(STACK_SIZE as usize, 4096).map_err(|_| StackError::OutOfMemory)?;
    // SAFETY: the layout has a non-zero size.
    let backing = unsafe { alloc(layout) };
    if backing.is_null() {
        return Err(StackError::OutOfMemory);
    }
    let top = STACKS_BASE + (index as u64 + 1) * SLOT;
    let bottom = top - STACK_SIZE;
    for off in (0..STACK_SIZE).step_by(4096) {
        // The heap is identity mapped: its virtual address is physical.
        paging::map_4k(bottom + off, backing as u64 + off).map_err(|_| StackError::PageTables)?;
    }
    MAPPED[index / 64].fetch_or(1 << (index % 64), Ordering::Release);
    Ok(bottom..top)
}

/// Whether `r` lies inside a mapped core stack.
pub(crate) fn contains(r: Range<u64>) -> bool {
    if r.start < STACKS_BASE || r.end < r.start {
        return false;
    }
    let index = ((r.start - STACKS_BASE) / SLOT) as usize;
    if index >= MAX_CORES || MAPPED[index / 64].load(Ordering::Acquire) & (1 << (index % 64)) == 0 {
        return false;
    }
    let top = STACKS_BASE + (index as u64 + 1) * SLOT;
    r.start >= top - STACK_SIZE && r.end <= top
}

/// The core whose stack guard contains `addr`, if any: a fault there is a
/// stack overflow.
pub(crate) fn guard_owner(addr: u64) -> Option<usize> {
    if addr < STACKS_BASE {
        return None;
    }
    let index = ((addr - STACKS_BASE) / SLOT) as usize;
    let mapped =
        index < MAX_CORES && MAPPED[index / 64].load(Ordering::Acquire) & (1 << (index % 64)) != 0;
    let top = STACKS_BASE + (index as u64 + 1) * SLOT;
    (mapped && addr < top - STACK_SIZE).then_some(index)
}

/// Moves the calling core onto the stack ending at `top` and calls `f`
/// there. The old stack is abandoned.
pub(crate) fn switch_to(top: u64, f: extern "C" fn() -> !) -> ! {
    // SAFETY: `top` is the 16-byte-aligned end of a mapped stack that no one
    // else uses; `f` never returns, so nothing on the old stack is needed.
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
