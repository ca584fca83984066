//! # ebbrt-page-alloc
//!
//! The page allocator Ebb: a binary buddy allocator (blocks of 4 KiB up to
//! 1 GiB, each aligned to its size) that owns all the free memory of an
//! EbbRT instance — natively every free region of the boot memory map,
//! hosted one large arena mapped from Linux. It is the bottom of the memory
//! stack: the slab allocator takes its slabs from here, the general-purpose
//! allocators their large blocks.
//!
//! The allocator is a shared Ebb at the well-known id
//! [`ids::PAGE_ALLOCATOR`], reached
//! through [`PAGE_ALLOCATOR`]. Its instance is a `static`, so the miss path
//! needs no heap (the heap is built on top of it), and [`pages`] also works
//! on threads that are not EbbRT cores (early boot, plain Linux threads).
//! One spin lock guards the buddy: it is taken only on the slow paths of the
//! allocators above (a slab refill, a large allocation).
//!
//! It must not allocate from the heap, nor call into the allocators above it.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;
use ebbrt_core::{EbbRef, cpu};

pub mod buddy;
mod error;
#[cfg(not(target_os = "none"))]
mod hosted;

pub use buddy::{
    Buddy, MAX_ORDER, ORDERS, PAGE_SHIFT, PAGE_SIZE, RegionError, order_bytes, order_for,
    order_for_layout,
};
pub use error::{
    AllocError, AllocFailure, FreeError, FreeErrorKind, bad_free, report_alloc_failure,
};

/// Where an instance gets its memory from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The platform: hosted, an arena mapped at first use; native, the
    /// regions the boot code adds.
    Platform,
    /// Only what [`PageAllocator::add_region`] gives it.
    Manual,
}

/// Binary buddy page allocator (4 KiB to 1 GiB blocks) owning all free memory.
///
/// One locked buddy allocator shared by every core: a shared Ebb at the
/// well-known id `PAGE_ALLOCATOR` whose instance is a `static`, so its
/// miss path needs no heap. Natively it takes the boot memory map's free
/// regions at its first use; hosted it maps an arena.
#[ebb(shared, id = ids::PAGE_ALLOCATOR, static_rep = instance)]
pub struct PageAllocator {
    buddy: spin::Mutex<Buddy>,
    /// Lowest and highest (exclusive) managed address, for a lock-free
    /// "is this ours" test.
    lo: AtomicUsize,
    hi: AtomicUsize,
    source: Source,
    init: spin::Once<()>,
}

/// Usage figures of a page allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageStats {
    /// Bytes managed, free or not.
    pub total_bytes: usize,
    /// Bytes free.
    pub free_bytes: usize,
    /// Bytes in the largest free block.
    pub largest_free: usize,
}

const NAME: &str = "page allocator";

static INSTANCE: PageAllocator = PageAllocator::new_with(Source::Platform);

fn instance() -> &'static PageAllocator {
    &INSTANCE
}

/// The page allocator Ebb of this instance.
pub static PAGE_ALLOCATOR: EbbRef<PageAllocator> = EbbRef::fixed();

/// The page allocator: through its [`EbbRef`] on an EbbRT core, directly
/// elsewhere (the instance is the same).
#[inline]
pub fn pages() -> &'static PageAllocator {
    if cpu::try_current().is_some() {
        PAGE_ALLOCATOR.rep()
    } else {
        &INSTANCE
    }
}

impl PageAllocator {
    const fn new_with(source: Source) -> Self {
        PageAllocator {
            buddy: spin::Mutex::new(Buddy::new()),
            lo: AtomicUsize::new(usize::MAX),
            hi: AtomicUsize::new(0),
            source,
            init: spin::Once::new(),
        }
    }

    /// A separate allocator with no memory until [`Self::add_region`] gives
    /// it some (for tests and for carving private pools).
    pub const fn new_manual() -> Self {
        Self::new_with(Source::Manual)
    }

    #[inline]
    fn ensure_init(&self) {
        if self.source == Source::Platform {
            self.init.call_once(|| platform_init(self));
        }
    }

    /// Gives `start..end` to the allocator.
    ///
    /// # Safety
    /// The memory must be valid for reads and writes (identity-mapped
    /// natively), used by nothing else, and remain so for the rest of the
    /// program.
    #[allow(unsafe_code)]
    pub unsafe fn add_region(&self, start: usize, end: usize) -> Result<(), RegionError> {
        let mut buddy = self.buddy.lock();
        // SAFETY: forwarded from the caller.
        unsafe { buddy.add_region(start, end) }?;
        self.lo.fetch_min(start, Ordering::AcqRel);
        self.hi.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Allocates a block of `PAGE_SIZE << order` bytes, aligned to its size.
    pub fn alloc(&self, order: usize) -> Result<NonNull<u8>, AllocError> {
        self.ensure_init();
        let mut buddy = self.buddy.lock();
        match buddy.alloc(order) {
            Some(p) => Ok(p),
            None => {
                let (bytes, reason) = if order <= MAX_ORDER {
                    (order_bytes(order), AllocFailure::OutOfMemory)
                } else {
                    (usize::MAX, AllocFailure::TooLarge)
                };
                Err(failure(&buddy, bytes, bytes, reason))
            }
        }
    }

    /// Allocates the smallest block that holds `size` bytes aligned to
    /// `align`; returns it with its order.
    pub fn alloc_bytes(
        &self,
        size: usize,
        align: usize,
    ) -> Result<(NonNull<u8>, usize), AllocError> {
        let Some(order) = order_for_layout(size, align) else {
            self.ensure_init();
            let reason = if align > order_bytes(MAX_ORDER) {
                AllocFailure::AlignTooLarge
            } else {
                AllocFailure::TooLarge
            };
            return Err(failure(&self.buddy.lock(), size, align, reason));
        };
        self.alloc(order).map(|p| (p, order)).map_err(|mut e| {
            e.size = size;
            e.align = align;
            e
        })
    }

    /// Frees a block allocated with `order`. A double free, a foreign
    /// address or a wrong order is refused with a [`FreeError`] and changes
    /// nothing.
    ///
    /// # Safety
    /// On success the block is free memory again: the caller must not use
    /// it any more.
    #[allow(unsafe_code)]
    pub unsafe fn free(&self, block: NonNull<u8>, order: usize) -> Result<(), FreeError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.buddy.lock().free(block, order) }
    }

    /// Whether `addr` lies in the span of memory this allocator manages
    /// (lock-free; between two regions it may say yes).
    #[inline]
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.lo.load(Ordering::Relaxed) && addr < self.hi.load(Ordering::Relaxed)
    }

    /// The usage figures now.
    pub fn stats(&self) -> PageStats {
        self.ensure_init();
        let b = self.buddy.lock();
        PageStats {
            total_bytes: b.total_bytes(),
            free_bytes: b.free_bytes(),
            largest_free: b.largest_free_order().map_or(0, order_bytes),
        }
    }

    /// Checks the buddy's invariants (for tests).
    pub fn check(&self) -> Result<(), &'static str> {
        self.buddy.lock().check()
    }
}

fn failure(b: &Buddy, size: usize, align: usize, reason: AllocFailure) -> AllocError {
    AllocError {
        allocator: NAME,
        size,
        align,
        reason,
        free_bytes: b.free_bytes(),
        largest_free: b.largest_free_order().map_or(0, order_bytes),
    }
}

#[cfg(not(target_os = "none"))]
fn platform_init(pa: &PageAllocator) {
    if let Some((start, end)) = hosted::map_arena() {
        // SAFETY: the arena is a fresh private mapping that only this
        // allocator uses and that is never unmapped.
        #[allow(unsafe_code)]
        let r = unsafe { pa.add_region(start, end) };
        r.expect("the fresh hosted arena is a valid region");
    }
}

/// Natively, free memory left for drivers that take physical regions of
/// their own (`ebbrt_core::native::mem::take_region`), at most.
#[cfg(target_os = "none")]
pub const NATIVE_RESERVE: u64 = 16 << 20;

/// Natively: takes every free region of the boot memory map (what the
/// kernel image, the boot page tables and the first MiB leave), except a
/// reserve of at most [`NATIVE_RESERVE`] (a sixteenth of free memory) that
/// stays with the kernel core for drivers.
#[cfg(target_os = "none")]
fn platform_init(pa: &PageAllocator) {
    use ebbrt_core::native::mem;
    let free = mem::free_regions();
    let mut reserve = (free.total() / 16).min(NATIVE_RESERVE);
    for r in free.iter() {
        let mut len = r.end - r.start;
        if reserve > 0 && len >= 2 * reserve {
            len -= reserve;
            reserve = 0;
        }
        let Some(t) = mem::take_region(len, r.start) else {
            continue;
        };
        // SAFETY: the kernel core handed this identity-mapped RAM over and
        // took it out of its free set: nothing else will use it.
        #[allow(unsafe_code)]
        let added = unsafe { pa.add_region(t.start as usize, t.end as usize) };
        if let Err(e) = added {
            log::warn!(
                "page allocator: free region {:#x}..{:#x} unused: {e}",
                t.start,
                t.end
            );
        }
    }
}

#[cfg(test)]
mod tests;
