//! # ebbrt-talc-alloc
//!
//! An alternative general-purpose allocator Ebb: the `talc` crate (a
//! dlmalloc-style allocator with binning) behind one spin lock, growing by
//! claiming blocks of the page allocator Ebb. It sits at the same
//! well-known id as the default, [`ids::GP_ALLOCATOR`],
//! and an image links exactly one of the two: the `ebbrt` facade's `talc`
//! feature selects this one (and installs [`Global`] as the
//! `#[global_allocator]` natively), without it the default slab-based
//! allocator is used.
//!
//! What it trades: one lock for every allocation (no per-core caches), in
//! exchange for tight packing of odd sizes and no memory held per core.
//!
//! Failures are named ([`AllocError`]); debug builds keep a bitmap of
//! allocations and refuse double frees and foreign pointers ([`FreeError`]).
//!
//! It must not allocate from the heap (it is the heap).
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
use ebbrt_page_alloc::{MAX_ORDER, bad_free, order_bytes, pages, report_alloc_failure};

mod heaps;

use heaps::PageSource;

const NAME: &str = "talc allocator";

/// Alternative general-purpose allocator: talc behind one lock, growing from the page allocator.
///
/// The talc crate behind one spin lock, growing by claiming page-allocator
/// blocks: a shared Ebb at the well-known id `GP_ALLOCATOR`, implementing
/// `ebbrt_core::memory::GeneralPurposeAllocator`, whose instance is a
/// `static`. Selected by the `ebbrt` facade's `talc` feature instead of the
/// default slab-based `GpAllocator`.
#[ebb(shared, id = ids::GP_ALLOCATOR, interface = GeneralPurposeAllocator, static_rep = instance, feature = "talc")]
pub struct TalcAllocator {
    talc: talc::TalcLock<spin::Mutex<()>, PageSource>,
}

/// The general-purpose allocator type under the name every alternative
/// uses (`ebbrt::allocator::Allocator`).
pub type Allocator = TalcAllocator;

static INSTANCE: TalcAllocator = TalcAllocator {
    talc: talc::TalcLock::new(PageSource::new()),
};

/// The talc allocator Ebb of this instance (at the general-purpose
/// allocator's well-known id).
pub static TALC_ALLOCATOR: EbbRef<TalcAllocator> = EbbRef::fixed();

impl TalcAllocator {
    /// The allocator: through its [`EbbRef`] on an EbbRT core, directly on
    /// other threads (the instance is the same).
    #[inline]
    pub fn get() -> &'static TalcAllocator {
        if cpu::try_current().is_some() {
            TALC_ALLOCATOR.rep()
        } else {
            &INSTANCE
        }
    }

    /// Allocates memory for `layout` (zero-size layouts get a real block).
    #[allow(unsafe_code)]
    pub fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let layout = nonzero(layout);
        let mut t = self.talc.lock();
        // SAFETY: `layout` has a non-zero size.
        match unsafe { t.allocate(layout) } {
            Some(p) => {
                #[cfg(debug_assertions)]
                t.source.mark(heaps::addr(p), true);
                Ok(p)
            }
            None => {
                let refusal = t.source.last_refusal.take();
                let reason = if layout.align() > order_bytes(MAX_ORDER) {
                    AllocFailure::AlignTooLarge
                } else if layout.size() > order_bytes(MAX_ORDER) {
                    AllocFailure::TooLarge
                } else {
                    AllocFailure::OutOfMemory
                };
                drop(t);
                let s = pages().stats();
                Err(AllocError {
                    allocator: NAME,
                    size: layout.size(),
                    align: layout.align(),
                    reason,
                    free_bytes: refusal.map_or(s.free_bytes, |r| r.free_bytes),
                    largest_free: refusal.map_or(s.largest_free, |r| r.largest_free),
                })
            }
        }
    }

    /// Frees memory allocated with `layout`. Debug builds refuse a double
    /// free or a foreign pointer; release builds refuse a pointer outside
    /// every heap.
    ///
    /// # Safety
    /// `ptr` must have been allocated by this allocator with `layout` and
    /// not be used after the call.
    #[allow(unsafe_code)]
    pub unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) -> Result<(), FreeError> {
        let layout = nonzero(layout);
        let err = |kind| FreeError {
            allocator: NAME,
            addr: heaps::addr(ptr),
            size: layout.size(),
            kind,
        };
        let mut t = self.talc.lock();
        if !t.source.contains(heaps::addr(ptr)) {
            return Err(err(FreeErrorKind::Foreign));
        }
        #[cfg(debug_assertions)]
        if t.source.mark(heaps::addr(ptr), false) == Some(false) {
            return Err(err(FreeErrorKind::DoubleFree));
        }
        // SAFETY: forwarded from the caller.
        unsafe { t.deallocate(ptr.as_ptr(), layout) };
        Ok(())
    }

    /// Resizes a block to `new_size` bytes (same alignment), in place when
    /// talc can.
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
        if layout.size() != 0 && new_size != 0 {
            let mut t = self.talc.lock();
            // SAFETY: `ptr` is a live block of `layout` (caller's contract).
            if unsafe { t.try_realloc_in_place(ptr.as_ptr(), layout, new_size) } {
                return Ok(ptr);
            }
        }
        let p = self.alloc(new)?;
        // SAFETY: both blocks are valid for the smaller size and distinct.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), layout.size().min(new_size)) };
        // SAFETY: forwarded from the caller.
        if let Err(e) = unsafe { self.free(ptr, layout) } {
            bad_free(&e);
        }
        Ok(p)
    }

    /// Bytes this allocator has claimed from the page allocator.
    pub fn claimed_bytes(&self) -> usize {
        self.talc.lock().source.claimed_bytes()
    }
}

fn nonzero(l: Layout) -> Layout {
    if l.size() == 0 {
        Layout::from_size_align(1, l.align()).unwrap_or(l)
    } else {
        l
    }
}

/// The `GlobalAlloc` handle of the talc allocator Ebb.
pub struct Global;

// SAFETY: forwards to the talc allocator Ebb, which returns blocks of at
// least `layout.size()` bytes aligned to `layout.align()`, or null after
// reporting a failure.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Global {
    // SAFETY: `GlobalAlloc::alloc`'s contract (a non-zero size) is all talc
    // needs; failure is reported and returns null.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match TalcAllocator::get().alloc(layout) {
            Ok(p) => p.as_ptr(),
            Err(e) => {
                report_alloc_failure(&e);
                ptr::null_mut()
            }
        }
    }

    // SAFETY: the caller's `GlobalAlloc::dealloc` contract (a live block of
    // `layout` from this allocator) is what `free` requires.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = NonNull::new(ptr) else { return };
        // SAFETY: forwarded from the caller.
        if let Err(e) = unsafe { TalcAllocator::get().free(p, layout) } {
            bad_free(&e);
        }
    }

    // SAFETY: the caller's `GlobalAlloc::realloc` contract is passed on.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(p) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        // SAFETY: forwarded from the caller.
        match unsafe { TalcAllocator::get().realloc(p, layout, new_size) } {
            Ok(p) => p.as_ptr(),
            Err(e) => {
                report_alloc_failure(&e);
                ptr::null_mut()
            }
        }
    }
}

fn instance() -> &'static TalcAllocator {
    &INSTANCE
}

impl GeneralPurposeAllocator for TalcAllocator {
    fn allocate(&self, layout: Layout) -> Option<NonNull<u8>> {
        self.alloc(layout).ok()
    }

    #[allow(unsafe_code)]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller gives back a block of ours with its layout.
        if let Err(e) = unsafe { self.free(ptr, layout) } {
            bad_free(&e);
        }
    }
}

#[cfg(test)]
mod tests;
