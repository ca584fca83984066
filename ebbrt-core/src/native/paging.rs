//! Page tables. The boot code (`boot.rs`) identity maps all RAM with large
//! pages; this module holds the table type and answers what is mapped.

use core::sync::atomic::{AtomicU64, Ordering};

use super::boot;

/// One 4 KiB page table of 512 entries, written by the boot code before
/// Rust runs and only read afterwards.
#[repr(C, align(4096))]
pub(crate) struct PageTable([AtomicU64; 512]);

impl PageTable {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        PageTable([const { AtomicU64::new(0) }; 512])
    }
}

/// Bytes identity mapped from address 0.
pub fn mapped_bytes() -> u64 {
    u64::from(boot::BOOT_MAPPED_GIB.load(Ordering::Relaxed)) << 30
}

/// The size of the pages of the identity map: 1 GiB or 2 MiB.
pub fn page_size() -> u64 {
    let e = boot::BOOT_PDPT.0[0].load(Ordering::Relaxed);
    if e & 0x80 != 0 { 1 << 30 } else { 2 << 20 }
}
