//! Physical memory: which RAM is free, and the boot heap.
//!
//! At boot the usable RAM of the memory map, minus the kernel image, the
//! boot page directories and the first MiB (firmware data and the AP
//! trampoline), becomes the free set. The boot heap (a `talc` allocator
//! behind `#[global_allocator]`) takes the largest free region. A later
//! page allocator takes the rest through [`free_regions`]/[`take_region`];
//! that is the whole interface, so the heap can be replaced without
//! touching the boot code.

use core::ops::Range;
use core::sync::atomic::Ordering;

use talc::source::Manual;

use super::boot;
use super::pvh::{self, MemMapEntry};
pub use super::regions::Regions;

#[global_allocator]
static HEAP: talc::TalcLock<spin::Mutex<()>, Manual> = talc::TalcLock::new(Manual);

/// Usable RAM as the boot memory map reports it (for `is_ram`).
static RAM: spin::Once<Regions> = spin::Once::new();
/// RAM not used by anything yet.
static FREE: spin::Mutex<Regions> = spin::Mutex::new(Regions::new());
static HEAP_REGION: spin::Once<Range<u64>> = spin::Once::new();

/// Why memory could not be set up.
#[derive(Debug)]
pub(crate) enum MemError {
    /// No usable RAM left once the kernel is excluded.
    NoFreeMemory,
    /// The allocator refused the region.
    HeapClaim(Range<u64>),
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoFreeMemory => f.write_str("no free RAM for the heap"),
            Self::HeapClaim(r) => write!(f, "the heap refused region {:#x}..{:#x}", r.start, r.end),
        }
    }
}

unsafe extern "C" {
    static __ehdr_start: u8;
    static _end: u8;
}

/// The physical range of the loaded kernel image.
pub fn kernel_image() -> Range<u64> {
    let start = (&raw const __ehdr_start) as u64;
    let end = (&raw const _end) as u64;
    start..end
}

/// Builds the free set from `memmap` and gives the largest region to the
/// heap.
pub(crate) fn init(memmap: &[MemMapEntry]) -> Result<(), MemError> {
    let mut ram = Regions::new();
    for e in memmap.iter().filter(|e| e.kind == pvh::RAM) {
        ram.add(e.addr..e.addr.saturating_add(e.size));
    }
    let mut free = ram.clone();
    RAM.call_once(|| ram);
    free.remove(0..0x10_0000);
    free.remove(kernel_image());
    let pd = boot::BOOT_PD_BASE.load(Ordering::Relaxed) as u64
        ..boot::BOOT_PD_END.load(Ordering::Relaxed) as u64;
    free.remove(pd);
    // RAM the boot page tables could not reach (above 512 GiB) is unusable.
    let mapped = super::paging::mapped_bytes();
    if free.iter().any(|r| r.end > mapped) {
        // Before the logger exists: straight to the serial port.
        super::serial::write_fmt(format_args!(
            "ebbrt: warning: RAM above {} GiB is not mapped and left unused\n",
            mapped >> 30
        ));
        free.remove(mapped..u64::MAX);
    }
    let heap = free.largest().ok_or(MemError::NoFreeMemory)?;
    free.remove(heap.clone());
    // SAFETY: `heap` is usable RAM (memory map), identity mapped by the
    // boot page tables, and no longer in the free set, so nothing else will
    // use it.
    let claimed = unsafe {
        HEAP.lock()
            .claim(heap.start as *mut u8, (heap.end - heap.start) as usize)
    };
    if claimed.is_none() {
        return Err(MemError::HeapClaim(heap));
    }
    HEAP_REGION.call_once(|| heap);
    *FREE.lock() = free;
    Ok(())
}

/// The usable physical memory not yet handed out (the heap's region and
/// the kernel image are not in it).
pub fn free_regions() -> Regions {
    FREE.lock().clone()
}

/// Takes `bytes` (whole pages) of free physical memory at or above
/// `min_addr`, for a later allocator or a driver's DMA area.
pub fn take_region(bytes: u64, min_addr: u64) -> Option<Range<u64>> {
    let start = FREE.lock().take(bytes, min_addr)?;
    Some(start..start + bytes.next_multiple_of(super::regions::PAGE))
}

/// The physical region the boot heap allocates from.
pub fn heap_region() -> Range<u64> {
    HEAP_REGION.get().cloned().unwrap_or(0..0)
}

/// Whether `r` lies inside one usable-RAM entry of the memory map.
pub fn is_ram(r: Range<u64>) -> bool {
    RAM.get()
        .is_some_and(|ram| ram.iter().any(|x| x.start <= r.start && r.end <= x.end))
}

/// All usable RAM reported by the boot memory map.
pub fn ram() -> Regions {
    RAM.get().cloned().unwrap_or_default()
}
