//! Where the representatives live: a static table with one slot per core
//! plus one for the shared cache, so that building a rep on a miss needs no
//! heap (the heap is built on top of this allocator).
#![allow(unsafe_code)]

use ebbrt_core::cpu;

use crate::SlabAllocator;
use crate::remote::{OWNERS, SHARED};

struct Reps([SlabAllocator; OWNERS]);

// SAFETY: slot `i < MAX_CORES` is handed out only to core `i` (by `local`,
// called from the Ebb miss on the current core), and the shared slot only
// under `SHARED_LOCK` (by `with_shared`). So no `!Sync` rep is ever touched
// by two threads at once.
unsafe impl Sync for Reps {}

// All zeroes: the table goes to `.bss` and costs the image nothing. A rep
// knows its owner from its slot (see `owner_of`).
static REPS: Reps = Reps([const { SlabAllocator::new() }; OWNERS]);

const _: () = assert!(size_of::<SlabAllocator>().is_power_of_two());

/// The slot (owner index) of the rep whose cache is `cache`.
#[inline(always)]
pub(crate) fn owner_of(cache: &crate::cache::Cache) -> u32 {
    // The cache is the first field of a `repr(C)` `SlabAllocator`.
    let addr = cache as *const crate::cache::Cache as usize;
    // The table's address without a reference to it: a `&` to the whole
    // table (as `as_ptr` takes) would be a megabyte-wide retag under Miri
    // on every call.
    let base = &raw const REPS.0 as usize;
    debug_assert!(addr >= base && addr < base + OWNERS * size_of::<SlabAllocator>());
    ((addr - base) / size_of::<SlabAllocator>()) as u32
}

static SHARED_LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// The representative of the current core.
///
/// # Panics
/// On a thread that is not an EbbRT core.
pub(crate) fn local() -> &'static SlabAllocator {
    &REPS.0[cpu::current().index()]
}

/// Runs `f` on the shared cache, under its lock.
pub(crate) fn with_shared<R>(f: impl FnOnce(&SlabAllocator) -> R) -> R {
    let _g = SHARED_LOCK.lock();
    f(&REPS.0[SHARED as usize])
}

/// Runs `f` on the shared cache if its lock is free right now.
pub(crate) fn try_with_shared<R>(f: impl FnOnce(&SlabAllocator) -> R) -> Option<R> {
    let _g = SHARED_LOCK.try_lock()?;
    Some(f(&REPS.0[SHARED as usize]))
}
