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

/// Page-table entry bits.
const PRESENT: u64 = 1;
const WRITABLE: u64 = 2;
const HUGE: u64 = 0x80;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// A 4 KiB mapping would overlap a large page.
#[derive(Debug)]
pub(crate) struct MapError;

/// The table the entry `e` points to, allocating it if absent.
fn next_table(e: &AtomicU64) -> Result<&'static PageTable, MapError> {
    let v = e.load(Ordering::Acquire);
    if v & PRESENT != 0 {
        if v & HUGE != 0 {
            return Err(MapError);
        }
        // SAFETY: a present, non-huge entry points at a page table that is
        // never freed (boot tables are static, others leaked below), and
        // memory is identity mapped.
        return Ok(unsafe { &*((v & ADDR_MASK) as *const PageTable) });
    }
    let t: &'static PageTable = alloc::boxed::Box::leak(alloc::boxed::Box::new(PageTable::new()));
    e.store(
        t as *const PageTable as u64 | PRESENT | WRITABLE,
        Ordering::Release,
    );
    Ok(t)
}

/// Maps the 4 KiB page at `virt` to `phys` (read/write),
/// creating page tables as needed. Only for addresses outside the identity
/// map, and only while no other core can use them: a new mapping needs no
/// TLB flush, and no other core has the address cached.
pub(crate) fn map_4k(virt: u64, phys: u64) -> Result<(), MapError> {
    let idx = |level: u32| ((virt >> (12 + 9 * level)) & 0x1ff) as usize;
    let pdpt = next_table(&boot::BOOT_PML4.0[idx(3)])?;
    let pd = next_table(&pdpt.0[idx(2)])?;
    let pt = next_table(&pd.0[idx(1)])?;
    pt.0[idx(0)].store((phys & ADDR_MASK) | PRESENT | WRITABLE, Ordering::Release);
    Ok(())
}
