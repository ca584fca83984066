//! The per-core block: this core's id, its Ebb translation table and its
//! executor state. Hosted, it is a `#[thread_local]` static; native, the GS
//! base points at one block per core. Everything in it is touched only by its
//! own core, so it uses `Cell`/`RefCell` and no atomics.

use core::cell::Cell;

use crate::cpu::CoreId;
use crate::ebb::{EbbId, TABLE_SIZE};
use crate::exec::LocalExec;

const NOT_A_CORE: u32 = u32::MAX;

/// One core's private state. `repr(C)` so that native code can reach the
/// translation table at a fixed offset from the GS base.
#[repr(C)]
pub struct CoreLocal {
    /// Native: the block's own address, so `gs:[0]` yields a pointer to it.
    self_ptr: Cell<*const CoreLocal>,
    id: Cell<u32>,
    pub(crate) exec: LocalExec,
    table: [Cell<*const ()>; TABLE_SIZE],
}

impl CoreLocal {
    /// A block for a core that has not entered yet.
    pub const fn new() -> Self {
        CoreLocal {
            self_ptr: Cell::new(core::ptr::null()),
            id: Cell::new(NOT_A_CORE),
            exec: LocalExec::new(),
            table: [const { Cell::new(core::ptr::null()) }; TABLE_SIZE],
        }
    }
}

#[cfg(not(target_os = "none"))]
mod imp {
    use super::CoreLocal;

    #[thread_local]
    static CORE: CoreLocal = CoreLocal::new();

    #[inline(always)]
    pub(super) fn local() -> &'static CoreLocal {
        let p: *const CoreLocal = &raw const CORE;
        // SAFETY: the thread-local lives as long as its thread, and the
        // reference cannot leave the thread: `CoreLocal` is `!Sync`, so
        // `&CoreLocal` is `!Send`.
        unsafe { &*p }
    }
}

#[cfg(target_os = "none")]
mod imp {
    use super::CoreLocal;

    #[inline(always)]
    pub(super) fn local() -> &'static CoreLocal {
        let p: *const CoreLocal;
        // SAFETY: the native boot code points GS at this core's block (see
        // `install_native`) before any Rust code that reaches here runs; the
        // block's first field holds its own address.
        unsafe {
            core::arch::asm!("mov {p}, gs:[0]", p = out(reg) p,
                options(nostack, readonly, preserves_flags, pure));
            &*p
        }
    }
}

/// This core's block.
#[inline(always)]
pub(crate) fn local() -> &'static CoreLocal {
    imp::local()
}

/// Reads this core's translation-table entry for `id` (null: a miss).
/// This is the whole fast path of an Ebb call: one FS-relative load (the
/// compiler folds the thread-local's offset, the table's and a fixed id
/// into one displacement).
#[cfg(not(target_os = "none"))]
#[inline(always)]
pub(crate) fn table_get(id: EbbId) -> *const () {
    // SAFETY: `EbbId::new`, its only constructor, keeps ids below
    // `TABLE_SIZE`. Unchecked, a run-time id costs no bounds check (a
    // compare and a branch) on every call.
    unsafe { local().table.get_unchecked(id.index()) }.get()
}

/// Reads this core's translation-table entry for `id` (null: a miss).
/// This is the whole fast path of an Ebb call: one GS-relative load.
#[cfg(target_os = "none")]
#[inline(always)]
pub(crate) fn table_get(id: EbbId) -> *const () {
    let v: *const ();
    // SAFETY: GS points at this core's `CoreLocal`; `id.index()` is below
    // `TABLE_SIZE` by construction of `EbbId`, so the load stays in `table`.
    unsafe {
        core::arch::asm!("mov {v}, gs:[{i} * 8 + {off}]", v = out(reg) v, i = in(reg) id.index(),
            off = const core::mem::offset_of!(CoreLocal, table),
            options(nostack, readonly, preserves_flags, pure));
    }
    v
}

/// Caches `rep` as this core's representative of `id`.
#[inline]
pub(crate) fn table_set(id: EbbId, rep: *const ()) {
    local().table[id.index()].set(rep);
}

pub(crate) fn core_id() -> Option<CoreId> {
    match local().id.get() {
        NOT_A_CORE => None,
        id => Some(CoreId(id)),
    }
}

pub(crate) fn set_core_id(id: CoreId) {
    local().id.set(id.0);
}

/// Prepares a native core's block: records its own address so that `gs:[0]`
/// finds it. The caller then loads the address into the GS base.
///
/// # Safety
/// `block` must be valid for the rest of the program and used by one core.
#[cfg(target_os = "none")]
pub unsafe fn install_native(block: &'static CoreLocal) {
    block.self_ptr.set(block as *const CoreLocal);
}
