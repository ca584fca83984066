//! Runs the hosted arena dry and checks the error: a small arena (set
//! before its first use), allocations until failure, then the named error,
//! and the allocator still works after frees.

use std::alloc::Layout;
use std::ptr::NonNull;

use ebbrt_gp_alloc::{AllocFailure, GpAllocator, last_failure};
use ebbrt_page_alloc::pages;

#[test]
fn exhausting_memory_is_a_named_error() {
    // SAFETY: the only test in this binary; no other thread reads the
    // environment at this point.
    unsafe { std::env::set_var("EBBRT_ARENA_MIB", "64") };
    let total = pages().stats().total_bytes;
    assert!(
        total <= 64 << 20 && total > 60 << 20,
        "a 64 MiB arena: {total}"
    );

    let gp = GpAllocator::get();
    let small = Layout::from_size_align(200, 8).unwrap();
    let mut got: Vec<NonNull<u8>> = Vec::new();
    let err = loop {
        match gp.alloc(small) {
            Ok(p) => got.push(p),
            Err(e) => break e,
        }
    };
    assert_eq!(err.allocator, "general-purpose allocator");
    assert_eq!(
        (err.size, err.align, err.reason),
        (200, 8, AllocFailure::OutOfMemory)
    );
    assert!(err.free_bytes < 64 << 10, "little was free: {err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "general-purpose allocator: cannot allocate 200 bytes aligned to 8: out of memory"
        ),
        "{msg}"
    );
    // 200-byte objects in 32 KiB slabs: most of the arena was handed out.
    assert!(got.len() * 200 > 50 << 20, "{} objects", got.len());

    // A large request fails the same way, and the GlobalAlloc path records it.
    let big = Layout::from_size_align(8 << 20, 4096).unwrap();
    let e = gp.alloc(big).unwrap_err();
    assert_eq!((e.reason, e.size), (AllocFailure::OutOfMemory, 8 << 20));
    // SAFETY: a plain allocation through the GlobalAlloc handle; null on failure.
    let p = unsafe { std::alloc::GlobalAlloc::alloc(&ebbrt_gp_alloc::Global, big) };
    assert!(p.is_null());
    assert_eq!(last_failure().map(|e| e.size), Some(8 << 20));

    // Give everything back: the memory is usable again, nothing corrupted.
    for p in got.drain(..) {
        // SAFETY: allocated above, freed once.
        unsafe { gp.free(p, small) }.unwrap();
    }
    ebbrt_slab_alloc::with_shared(|s| s.trim());
    assert_eq!(pages().stats().free_bytes, total, "every page came back");
    let p = gp.alloc(big).unwrap();
    // SAFETY: allocated just above.
    unsafe { gp.free(p, big) }.unwrap();
    pages().check().unwrap();
}
