//! One owner's slab caches: the data structure of a slab allocator
//! representative, and the slab layout.
//!
//! A slab is a buddy block of `PAGE_SIZE << order` bytes, aligned to its
//! size. Objects start at its base; a [`SlabHeader`] sits at its end (and,
//! in debug builds, an allocation bitmap just before the header). Given a
//! pointer and its class, the header is found by masking: no lookup table.
//!
//! Per class an owner keeps a free list of objects ready to hand out
//! (`ClassCache::free`: the fast path is one pop), the *current* slab
//! refills take objects from, and a list of other slabs that have free
//! objects. A free pushes onto the class's list, whoever owns the object,
//! while the list holds fewer than [`cache_limit`] objects; beyond that an
//! object of this owner goes onto its slab's own list and another owner's
//! into an outbox bound for its owner. When a slab that is not current
//! becomes empty it stays in its class's cache with its free list intact,
//! up to [`STASH_LIMIT_BYTES`] of empty slabs per owner, and beyond that
//! goes back to the page allocator.
//!
//! Everything here is touched by the owner only (a core, or whoever holds
//! the shared cache's lock), except the remote-free lists of
//! [`crate::remote`] and the debug bitmaps, which are atomic.
#![allow(unsafe_code)]

use core::cell::Cell;
use core::ptr::{self, NonNull};
#[cfg(debug_assertions)]
use core::sync::atomic::{AtomicU64, Ordering};

use ebbrt_page_alloc::{AllocError, PAGE_SIZE, pages};
#[cfg(debug_assertions)]
use ebbrt_page_alloc::{FreeError, FreeErrorKind};

use crate::class::{CLASS_SIZES, NUM_CLASSES, SizeClass};
use crate::remote;

/// A free object's link, in its first word.
#[repr(C)]
pub(crate) struct FreeObj {
    pub(crate) next: *mut FreeObj,
}

const MAGIC: usize = 0x51ab_a110_c8ed_0000;

/// What other cores read in a slab header: set when the slab is
/// (re)initialised and unchanged while it holds objects. A cache line of
/// its own, so the owner's writes to the rest of the header never pull it
/// away from the cores that read it to route remote frees.
#[repr(C, align(64))]
struct Ident {
    magic: usize,
    owner: u32,
    class: u32,
}

/// The header at the end of every slab.
#[repr(C, align(64))]
struct SlabHeader {
    ident: Ident,
    // The owner's alone from here on.
    /// Objects freed on the owner, not yet taken back by the cache.
    free: Cell<*mut FreeObj>,
    /// Objects handed to users or sitting in the cache's free list (low
    /// bits), and [`UNLINKED`]: neither current nor on the partial list
    /// (it was full). One signed test on a free catches both "now empty"
    /// and "was full".
    state: Cell<u32>,
    /// Objects ever carved from the bump area.
    carved: Cell<u32>,
    /// Next never-used object, and the end of the object area.
    bump: Cell<usize>,
    limit: usize,
    next: Cell<*mut SlabHeader>,
    prev: Cell<*mut SlabHeader>,
}

const UNLINKED: u32 = 1 << 31;
const INUSE: u32 = UNLINKED - 1;

const HEADER: usize = size_of::<SlabHeader>();

/// Where a class's slabs keep their header, and how many objects they hold.
#[derive(Clone, Copy)]
struct Geometry {
    order: u32,
    mask: usize,
    header_offset: usize,
    objects: usize,
    #[cfg(debug_assertions)]
    bitmap_words: usize,
}

const fn geometry(c: SizeClass) -> Geometry {
    let order = c.slab_order();
    let slab = PAGE_SIZE << order;
    let room = slab - HEADER;
    #[cfg(debug_assertions)]
    let (objects, bitmap_words) = {
        let words = (room / c.size()).div_ceil(64);
        ((room - words * 8) / c.size(), words)
    };
    #[cfg(not(debug_assertions))]
    let objects = room / c.size();
    Geometry {
        order,
        mask: !(slab - 1),
        header_offset: slab - HEADER,
        objects,
        #[cfg(debug_assertions)]
        bitmap_words,
    }
}

const GEOMETRY: [Geometry; NUM_CLASSES] = {
    let mut g = [geometry(SizeClass::from_index(0).unwrap()); NUM_CLASSES];
    let mut i = 1;
    while i < NUM_CLASSES {
        g[i] = geometry(SizeClass::from_index(i).unwrap());
        i += 1;
    }
    g
};

/// Never-used objects threaded onto the cache's free list at a time: about
/// two pages of small objects, enough to amortise the slow path, few enough
/// not to touch much memory before it is used.
const CARVE_BATCH: usize = 256;

/// Bytes of empty slabs an owner keeps for reuse before returning pages.
pub const STASH_LIMIT_BYTES: usize = 2 << 20;

/// Bytes of freed objects a class's free list takes from frees (before
/// they go to their slab, or home to their owner): see [`cache_limit`].
pub const CACHE_BYTES_PER_CLASS: usize = 32 << 10;
/// Bounds of [`cache_limit`], in objects.
const CACHE_MIN_OBJECTS: usize = 4;
const CACHE_MAX_OBJECTS: usize = 256;

const CACHE_LIMIT: [u32; NUM_CLASSES] = {
    let mut t = [0u32; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        let size = CLASS_SIZES[i] as usize;
        let mut n = CACHE_BYTES_PER_CLASS / size;
        if n < CACHE_MIN_OBJECTS {
            n = CACHE_MIN_OBJECTS;
        }
        if n > CACHE_MAX_OBJECTS {
            n = CACHE_MAX_OBJECTS;
        }
        t[i] = n as u32;
        i += 1;
    }
    t
};

/// How many freed objects of `class` a cache's free list takes before
/// frees go to their slab (or, for another owner's object, home to that
/// owner): [`CACHE_BYTES_PER_CLASS`] worth, at least 4 and at most 256
/// objects. This is also the most objects of `class` that a core can hold
/// away from their owner; its idle hook and [`crate::SlabAllocator::trim`]
/// send them home.
#[inline(always)]
pub fn cache_limit(class: SizeClass) -> usize {
    // SAFETY: a `SizeClass` index is always below `NUM_CLASSES`.
    (unsafe { *CACHE_LIMIT.get_unchecked(class.index()) }) as usize
}

#[inline(always)]
fn header_of(obj: usize, class: SizeClass) -> *mut SlabHeader {
    // SAFETY: a `SizeClass` index is always below `NUM_CLASSES`.
    let g = unsafe { GEOMETRY.get_unchecked(class.index()) };
    ((obj & g.mask) + g.header_offset) as *mut SlabHeader
}

/// Reads the owner of the slab holding `obj` (another core may own it).
///
/// # Safety
/// `obj` must be an object of `class` handed out by some cache.
#[inline(always)]
pub(crate) unsafe fn owner_of(obj: NonNull<u8>, class: SizeClass) -> u32 {
    let h = header_of(obj.as_ptr() as usize, class);
    // SAFETY: the slab is live (it holds `obj`), so its header is
    // initialised, and `owner` does not change while it holds objects.
    unsafe { ptr::addr_of!((*h).ident.owner).read() }
}

/// Debug-build checks of a free: that `obj` is an object of `class` in a
/// live slab and is allocated; clears its bit. Any core may call it.
#[cfg(debug_assertions)]
pub(crate) fn check_free(obj: NonNull<u8>, class: SizeClass) -> Result<(), FreeError> {
    let addr = obj.as_ptr() as usize;
    let err = |kind| FreeError {
        allocator: "slab allocator",
        addr,
        size: class.size(),
        kind,
    };
    if !pages().contains(addr) {
        return Err(err(FreeErrorKind::Foreign));
    }
    let g = &GEOMETRY[class.index()];
    let base = addr & g.mask;
    let h = header_of(addr, class);
    // SAFETY: the header address lies in memory the page allocator manages
    // (mapped, identity-mapped natively), so reading it is defined even if
    // it is not a slab; we only compare the values.
    let (magic, hclass) = unsafe {
        (
            ptr::addr_of!((*h).ident.magic).read(),
            ptr::addr_of!((*h).ident.class).read(),
        )
    };
    if magic != MAGIC ^ base {
        return Err(err(FreeErrorKind::Foreign));
    }
    if hclass as usize != class.index() {
        return Err(err(FreeErrorKind::WrongSize));
    }
    let off = addr - base;
    if !off.is_multiple_of(class.size()) || off / class.size() >= g.objects {
        return Err(err(FreeErrorKind::NotAllocated));
    }
    // SAFETY: `obj` is an object of a live slab of `class` (checked above).
    let (word, bit) = unsafe { bitmap_bit(addr, class) };
    if word.fetch_and(!bit, Ordering::AcqRel) & bit == 0 {
        return Err(err(FreeErrorKind::DoubleFree));
    }
    Ok(())
}

/// The debug bitmap word and bit of the object at `addr`: the bitmap sits
/// just below the slab's header, one bit per object in address order.
///
/// # Safety
/// `addr` must be the start of an object of a live slab of `class`.
#[cfg(debug_assertions)]
unsafe fn bitmap_bit(addr: usize, class: SizeClass) -> (&'static AtomicU64, u64) {
    let g = &GEOMETRY[class.index()];
    let h = header_of(addr, class);
    let i = (addr - (addr & g.mask)) / class.size();
    let words = (h as usize - g.bitmap_words * 8) as *const AtomicU64;
    // SAFETY: a live slab of this class has `bitmap_words` words just below
    // its header, and `i` indexes one of its objects (caller's contract);
    // atomics make concurrent use from several cores sound.
    let word = unsafe { &*words.add(i / 64) };
    (word, 1u64 << (i % 64))
}

#[cfg(debug_assertions)]
fn mark_allocated(obj: *mut FreeObj, class: SizeClass) {
    let addr = obj as usize;
    // SAFETY: `obj` comes from a live slab of `class` (it was on a free
    // list of that class).
    let (word, bit) = unsafe { bitmap_bit(addr, class) };
    let was = word.fetch_or(bit, Ordering::AcqRel);
    assert!(
        was & bit == 0,
        "slab allocator: object {addr:#x} of {} bytes handed out twice: the free lists are corrupted \
         (a use after free?)",
        class.size()
    );
}

#[cfg(not(debug_assertions))]
#[inline(always)]
fn mark_allocated(_: *mut FreeObj, _: SizeClass) {}

#[repr(C, align(64))]
struct ClassCache {
    /// Objects ready to hand out, the last freed first: objects taken
    /// from `current`, and objects this cache's user freed, whichever
    /// slab and owner they come from (see [`cache_limit`]).
    free: Cell<*mut FreeObj>,
    /// Two counts in one word, so that each fast path reads and writes it
    /// once: the objects on `free` (low half: frees push onto the list
    /// while it holds fewer than the class's [`cache_limit`]; a refill from
    /// `current` may take it above), and how many objects at the bottom of
    /// the list are known to be this owner's (high half: taken from
    /// `current`, or kept by the last `send_foreign_home`; a free onto a
    /// list shorter than this lowers it), so that only the objects above
    /// need a look before the core idles.
    counts: Cell<u64>,
    /// The slab refills take objects from (null: none).
    current: Cell<*mut SlabHeader>,
    /// Other slabs with free objects (doubly linked through headers).
    partial: Cell<*mut SlabHeader>,
    /// The oldest slab on the partial list: the one that has had the most
    /// time to collect frees, so the one a refill takes.
    partial_tail: Cell<*mut SlabHeader>,
}

impl ClassCache {
    /// Objects on the free list.
    #[inline(always)]
    fn len(&self) -> u32 {
        self.counts.get() as u32
    }

    /// Objects at the bottom of the free list known to be the owner's
    /// (may exceed `len` after allocations: only the first `len` count).
    #[inline(always)]
    fn clean(&self) -> u32 {
        (self.counts.get() >> 32) as u32
    }

    #[inline(always)]
    fn set_counts(&self, len: u32, clean: u32) {
        self.counts.set(((clean as u64) << 32) | len as u64);
    }

    /// A free pushed onto a list of `len` objects whose mark said more:
    /// only the bottom `len` are still known to be the owner's.
    #[cold]
    #[inline(never)]
    fn lower_clean(&self, len: u32) {
        self.set_counts(len + 1, len);
    }

    const fn new() -> Self {
        ClassCache {
            free: Cell::new(ptr::null_mut()),
            counts: Cell::new(0),
            current: Cell::new(ptr::null_mut()),
            partial: Cell::new(ptr::null_mut()),
            partial_tail: Cell::new(ptr::null_mut()),
        }
    }
}

/// Remote frees on their way to one owner's class, batched so that one
/// compare-and-swap sends many. The batch is a chain of *nodes* (see
/// [`remote`]): each node is a freed object that also carries the
/// addresses of up to `remote::node_capacity(class)` others, so the owner
/// reads a few nodes instead of chasing one pointer per object.
struct Outbox {
    first: Cell<*mut FreeObj>,
    last: Cell<*mut FreeObj>,
    /// Objects in the batch, nodes included.
    count: Cell<u32>,
    /// Addresses stored in the last node.
    fill: Cell<u32>,
    owner: Cell<u32>,
    class: Cell<u32>,
}

impl Outbox {
    const fn new() -> Self {
        Outbox {
            first: Cell::new(ptr::null_mut()),
            last: Cell::new(ptr::null_mut()),
            count: Cell::new(0),
            fill: Cell::new(0),
            owner: Cell::new(0),
            class: Cell::new(0),
        }
    }
}

/// Outboxes per cache (direct-mapped by owner and class).
const OUTBOXES: usize = 32;
/// Remote frees batched before a push. At most `OUTBOXES * (BATCH - 1)`
/// objects wait in a cache until it next takes memory for a new slab or
/// drains ([`crate::SlabAllocator::drain_remote_frees`], which the runtime
/// calls before a core goes idle).
pub const OUTBOX_BATCH: u32 = 32;

/// One owner's caches for every class.
#[repr(align(64))]
pub struct Cache {
    classes: [ClassCache; NUM_CLASSES],
    outbox: [Outbox; OUTBOXES],
    /// Outboxes holding objects.
    outbox_used: Cell<u32>,
    /// Bytes of empty slabs kept (on their class's partial list).
    stash_bytes: Cell<usize>,
    /// Slabs this owner holds that are not empty (or are current).
    slabs: Cell<usize>,
}

/// Figures of one cache, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Slabs holding (or ready to hold) objects.
    pub slabs: usize,
    /// Bytes of empty slabs kept for reuse.
    pub stashed_bytes: usize,
    /// Objects on the cache's free lists (of any owner), ready to hand out.
    pub cached_objects: usize,
}

impl Cache {
    pub(crate) const fn new() -> Self {
        Cache {
            classes: [const { ClassCache::new() }; NUM_CLASSES],
            outbox: [const { Outbox::new() }; OUTBOXES],
            outbox_used: Cell::new(0),
            stash_bytes: Cell::new(0),
            slabs: Cell::new(0),
        }
    }

    /// The owner index (a core, or [`remote::SHARED`]): the cache's slot in
    /// the static table of representatives. Derived from the address rather
    /// than stored, so that the table is all zeroes and lives in `.bss`
    /// instead of adding close to a megabyte to every image.
    #[inline(always)]
    pub(crate) fn owner(&self) -> u32 {
        crate::reps::owner_of(self)
    }

    /// Allocates one object of `class`.
    #[inline(always)]
    pub(crate) fn alloc(&self, class: SizeClass) -> Result<NonNull<u8>, AllocError> {
        match self.alloc_fast(class) {
            Some(p) => Ok(p),
            None => self.alloc_slow(class),
        }
    }

    /// Pops an object of `class` from the cache's free list, if it has one.
    #[inline(always)]
    pub(crate) fn alloc_fast(&self, class: SizeClass) -> Option<NonNull<u8>> {
        // SAFETY: a `SizeClass` index is always below `NUM_CLASSES`.
        let cc = unsafe { self.classes.get_unchecked(class.index()) };
        let obj = NonNull::new(cc.free.get())?;
        // SAFETY: objects on the cache's free list are free objects of this
        // class; their first word is the link.
        cc.free.set(unsafe { (*obj.as_ptr()).next });
        // The list was not empty, so its length (the low half) is at
        // least 1: this takes one from it alone.
        cc.counts.set(cc.counts.get() - 1);
        mark_allocated(obj.as_ptr(), class);
        Some(obj.cast())
    }

    #[inline(never)]
    fn alloc_slow(&self, class: SizeClass) -> Result<NonNull<u8>, AllocError> {
        self.refill(class)?;
        self.alloc(class)
    }

    /// Fills the class's free list from the current slab, remote frees, a
    /// partial slab or a new slab, in that order.
    fn refill(&self, class: SizeClass) -> Result<(), AllocError> {
        let cc = &self.classes[class.index()];
        debug_assert!(cc.free.get().is_null() && cc.len() == 0);
        if self.take_from_current(cc, class) {
            return Ok(());
        }
        if remote::take_pending(self.owner(), class) {
            self.free_remote_list(remote::take_list(self.owner(), class), class);
            if self.take_from_current(cc, class) {
                return Ok(());
            }
        }
        // The current slab is full: it leaves the cache until a free.
        let cur = cc.current.get();
        if !cur.is_null() {
            // SAFETY: `current` is a live slab of this cache.
            unsafe { (*cur).state.set((*cur).state.get() | UNLINKED) };
            cc.current.set(ptr::null_mut());
        }
        // Remote frees may empty slabs or refill this class's partial list.
        self.take_back_remote_frees();
        let next = cc.partial_tail.get();
        if !next.is_null() {
            self.unlink_partial(cc, next);
            // SAFETY: slabs on the partial list are live and ours.
            if unsafe { (*next).state.get() } & INUSE == 0 {
                // A kept empty slab is back in use.
                self.stash_bytes
                    .set(self.stash_bytes.get() - slab_bytes(class));
                self.slabs.set(self.slabs.get() + 1);
            }
            cc.current.set(next);
            let ok = self.take_from_current(cc, class);
            debug_assert!(ok, "partial slabs have free objects");
            return Ok(());
        }
        // About to take memory: first send on the remote frees waiting
        // here, so that other owners can reuse their objects.
        self.flush_outboxes();
        let slab = self.new_slab(class)?;
        cc.current.set(slab);
        let ok = self.take_from_current(cc, class);
        debug_assert!(ok, "a fresh slab has objects");
        Ok(())
    }

    /// Moves the current slab's freed objects, or a batch of never-used
    /// ones, to the cache's free list.
    fn take_from_current(&self, cc: &ClassCache, class: SizeClass) -> bool {
        let h = cc.current.get();
        if h.is_null() {
            return false;
        }
        // SAFETY: `current` is a live slab of this cache.
        let h = unsafe { &*h };
        let list = h.free.get();
        if !list.is_null() {
            cc.free.set(list);
            h.free.set(ptr::null_mut());
            // The slab's list held every carved object not counted in use;
            // now every carved object is with a user or in a cache.
            let carved = h.carved.get();
            let n = carved - (h.state.get() & INUSE);
            cc.set_counts(n, n);
            h.state.set(carved);
            return true;
        }
        let (bump, limit, size) = (h.bump.get(), h.limit, class.size());
        if bump == limit {
            return false;
        }
        // Thread a batch of fresh objects.
        let n = ((limit - bump) / size).min(CARVE_BATCH);
        let mut p = bump;
        for _ in 0..n - 1 {
            // SAFETY: `p` and `p + size` are never-used objects of this slab.
            unsafe {
                (p as *mut FreeObj).write(FreeObj {
                    next: (p + size) as *mut FreeObj,
                })
            };
            p += size;
        }
        // SAFETY: as above, the last of the batch.
        unsafe {
            (p as *mut FreeObj).write(FreeObj {
                next: ptr::null_mut(),
            })
        };
        cc.free.set(bump as *mut FreeObj);
        cc.set_counts(n as u32, n as u32);
        h.bump.set(bump + n * size);
        h.carved.set(h.carved.get() + n as u32);
        h.state.set(h.state.get() + n as u32);
        true
    }

    /// The fastest free: any object of `class` (whichever slab and owner
    /// it comes from) goes onto the cache's free list while the list holds
    /// fewer than [`cache_limit`] objects, to be handed out again by the
    /// next allocation of its class here, while its memory is still in
    /// this core's cache. Its slab still counts it as in use. Returns
    /// whether it did; `false` leaves the object untouched.
    ///
    /// # Safety
    /// `obj` must be an allocated object of `class` (owned by any cache),
    /// not used after this call if it returns `true`.
    #[inline(always)]
    pub(crate) unsafe fn free_cached(&self, obj: NonNull<u8>, class: SizeClass) -> bool {
        // SAFETY: a `SizeClass` index is always below `NUM_CLASSES`.
        let cc = unsafe { self.classes.get_unchecked(class.index()) };
        let counts = cc.counts.get();
        let len = counts as u32;
        if len as usize >= cache_limit(class) {
            return false;
        }
        let o = obj.as_ptr() as *mut FreeObj;
        // SAFETY: the object is free now; its first word becomes the link.
        unsafe {
            o.write(FreeObj {
                next: cc.free.get(),
            })
        };
        cc.free.set(o);
        if (counts >> 32) as u32 > len {
            // The objects from position `len` up are no longer known to be
            // ours. Rare (the first free after allocations took the list
            // below its mark), so out of line: the usual path adds one to
            // the length and nothing else, leaving no chain of dependent
            // operations from one free to the next.
            cc.lower_clean(len);
        } else {
            cc.counts.set(counts + 1);
        }
        true
    }

    /// Frees an object of `class` that this cache owns.
    ///
    /// # Safety
    /// `obj` must be an allocated object of `class` owned by this cache, not
    /// used after this call.
    #[inline(always)]
    pub(crate) unsafe fn free_local(&self, obj: NonNull<u8>, class: SizeClass) {
        let o = obj.as_ptr() as *mut FreeObj;
        // Kept raw (not a `&SlabHeader`): `free_transition` may go on to
        // write the header's plain fields (`give_back` poisons the magic),
        // which a pointer derived from a shared reference must not do.
        let h = header_of(o as usize, class);
        // SAFETY: the object's slab is live and ours (caller's contract), so
        // its header is too; the object is ours to reuse. Only `Cell`
        // fields are touched here, through shared place borrows.
        let state = unsafe {
            o.write(FreeObj {
                next: (*h).free.get(),
            });
            (*h).free.set(o);
            let state = (*h).state.get().wrapping_sub(1);
            (*h).state.set(state);
            state
        };
        if state as i32 <= 0 {
            self.free_transition(h, class);
        }
    }

    /// Frees an object another owner owns: into an outbox, sent on when
    /// full (or displaced, or at this cache's next slow path or drain).
    ///
    /// # Safety
    /// `obj` must be an allocated object of `class` owned by `owner`, not
    /// used after this call.
    #[inline(always)]
    pub(crate) unsafe fn free_remote(&self, owner: u32, obj: NonNull<u8>, class: SizeClass) {
        let e = &self.outbox[(owner as usize * 5 + class.index()) % OUTBOXES];
        let n = e.count.get();
        if n != 0 && (e.owner.get() != owner || e.class.get() != class.index() as u32) {
            self.send(e);
            // SAFETY: forwarded; the outbox is free now.
            return unsafe { self.free_remote(owner, obj, class) };
        }
        let o = obj.as_ptr() as *mut FreeObj;
        let fill = e.fill.get();
        if n != 0 && (fill as usize) < remote::node_capacity(class) {
            // SAFETY: `last` is a node of this batch with room for another
            // address.
            unsafe { remote::node_set(e.last.get(), fill as usize, o) };
            e.fill.set(fill + 1);
        } else {
            // SAFETY: the object is free memory now: it becomes a node.
            unsafe {
                o.write(FreeObj {
                    next: ptr::null_mut(),
                })
            };
            if n == 0 {
                e.first.set(o);
                e.owner.set(owner);
                e.class.set(class.index() as u32);
                self.outbox_used.set(self.outbox_used.get() + 1);
            } else {
                // SAFETY: `last` is the batch's last node, complete now.
                unsafe {
                    remote::node_seal(e.last.get(), class, fill as usize);
                    (*e.last.get()).next = o;
                }
            }
            e.last.set(o);
            e.fill.set(0);
        }
        e.count.set(n + 1);
        if n + 1 == OUTBOX_BATCH {
            self.send(e);
        }
    }

    #[inline(never)]
    fn send(&self, e: &Outbox) {
        let class = SizeClass::from_index(e.class.get() as usize).expect("outbox class");
        // SAFETY: the outbox chain links nodes of free objects of `class`
        // owned by `e.owner`, from `first` to `last`; the last gets sealed.
        unsafe {
            remote::node_seal(e.last.get(), class, e.fill.get() as usize);
            remote::push_chain(e.owner.get(), class, e.first.get(), e.last.get());
        }
        e.first.set(ptr::null_mut());
        e.last.set(ptr::null_mut());
        e.count.set(0);
        e.fill.set(0);
        self.outbox_used.set(self.outbox_used.get() - 1);
    }

    /// Sends every waiting remote free to its owner.
    pub(crate) fn flush_outboxes(&self) {
        if self.outbox_used.get() == 0 {
            return;
        }
        for e in &self.outbox {
            if e.count.get() != 0 {
                self.send(e);
            }
        }
    }

    /// A free made a slab empty, or gave a free object to a full slab.
    #[inline(never)]
    fn free_transition(&self, h: *mut SlabHeader, class: SizeClass) {
        let cc = &self.classes[class.index()];
        if h == cc.current.get() {
            return;
        }
        // SAFETY: `h` is the header of a live slab of this cache.
        let state = unsafe { (*h).state.get() };
        if state & INUSE == 0 {
            if state & UNLINKED == 0 {
                self.unlink_partial(cc, h);
            }
            self.release_slab(h, class);
        } else {
            // SAFETY: as above.
            unsafe { (*h).state.set(state & INUSE) };
            self.push_partial(cc, h);
        }
    }

    fn push_partial(&self, cc: &ClassCache, h: *mut SlabHeader) {
        let head = cc.partial.get();
        // SAFETY: `h` and `head` (if not null) are live slabs of this cache.
        unsafe {
            (*h).prev.set(ptr::null_mut());
            (*h).next.set(head);
            if head.is_null() {
                cc.partial_tail.set(h);
            } else {
                (*head).prev.set(h);
            }
        }
        cc.partial.set(h);
    }

    fn unlink_partial(&self, cc: &ClassCache, h: *mut SlabHeader) {
        // SAFETY: `h` is on this class's partial list; its neighbours too.
        unsafe {
            let (prev, next) = ((*h).prev.get(), (*h).next.get());
            if prev.is_null() {
                cc.partial.set(next);
            } else {
                (*prev).next.set(next);
            }
            if next.is_null() {
                cc.partial_tail.set(prev);
            } else {
                (*next).prev.set(prev);
            }
        }
    }

    /// Frees a list of objects that other owners pushed back to this one.
    fn free_remote_list(&self, mut p: *mut FreeObj, class: SizeClass) {
        while let Some(node) = NonNull::new(p) {
            // SAFETY: remote lists hold sealed nodes of objects of `class`
            // that this cache owns, each pushed once by the core that freed
            // it. The addresses a node carries are read before the node
            // itself is freed (which overwrites it). The frees write to the
            // objects without reading them, so their cache misses overlap.
            unsafe {
                p = (*node.as_ptr()).next;
                let n = remote::node_len(node.as_ptr(), class);
                for i in 0..n {
                    let o = remote::node_get(node.as_ptr(), i);
                    self.free_local(NonNull::new_unchecked(o.cast()), class);
                }
                self.free_local(node.cast(), class);
            }
        }
    }

    /// Sends other owners' objects on this cache's free lists and in its
    /// outboxes home, and takes back every object other owners sent to
    /// this one.
    pub(crate) fn drain_remote_frees(&self) {
        self.send_foreign_home();
        self.flush_outboxes();
        self.take_back_remote_frees();
    }

    /// Sends the objects of other owners on this cache's free lists home
    /// (into outboxes), keeping this owner's own objects in their order.
    /// Looks only at the objects freed onto each list since it was last
    /// looked at (see `ClassCache::counts`), so it costs next to nothing
    /// when nothing was freed.
    fn send_foreign_home(&self) {
        let me = self.owner();
        for (i, cc) in self.classes.iter().enumerate() {
            let len = cc.len();
            let clean = cc.clean().min(len);
            if clean == len {
                if cc.clean() != len {
                    cc.set_counts(len, len);
                }
                continue;
            }
            let class = SizeClass::from_index(i).expect("class index");
            let mut p = cc.free.get();
            let mut head: *mut FreeObj = ptr::null_mut();
            let mut tail: *mut FreeObj = ptr::null_mut();
            let mut kept = 0u32;
            // SAFETY: the list holds `len` free objects of `class`, each
            // counted in use by its slab, so each slab's header is live; an
            // object is unlinked (its link read) before it is sent on or
            // relinked. Below the top `len - clean`, all are ours.
            unsafe {
                for _ in 0..len - clean {
                    let o = p;
                    p = (*o).next;
                    let owner = owner_of(NonNull::new_unchecked(o.cast()), class);
                    if owner != me {
                        self.free_remote(owner, NonNull::new_unchecked(o.cast()), class);
                        continue;
                    }
                    if tail.is_null() {
                        head = o;
                    } else if (*tail).next != o {
                        (*tail).next = o;
                    }
                    tail = o;
                    kept += 1;
                }
                // `p` is the checked rest of the list.
                if tail.is_null() {
                    head = p;
                } else if (*tail).next != p {
                    (*tail).next = p;
                }
            }
            cc.free.set(head);
            cc.set_counts(kept + clean, kept + clean);
        }
    }

    /// Empties every class's free list: this owner's objects back into
    /// their slabs, other owners' into outboxes.
    fn empty_free_lists(&self) {
        let me = self.owner();
        for (i, cc) in self.classes.iter().enumerate() {
            if cc.len() == 0 {
                continue;
            }
            let class = SizeClass::from_index(i).expect("class index");
            let mut p = cc.free.replace(ptr::null_mut());
            cc.set_counts(0, 0);
            // SAFETY: as in `send_foreign_home`; our own objects go back to
            // their (live, ours) slabs.
            unsafe {
                while let Some(o) = NonNull::new(p) {
                    p = (*o.as_ptr()).next;
                    match owner_of(o.cast(), class) {
                        owner if owner == me => self.free_local(o.cast(), class),
                        owner => self.free_remote(owner, o.cast(), class),
                    }
                }
            }
        }
    }

    /// Takes back every object other owners freed to this one.
    fn take_back_remote_frees(&self) {
        let mut mask = remote::take_all_pending(self.owner());
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let class = SizeClass::from_index(i).expect("pending bit of a class");
            self.free_remote_list(remote::take_list(self.owner(), class), class);
        }
    }

    fn new_slab(&self, class: SizeClass) -> Result<*mut SlabHeader, AllocError> {
        let g = &GEOMETRY[class.index()];
        let order = g.order;
        let base = pages()
            .alloc(order as usize)
            .map_err(|e| AllocError {
                allocator: "slab allocator",
                size: class.size(),
                align: class.align(),
                ..e
            })?
            .as_ptr() as usize;
        let h = (base + g.header_offset) as *mut SlabHeader;
        // SAFETY: `base..base + slab` is a block of ours, unused; the header
        // and bitmap sit at its end.
        unsafe {
            h.write(SlabHeader {
                ident: Ident {
                    magic: MAGIC ^ base,
                    owner: self.owner(),
                    class: class.index() as u32,
                },
                free: Cell::new(ptr::null_mut()),
                state: Cell::new(0),
                carved: Cell::new(0),
                bump: Cell::new(base),
                limit: base + g.objects * class.size(),
                next: Cell::new(ptr::null_mut()),
                prev: Cell::new(ptr::null_mut()),
            });
            #[cfg(debug_assertions)]
            ptr::write_bytes((h as *mut u64).sub(g.bitmap_words), 0, g.bitmap_words);
        }
        self.slabs.set(self.slabs.get() + 1);
        Ok(h)
    }

    /// A slab became empty (and is neither current nor listed): keep it,
    /// free list intact, at the head of its class's partial list (reused
    /// after the partly used slabs), while the owner keeps less than
    /// [`STASH_LIMIT_BYTES`] of empty slabs; else give its pages back.
    fn release_slab(&self, h: *mut SlabHeader, class: SizeClass) {
        self.slabs.set(self.slabs.get() - 1);
        let bytes = slab_bytes(class);
        if self.stash_bytes.get() + bytes <= STASH_LIMIT_BYTES {
            self.stash_bytes.set(self.stash_bytes.get() + bytes);
            // SAFETY: the slab is ours and empty.
            unsafe { (*h).state.set(0) };
            // SAFETY: a `SizeClass` index is always below `NUM_CLASSES`.
            let cc = unsafe { self.classes.get_unchecked(class.index()) };
            self.push_partial(cc, h);
        } else {
            self.give_back(h, class);
        }
    }

    /// Returns an empty slab's pages to the page allocator.
    fn give_back(&self, h: *mut SlabHeader, class: SizeClass) {
        let g = &GEOMETRY[class.index()];
        // Poison the magic so stale pointers into it are caught as foreign.
        // SAFETY: the slab is empty and ours.
        unsafe { (*h).ident.magic = 0 };
        self.return_pages(h as usize - g.header_offset, g.order);
    }

    fn return_pages(&self, base: usize, order: u32) {
        let block = NonNull::new(base as *mut u8).expect("slab at address 0");
        // SAFETY: the block came from the page allocator with this order and
        // nothing in it is used any more.
        let r = unsafe { pages().free(block, order as usize) };
        if let Err(e) = r {
            panic!("slab allocator: returning an empty slab failed: {e}");
        }
    }

    /// Empties the free lists (this owner's objects back into their slabs,
    /// other owners' home), takes back remote frees, and gives back to the
    /// page allocator every empty slab: the stash, and each class's current
    /// slab if nothing in it is in use.
    pub(crate) fn trim(&self) {
        self.empty_free_lists();
        self.drain_remote_frees();
        for (i, cc) in self.classes.iter().enumerate() {
            let h = cc.current.get();
            // SAFETY: `current` is live and ours; with the free lists empty,
            // a current slab with nothing in use is empty.
            if !h.is_null() && unsafe { (*h).state.get() } & INUSE == 0 {
                cc.current.set(ptr::null_mut());
                self.slabs.set(self.slabs.get() - 1);
                self.give_back(h, SizeClass::from_index(i).expect("class index"));
            }
        }
        for (i, cc) in self.classes.iter().enumerate() {
            let class = SizeClass::from_index(i).expect("class index");
            let mut h = cc.partial.get();
            while !h.is_null() {
                // SAFETY: slabs on the partial list are live and ours.
                let (next, state) = unsafe { ((*h).next.get(), (*h).state.get()) };
                if state & INUSE == 0 {
                    self.unlink_partial(cc, h);
                    self.give_back(h, class);
                }
                h = next;
            }
        }
        self.stash_bytes.set(0);
    }

    /// Objects of `class` on the free list.
    pub(crate) fn cached_objects(&self, class: SizeClass) -> usize {
        self.classes[class.index()].len() as usize
    }

    /// This cache's figures.
    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            slabs: self.slabs.get(),
            stashed_bytes: self.stash_bytes.get(),
            cached_objects: self.classes.iter().map(|c| c.len() as usize).sum(),
        }
    }
}

/// The number of objects a slab of `class` holds.
pub fn objects_per_slab(class: SizeClass) -> usize {
    GEOMETRY[class.index()].objects
}

/// Bytes in a slab of `class`.
pub fn slab_bytes(class: SizeClass) -> usize {
    PAGE_SIZE << GEOMETRY[class.index()].order
}
