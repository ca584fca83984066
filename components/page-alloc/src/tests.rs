#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, dealloc};
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// A test region from the system allocator, freed on drop.
struct Mem {
    base: *mut u8,
    layout: Layout,
}

impl Mem {
    fn new(size: usize) -> Mem {
        let layout = Layout::from_size_align(size, 1 << 21).unwrap();
        // SAFETY: non-zero size.
        let base = unsafe { alloc(layout) };
        assert!(!base.is_null());
        Mem { base, layout }
    }
    fn range(&self, skip_front: usize, skip_back: usize) -> (usize, usize) {
        let b = self.base as usize;
        (b + skip_front, b + self.layout.size() - skip_back)
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.base, self.layout) }
    }
}

fn stamp(p: NonNull<u8>, order: usize, v: u64) {
    let n = order_bytes(order);
    // SAFETY: the block is ours and at least one page long.
    unsafe {
        (p.as_ptr() as *mut u64).write(v);
        (p.as_ptr().add(n - 8) as *mut u64).write(v);
    }
}

fn stamp_ok(p: NonNull<u8>, order: usize, v: u64) -> bool {
    let n = order_bytes(order);
    // SAFETY: as in `stamp`.
    unsafe {
        (p.as_ptr() as *const u64).read() == v && (p.as_ptr().add(n - 8) as *const u64).read() == v
    }
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize),
    Free(usize),
}

/// Sizes cut down under Miri, which interprets every step (the same
/// properties, on fewer and smaller cases).
const MAX_OPS: usize = if cfg!(miri) { 40 } else { 300 };
const CASES: u32 = if cfg!(miri) { 3 } else { 64 };
const MIB: usize = if cfg!(miri) { 1 << 18 } else { 1 << 20 };

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..9).prop_map(Op::Alloc),
            any::<usize>().prop_map(Op::Free)
        ],
        1..MAX_OPS,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Live blocks never overlap, are aligned to their size and lie in the
    /// region; the invariants hold after every step; freeing everything
    /// coalesces back to exactly the initial free lists.
    #[test]
    fn buddy_invariants(front in 0usize..40, back in 0usize..40, ops in ops()) {
        let mem = Mem::new(8 * MIB);
        let (start, end) = mem.range(front * PAGE_SIZE, back * PAGE_SIZE);
        let mut b = Buddy::new();
        // SAFETY: `mem` is ours for the whole test.
        let (data_start, data_end) = unsafe { b.add_region(start, end) }.unwrap();
        let initial = b.free_counts();
        let total = b.free_bytes();
        prop_assert_eq!(total, b.total_bytes());
        b.check().unwrap();

        let mut live: Vec<(NonNull<u8>, usize, u64)> = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Alloc(order) => {
                    if let Some(p) = b.alloc(order) {
                        let a = p.as_ptr() as usize;
                        prop_assert_eq!(a % order_bytes(order), 0, "aligned to its size");
                        prop_assert!(a >= data_start && a + order_bytes(order) <= data_end);
                        for (q, qo, _) in &live {
                            let qa = q.as_ptr() as usize;
                            prop_assert!(a + order_bytes(order) <= qa || qa + order_bytes(*qo) <= a, "overlap");
                        }
                        stamp(p, order, i as u64);
                        live.push((p, order, i as u64));
                    } else {
                        prop_assert!(b.largest_free_order().is_none_or(|k| k < order));
                    }
                }
                Op::Free(k) if !live.is_empty() => {
                    let (p, order, v) = live.swap_remove(k % live.len());
                    prop_assert!(stamp_ok(p, order, v), "block contents survived");
                    // SAFETY: allocated above, freed once.
                    unsafe { b.free(p, order) }.unwrap();
                }
                Op::Free(_) => {}
            }
            b.check().unwrap();
            let used: usize = live.iter().map(|(_, o, _)| order_bytes(*o)).sum();
            prop_assert_eq!(b.free_bytes() + used, total);
        }
        for (p, order, v) in live.drain(..) {
            prop_assert!(stamp_ok(p, order, v));
            // SAFETY: as above.
            unsafe { b.free(p, order) }.unwrap();
        }
        b.check().unwrap();
        prop_assert_eq!(b.free_counts(), initial, "coalescing restores the initial blocks");
        prop_assert_eq!(b.free_bytes(), total);
    }

    /// Splitting the largest block into pages and freeing them in any order
    /// coalesces back into the one block.
    #[test]
    fn coalescing_restores_the_full_block(seed in any::<u64>()) {
        let mem = Mem::new(4 * MIB);
        let (start, end) = mem.range(0, 0);
        let mut b = Buddy::new();
        // SAFETY: `mem` is ours.
        unsafe { b.add_region(start, end) }.unwrap();
        let initial = b.free_counts();
        let mut pages = Vec::new();
        while let Some(p) = b.alloc(0) {
            pages.push(p);
        }
        prop_assert_eq!(b.free_bytes(), 0);
        // A cheap deterministic shuffle.
        let mut x = seed | 1;
        for i in (1..pages.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            pages.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for p in pages {
            // SAFETY: each page allocated above, freed once.
            unsafe { b.free(p, 0) }.unwrap();
        }
        b.check().unwrap();
        prop_assert_eq!(b.free_counts(), initial);
    }
}

#[test]
fn bad_frees_are_caught_and_change_nothing() {
    let mem = Mem::new(4 << 20);
    let (start, end) = mem.range(0, 0);
    let mut b = Buddy::new();
    // SAFETY: `mem` is ours.
    unsafe { b.add_region(start, end) }.unwrap();
    let a = b.alloc(2).unwrap();
    let c = b.alloc(0).unwrap();
    let before = b.free_counts();
    // SAFETY: (all frees below) each is either refused, which touches
    // nothing, or frees a block we own.
    unsafe {
        let e = b.free(a, 1).unwrap_err();
        assert_eq!(e.kind, FreeErrorKind::WrongSize);
        let inner = NonNull::new(a.as_ptr().add(PAGE_SIZE)).unwrap();
        assert_eq!(
            b.free(inner, 0).unwrap_err().kind,
            FreeErrorKind::NotAllocated
        );
        let outside = NonNull::new((end + (64 << 20)) as *mut u8).unwrap();
        assert_eq!(b.free(outside, 0).unwrap_err().kind, FreeErrorKind::Foreign);
        assert_eq!(b.free_counts(), before);
        b.free(a, 2).unwrap();
        let e = b.free(a, 2).unwrap_err();
        assert_eq!(e.kind, FreeErrorKind::DoubleFree);
        assert!(std::format!("{e}").contains("double free"), "{e}");
        // A page inside a block that has since coalesced: still a double free.
        let inner = NonNull::new(a.as_ptr().add(PAGE_SIZE)).unwrap();
        assert_eq!(
            b.free(inner, 0).unwrap_err().kind,
            FreeErrorKind::DoubleFree
        );
        b.free(c, 0).unwrap();
    }
    b.check().unwrap();
}

#[test]
fn exhaustion_is_a_named_error() {
    static PA: PageAllocator = PageAllocator::new_manual();
    let mem = Mem::new(2 << 20);
    let (start, end) = mem.range(0, 0);
    // SAFETY: `mem` outlives every use of `PA` in this test.
    unsafe { PA.add_region(start, end) }.unwrap();
    let total = PA.stats().total_bytes;
    let mut got = Vec::new();
    let err = loop {
        match PA.alloc(0) {
            Ok(p) => got.push(p),
            Err(e) => break e,
        }
    };
    assert_eq!(got.len() * PAGE_SIZE, total);
    assert_eq!(err.reason, AllocFailure::OutOfMemory);
    assert_eq!((err.free_bytes, err.size), (0, PAGE_SIZE));
    let msg = std::format!("{err}");
    assert!(
        msg.starts_with("page allocator: cannot allocate 4096 bytes")
            && msg.contains("0 bytes free"),
        "{msg}"
    );
    let big = PA.alloc_bytes(1 << 31, 8).unwrap_err();
    assert_eq!(big.reason, AllocFailure::TooLarge);
    for p in got {
        // SAFETY: allocated above.
        unsafe { PA.free(p, 0) }.unwrap();
    }
    assert_eq!(PA.stats().free_bytes, total);
    PA.check().unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "maps 3 GiB, which Miri would allocate for real")]
fn gigabyte_blocks() {
    // 3 GiB of address space, never touched beyond metadata and list nodes.
    let len = 3usize << 30;
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let mut b = Buddy::new();
    // SAFETY: the mapping is ours until munmap below.
    unsafe { b.add_region(p as usize, p as usize + len) }.unwrap();
    let initial = b.free_counts();
    assert!(
        initial[MAX_ORDER] >= 1,
        "an aligned 1 GiB block exists in 3 GiB"
    );
    let g = b.alloc(MAX_ORDER).unwrap();
    assert_eq!(g.as_ptr() as usize % (1 << 30), 0);
    assert_eq!(order_bytes(MAX_ORDER), 1 << 30);
    // SAFETY: allocated above.
    unsafe { b.free(g, MAX_ORDER) }.unwrap();
    let pg = b.alloc(0).unwrap();
    // SAFETY: allocated above.
    unsafe { b.free(pg, 0) }.unwrap();
    assert_eq!(b.free_counts(), initial);
    b.check().unwrap();
    // SAFETY: nothing refers to the mapping any more.
    unsafe { libc::munmap(p, len) };
}

#[test]
fn order_for_rounds_up() {
    assert_eq!(order_for(0), Some(0));
    assert_eq!(order_for(4096), Some(0));
    assert_eq!(order_for(4097), Some(1));
    assert_eq!(order_for(3 * 4096), Some(2));
    assert_eq!(order_for(1 << 30), Some(MAX_ORDER));
    assert_eq!(order_for((1 << 30) + 1), None);
}

#[test]
fn order_for_layout_takes_the_larger_of_size_and_alignment() {
    assert_eq!(order_for_layout(100, 8192), Some(1));
    assert_eq!(order_for_layout(3 * 4096, 4096), Some(2));
    assert_eq!(order_for_layout(1 << 30, 1 << 30), Some(MAX_ORDER));
    assert_eq!(order_for_layout(8, 1 << 31), None);
}

#[test]
fn hosted_instance_maps_an_arena() {
    let s = pages().stats();
    // Under Miri the arena is the smallest, and the buddy's metadata comes
    // out of it.
    let least = if cfg!(miri) {
        hosted::MIN_ARENA / 2
    } else {
        hosted::MIN_ARENA
    };
    assert!(s.total_bytes >= least);
    let (p, order) = pages().alloc_bytes(100_000, 64 << 10).unwrap();
    assert_eq!(order, 5);
    assert!(pages().contains(p.as_ptr() as usize));
    assert_eq!(p.as_ptr() as usize % (64 << 10), 0);
    // SAFETY: allocated above.
    unsafe { pages().free(p, order) }.unwrap();
    // The registry is a linker section Miri cannot read.
    #[cfg(not(miri))]
    {
        let r = ebbrt_core::registry::find("PageAllocator").unwrap();
        assert_eq!(r.id, Some(ids::PAGE_ALLOCATOR));
    }
}
