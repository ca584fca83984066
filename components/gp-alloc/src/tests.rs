#![allow(unsafe_code)]

use std::vec::Vec;

use proptest::prelude::*;

use super::*;

fn fill(p: NonNull<u8>, len: usize, v: u8) {
    // SAFETY: the block is ours and at least `len` bytes.
    unsafe { ptr::write_bytes(p.as_ptr(), v, len) }
}

fn filled(p: NonNull<u8>, len: usize, v: u8) -> bool {
    // SAFETY: as in `fill`.
    unsafe { core::slice::from_raw_parts(p.as_ptr(), len) }
        .iter()
        .all(|b| *b == v)
}

/// Sizes cut down under Miri, which interprets every step and whose
/// hosted arena is the smallest (16 MiB): fewer cases, fewer and smaller
/// blocks, the same properties.
const CASES: u32 = if cfg!(miri) { 2 } else { 128 };
const MAX_REQS: usize = if cfg!(miri) { 6 } else { 40 };
const LARGE: usize = if cfg!(miri) { 40_000 } else { 3_000_000 };
const REALLOC: usize = if cfg!(miri) { 20_000 } else { 50_000 };

fn layouts() -> impl Strategy<Value = Layout> {
    (
        prop_oneof![0usize..64, 0usize..2048, 0usize..40_000, 0usize..LARGE],
        0u32..22,
    )
        .prop_map(|(size, a)| Layout::from_size_align(size, 1 << a).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Any layout: aligned, disjoint, contents survive reallocation, and
    /// every block can be freed.
    #[test]
    fn any_layout(reqs in prop::collection::vec((layouts(), 0usize..REALLOC), 1..MAX_REQS)) {
        let gp = GpAllocator::get();
        let mut live = Vec::new();
        for (i, (layout, new_size)) in reqs.into_iter().enumerate() {
            let p = gp.alloc(layout).unwrap();
            prop_assert_eq!(p.as_ptr() as usize % layout.align(), 0);
            fill(p, layout.size(), i as u8);
            let keep = layout.size().min(new_size);
            // SAFETY: `p` was allocated above with `layout`.
            let q = unsafe { gp.realloc(p, layout, new_size) }.unwrap();
            prop_assert_eq!(q.as_ptr() as usize % layout.align(), 0);
            prop_assert!(filled(q, keep, i as u8), "realloc kept the contents");
            let layout = Layout::from_size_align(new_size, layout.align()).unwrap();
            fill(q, new_size, i as u8);
            live.push((q, layout, i as u8));
        }
        for (p, layout, v) in &live {
            prop_assert!(filled(*p, layout.size(), *v), "no overlap");
        }
        for (p, layout, _) in live {
            // SAFETY: each block allocated above, freed once.
            unsafe { gp.free(p, layout) }.unwrap();
        }
    }
}

#[test]
fn zero_size_and_huge_alignment() {
    let gp = GpAllocator::get();
    // (Miri's arena is 16 MiB: no 1 GiB block.)
    let aligns: &[usize] = if cfg!(miri) {
        &[1, 8, 64, 4096, 1 << 16, 1 << 21]
    } else {
        &[1, 8, 64, 4096, 1 << 16, 1 << 21, 1 << 30]
    };
    for &align in aligns {
        let l = Layout::from_size_align(0, align).unwrap();
        let a = gp.alloc(l).unwrap();
        let b = gp.alloc(l).unwrap();
        assert_ne!(a, b, "zero-size blocks are distinct");
        assert_eq!(a.as_ptr() as usize % align, 0);
        // SAFETY: allocated above.
        unsafe {
            gp.free(a, l).unwrap();
            gp.free(b, l).unwrap();
        }
    }
    let too = Layout::from_size_align(8, 1 << 31).unwrap();
    let e = gp.alloc(too).unwrap_err();
    assert_eq!((e.allocator, e.reason), (NAME, AllocFailure::AlignTooLarge));
    let big = Layout::from_size_align(3 << 30, 8).unwrap();
    assert_eq!(gp.alloc(big).unwrap_err().reason, AllocFailure::TooLarge);
}

#[cfg(debug_assertions)]
#[test]
fn bad_frees_name_the_general_purpose_allocator() {
    let gp = GpAllocator::get();
    let l = Layout::new::<[u64; 4]>();
    let p = gp.alloc(l).unwrap();
    // SAFETY: a valid free, then refused ones that change nothing.
    unsafe {
        gp.free(p, l).unwrap();
        let e = gp.free(p, l).unwrap_err();
        assert_eq!((e.allocator, e.kind), (NAME, FreeErrorKind::DoubleFree));
        let big = Layout::from_size_align(1 << 20, 8).unwrap();
        let q = gp.alloc(big).unwrap();
        gp.free(q, big).unwrap();
        assert_eq!(gp.free(q, big).unwrap_err().kind, FreeErrorKind::DoubleFree);
        let mut x = 0u64;
        let e = gp.free(NonNull::from(&mut x).cast(), l).unwrap_err();
        assert_eq!(e.kind, FreeErrorKind::Foreign);
        assert!(
            std::format!("{e}").starts_with("general-purpose allocator: bad free of"),
            "{e}"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot read linkme's link sections (COMPONENTS)")]
fn registered_at_its_well_known_id() {
    let r = ebbrt_core::registry::find("GpAllocator").unwrap();
    assert_eq!(r.id, Some(ids::GP_ALLOCATOR));
    ebbrt_core::registry::check_static_ids().unwrap();
}
