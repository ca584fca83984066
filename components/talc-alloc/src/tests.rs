#![allow(unsafe_code)]

use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// Sizes cut down under Miri, which interprets every step and whose
/// hosted arena is the smallest (16 MiB): fewer cases and blocks, the same
/// properties.
const CASES: u32 = if cfg!(miri) { 3 } else { 64 };
const MAX_REQS: usize = if cfg!(miri) { 10 } else { 40 };

fn layouts() -> impl Strategy<Value = Layout> {
    (
        prop_oneof![0usize..64, 0usize..4096, 0usize..300_000],
        0u32..16,
    )
        .prop_map(|(size, a)| Layout::from_size_align(size, 1 << a).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any layout: aligned, disjoint (contents survive), reallocation keeps
    /// contents, every block frees.
    #[test]
    fn any_layout(reqs in prop::collection::vec((layouts(), 0usize..20_000), 1..MAX_REQS)) {
        let a = TalcAllocator::get();
        let mut live = Vec::new();
        for (i, (layout, new_size)) in reqs.into_iter().enumerate() {
            let p = a.alloc(layout).unwrap();
            prop_assert_eq!(p.as_ptr() as usize % layout.align(), 0);
            // SAFETY: the block holds `layout.size()` bytes.
            unsafe { ptr::write_bytes(p.as_ptr(), i as u8, layout.size()) };
            // SAFETY: allocated above with `layout`.
            let q = unsafe { a.realloc(p, layout, new_size) }.unwrap();
            let keep = layout.size().min(new_size);
            // SAFETY: `q` holds at least `keep` bytes.
            let kept = unsafe { core::slice::from_raw_parts(q.as_ptr(), keep) }.iter().all(|b| *b == i as u8);
            prop_assert!(kept, "realloc kept the contents");
            let l = Layout::from_size_align(new_size, layout.align()).unwrap();
            // SAFETY: `q` holds `new_size` bytes.
            unsafe { ptr::write_bytes(q.as_ptr(), i as u8, new_size) };
            live.push((q, l, i as u8));
        }
        for (p, l, v) in live {
            // SAFETY: live block of `l.size()` bytes.
            let intact = unsafe { core::slice::from_raw_parts(p.as_ptr(), l.size()) }.iter().all(|b| *b == v);
            prop_assert!(intact, "no overlap");
            // SAFETY: allocated above, freed once.
            unsafe { a.free(p, l) }.unwrap();
        }
    }
}

#[test]
fn bad_frees_are_refused() {
    let a = TalcAllocator::get();
    let l = Layout::new::<[u64; 8]>();
    let p = a.alloc(l).unwrap();
    let mut x = 0u64;
    // SAFETY: refused frees change nothing; one valid free.
    unsafe {
        let e = a.free(NonNull::from(&mut x).cast(), l).unwrap_err();
        assert_eq!((e.allocator, e.kind), (NAME, FreeErrorKind::Foreign));
        a.free(p, l).unwrap();
        #[cfg(debug_assertions)]
        assert_eq!(a.free(p, l).unwrap_err().kind, FreeErrorKind::DoubleFree);
    }
}

#[test]
fn failures_are_named_and_registered_with_its_feature() {
    let a = TalcAllocator::get();
    let e = a
        .alloc(Layout::from_size_align(2 << 30, 8).unwrap())
        .unwrap_err();
    assert_eq!((e.allocator, e.reason), (NAME, AllocFailure::TooLarge));
    assert!(std::format!("{e}").starts_with("talc allocator: cannot allocate 2147483648 bytes"));
    assert!(a.claimed_bytes() > 0);
    // The registry is a linker section Miri cannot read.
    #[cfg(not(miri))]
    {
        let r = ebbrt_core::registry::find("TalcAllocator").unwrap();
        assert_eq!(
            (r.id, r.feature, r.default),
            (Some(ids::GP_ALLOCATOR), Some("talc"), false)
        );
    }
}
