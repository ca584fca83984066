//! # ebbrt-slab-alloc
//!
//! The slab allocator Ebb: per-core caches of fixed-size objects, one set
//! per size class ([`SizeClass`], 8 B to 16 KiB), with slabs taken from the
//! page allocator Ebb ([`ebbrt_page_alloc`]).
//!
//! - **No locks, no atomics on the fast path.** Events are never preempted,
//!   so a core's representative is touched by that core alone: allocation
//!   is a pop from a per-class free list, a free a push onto it.
//! - **Frees stay on the freeing core, a bounded few.** A core's free list
//!   of a class takes any object freed on that core, whichever core owns
//!   its slab, up to [`cache_limit`] objects ([`CACHE_BYTES_PER_CLASS`]
//!   worth), and the next allocations of the class there hand them out
//!   again, last freed first, while their memory is still in that core's
//!   cache.
//! - **Remote frees go home.** An object of another core that does not
//!   stay (the list is full), or that waits on the list when the core goes
//!   idle ([`ebbrt_core::exec::BEFORE_IDLE`]) or is trimmed, goes back to
//!   its owner without a lock: batched per owner and class, it is pushed
//!   onto the owner's lock-free remote-free list for its class, which only
//!   the owner empties, when it next needs objects or drains
//!   ([`SlabAllocator::drain_remote_frees`]).
//! - **Empty slabs return pages**: an empty slab goes to a small per-core
//!   stash ([`STASH_LIMIT_BYTES`]) and beyond it back to the page allocator.
//! - **Not a core?** Threads that are not EbbRT cores (early boot, plain
//!   Linux threads of a hosted process) use one shared cache under a spin
//!   lock ([`alloc`], [`free`]); frees still find the owner by address.
//! - **Debug builds** keep an allocation bitmap per slab and refuse double
//!   frees, foreign pointers and size mismatches with a [`FreeError`].
//!
//! The representative type is [`SlabAllocator`], at the well-known id
//! [`ids::SLAB_ALLOCATOR`], reached
//! through [`SLAB_ALLOCATOR`]. Reps live in a static per-core table, so the
//! Ebb's miss path needs no heap.
//!
//! It must not allocate from the heap.
//!
//! ## Design notes
//!
//! **Why freed objects stay where they were freed.** When objects move
//! between cores (one core allocates, another frees: a request buffer, a
//! message), sending each free home straight away makes every such object
//! cross between the cores' caches once more: the owner writes its link
//! when it takes it back and the next user on the owner reads it cold.
//! Keeping it on the freeing core for that core's next allocation of the
//! class reuses memory that core just touched. On the hosted larson-style
//! handoff benchmark this took us from 1.5–1.9× jemalloc's time to below
//! it (`docs/benchmarks.md`, "Memory allocators"); jemalloc's and
//! tcmalloc's thread caches do the same.
//!
//! **Accounting.** A slab counts an object as in use from the allocation
//! that handed it out until it is back on that slab's own free list: while
//! it waits on any core's per-class list (its owner's or another's), in an
//! outbox, or on a remote-free list, it is still in use for its slab, so
//! that slab is not emptied and its pages stay. Only the owner touches the
//! slab's counts; other cores read just the header's owner and class (a
//! cache line of its own), and only on the slow paths.
//!
//! **The bound on memory held away from its owner.** Frees push onto a
//! class's list only while it holds fewer than [`cache_limit`] objects, so
//! a core holds at most `cache_limit(c)` objects of class `c` from other
//! cores: summed over the classes, at most 1,132,544 bytes (about 1.1 MiB)
//! per core, plus the outboxes' batches (at most 32 outboxes of 31
//! objects). (A refill from the owner's current slab may put more than the
//! limit on a list, but those are the owner's own.) A core sends them
//! home before it goes idle and on [`SlabAllocator::trim`]; a core that
//! never idles (a driver polling) keeps at most that bound.
//!
//! **The idle hook stays cheap.** Each list remembers how many objects at
//! its bottom are known to be its owner's (a refill's, or kept by the last
//! check); a free onto a list shorter than that lowers the mark. Before
//! the core sleeps only the objects above the mark are looked at (one read
//! of a slab header each): the cost is in proportion to the frees since
//! the last idle, and nothing when there were none.
//!
//! **Double frees are still caught** (debug builds): the free of an object
//! clears its bit in its slab's bitmap (atomically, on whichever core),
//! and handing it out sets it again, so a second free is refused even
//! while the first left the object waiting on another core's list.
//!
//! **The fast paths are leaves.** The general-purpose allocator reaches
//! this core's representative through the translation table's cached
//! entry; allocation pops the class's list, a free checks the list's
//! length against the class's limit and pushes. Refills (from the current
//! slab, the remote-free lists, the partial slabs, a new slab), overflowing
//! frees and remote routing are out of line.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

use core::ptr::NonNull;

use ebbrt_core::EbbRef;
use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;
pub use ebbrt_page_alloc::{AllocError, FreeError, FreeErrorKind};

mod cache;
mod class;
mod remote;
mod reps;

pub use cache::{
    CACHE_BYTES_PER_CLASS, CacheStats, STASH_LIMIT_BYTES, cache_limit, objects_per_slab, slab_bytes,
};
pub use class::{CLASS_SIZES, MAX_SMALL, NUM_CLASSES, SizeClass};

use cache::Cache;
use remote::SHARED;

/// Per-core slab caches for 37 size classes (8 B to 16 KiB); a bounded per-core cache of freed objects; lock-free remote frees to the owning core.
///
/// A representative of the slab allocator Ebb is one core's caches: a
/// per-core Ebb at the well-known id `SLAB_ALLOCATOR` whose
/// representatives live in a static table (its miss path needs no heap).
///
/// `repr(C)` keeps the cache at offset 0 and the power-of-two alignment makes
/// a rep's slot index (its owner) a shift of its offset in the table.
#[repr(C, align(4096))]
#[ebb(per_core, id = ids::SLAB_ALLOCATOR, static_rep = reps::local)]
pub struct SlabAllocator {
    cache: Cache,
}

/// The slab allocator Ebb.
pub static SLAB_ALLOCATOR: EbbRef<SlabAllocator> = EbbRef::fixed();

impl SlabAllocator {
    const fn new() -> Self {
        SlabAllocator {
            cache: Cache::new(),
        }
    }

    /// The core this representative belongs to (`None` for the shared
    /// cache of threads that are not cores).
    pub fn core(&self) -> Option<CoreId> {
        let o = self.cache.owner();
        (o != SHARED).then_some(CoreId(o))
    }

    /// Allocates one object of `class`.
    #[inline(always)]
    pub fn alloc(&self, class: SizeClass) -> Result<NonNull<u8>, AllocError> {
        self.cache.alloc(class)
    }

    /// The fast path alone: an object of `class` if this representative
    /// has one ready, `None` when [`Self::alloc`] would have to refill.
    #[inline(always)]
    pub fn alloc_fast(&self, class: SizeClass) -> Option<NonNull<u8>> {
        self.cache.alloc_fast(class)
    }

    /// Frees an object of `class` allocated by any representative: onto
    /// this representative's free list for the class while it has room
    /// (see [`cache_limit`]); else to its slab if this one owns it, or
    /// towards its owner's lock-free remote-free list. In debug builds a
    /// double free, a foreign pointer or a wrong class is refused.
    ///
    /// # Safety
    /// `obj` must come from this allocator with `class` and not be used
    /// after the call. (Debug builds catch most violations, release builds
    /// trust the caller.)
    #[inline(always)]
    #[allow(unsafe_code)]
    pub unsafe fn free(&self, obj: NonNull<u8>, class: SizeClass) -> Result<(), FreeError> {
        #[cfg(debug_assertions)]
        cache::check_free(obj, class)?;
        // SAFETY: forwarded (and checked in debug builds).
        unsafe { self.free_unchecked(obj, class) };
        Ok(())
    }

    /// [`Self::free`] without the debug-build checks.
    ///
    /// # Safety
    /// As for [`Self::free`], with no check at all.
    #[inline(always)]
    #[allow(unsafe_code)]
    pub unsafe fn free_unchecked(&self, obj: NonNull<u8>, class: SizeClass) {
        // SAFETY: `obj` is a live object of `class` (caller's contract).
        if unsafe { self.cache.free_cached(obj, class) } {
            return;
        }
        // SAFETY: as above.
        unsafe { self.free_uncached(obj, class) }
    }

    /// A free when the class's free list is full: to the object's slab,
    /// or towards its owner. Out of line, so that the fast path stays a
    /// leaf.
    ///
    /// # Safety
    /// As for [`Self::free_unchecked`].
    #[inline(never)]
    #[allow(unsafe_code)]
    unsafe fn free_uncached(&self, obj: NonNull<u8>, class: SizeClass) {
        // SAFETY: `obj` is a live object of `class` (caller's contract).
        let owner = unsafe { cache::owner_of(obj, class) };
        if owner == self.cache.owner() {
            // SAFETY: we own its slab.
            unsafe { self.cache.free_local(obj, class) };
        } else {
            // SAFETY: as above; the owner takes it back.
            unsafe { self.free_elsewhere(owner, obj, class) };
        }
    }

    /// Frees an object whose slab another owner has.
    ///
    /// # Safety
    /// `obj` is a live object of `class` owned by `owner`, unused after this.
    #[inline(never)]
    #[allow(unsafe_code)]
    unsafe fn free_elsewhere(&self, owner: u32, obj: NonNull<u8>, class: SizeClass) {
        if owner == SHARED {
            // SAFETY: the shared cache owns it; we hold its lock.
            let done = reps::try_with_shared(|s| unsafe { s.cache.free_local(obj, class) });
            if done.is_some() {
                return;
            }
        }
        // SAFETY: forwarded.
        unsafe { self.cache.free_remote(owner, obj, class) }
    }

    /// Sends home the objects of other cores waiting on this
    /// representative's free lists and outboxes, and takes back the
    /// objects other cores sent to this one. The allocation slow path
    /// takes remote frees back by itself; the runtime calls this before a
    /// core goes idle.
    pub fn drain_remote_frees(&self) {
        self.cache.drain_remote_frees()
    }

    /// Empties this representative's free lists (its own objects back
    /// into their slabs, other cores' objects home), takes back remote
    /// frees, and returns every empty slab to the page allocator.
    pub fn trim(&self) {
        self.cache.trim()
    }

    /// This representative's figures.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Objects of `class` on this representative's free list (of any
    /// owner), ready to hand out.
    pub fn cached_objects(&self, class: SizeClass) -> usize {
        self.cache.cached_objects(class)
    }
}

/// Allocates one object of `class` on any thread: from the current core's
/// representative, or from the shared cache on a thread that is no core.
#[inline]
pub fn alloc(class: SizeClass) -> Result<NonNull<u8>, AllocError> {
    if cpu::try_current().is_some() {
        SLAB_ALLOCATOR.alloc(class)
    } else {
        reps::with_shared(|s| s.alloc(class))
    }
}

/// Frees an object of `class` on any thread; see [`SlabAllocator::free`].
///
/// # Safety
/// As for [`SlabAllocator::free`].
#[allow(unsafe_code)]
#[inline(always)]
pub unsafe fn free(obj: NonNull<u8>, class: SizeClass) -> Result<(), FreeError> {
    #[cfg(debug_assertions)]
    cache::check_free(obj, class)?;
    // SAFETY: forwarded (and checked in debug builds).
    unsafe { free_unchecked(obj, class) };
    Ok(())
}

/// [`free`] without the debug-build checks.
///
/// # Safety
/// As for [`SlabAllocator::free`], with no check at all.
#[inline(always)]
#[allow(unsafe_code)]
pub unsafe fn free_unchecked(obj: NonNull<u8>, class: SizeClass) {
    if cpu::try_current().is_some() {
        // SAFETY: forwarded.
        unsafe { SLAB_ALLOCATOR.free_unchecked(obj, class) }
    } else {
        // SAFETY: forwarded.
        unsafe { free_off_core(obj, class) }
    }
}

/// A free on a thread that is no core.
///
/// # Safety
/// As for [`free_unchecked`].
#[inline(never)]
#[allow(unsafe_code)]
unsafe fn free_off_core(obj: NonNull<u8>, class: SizeClass) {
    // SAFETY: forwarded; `obj` is live, so its slab header is valid.
    unsafe {
        match cache::owner_of(obj, class) {
            SHARED => reps::with_shared(|s| s.cache.free_local(obj, class)),
            owner => remote::push(owner, class, obj),
        }
    }
}

/// Runs `f` on the shared cache used by threads that are not cores.
pub fn with_shared<R>(f: impl FnOnce(&SlabAllocator) -> R) -> R {
    reps::with_shared(f)
}

#[cfg(test)]
mod tests;

/// Before its core sleeps, a representative sends home the other cores'
/// objects waiting on its free lists and in its outboxes, and takes back
/// those other cores sent it, so that memory freed across cores never
/// waits on a core that stopped allocating.
#[ebbrt_core::__private::linkme::distributed_slice(ebbrt_core::exec::BEFORE_IDLE)]
#[linkme(crate = ebbrt_core::__private::linkme)]
static DRAIN_BEFORE_IDLE: fn() = drain_before_idle;

fn drain_before_idle() {
    if let Some(rep) = SLAB_ALLOCATOR.cached_rep() {
        rep.drain_remote_frees();
    }
}
