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
/// translation table at a fixed offset from the GS base; the table comes
/// early, at an offset that fits the one-byte displacement of the hosted
/// fast path's load (three bytes shorter at every call site).
#[repr(C)]
pub struct CoreLocal {
    /// Native: the block's own address, so `gs:[0]` yields a pointer to it.
    self_ptr: Cell<*const CoreLocal>,
    id: Cell<u32>,
    table: [Cell<*const ()>; TABLE_SIZE],
    pub(crate) exec: LocalExec,
}

impl CoreLocal {
    /// A block for a core that has not entered yet.
    pub const fn new() -> Self {
        CoreLocal {
            self_ptr: Cell::new(core::ptr::null()),
            id: Cell::new(NOT_A_CORE),
            table: [const { Cell::new(core::ptr::null()) }; TABLE_SIZE],
            exec: LocalExec::new(),
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

    /// The translation-table entry `index` of this thread's block, read
    /// with one FS-relative load.
    ///
    /// Plain Rust reaches a `#[thread_local]` of another crate through the
    /// general-dynamic model in library crates (compiled as PIC): after the
    /// linker's relaxation that is `mov rax, fs:0; lea rax, [rax + off]`
    /// and then the entry load — two loads. Here the block's offset is
    /// taken through the initial-exec model (`@GOTTPOFF`), which the linker
    /// relaxes to an immediate in an executable, leaving `mov imm` and one
    /// `fs:` load in every crate; and as the offset is a constant of the
    /// program, the compiler hoists it out of loops. (In a shared object it
    /// stays a GOT load, and the object needs static TLS: hosted EbbRT is
    /// an executable.)
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[inline(always)]
    pub(super) fn table_entry(index: usize) -> *const () {
        let tpoff: usize;
        // SAFETY: reads the offset of `CORE` from the thread pointer, a
        // constant of the program: the GOT slot is filled before any Rust
        // code runs and never written again (and relaxed to an immediate
        // in an executable), so this is declared `nomem`, which lets the
        // compiler hoist it.
        unsafe {
            core::arch::asm!(
                "mov {t}, qword ptr [rip + {core}@GOTTPOFF]",
                t = out(reg) tpoff,
                core = sym CORE,
                options(nostack, nomem, preserves_flags, pure),
            );
        }
        let v: *const ();
        // SAFETY: reads this thread's `CORE.table[index]`, `CORE` being at
        // `fs:[tpoff]`; the caller keeps `index` below `TABLE_SIZE`.
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr fs:[{t} + {i} * 8 + {off}]",
                v = lateout(reg) v,
                t = in(reg) tpoff,
                i = in(reg) index,
                off = const core::mem::offset_of!(CoreLocal, table),
                options(nostack, readonly, preserves_flags, pure),
            );
        }
        v
    }

    /// The translation-table entry `index` of this thread's block. (Also
    /// under Miri, which runs no inline assembly: the same entry, read
    /// through the `#[thread_local]` in plain Rust.)
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    #[inline(always)]
    pub(super) fn table_entry(index: usize) -> *const () {
        // Projected through a raw pointer to the one entry: a `&CoreLocal`
        // would make Miri retag all 4096 entries' cells on every Ebb call.
        let table = (&raw const CORE.table).cast::<core::cell::Cell<*const ()>>();
        // SAFETY: the caller keeps `index` below `TABLE_SIZE`; the entry is
        // this thread's, alive as long as the thread.
        unsafe { (*table.add(index)).get() }
    }

    /// This thread's core id word, read without a `&CoreLocal` (see
    /// `table_entry`).
    #[cfg(miri)]
    #[inline(always)]
    pub(super) fn id() -> u32 {
        // SAFETY: this thread's block, alive as long as the thread.
        unsafe { (*&raw const CORE.id).get() }
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
/// This is the whole fast path of an Ebb call: one FS-relative load.
#[cfg(not(target_os = "none"))]
#[inline(always)]
pub(crate) fn table_get(id: EbbId) -> *const () {
    // `EbbId::new`, its only constructor, keeps ids below `TABLE_SIZE`, so
    // the read needs no bounds check (a compare and a branch per call).
    imp::table_entry(id.index())
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
    #[cfg(all(miri, not(target_os = "none")))]
    let id = imp::id();
    #[cfg(not(all(miri, not(target_os = "none"))))]
    let id = local().id.get();
    match id {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_reads_the_entry_it_is_asked_for() {
        // On this test thread's own block (any thread has one; no core needed).
        let ids = [0, 1, 255, 256, 1023, 1024, TABLE_SIZE as u32 - 1];
        let mut marks = [0u8; 7];
        for (id, mark) in ids.iter().zip(&mut marks) {
            table_set(EbbId::new(*id), mark as *mut u8 as *const ());
        }
        for (id, mark) in ids.iter().zip(&marks) {
            let id = EbbId::new(*id);
            assert_eq!(table_get(id), mark as *const u8 as *const (), "{id:?}");
            assert_eq!(table_get(id), local().table[id.index()].get());
        }
        assert!(table_get(EbbId::new(2)).is_null());
        for id in ids {
            table_set(EbbId::new(id), core::ptr::null());
        }
    }
}
