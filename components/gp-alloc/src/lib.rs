//! # ebbrt-gp-alloc
//!
//! The general-purpose allocator Ebb, EbbRT's default `#[global_allocator]`:
//! requests up to 16 KiB (at alignments up to 16 KiB) are served by the
//! per-core slab classes of [`ebbrt_slab_alloc`], larger ones by blocks of
//! the page allocator [`ebbrt_page_alloc`] (aligned to their size, so any
//! alignment up to 1 GiB). It keeps no state of its own: it is a shared Ebb
//! at the well-known id [`ids::GP_ALLOCATOR`]
//! whose instance is a `static`, so its miss path needs no heap.
//!
//! - [`GpAllocator`] is the Ebb, with a `Result` API that names failures
//!   ([`AllocError`]: which allocator, what size, what was free) and, in
//!   debug builds, refuses double frees and foreign pointers ([`FreeError`]).
//! - [`Global`] is the `GlobalAlloc` handle an image installs with
//!   `#[global_allocator]` (the `ebbrt` facade does so natively). It
//!   prints a failure before returning null, and stops the program on a
//!   bad free that a debug build caught.
//!
//! Threads that are not EbbRT cores (early boot, plain Linux threads of a
//! hosted process) are served too: small sizes from the slab allocator's
//! shared locked cache, frees routed to the owner by address.
//!
//! It must not allocate from the heap (it *is* the heap).
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;
use ebbrt_core::memory::GeneralPurposeAllocator;
use ebbrt_core::{EbbRef, cpu};
pub use ebbrt_page_alloc::{AllocError, AllocFailure, FreeError, FreeErrorKind};
use ebbrt_page_alloc::{order_for_layout, pages};
use ebbrt_slab_alloc::{SLAB_ALLOCATOR, SizeClass};

mod report;

pub use report::last_failure;

const NAME: &str = "general-purpose allocator";

/// Default general-purpose allocator (#[global_allocator]): slab classes up to 16 KiB, page blocks above.
///
/// A shared Ebb at the well-known id `GP_ALLOCATOR`, implementing
/// `ebbrt_core::memory::GeneralPurposeAllocator`; its instance is a
/// `static`, so its miss path needs no heap. Selected by the `ebbrt`
/// facade's default feature `gp-slab`.
#[ebb(shared, id = ids::GP_ALLOCATOR, interface = GeneralPurposeAllocator, static_rep = instance, feature = "gp-slab", default)]
pub struct GpAllocator {
    _private: (),
}

/// The general-purpose allocator type under the name every alternative
/// uses (`ebbrt::allocator::Allocator`).
pub type Allocator = GpAllocator;

static INSTANCE: GpAllocator = GpAllocator { _private: () };

fn instance() -> &'static GpAllocator {
    &INSTANCE
}

/// The general-purpose allocator Ebb of this instance.
pub static GP_ALLOCATOR: EbbRef<GpAllocator> = EbbRef::fixed();

impl GpAllocator {
    /// The allocator: through its [`EbbRef`] on an EbbRT core, directly on
    /// other threads (the instance is the same).
    #[inline(always)]
    pub fn get() -> &'static GpAllocator {
        if cpu::try_current().is_some() {
            GP_ALLOCATOR.rep()
        } else {
            &INSTANCE
        }
    }

    /// Allocates memory for `layout` (zero-size layouts get a real, unique
    /// block of the smallest class that has their alignment).
    #[inline(always)]
    pub fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        match SizeClass::for_layout(layout) {
            Some(class) => ebbrt_slab_alloc::alloc(class).map_err(|e| rename(e, layout)),
            None => self.alloc_large(layout),
        }
    }

    #[inline(never)]
    fn alloc_large(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        pages()
            .alloc_bytes(layout.size(), layout.align())
            .map(|(p, _)| p)
            .map_err(|e| rename(e, layout))
    }

    /// Frees memory allocated with `layout`. Debug builds refuse a double
    /// free, a foreign pointer or a size that does not match.
    ///
    /// # Safety
    /// `ptr` must have been allocated by this allocator with `layout` and
    /// not be used after the call (debug builds catch most violations).
    #[inline(always)]
    #[allow(unsafe_code)]
    pub unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) -> Result<(), FreeError> {
        match SizeClass::for_layout(layout) {
            // SAFETY: forwarded from the caller.
            Some(class) => unsafe { ebbrt_slab_alloc::free(ptr, class) },
            // SAFETY: forwarded from the caller.
            None => unsafe { self.free_large(ptr, layout) },
        }
        .map_err(|e| FreeError {
            allocator: NAME,
            size: layout.size(),
            ..e
        })
    }

    #[inline(never)]
    #[allow(unsafe_code)]
    // SAFETY: (contract) `ptr` is a live large block of this allocator
    // allocated with `layout` (as for `free`), unused after the call.
    unsafe fn free_large(&self, ptr: NonNull<u8>, layout: Layout) -> Result<(), FreeError> {
        let order = order_for_layout(layout.size(), layout.align()).ok_or(FreeError {
            allocator: NAME,
            addr: ptr.as_ptr() as usize,
            size: layout.size(),
            kind: FreeErrorKind::Foreign,
        })?;
        // SAFETY: forwarded from the caller; the order is the one
        // `alloc_large` used for this layout.
        unsafe { pages().free(ptr, order) }
    }

    /// Resizes a block to `new_size` bytes (same alignment). Stays in place
    /// when the new size falls in the same slab class or page order.
    ///
    /// # Safety
    /// As for [`Self::free`]; on success the old pointer must not be used.
    #[allow(unsafe_code)]
    pub unsafe fn realloc(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let new = Layout::from_size_align(new_size, layout.align()).map_err(|_| AllocError {
            allocator: NAME,
            size: new_size,
            align: layout.align(),
            reason: AllocFailure::TooLarge,
            free_bytes: 0,
            largest_free: 0,
        })?;
        if same_block(layout, new) {
            return Ok(ptr);
        }
        let p = self.alloc(new)?;
        // SAFETY: both blocks are valid for the smaller size and distinct.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), layout.size().min(new_size)) };
        // SAFETY: forwarded from the caller.
        if let Err(e) = unsafe { self.free(ptr, layout) } {
            ebbrt_page_alloc::bad_free(&e);
        }
        Ok(p)
    }
}

/// Whether two layouts of one alignment are served by the same block size.
fn same_block(a: Layout, b: Layout) -> bool {
    match (SizeClass::for_layout(a), SizeClass::for_layout(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => {
            order_for_layout(a.size(), a.align()) == order_for_layout(b.size(), b.align())
        }
        _ => false,
    }
}

fn rename(e: AllocError, layout: Layout) -> AllocError {
    AllocError {
        allocator: NAME,
        size: layout.size(),
        align: layout.align(),
        ..e
    }
}

/// The `GlobalAlloc` handle of the general-purpose allocator Ebb:
///
/// ```ignore
/// #[global_allocator]
/// static GLOBAL: ebbrt_gp_alloc::Global = ebbrt_gp_alloc::Global;
/// ```
pub struct Global;

// SAFETY: every method forwards to the GP allocator Ebb, which returns
// blocks of at least `layout.size()` bytes aligned to `layout.align()` that
// no one else uses until freed, or reports a failure and returns null.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Global {
    /// The fast path: a small size on a core whose slab representative is
    /// in its translation table (so the thread is an EbbRT core), with an
    /// object ready in that representative's cache (no refill, no miss).
    /// Everything else goes out of line.
    #[inline(always)]
    // SAFETY: `GlobalAlloc::alloc`'s contract (a non-zero size) is all the
    // slab and page paths need; failure returns null.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(class) = SizeClass::for_layout(layout)
            && let Some(slab) = SLAB_ALLOCATOR.cached_rep()
            && let Some(p) = slab.alloc_fast(class)
        {
            return p.as_ptr();
        }
        alloc_slow(layout)
    }

    /// The fast path: a small size freed on a core (release builds; debug
    /// builds always take the checked path).
    #[inline(always)]
    // SAFETY: the caller's `GlobalAlloc::dealloc` contract (a live block of
    // `layout` from this allocator) is what the free paths require.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !cfg!(debug_assertions)
            && let Some(class) = SizeClass::for_layout(layout)
            && let Some(slab) = SLAB_ALLOCATOR.cached_rep()
        {
            // SAFETY: `ptr` is a live block of `layout` from this allocator
            // (caller's contract), so an object of `class`; never null.
            unsafe { slab.free_unchecked(NonNull::new_unchecked(ptr), class) };
            return;
        }
        // SAFETY: forwarded.
        unsafe { dealloc_slow(ptr, layout) }
    }

    // SAFETY: the caller's `GlobalAlloc::realloc` contract is passed on to
    // `GpAllocator::realloc`, which requires the same.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(p) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        // SAFETY: forwarded from the caller.
        match unsafe { GpAllocator::get().realloc(p, layout, new_size) } {
            Ok(p) => p.as_ptr(),
            Err(e) => failed(&e),
        }
    }
}

#[inline(never)]
fn alloc_slow(layout: Layout) -> *mut u8 {
    match GpAllocator::get().alloc(layout) {
        Ok(p) => p.as_ptr(),
        Err(e) => failed(&e),
    }
}

/// # Safety
/// As for `GlobalAlloc::dealloc`.
#[inline(never)]
#[allow(unsafe_code)]
unsafe fn dealloc_slow(ptr: *mut u8, layout: Layout) {
    let Some(p) = NonNull::new(ptr) else { return };
    // SAFETY: the caller allocated `ptr` here with `layout`.
    if let Err(e) = unsafe { GpAllocator::get().free(p, layout) } {
        ebbrt_page_alloc::bad_free(&e);
    }
}

#[cold]
#[inline(never)]
fn failed(e: &AllocError) -> *mut u8 {
    report::alloc_failure(e);
    ptr::null_mut()
}

impl GeneralPurposeAllocator for GpAllocator {
    #[inline]
    fn allocate(&self, layout: Layout) -> Option<NonNull<u8>> {
        self.alloc(layout).ok()
    }

    #[inline]
    #[allow(unsafe_code)]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller gives back a block of ours with its layout.
        if let Err(e) = unsafe { self.free(ptr, layout) } {
            ebbrt_page_alloc::bad_free(&e);
        }
    }
}

#[cfg(test)]
mod tests;
