//! Runs the general-purpose allocator dry inside a running EbbRT instance
//! (natively: all the RAM QEMU gives the guest; hosted: the runtime's
//! arena) and checks the error, then gives everything back and checks the
//! allocator still works: large blocks until the page allocator has none
//! left, smaller and smaller blocks down to the smallest size served
//! straight from pages, then small objects until the slab classes have
//! none either.
//!
//! While memory is exhausted the test allocates nothing else: the vector
//! of blocks is allocated beforehand, and nothing is printed until it has
//! been given back. (Built with `--features ebbrt/talc` the image's
//! global allocator is talc, but this test still exercises the slab-based
//! general-purpose allocator it names.)
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use ebbrt_gp_alloc::{AllocError, AllocFailure, GpAllocator, last_failure};
use ebbrt_page_alloc::pages;

/// The most blocks the test holds at once (its vector is allocated before
/// memory runs out).
const MAX_BLOCKS: usize = 1 << 16;

/// The smallest size the general-purpose allocator takes straight from the
/// page allocator; it is also the smallest slab, so once a block of this
/// size is refused, no slab class can grow either.
const MIN_LARGE: usize = 2 * ebbrt_slab_alloc::MAX_SMALL;

/// Allocates `layout` until the allocator fails or the vector is full.
fn fill(
    gp: &GpAllocator,
    layout: Layout,
    held: &mut Vec<(NonNull<u8>, Layout)>,
) -> Option<AllocError> {
    while held.len() < held.capacity() {
        match gp.alloc(layout) {
            Ok(p) => held.push((p, layout)),
            Err(e) => return Some(e),
        }
    }
    None
}

/// Exhausts memory; returns the failures seen (the first large one, the
/// one at [`MIN_LARGE`], the small one)
/// and the number of blocks it held, or what went wrong.
fn exhaust(
    gp: &GpAllocator,
    held: &mut Vec<(NonNull<u8>, Layout)>,
) -> Result<(AllocError, AllocError, AllocError), String> {
    let free = pages().stats().free_bytes;
    // About 256 large blocks cover the free memory; then halve the size down
    // to MIN_LARGE, each size taking what the larger ones left.
    let mut size = (free / 256).next_power_of_two().max(MIN_LARGE);
    let mut first = None;
    let mut page = None;
    while size >= MIN_LARGE {
        let layout = Layout::from_size_align(size, 4096).unwrap();
        match fill(gp, layout, held) {
            Some(e) => {
                first.get_or_insert(e);
                page = Some(e);
            }
            None => return Err(format!("{MAX_BLOCKS} blocks did not exhaust memory")),
        }
        size /= 2;
    }
    let small = fill(gp, Layout::from_size_align(64, 8).unwrap(), held)
        .ok_or_else(|| format!("{MAX_BLOCKS} blocks did not exhaust the slab classes"))?;
    Ok((first.unwrap(), page.unwrap(), small))
}

/// The general-purpose allocator, run dry, fails with the named error
/// (which allocator, what size, what was free); after everything is freed
/// the memory is usable again.
#[ebbrt::test]
fn exhausting_memory_is_a_named_error() -> Result<(), String> {
    let gp = GpAllocator::get();
    let free_before = pages().stats().free_bytes;
    let mut held: Vec<(NonNull<u8>, Layout)> = Vec::with_capacity(MAX_BLOCKS);

    let outcome = exhaust(gp, &mut held);
    let held_bytes: usize = held.iter().map(|(_, l)| l.size()).sum();
    let free_at_end = pages().stats().free_bytes;
    let n = held.len();
    // The global allocator's path records its failures too (null, no panic).
    let huge = Layout::from_size_align(free_before, 4096).unwrap();
    // SAFETY: a plain allocation through the GlobalAlloc handle of the
    // allocator under test; null on failure, freed below otherwise.
    let p = unsafe { core::alloc::GlobalAlloc::alloc(&ebbrt_gp_alloc::Global, huge) };
    let recorded = last_failure();

    // Give everything back before anything else allocates.
    for (p, layout) in held.drain(..) {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { gp.free(p, layout) }.map_err(|e| format!("freeing: {e}"))?;
    }
    if !p.is_null() {
        // SAFETY: allocated just above with `huge`.
        unsafe { core::alloc::GlobalAlloc::dealloc(&ebbrt_gp_alloc::Global, p, huge) };
        return Err(format!("{huge:?} succeeded with memory exhausted"));
    }
    drop(held);

    let (large, page, small) = outcome?;
    ebbrt::println!("{n} blocks, {held_bytes} bytes held of {free_before} free");
    ebbrt::println!("large: {large}");
    ebbrt::println!("page:  {page}");
    ebbrt::println!("small: {small}");
    for e in [&large, &page, &small] {
        if e.allocator != "general-purpose allocator" || e.reason != AllocFailure::OutOfMemory {
            return Err(format!("not a named out-of-memory error: {e:?}"));
        }
    }
    if (page.size, page.align) != (MIN_LARGE, 4096) || (small.size, small.align) != (64, 8) {
        return Err(format!("wrong sizes reported: {page:?} / {small:?}"));
    }
    // What is left free is in pieces smaller than a slab (fragments the
    // buddy split off), and the errors say so.
    if page.largest_free >= MIN_LARGE || small.largest_free >= MIN_LARGE {
        return Err(format!("a usable block was left: {page:?} / {small:?}"));
    }
    if free_at_end >= 4 * MIN_LARGE {
        return Err(format!("{free_at_end} bytes still free at the end"));
    }
    let msg = format!("{small}");
    if !msg.starts_with(
        "general-purpose allocator: cannot allocate 64 bytes aligned to 8: out of memory",
    ) {
        return Err(format!("message: {msg}"));
    }
    // Nearly all free memory was handed out (the rest: slab headers and
    // objects held by other cores' caches).
    if held_bytes < free_before / 10 * 9 {
        return Err(format!(
            "only {held_bytes} of {free_before} bytes handed out"
        ));
    }
    match recorded {
        Some(e) if e.size == huge.size() => {}
        other => return Err(format!("GlobalAlloc failure not recorded: {other:?}")),
    }

    // Everything came back: the page allocator is whole again, and a block
    // of a quarter of the memory (at most the largest block size, 1 GiB)
    // can be had once more.
    ebbrt_slab_alloc::SLAB_ALLOCATOR.rep().trim();
    pages()
        .check()
        .map_err(|e| format!("page allocator: {e}"))?;
    let free_after = pages().stats().free_bytes;
    ebbrt::println!("free before {free_before}, after {free_after}");
    if free_after + (1 << 20) < free_before {
        return Err(format!(
            "memory lost: {free_before} bytes free before, {free_after} after"
        ));
    }
    let quarter = Layout::from_size_align((free_before / 4).min(1 << 30), 4096).unwrap();
    let p = gp.alloc(quarter).map_err(|e| format!("after: {e}"))?;
    // SAFETY: allocated just above.
    unsafe { gp.free(p, quarter) }.map_err(|e| format!("{e}"))?;
    Ok(())
}

ebbrt::test_main!();
