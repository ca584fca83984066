//! The heaps talc allocates from: blocks of the page allocator claimed as
//! talc needs more memory (a talc `Source`), and, in debug builds, an
//! allocation bitmap per heap that catches double frees and foreign
//! pointers.
#![allow(unsafe_code)]

use core::alloc::Layout;
use core::ptr::NonNull;

use ebbrt_page_alloc::{AllocError, MAX_ORDER, order_bytes, order_for, pages};
use talc::base::Talc;
use talc::base::binning::Binning;

/// The most heaps (page-allocator blocks) one allocator grows to.
pub const MAX_HEAPS: usize = 64;
/// The smallest block claimed at once: 4 MiB.
const MIN_HEAP_ORDER: usize = 10;
/// Debug bitmaps track allocations at this granularity (talc's chunk unit
/// is at least this, so two live allocations never share a granule).
#[cfg(debug_assertions)]
const GRANULE: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Heap {
    base: usize,
    end: usize,
    #[cfg(debug_assertions)]
    bitmap: *mut u64,
}

/// A talc `Source` that claims blocks of the page allocator.
#[derive(Debug)]
pub struct PageSource {
    heaps: [Option<Heap>; MAX_HEAPS],
    count: usize,
    /// The page allocator's refusal, if the last growth failed.
    pub(crate) last_refusal: Option<AllocError>,
}

// SAFETY: the raw bitmap pointers refer to page-allocator blocks owned by
// this source, used only under the talc lock.
unsafe impl Send for PageSource {}

impl PageSource {
    pub(crate) const fn new() -> Self {
        PageSource {
            heaps: [None; MAX_HEAPS],
            count: 0,
            last_refusal: None,
        }
    }

    fn find(&self, addr: usize) -> Option<&Heap> {
        self.heaps[..self.count]
            .iter()
            .flatten()
            .find(|h| h.base <= addr && addr < h.end)
    }

    /// Whether `addr` lies in one of the heaps.
    pub(crate) fn contains(&self, addr: usize) -> bool {
        self.find(addr).is_some()
    }

    /// Bytes claimed from the page allocator.
    pub(crate) fn claimed_bytes(&self) -> usize {
        self.heaps[..self.count]
            .iter()
            .flatten()
            .map(|h| h.end - h.base)
            .sum()
    }

    /// Debug builds: marks `addr` allocated; false if it already was.
    #[cfg(debug_assertions)]
    pub(crate) fn mark(&self, addr: usize, allocated: bool) -> Option<bool> {
        let h = self.find(addr)?;
        let i = (addr - h.base) / GRANULE;
        // SAFETY: the bitmap covers every granule of its heap and belongs to
        // this source; we are under the talc lock.
        let word = unsafe { &mut *h.bitmap.add(i / 64) };
        let bit = 1u64 << (i % 64);
        let was = *word & bit != 0;
        if allocated {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        Some(was != allocated)
    }
}

// SAFETY: `acquire` only claims fresh page-allocator blocks that nothing
// else uses, and never touches the `TalcLock` that wraps this `Talc`.
unsafe impl talc::source::Source for PageSource {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let src = &mut talc.source;
        if src.count == MAX_HEAPS {
            return Err(());
        }
        // Grow geometrically (4 MiB, doubling every 8 heaps) so 64 heaps
        // cover all of memory, and always enough for this request.
        let want = layout.size() + layout.align() + 4096;
        let order = order_for(want)
            .unwrap_or(MAX_ORDER)
            .max(MIN_HEAP_ORDER + src.count / 8)
            .min(MAX_ORDER);
        let block = match pages().alloc(order) {
            Ok(b) => b,
            Err(e) => {
                src.last_refusal = Some(e);
                return Err(());
            }
        };
        let (base, end) = (
            block.as_ptr() as usize,
            block.as_ptr() as usize + order_bytes(order),
        );
        #[cfg(debug_assertions)]
        let bitmap = {
            let words = (end - base) / GRANULE / 64;
            match pages().alloc_bytes(words * 8, 4096) {
                Ok((b, _)) => {
                    // SAFETY: a fresh block of at least `words` words.
                    unsafe { core::ptr::write_bytes(b.as_ptr(), 0, words * 8) };
                    b.as_ptr() as *mut u64
                }
                Err(e) => {
                    // SAFETY: `block` was allocated just above with `order`.
                    let _ = unsafe { pages().free(block, order) };
                    src.last_refusal = Some(e);
                    return Err(());
                }
            }
        };
        let i = src.count;
        src.heaps[i] = Some(Heap {
            base,
            end,
            #[cfg(debug_assertions)]
            bitmap,
        });
        src.count += 1;
        // SAFETY: the block is ours alone from now on (it is never given
        // back), mapped and writable.
        match unsafe { talc.claim(base as *mut u8, end - base) } {
            Some(_) => Ok(()),
            None => Err(()),
        }
    }
}

/// The address of a pointer, for errors.
pub(crate) fn addr(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize
}
