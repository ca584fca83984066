//! The `virtio-drivers` HAL over the native kernel's identity map: a
//! physical address is its virtual address, for heap memory and for the
//! device BARs below the mapped limit. Stacks are mapped elsewhere (with
//! guard pages): a buffer the device reads or writes must never live on
//! the stack.

use core::alloc::Layout;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// The end of the identity map (bytes from 0).
pub(crate) fn identity_mapped() -> u64 {
    ebbrt_core::native::paging::mapped_bytes()
}

/// DMA memory from the global allocator, page aligned; addresses are
/// identical physical and virtual.
pub(crate) struct IdentityHal;

fn pages_layout(pages: usize) -> Layout {
    // Cannot fail: a page-aligned size of a few pages.
    Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE).expect("DMA layout")
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory that stays
// allocated until `dma_dealloc`; physical and virtual addresses coincide in
// the identity map, so `share` and `mmio_phys_to_virt` are the identity.
unsafe impl Hal for IdentityHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc::alloc_zeroed(pages_layout(pages)) };
        let p = NonNull::new(p)
            .unwrap_or_else(|| alloc::alloc::handle_alloc_error(pages_layout(pages)));
        (p.as_ptr() as PhysAddr, p)
    }

    // SAFETY: (contract) virtio-drivers passes back what `dma_alloc` returned.
    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller passes memory `dma_alloc` returned for `pages`.
        unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), pages_layout(pages)) };
        0
    }

    // SAFETY: all physical memory, MMIO included, is identity mapped; the
    // caller uses the region only within the BAR it names.
    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("a BAR at physical address 0")
    }

    // SAFETY: heap buffers are identity mapped and coherent (no IOMMU, no
    // bounce buffers): the device reads and writes them where they are.
    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    // SAFETY: nothing was copied or mapped by `share`, so nothing to undo.
    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
