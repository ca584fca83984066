//! Size classes: which class serves a request, and the slab geometry of
//! each class.
//!
//! Objects of a class are laid out from the start of a slab, and slabs are
//! aligned to their size, so an object of a class of size `s` is aligned to
//! the largest power of two dividing `s`. A request with a larger alignment
//! is served by the first class at least as large whose size has that
//! alignment (the power-of-two classes always do).

use core::alloc::Layout;

/// Bytes in each class, ascending.
pub const CLASS_SIZES: [u32; NUM_CLASSES] = [
    8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896,
    1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288,
    14336, 16384,
];

/// The number of size classes.
pub const NUM_CLASSES: usize = 37;

/// The largest size served by a class; larger requests go to the page
/// allocator.
pub const MAX_SMALL: usize = 16384;

/// The smallest slab (order 3: 32 KiB): small classes get thousands of
/// objects per slab, so slabs come and go rarely.
pub const MIN_SLAB_ORDER: u32 = 3;

/// A size class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizeClass(u8);

// Class lookup tables: by 8-byte steps up to 1 KiB, by 128-byte steps above.
const SMALL_STEP: usize = 8;
const SMALL_LIMIT: usize = 1024;
const LARGE_STEP: usize = 128;

const fn first_class_at_least(size: usize) -> u8 {
    let mut c = 0;
    while (CLASS_SIZES[c] as usize) < size {
        c += 1;
    }
    c as u8
}

const SMALL_LUT: [u8; SMALL_LIMIT / SMALL_STEP + 1] = {
    let mut t = [0u8; SMALL_LIMIT / SMALL_STEP + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = first_class_at_least(i * SMALL_STEP);
        i += 1;
    }
    t
};

const LARGE_LUT: [u8; MAX_SMALL / LARGE_STEP + 1] = {
    let mut t = [0u8; MAX_SMALL / LARGE_STEP + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = first_class_at_least(i * LARGE_STEP);
        i += 1;
    }
    t
};

impl SizeClass {
    /// The class for `size` bytes at the minimal alignment (8), if small.
    #[inline(always)]
    pub fn for_size(size: usize) -> Option<SizeClass> {
        if size <= SMALL_LIMIT {
            Some(SizeClass(SMALL_LUT[size.div_ceil(SMALL_STEP)]))
        } else if size <= MAX_SMALL {
            Some(SizeClass(LARGE_LUT[size.div_ceil(LARGE_STEP)]))
        } else {
            None
        }
    }

    /// The class for a layout, if one serves it. Zero-size layouts get the
    /// smallest class that satisfies their alignment.
    #[inline(always)]
    pub fn for_layout(layout: Layout) -> Option<SizeClass> {
        let c = Self::for_size(layout.size())?;
        if layout.align() <= 8 {
            Some(c)
        } else {
            Self::aligned(c, layout.align())
        }
    }

    #[cold]
    fn aligned(mut c: SizeClass, align: usize) -> Option<SizeClass> {
        while (c.0 as usize) < NUM_CLASSES {
            if c.align() >= align {
                return Some(c);
            }
            c.0 += 1;
        }
        None
    }

    /// The class with this index (`< NUM_CLASSES`).
    pub const fn from_index(i: usize) -> Option<SizeClass> {
        if i < NUM_CLASSES {
            Some(SizeClass(i as u8))
        } else {
            None
        }
    }

    /// The index of the class, `0..NUM_CLASSES`.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Bytes per object.
    #[inline(always)]
    pub const fn size(self) -> usize {
        CLASS_SIZES[self.0 as usize] as usize
    }

    /// The alignment every object of the class has.
    pub const fn align(self) -> usize {
        let s = self.size();
        s & s.wrapping_neg()
    }

    /// The page order of this class's slabs: at least 32 KiB and at least
    /// 16 objects.
    pub const fn slab_order(self) -> u32 {
        let want = self.size() * 16;
        let mut order = MIN_SLAB_ORDER;
        while (4096usize << order) < want {
            order += 1;
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classes_ascend_and_fit_the_pending_mask() {
        assert!(CLASS_SIZES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(CLASS_SIZES[NUM_CLASSES - 1] as usize, MAX_SMALL);
        const { assert!(NUM_CLASSES <= 64) };
        assert!(CLASS_SIZES.iter().all(|s| s % 8 == 0));
    }

    proptest! {
        /// The class of a layout is the smallest that holds it and has its
        /// alignment; none is chosen above `MAX_SMALL`.
        #[test]
        fn class_is_the_smallest_that_fits(size in 0usize..20000, align_shift in 0u32..16) {
            let align = 1usize << align_shift;
            let layout = Layout::from_size_align(size, align).unwrap();
            match SizeClass::for_layout(layout) {
                Some(c) => {
                    prop_assert!(c.size() >= size);
                    prop_assert!(c.align() >= align);
                    prop_assert!(c.align() >= 8);
                    for smaller in 0..c.index() {
                        let s = SizeClass::from_index(smaller).unwrap();
                        prop_assert!(s.size() < size || s.align() < align);
                    }
                    prop_assert!((4096usize << c.slab_order()) >= 16 * c.size());
                }
                None => prop_assert!(size > MAX_SMALL || align > MAX_SMALL),
            }
        }
    }
}
