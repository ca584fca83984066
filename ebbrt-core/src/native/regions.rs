//! Physical memory regions: usable RAM from the boot memory map minus what
//! the kernel already occupies. A fixed-capacity list, usable before any
//! allocator exists.
//!
//! Hardware-independent, so it is also unit-tested on the host.

use core::ops::Range;

/// Most regions tracked (the memory map is short; each reservation splits
/// at most one region in two).
pub const MAX_REGIONS: usize = 64;

/// Page size used for alignment of free regions.
pub const PAGE: u64 = 4096;

/// A set of disjoint physical address ranges, sorted by start.
#[derive(Clone)]
pub struct Regions {
    list: [Range<u64>; MAX_REGIONS],
    len: usize,
}

impl Default for Regions {
    fn default() -> Self {
        Self::new()
    }
}

impl Regions {
    /// The empty set.
    pub const fn new() -> Self {
        Regions {
            list: [const { 0..0 }; MAX_REGIONS],
            len: 0,
        }
    }

    /// Adds `r`, shrunk to whole pages; merges with overlapping or adjacent
    /// ranges. Returns `false` (and drops the range) when the list is full.
    pub fn add(&mut self, r: Range<u64>) -> bool {
        let start = r.start.next_multiple_of(PAGE);
        let end = r.end & !(PAGE - 1);
        if start >= end {
            return true;
        }
        let (mut start, mut end) = (start, end);
        // Absorb every range that touches [start, end).
        let mut i = 0;
        while i < self.len {
            let x = self.list[i].clone();
            if x.start <= end && start <= x.end {
                start = start.min(x.start);
                end = end.max(x.end);
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        if self.len == MAX_REGIONS {
            return false;
        }
        let pos = self.list[..self.len]
            .iter()
            .position(|x| x.start > start)
            .unwrap_or(self.len);
        self.list[pos..=self.len].rotate_right(1);
        self.list[pos] = start..end;
        self.len += 1;
        true
    }

    /// Removes `r` (any alignment: the pages it touches are removed). When
    /// splitting a range finds the list full, the upper part is dropped:
    /// memory may be lost, never handed out twice.
    pub fn remove(&mut self, r: Range<u64>) {
        let start = r.start & !(PAGE - 1);
        let end = r.end.saturating_add(PAGE - 1) & !(PAGE - 1);
        if start >= end {
            return;
        }
        let mut i = 0;
        while i < self.len {
            let x = self.list[i].clone();
            if x.end <= start || end <= x.start {
                i += 1;
                continue;
            }
            self.remove_at(i);
            // Re-add the parts outside [start, end): at most two, and the
            // slot just freed guarantees room for one of them.
            if x.start < start {
                self.add(x.start..start);
                i += 1;
            }
            if end < x.end {
                self.add(end..x.end);
                i += 1;
            }
        }
    }

    /// Takes `bytes` (rounded up to pages) from the lowest region at or
    /// above `min_addr` that has room; returns the start address.
    pub fn take(&mut self, bytes: u64, min_addr: u64) -> Option<u64> {
        let bytes = bytes.next_multiple_of(PAGE);
        let r = self.iter().find_map(|r| {
            let start = r.start.max(min_addr.next_multiple_of(PAGE));
            (start < r.end && r.end - start >= bytes).then_some(start)
        })?;
        self.remove(r..r + bytes);
        Some(r)
    }

    /// The largest range.
    pub fn largest(&self) -> Option<Range<u64>> {
        self.iter().max_by_key(|r| r.end - r.start)
    }

    /// The ranges, in address order.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.list[..self.len].iter().cloned()
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.iter().map(|r| r.end - r.start).sum()
    }

    fn remove_at(&mut self, i: usize) {
        self.list[i..self.len].rotate_left(1);
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn v(r: &Regions) -> Vec<(u64, u64)> {
        r.iter().map(|x| (x.start, x.end)).collect()
    }

    #[test]
    fn add_aligns_sorts_and_merges() {
        let mut r = Regions::new();
        r.add(0x10_0000..0x20_0000);
        r.add(0x1000..0x9_fc00);
        r.add(0x20_0000..0x30_0000);
        r.add(0x5..0x800);
        assert_eq!(v(&r), [(0x1000, 0x9_f000), (0x10_0000, 0x30_0000)]);
    }

    #[test]
    fn remove_splits() {
        let mut r = Regions::new();
        r.add(0x10_0000..0x100_0000);
        r.remove(0x20_0000..0x20_0001);
        assert_eq!(v(&r), [(0x10_0000, 0x20_0000), (0x20_1000, 0x100_0000)]);
        r.remove(0..0x15_0000);
        r.remove(0x80_0000..u64::MAX);
        assert_eq!(v(&r), [(0x15_0000, 0x20_0000), (0x20_1000, 0x80_0000)]);
        assert_eq!(r.total(), 0xb_0000 + 0x5f_f000);
    }

    #[test]
    fn take_and_largest() {
        let mut r = Regions::new();
        r.add(0x1000..0x3000);
        r.add(0x10_0000..0x40_0000);
        assert_eq!(r.take(0x2000, 0), Some(0x1000));
        assert_eq!(r.take(0x1000, 0), Some(0x10_0000));
        assert_eq!(r.take(0x1000, 0x20_0800), Some(0x20_1000));
        assert_eq!(r.take(0x100_0000, 0), None);
        assert_eq!(r.largest(), Some(0x20_2000..0x40_0000));
    }

    #[test]
    fn full_list_refuses() {
        let mut r = Regions::new();
        for i in 0..MAX_REGIONS as u64 {
            assert!(r.add(i * 0x10000..i * 0x10000 + 0x1000));
        }
        assert!(!r.add(0x1000_0000..0x1000_1000));
        assert_eq!(r.iter().count(), MAX_REGIONS);
    }
}
