//! Physical memory: which RAM is free, and the boot heap.
//!
//! At boot the usable RAM of the memory map, minus the kernel image, the
//! boot page directories and the first MiB (firmware data and the AP
//! trampoline), becomes the free set. Whoever needs physical memory takes
//! it from there through [`free_regions`]/[`take_region`]: a page
//! allocator, a driver's DMA area, and the boot heap.
//!
//! The boot heap (a `talc` allocator) is the `#[global_allocator]` unless
//! the `external-allocator` feature hands that role to an allocator
//! component. It starts with [`HEAP_CHUNK`] bytes and takes another chunk
//! from the free set whenever it runs out, so it never holds much more than
//! it uses and the rest stays available.

use core::alloc::Layout;
use core::ops::Range;
use core::sync::atomic::Ordering;

use talc::base::Talc;
use talc::base::binning::Binning;
use talc::source::Source;

use super::boot;
use super::regions::PAGE;
pub use super::regions::Regions;

/// How much the boot heap takes from the free set at a time (more when one
/// allocation needs more).
pub const HEAP_CHUNK: u64 = 16 << 20;

/// The boot heap: `talc` over chunks of the free set.
pub type BootHeap = talc::TalcLock<spin::Mutex<()>, FromFreeRegions>;

/// The boot heap instance.
#[cfg_attr(not(feature = "external-allocator"), global_allocator)]
pub static HEAP: BootHeap = BootHeap::new(FromFreeRegions);

/// Usable RAM as the boot memory map reports it (for `is_ram`).
static RAM: spin::Once<Regions> = spin::Once::new();
/// RAM not used by anything yet.
static FREE: spin::Mutex<Regions> = spin::Mutex::new(Regions::new());
/// Bytes the boot heap has taken so far.
static HEAP_BYTES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The boot heap's source of memory: chunks taken from the free set.
#[derive(Debug)]
pub struct FromFreeRegions;

// SAFETY: `acquire` touches only the free set (its own spin lock, no
// allocation) and the `talc` it is given.
unsafe impl Source for FromFreeRegions {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for the block, its alignment and talc's bookkeeping.
        let need = (layout.size() + layout.align()) as u64 + PAGE;
        let want = need.max(HEAP_CHUNK).next_multiple_of(PAGE);
        let chunk = take_region(want, 0)
            .or_else(|| take_region(need.next_multiple_of(PAGE), 0))
            .ok_or(())?;
        let len = chunk.end - chunk.start;
        // SAFETY: the chunk is usable, identity-mapped RAM just removed from
        // the free set, so nothing else uses it.
        unsafe { talc.claim(chunk.start as *mut u8, len as usize) }.ok_or(())?;
        HEAP_BYTES.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }
}

/// Why memory could not be set up.
#[derive(Debug)]
pub(crate) enum MemError {
    /// No usable RAM left once the kernel is excluded.
    NoFreeMemory,
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoFreeMemory => f.write_str("no free RAM above the kernel image"),
        }
    }
}

// SAFETY: symbols the linker defines (start of the ELF header, end of
// the image); only their addresses are used, never their contents.
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

/// Builds the free set from the usable entries of the memory map.
pub(crate) fn init(memmap: &[super::pvh::MemMapEntry]) -> Result<(), MemError> {
    let mut ram = Regions::new();
    for e in memmap.iter().filter(|e| e.kind == super::pvh::RAM) {
        ram.add(e.addr..e.addr.saturating_add(e.size));
    }
    let mut free = ram.clone();
    RAM.call_once(|| ram);
    free.remove(0..0x10_0000);
    free.remove(kernel_image());
    free.remove(boot::boot_pd_range());
    // RAM the boot page tables could not reach (above 512 GiB) is unusable.
    let mapped = super::paging::mapped_bytes();
    if free.iter().any(|r| r.end > mapped) {
        // Before the logger exists: straight to the console.
        crate::console::eprint(format_args!(
            "ebbrt: warning: RAM above {} GiB is not mapped and left unused\n",
            mapped >> 30
        ));
        free.remove(mapped..u64::MAX);
    }
    if free.total() == 0 {
        return Err(MemError::NoFreeMemory);
    }
    *FREE.lock() = free;
    Ok(())
}

/// The usable physical memory not yet handed out.
pub fn free_regions() -> Regions {
    FREE.lock().clone()
}

/// Takes `bytes` (whole pages) of free physical memory at or above
/// `min_addr`, for an allocator or a driver's DMA area.
pub fn take_region(bytes: u64, min_addr: u64) -> Option<Range<u64>> {
    let start = FREE.lock().take(bytes, min_addr)?;
    Some(start..start + bytes.next_multiple_of(PAGE))
}

/// Bytes the boot heap has taken from the free set.
pub fn heap_bytes() -> u64 {
    HEAP_BYTES.load(Ordering::Relaxed)
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
