//! Remote frees: an object freed by another core (or by a thread that is no
//! core) goes back to the cache that owns its slab without a lock. Each
//! owner has, per size class, a lock-free stack that anyone pushes onto
//! (one compare-and-swap) and only the owner empties, all at once (one
//! swap), so there is no ABA problem. A bit per class says which stacks
//! have something, so the owner looks only where there is work.
//!
//! The stacks hold *nodes*: a freed object that also carries the addresses
//! of other freed objects of its class (see [`node_capacity`]). Freeing
//! cores batch their remote frees into nodes, so the owner takes back a
//! batch by reading one node, and its writes to the objects overlap instead
//! of each waiting for the previous object's link.
#![allow(unsafe_code)]

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use ebbrt_core::cpu::MAX_CORES;

use crate::cache::FreeObj;
use crate::class::{NUM_CLASSES, SizeClass};

/// The owner index of the shared cache used by threads that are not cores.
pub const SHARED: u32 = MAX_CORES as u32;
/// Owners: every core, and the shared cache.
pub const OWNERS: usize = MAX_CORES + 1;

#[repr(align(64))]
struct RemoteFrees {
    pending: AtomicU64,
    heads: [AtomicPtr<FreeObj>; NUM_CLASSES],
}

static REMOTE: [RemoteFrees; OWNERS] = [const {
    RemoteFrees {
        pending: AtomicU64::new(0),
        heads: [const { AtomicPtr::new(ptr::null_mut()) }; NUM_CLASSES],
    }
}; OWNERS];

/// How many other objects' addresses a node of `class` carries: a node is
/// a free object laid out as `[next, len, addr 0, addr 1, ...]` (a node of
/// the 8-byte class is only `[next]`).
#[inline(always)]
pub(crate) fn node_capacity(class: SizeClass) -> usize {
    let s = class.size();
    if s >= 16 {
        ((s - 16) / 8).min(NODE_MAX)
    } else {
        0
    }
}

/// The most addresses a node carries: a batch is at most
/// [`OUTBOX_BATCH`](crate::cache::OUTBOX_BATCH) objects, the node itself
/// and the others.
const NODE_MAX: usize = crate::cache::OUTBOX_BATCH as usize - 1;

/// Stores the `i`th address of a node.
///
/// # Safety
/// `node` is a free object of a class with `i < node_capacity(class)`.
#[inline(always)]
pub(crate) unsafe fn node_set(node: *mut FreeObj, i: usize, obj: *mut FreeObj) {
    // SAFETY: the address lies inside the node (caller's contract).
    unsafe { (node as *mut *mut FreeObj).add(2 + i).write(obj) }
}

/// Records how many addresses `node` carries.
///
/// # Safety
/// `node` is a free object of `class` holding `len` addresses.
#[inline(always)]
pub(crate) unsafe fn node_seal(node: *mut FreeObj, class: SizeClass, len: usize) {
    if node_capacity(class) > 0 {
        // SAFETY: nodes of classes with capacity have a length word.
        unsafe { (node as *mut usize).add(1).write(len) }
    }
}

/// How many addresses a sealed node carries.
///
/// # Safety
/// `node` is a sealed node of `class`.
#[inline(always)]
pub(crate) unsafe fn node_len(node: *mut FreeObj, class: SizeClass) -> usize {
    if node_capacity(class) > 0 {
        // SAFETY: as in `node_seal`.
        unsafe { (node as *const usize).add(1).read() }
    } else {
        0
    }
}

/// The `i`th address a sealed node carries.
///
/// # Safety
/// `i` is below the node's length.
#[inline(always)]
pub(crate) unsafe fn node_get(node: *mut FreeObj, i: usize) -> *mut FreeObj {
    // SAFETY: as in `node_set`.
    unsafe { (node as *const *mut FreeObj).add(2 + i).read() }
}

/// Pushes `obj` onto `owner`'s remote-free stack for `class`.
///
/// # Safety
/// `obj` must be an allocated object of `class` whose slab `owner` owns; it
/// is free memory after this call.
#[inline]
pub(crate) unsafe fn push(owner: u32, class: SizeClass, obj: NonNull<u8>) {
    let o = obj.as_ptr() as *mut FreeObj;
    // SAFETY: a node of one object (no addresses), forwarded from the caller.
    unsafe {
        node_seal(o, class, 0);
        push_chain(owner, class, o, o)
    }
}

/// Pushes the chain of sealed nodes `first..=last` (linked through their
/// first words) onto `owner`'s remote-free stack for `class`: one
/// compare-and-swap for all.
///
/// # Safety
/// Every node on the chain, and every object a node carries, must be a free
/// object of `class` whose slab `owner` owns; they are the owner's after
/// this call.
#[inline]
pub(crate) unsafe fn push_chain(
    owner: u32,
    class: SizeClass,
    first: *mut FreeObj,
    last: *mut FreeObj,
) {
    let r = &REMOTE[owner as usize];
    let head = &r.heads[class.index()];
    let mut cur = head.load(Ordering::Relaxed);
    loop {
        // SAFETY: the chain is ours to relink until the push succeeds
        // (then it is the owner's).
        unsafe { (*last).next = cur };
        match head.compare_exchange_weak(cur, first, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    // After the push, so that an owner who sees the bit sees the object.
    // When the bit is already set, the owner has not cleared it yet, and
    // will take the list only after clearing it: it will see our push
    // (all four operations are SeqCst, so they are totally ordered; on
    // x86 the load is a plain move), so the read-modify-write is skipped.
    let bit = 1 << class.index();
    if r.pending.load(Ordering::SeqCst) & bit == 0 {
        r.pending.fetch_or(bit, Ordering::SeqCst);
    }
}

/// Whether `owner` had remote frees of `class` waiting; clears the mark.
#[inline]
pub(crate) fn take_pending(owner: u32, class: SizeClass) -> bool {
    let r = &REMOTE[owner as usize];
    let bit = 1u64 << class.index();
    r.pending.load(Ordering::Relaxed) & bit != 0
        && r.pending.fetch_and(!bit, Ordering::SeqCst) & bit != 0
}

/// The classes with remote frees waiting for `owner`, as a bit mask;
/// clears the marks.
#[inline]
pub(crate) fn take_all_pending(owner: u32) -> u64 {
    let r = &REMOTE[owner as usize];
    if r.pending.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    r.pending.swap(0, Ordering::SeqCst)
}

/// Takes the whole remote-free stack of `owner` for `class`. Only the
/// owner calls this (after clearing the class's pending mark).
#[inline]
pub(crate) fn take_list(owner: u32, class: SizeClass) -> *mut FreeObj {
    REMOTE[owner as usize].heads[class.index()].swap(ptr::null_mut(), Ordering::SeqCst)
}
