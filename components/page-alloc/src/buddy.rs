//! The binary buddy allocator: the data structure behind the page allocator
//! Ebb, with no locking of its own.
//!
//! Memory is given to it as regions. Each region keeps one metadata byte per
//! page, carved from the region's own first pages, that says whether the
//! page heads a free block (and of which order), heads an allocated block,
//! or neither. Free blocks of each order form doubly linked lists threaded
//! through the free memory itself, so a block's buddy is unlinked in O(1)
//! when the two coalesce.
//!
//! Blocks are aligned to their size in absolute addresses (a block of order
//! `k` starts at a multiple of `PAGE_SIZE << k`), so any alignment up to the
//! block size comes for free.
#![allow(unsafe_code)]

use core::ptr::{self, NonNull};

use crate::error::{FreeError, FreeErrorKind};

/// The page size.
pub const PAGE_SIZE: usize = 4096;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;
/// The largest order: blocks of `PAGE_SIZE << MAX_ORDER` = 1 GiB.
pub const MAX_ORDER: usize = 18;
/// The number of orders, `0..=MAX_ORDER`.
pub const ORDERS: usize = MAX_ORDER + 1;
/// The most regions one buddy allocator manages.
pub const MAX_REGIONS: usize = 64;

/// Bytes in a block of `order`.
#[inline]
pub const fn order_bytes(order: usize) -> usize {
    PAGE_SIZE << order
}

/// The smallest order whose blocks hold `bytes` (`None` above 1 GiB).
#[inline]
pub const fn order_for(bytes: usize) -> Option<usize> {
    if bytes <= PAGE_SIZE {
        return Some(0);
    }
    let pages = (bytes + PAGE_SIZE - 1) >> PAGE_SHIFT;
    let order = (usize::BITS - (pages - 1).leading_zeros()) as usize;
    if order > MAX_ORDER { None } else { Some(order) }
}

/// The order of the block that serves `size` bytes aligned to `align`
/// (blocks are aligned to their size, so the larger of the two decides;
/// `None` above 1 GiB). What [`crate::PageAllocator::alloc_bytes`]
/// allocates, and so the order to free such a block with.
#[inline]
pub const fn order_for_layout(size: usize, align: usize) -> Option<usize> {
    order_for(if size > align { size } else { align })
}

const META_NONE: u8 = 0;
const META_FREE: u8 = 0x40;
const META_USED: u8 = 0x80;
const META_ORDER: u8 = 0x3f;

/// Why a region was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// Too small to hold its metadata and one page.
    TooSmall,
    /// Overlaps a region already added.
    Overlap,
    /// [`MAX_REGIONS`] regions are already managed.
    TooMany,
}

impl core::fmt::Display for RegionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RegionError::TooSmall => "region too small for its metadata and one page",
            RegionError::Overlap => "region overlaps one already managed",
            RegionError::TooMany => "too many memory regions",
        })
    }
}

/// A free block's links, stored in its first bytes.
struct Node {
    next: *mut Node,
    prev: *mut Node,
}

#[derive(Clone, Copy)]
struct Region {
    /// First page of allocatable memory (after the metadata).
    start: usize,
    /// End (exclusive) of allocatable memory.
    end: usize,
    /// One byte per page of `start..end`.
    meta: *mut u8,
}

impl Region {
    const EMPTY: Region = Region {
        start: 0,
        end: 0,
        meta: ptr::null_mut(),
    };

    fn contains(&self, addr: usize) -> bool {
        addr >= self.start && addr < self.end
    }

    /// The metadata byte of the page at `addr` (inside the region).
    fn meta(&self, addr: usize) -> *mut u8 {
        debug_assert!(self.contains(addr));
        // SAFETY: pointer arithmetic only: `addr` is in the region, so the
        // index is below the number of metadata bytes the region has.
        unsafe { self.meta.add((addr - self.start) >> PAGE_SHIFT) }
    }

    fn get(&self, addr: usize) -> u8 {
        // SAFETY: `meta` covers every page of the region and is owned by it.
        unsafe { self.meta(addr).read() }
    }

    fn set(&self, addr: usize, v: u8) {
        // SAFETY: as in `get`; the caller holds `&mut Buddy`.
        unsafe { self.meta(addr).write(v) }
    }
}

/// A binary buddy allocator over a set of regions.
pub struct Buddy {
    heads: [*mut Node; ORDERS],
    counts: [usize; ORDERS],
    regions: [Region; MAX_REGIONS],
    nregions: usize,
    free_pages: usize,
    total_pages: usize,
}

// SAFETY: the raw pointers point into regions the buddy owns (given to it by
// `add_region`); nothing else refers to them, so the whole structure may move
// between threads (it is used under a lock).
unsafe impl Send for Buddy {}

impl Default for Buddy {
    fn default() -> Self {
        Self::new()
    }
}

impl Buddy {
    /// An allocator with no memory.
    pub const fn new() -> Self {
        Buddy {
            heads: [ptr::null_mut(); ORDERS],
            counts: [0; ORDERS],
            regions: [Region::EMPTY; MAX_REGIONS],
            nregions: 0,
            free_pages: 0,
            total_pages: 0,
        }
    }

    /// Gives `start..end` to the allocator. The ends are rounded inwards to
    /// pages; the first pages hold the region's metadata. Returns the range
    /// of allocatable memory.
    ///
    /// # Safety
    /// The memory must be valid for reads and writes, unused by anything
    /// else, and stay so for as long as the allocator lives.
    pub unsafe fn add_region(
        &mut self,
        start: usize,
        end: usize,
    ) -> Result<(usize, usize), RegionError> {
        // Address 0 can never be a block: it would be a null pointer.
        let start = start.max(PAGE_SIZE).next_multiple_of(PAGE_SIZE);
        let end = end & !(PAGE_SIZE - 1);
        if end <= start {
            return Err(RegionError::TooSmall);
        }
        let pages = (end - start) >> PAGE_SHIFT;
        let meta_pages = pages.div_ceil(PAGE_SIZE);
        if pages <= meta_pages {
            return Err(RegionError::TooSmall);
        }
        if self.nregions == MAX_REGIONS {
            return Err(RegionError::TooMany);
        }
        if self.regions[..self.nregions]
            .iter()
            .any(|r| start < r.end && (r.meta as usize) < end)
        {
            return Err(RegionError::Overlap);
        }
        let data_start = start + meta_pages * PAGE_SIZE;
        let region = Region {
            start: data_start,
            end,
            meta: start as *mut u8,
        };
        // SAFETY: the caller gave us `start..end`; the metadata covers one
        // byte for each of the region's pages and fits in `meta_pages`.
        unsafe { ptr::write_bytes(region.meta, META_NONE, (end - data_start) >> PAGE_SHIFT) };
        // Keep regions sorted by address.
        let pos = self.regions[..self.nregions]
            .iter()
            .position(|r| r.start > data_start)
            .unwrap_or(self.nregions);
        self.regions.copy_within(pos..self.nregions, pos + 1);
        self.regions[pos] = region;
        self.nregions += 1;

        let mut addr = data_start;
        while addr < end {
            let mut order = ((addr >> PAGE_SHIFT).trailing_zeros() as usize).min(MAX_ORDER);
            while addr + order_bytes(order) > end {
                order -= 1;
            }
            self.push(&region, addr, order);
            addr += order_bytes(order);
        }
        let data_pages = (end - data_start) >> PAGE_SHIFT;
        self.total_pages += data_pages;
        self.free_pages += data_pages;
        Ok((data_start, end))
    }

    /// Allocates a block of `order` (aligned to its size).
    pub fn alloc(&mut self, order: usize) -> Option<NonNull<u8>> {
        if order > MAX_ORDER {
            return None;
        }
        let k = (order..ORDERS).find(|&k| !self.heads[k].is_null())?;
        let block = self.heads[k] as usize;
        let region = *self
            .region_of(block)
            .expect("free block outside every region");
        self.unlink(&region, block, k);
        let mut k = k;
        while k > order {
            k -= 1;
            self.push(&region, block + order_bytes(k), k);
        }
        region.set(block, META_USED | order as u8);
        self.free_pages -= 1 << order;
        NonNull::new(block as *mut u8)
    }

    /// Frees a block allocated with `order`, coalescing it with its free
    /// buddies. A double free, a foreign address or a wrong order is
    /// refused without touching anything.
    ///
    /// # Safety
    /// On success the block becomes free memory again: the caller must no
    /// longer use it.
    pub unsafe fn free(&mut self, block: NonNull<u8>, order: usize) -> Result<(), FreeError> {
        let addr = block.as_ptr() as usize;
        let err = |kind| FreeError {
            allocator: "page allocator",
            addr,
            size: if order <= MAX_ORDER {
                order_bytes(order)
            } else {
                usize::MAX
            },
            kind,
        };
        let region = *self.region_of(addr).ok_or(err(FreeErrorKind::Foreign))?;
        if order > MAX_ORDER
            || addr & (order_bytes(order) - 1) != 0
            || addr + order_bytes(order) > region.end
        {
            return Err(err(FreeErrorKind::WrongSize));
        }
        match region.get(addr) {
            m if m == META_USED | order as u8 => {}
            m if m & META_USED != 0 => return Err(err(FreeErrorKind::WrongSize)),
            m if m & META_FREE != 0 => return Err(err(FreeErrorKind::DoubleFree)),
            _ => return Err(err(self.classify_inside(&region, addr))),
        }
        region.set(addr, META_NONE);
        self.free_pages += 1 << order;
        let (mut addr, mut order) = (addr, order);
        while order < MAX_ORDER {
            let buddy = addr ^ order_bytes(order);
            if !region.contains(buddy) || region.get(buddy) != META_FREE | order as u8 {
                break;
            }
            self.unlink(&region, buddy, order);
            addr = addr.min(buddy);
            order += 1;
        }
        self.push(&region, addr, order);
        Ok(())
    }

    /// A page inside a region whose metadata says neither "free head" nor
    /// "allocated head": inside a free block (a double free of a block that
    /// has since coalesced) or inside an allocated one.
    fn classify_inside(&self, region: &Region, addr: usize) -> FreeErrorKind {
        for order in 1..ORDERS {
            let head = addr & !(order_bytes(order) - 1);
            if head < region.start {
                break;
            }
            let m = region.get(head);
            if m & META_FREE != 0 && (m & META_ORDER) as usize >= order {
                return FreeErrorKind::DoubleFree;
            }
            if m & META_USED != 0 && (m & META_ORDER) as usize >= order {
                return FreeErrorKind::NotAllocated;
            }
        }
        FreeErrorKind::NotAllocated
    }

    /// Whether `addr` is in memory this allocator manages.
    pub fn contains(&self, addr: usize) -> bool {
        self.region_of(addr).is_some()
    }

    fn region_of(&self, addr: usize) -> Option<&Region> {
        let regions = &self.regions[..self.nregions];
        let i = regions.partition_point(|r| r.start <= addr);
        regions[..i].last().filter(|r| r.contains(addr))
    }

    /// Free bytes.
    pub fn free_bytes(&self) -> usize {
        self.free_pages << PAGE_SHIFT
    }

    /// Bytes managed (free or allocated), metadata excluded.
    pub fn total_bytes(&self) -> usize {
        self.total_pages << PAGE_SHIFT
    }

    /// The order of the largest free block.
    pub fn largest_free_order(&self) -> Option<usize> {
        (0..ORDERS).rev().find(|&k| !self.heads[k].is_null())
    }

    /// Number of free blocks of each order.
    pub fn free_counts(&self) -> [usize; ORDERS] {
        self.counts
    }

    fn push(&mut self, region: &Region, addr: usize, order: usize) {
        let node = addr as *mut Node;
        let head = self.heads[order];
        // SAFETY: `addr` is a free block of at least one page in `region`,
        // owned by the allocator; `head`, if not null, is another such block.
        unsafe {
            node.write(Node {
                next: head,
                prev: ptr::null_mut(),
            });
            if !head.is_null() {
                (*head).prev = node;
            }
        }
        self.heads[order] = node;
        self.counts[order] += 1;
        region.set(addr, META_FREE | order as u8);
    }

    fn unlink(&mut self, region: &Region, addr: usize, order: usize) {
        let node = addr as *mut Node;
        // SAFETY: `addr` heads a free block of `order` (its metadata says so),
        // so it holds a valid `Node` linked into `heads[order]`.
        unsafe {
            let Node { next, prev } = node.read();
            if prev.is_null() {
                self.heads[order] = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
        }
        self.counts[order] -= 1;
        region.set(addr, META_NONE);
    }

    /// Checks every invariant: each listed block is in a region, aligned to
    /// its size, marked free in the metadata, counted, and no two listed
    /// blocks overlap; the free page count matches the lists. Tests use it.
    pub fn check(&self) -> Result<(), &'static str> {
        let mut pages = 0usize;
        for order in 0..ORDERS {
            let mut n = 0;
            let mut prev: *mut Node = ptr::null_mut();
            let mut p = self.heads[order];
            while !p.is_null() {
                let addr = p as usize;
                let region = self
                    .region_of(addr)
                    .ok_or("free block outside every region")?;
                if addr & (order_bytes(order) - 1) != 0 {
                    return Err("free block not aligned to its size");
                }
                if addr + order_bytes(order) > region.end {
                    return Err("free block runs past its region");
                }
                if region.get(addr) != META_FREE | order as u8 {
                    return Err("free block not marked free in the metadata");
                }
                // SAFETY: listed blocks hold valid nodes (invariant under test:
                // every check above passed for this node).
                let node = unsafe { p.read() };
                if node.prev != prev {
                    return Err("broken back link");
                }
                // A free block and its buddy of the same order are never both
                // free: they would have coalesced.
                if order < MAX_ORDER {
                    let buddy = addr ^ order_bytes(order);
                    if region.contains(buddy) && region.get(buddy) == META_FREE | order as u8 {
                        return Err("two free buddies did not coalesce");
                    }
                }
                pages += 1 << order;
                n += 1;
                prev = p;
                p = node.next;
            }
            if n != self.counts[order] {
                return Err("free count does not match the list");
            }
        }
        if pages != self.free_pages {
            return Err("free page total does not match the lists");
        }
        // No overlap: each page of a region is covered by at most one block
        // head at or below it whose block reaches it. Walk the metadata.
        for r in &self.regions[..self.nregions] {
            let mut covered_until = r.start;
            let mut addr = r.start;
            while addr < r.end {
                let m = r.get(addr);
                if m & (META_FREE | META_USED) != 0 {
                    if addr < covered_until {
                        return Err("two blocks overlap");
                    }
                    covered_until = addr + order_bytes((m & META_ORDER) as usize);
                }
                addr += PAGE_SIZE;
            }
        }
        Ok(())
    }
}
