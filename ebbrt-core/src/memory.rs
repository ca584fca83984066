//! The general-purpose allocator's contract, and a `GlobalAlloc` over any
//! Ebb that meets it.
//!
//! The general-purpose allocator is a swappable service: an Ebb at the
//! well-known id [`ids::GP_ALLOCATOR`] implementing
//! [`GeneralPurposeAllocator`]. The `ebbrt` facade links the slab-based
//! default (`gp-slab`) or talc (`talc`) and natively installs that crate's
//! own `Global` (monomorphic fast paths) as the `#[global_allocator]`. An
//! application that turns both off declares its own allocator Ebb with
//! `#[ebb(shared, id = ids::GP_ALLOCATOR, interface = GeneralPurposeAllocator,
//! static_rep = ...)]` and installs it with
//! `#[global_allocator] static A: EbbGlobal<MyAllocator> = EbbGlobal::new();`.
//!
//! # The contract an implementation meets
//! - Its miss path never allocates (it *is* the heap): declare it with
//!   `static_rep`, its state in static storage.
//! - It serves any thread: EbbRT cores, and natively early boot; hosted,
//!   plain Linux threads that are no core.
//! - Exhaustion is `None`, never a panic or an abort: `GlobalAlloc` turns
//!   it into a null pointer, which Rust reports as an allocation failure.
//! - A block is aligned to `layout.align()` and at least `layout.size()`
//!   long; zero-size layouts get a real, unique block.

use core::alloc::{GlobalAlloc, Layout};
use core::marker::PhantomData;
use core::ptr::{NonNull, null_mut};

use crate::ebb::ids;
use crate::{Ebb, EbbRef, StaticEbb, cpu};

/// The general-purpose allocator's contract (see the
/// [module docs](self) for the rules an implementation keeps).
#[crate::interface(id = ids::GP_ALLOCATOR)]
pub trait GeneralPurposeAllocator: Sync {
    /// A block for `layout`, or `None` when memory is exhausted.
    fn allocate(&self, layout: Layout) -> Option<NonNull<u8>>;

    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` came from [`Self::allocate`] of this allocator with `layout`,
    /// was not freed since, and is not used afterwards.
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout);
}

/// A `GlobalAlloc` over the general-purpose allocator Ebb `T`: each call
/// goes to `T`'s representative on the calling core (its `EbbRef` on an
/// EbbRT core, its miss path — static storage — on any other thread).
pub struct EbbGlobal<T>(PhantomData<fn() -> T>);

impl<T> EbbGlobal<T> {
    /// The handle to install with `#[global_allocator]`.
    pub const fn new() -> Self {
        EbbGlobal(PhantomData)
    }
}

impl<T> Default for EbbGlobal<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: GeneralPurposeAllocator + StaticEbb> EbbGlobal<T> {
    #[inline(always)]
    fn rep() -> &'static T {
        if cpu::try_current().is_some() {
            EbbRef::<T>::fixed().get()
        } else {
            <T as Ebb>::miss(T::ID)
        }
    }
}

// SAFETY: every block comes from `T::allocate`, which the
// `GeneralPurposeAllocator` contract makes large and aligned enough for its
// layout and unique; blocks go back to the same allocator with their layout.
unsafe impl<T: GeneralPurposeAllocator + StaticEbb> GlobalAlloc for EbbGlobal<T> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::rep()
            .allocate(layout)
            .map_or(null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `GlobalAlloc::dealloc`'s caller gives back a block of
            // ours with its layout.
            unsafe { Self::rep().deallocate(p, layout) }
        }
    }
}
