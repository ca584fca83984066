//! Page tables and page permissions.
//!
//! The boot code (`boot.rs`) identity maps all RAM (and at least the low
//! 4 GiB, for MMIO) with large pages, writable and executable. Once the
//! heap exists, [`protect_kernel`] tightens that map:
//!
//! - the 2 MiB pages that hold the kernel image, and the first 2 MiB (where
//!   the AP trampoline runs), are split into 4 KiB pages; everything else
//!   keeps its 1 GiB or 2 MiB pages;
//! - each page of the image gets the rights of the ELF segment it belongs
//!   to: `.text` read and execute, `.rodata` read only, `.data`/`.bss` read,
//!   write, no execute. The segments come from the image's own program
//!   headers (loaded with it at `__ehdr_start`): the linker (`rust-lld`)
//!   starts every segment on a page of its own in memory, so no page has two
//!   sets of rights (should a page ever be shared, it gets the union and a
//!   warning);
//! - every other page (heap, free RAM, MMIO) is read/write, no execute;
//! - the page under the boot stack is unmapped (its guard);
//! - EFER.NXE is turned on when CPUID 0x80000001 EDX bit 20 says the CPU
//!   has no-execute (otherwise nothing is marked no-execute, and a warning
//!   says so), and CR0.WP, so that the kernel's own writes to read-only
//!   pages fault.
//!
//! Application processors start with these tables and set NXE and WP in
//! their trampoline, before paging is on (`smp.rs`).

use alloc::alloc::{Layout, alloc_zeroed};
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::instructions::tlb;
use x86_64::registers::control::{Cr0, Cr0Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

use super::boot;

/// One 4 KiB page table of 512 entries.
#[repr(C, align(4096))]
pub(crate) struct PageTable([AtomicU64; 512]);

impl PageTable {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        PageTable([const { AtomicU64::new(0) }; 512])
    }
}

/// Page-table entry bits.
const PRESENT: u64 = 1;
const WRITABLE: u64 = 2;
const HUGE: u64 = 0x80;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

const PAGE: u64 = 4096;
const LARGE: u64 = 2 << 20;

/// [`NO_EXECUTE`] once EFER.NXE is on, else 0.
static NX_BIT: AtomicU64 = AtomicU64::new(0);
/// The large-page size the boot code chose (0 until [`protect_kernel`]).
static BOOT_PAGE_SIZE: AtomicU64 = AtomicU64::new(0);
/// The image's executable range (page-rounded), once [`protect_kernel`]
/// read it.
static TEXT: spin::Once<Range<u64>> = spin::Once::new();

/// Bytes identity mapped from address 0.
pub fn mapped_bytes() -> u64 {
    u64::from(boot::BOOT_MAPPED_GIB.load(Ordering::Relaxed)) << 30
}

/// The size of the large pages of the identity map: 1 GiB or 2 MiB (the
/// kernel image and the first 2 MiB are mapped with 4 KiB pages).
pub fn page_size() -> u64 {
    match BOOT_PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            let e = boot::BOOT_PDPT.0[0].load(Ordering::Relaxed);
            if e & HUGE != 0 { 1 << 30 } else { LARGE }
        }
        s => s,
    }
}

/// Whether pages can be (and data pages are) no-execute: EFER.NXE is on.
pub fn no_execute() -> bool {
    NX_BIT.load(Ordering::Relaxed) != 0
}

/// The kernel's executable pages (`.text`), page-rounded; empty before the
/// kernel protected its image.
pub fn kernel_text() -> Range<u64> {
    TEXT.get().cloned().unwrap_or(0..0)
}

/// What a 4 KiB page of the identity map allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Not mapped: every access faults (a guard page).
    None,
    /// Read only, no execute (`.rodata`).
    Read,
    /// Read and write, no execute (`.data`, `.bss`, RAM, MMIO).
    ReadWrite,
    /// Read and execute, no write (`.text`).
    ReadExec,
    /// Everything: only a page that two segments share.
    All,
}

impl Access {
    fn of_segment(flags: u32) -> Self {
        const PF_X: u32 = 1;
        const PF_W: u32 = 2;
        match (flags & PF_W != 0, flags & PF_X != 0) {
            (false, false) => Self::Read,
            (true, false) => Self::ReadWrite,
            (false, true) => Self::ReadExec,
            (true, true) => Self::All,
        }
    }

    /// The union of two sets of rights.
    fn union(self, o: Self) -> Self {
        let w = self.writable() || o.writable();
        let x = self.executable() || o.executable();
        match (self, o, w, x) {
            (Self::None, o, ..) => o,
            (s, Self::None, ..) => s,
            (_, _, false, false) => Self::Read,
            (_, _, true, false) => Self::ReadWrite,
            (_, _, false, true) => Self::ReadExec,
            (_, _, true, true) => Self::All,
        }
    }

    fn writable(self) -> bool {
        matches!(self, Self::ReadWrite | Self::All)
    }

    fn executable(self) -> bool {
        matches!(self, Self::ReadExec | Self::All)
    }

    /// The entry bits (frame address aside) of a 4 KiB page.
    fn bits(self) -> u64 {
        let nx = NX_BIT.load(Ordering::Relaxed);
        match self {
            Self::None => 0,
            Self::Read => PRESENT | nx,
            Self::ReadWrite => PRESENT | WRITABLE | nx,
            Self::ReadExec => PRESENT,
            Self::All => PRESENT | WRITABLE,
        }
    }
}

/// A page table could not be allocated, or an address is not mapped the
/// way the operation needs.
#[derive(Debug)]
pub(crate) enum MapError {
    /// No memory for a page table.
    OutOfMemory,
    /// A 4 KiB mapping would overlap a large page.
    LargePage(u64),
    /// The image's ELF header or program headers are not what the linker
    /// writes.
    BadImage(&'static str),
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("no memory for a page table"),
            Self::LargePage(a) => write!(f, "{a:#x} is mapped by a large page"),
            Self::BadImage(why) => write!(f, "cannot read the kernel's program headers: {why}"),
        }
    }
}

/// A fresh, zeroed page table that is never freed.
fn new_table() -> Result<&'static PageTable, MapError> {
    // SAFETY: the layout has a non-zero size; a zeroed `PageTable` (atomic
    // integers) is valid.
    let p = unsafe { alloc_zeroed(Layout::new::<PageTable>()) }.cast::<PageTable>();
    // SAFETY: `p` is null or a fresh allocation of a `PageTable`, leaked.
    unsafe { p.as_ref() }.ok_or(MapError::OutOfMemory)
}

/// The table a present, non-huge entry `v` points to.
fn table_at(v: u64) -> &'static PageTable {
    // SAFETY: a present, non-huge entry points at a page table that is
    // never freed (boot tables are static, others leaked), and memory is
    // identity mapped.
    unsafe { &*((v & ADDR_MASK) as *const PageTable) }
}

/// The table the entry `e` points to, allocating it if absent.
fn next_table(e: &AtomicU64, virt: u64) -> Result<&'static PageTable, MapError> {
    let v = e.load(Ordering::Acquire);
    if v & PRESENT != 0 {
        if v & HUGE != 0 {
            return Err(MapError::LargePage(virt));
        }
        return Ok(table_at(v));
    }
    let t = new_table()?;
    e.store(
        t as *const PageTable as u64 | PRESENT | WRITABLE,
        Ordering::Release,
    );
    Ok(t)
}

/// The table under entry `e` (of a table whose entries map `size` bytes
/// each), splitting a huge entry into a table of 512 entries that map the
/// same frames with the same rights. The caller flushes the TLB.
fn split(e: &AtomicU64, size: u64) -> Result<&'static PageTable, MapError> {
    let v = e.load(Ordering::Acquire);
    if v & PRESENT == 0 || v & HUGE == 0 {
        return next_table(e, 0);
    }
    let t = new_table()?;
    // A huge entry's frame is aligned to its size; bit 12 would be PAT,
    // which the boot tables never set.
    let base = v & ADDR_MASK & !(size - 1);
    let flags = v & !ADDR_MASK;
    let sub = size / 512;
    // Entries one level down are huge unless they are 4 KiB pages.
    let leaf = if sub == PAGE { flags & !HUGE } else { flags };
    for (i, s) in t.0.iter().enumerate() {
        s.store((base + i as u64 * sub) | leaf, Ordering::Relaxed);
    }
    // Same frames, same rights: the swap changes no translation.
    e.store(
        t as *const PageTable as u64 | (flags & !HUGE & !NO_EXECUTE),
        Ordering::Release,
    );
    Ok(t)
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

/// The 4 KiB entry of identity-mapped `addr`, splitting large pages on the
/// way when `split_large`.
fn leaf_4k(addr: u64, split_large: bool) -> Result<&'static AtomicU64, MapError> {
    let pml4e = &boot::BOOT_PML4.0[index(addr, 3)];
    let pdpt = next_table(pml4e, addr)?;
    let (pd, pt);
    if split_large {
        pd = split(&pdpt.0[index(addr, 2)], 1 << 30)?;
        pt = split(&pd.0[index(addr, 1)], LARGE)?;
    } else {
        pd = next_table(&pdpt.0[index(addr, 2)], addr)?;
        pt = next_table(&pd.0[index(addr, 1)], addr)?;
    }
    Ok(&pt.0[index(addr, 0)])
}

/// Maps the 4 KiB page at `virt` to `phys` (read/write, no execute),
/// creating page tables as needed. Only for addresses outside the identity
/// map, and only while no other core can use them: a new mapping needs no
/// TLB flush, and no other core has the address cached.
pub(crate) fn map_4k(virt: u64, phys: u64) -> Result<(), MapError> {
    leaf_4k(virt, false)?.store(
        (phys & ADDR_MASK) | Access::ReadWrite.bits(),
        Ordering::Release,
    );
    Ok(())
}

/// Gives the 4 KiB page at identity-mapped `addr` (in the first 2 MiB or
/// the kernel image's 2 MiB pages, which [`protect_kernel`] split) the
/// rights `access`, and drops the calling core's cached translation of it.
/// Other cores must drop theirs (by a TLB flush) before relying on the
/// change.
///
/// # Safety
/// Nothing may rely on the page's current rights while the new ones hold:
/// no live reference into a page made unwritable (or unmapped) is written
/// through, no code running from a page made non-executable.
pub(crate) unsafe fn set_access(addr: u64, access: Access) -> Result<(), MapError> {
    let page = addr & !(PAGE - 1);
    leaf_4k(page, false)?.store(page | access.bits(), Ordering::Release);
    tlb::flush(VirtAddr::new(page));
    Ok(())
}

/// A `PT_LOAD` segment of the image: its page-rounded range and rights.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    /// The pages it covers.
    pub range: Range<u64>,
    /// What they allow.
    pub access: Access,
}

/// Most `PT_LOAD` segments read (`rust-lld` writes three or four).
const MAX_SEGMENTS: usize = 8;

/// What [`protect_kernel`] did, for the boot log.
#[derive(Clone, Debug)]
pub(crate) struct Protection {
    /// EFER.NXE is on: data pages are no-execute.
    pub nx: bool,
    /// The image's segments.
    pub segments: [Option<Segment>; MAX_SEGMENTS],
    /// Pages two segments with different rights share (given the union).
    pub shared_pages: u64,
}

/// The `PT_LOAD` segments of the running image, from the program headers
/// the linker put in its first page.
fn image_segments() -> Result<[Option<Segment>; MAX_SEGMENTS], MapError> {
    const PT_LOAD: u32 = 1;
    let image = super::mem::kernel_image();
    let ehdr = image.start as *const u8;
    let read_at = |off: u64, len: u64| -> Result<*const u8, MapError> {
        if image.start + off + len > image.end {
            return Err(MapError::BadImage("headers beyond the image"));
        }
        Ok(ehdr.wrapping_add(off as usize))
    };
    // SAFETY: the ELF header is the first thing in the loaded image (its
    // first segment starts at file offset 0), identity mapped; every read
    // is bounds-checked against the image by `read_at`.
    unsafe {
        if read_at(0, 64)?.cast::<[u8; 4]>().read() != *b"\x7fELF" {
            return Err(MapError::BadImage("no ELF magic at __ehdr_start"));
        }
        let phoff = read_at(0x20, 8)?.cast::<u64>().read_unaligned();
        let phentsize = u64::from(read_at(0x36, 2)?.cast::<u16>().read_unaligned());
        let phnum = u64::from(read_at(0x38, 2)?.cast::<u16>().read_unaligned());
        if phentsize < 56 {
            return Err(MapError::BadImage("program header entries too small"));
        }
        let mut out = [const { None }; MAX_SEGMENTS];
        let mut n = 0;
        for i in 0..phnum {
            let ph = read_at(phoff + i * phentsize, 56)?;
            let kind = ph.cast::<u32>().read_unaligned();
            let flags = ph.add(4).cast::<u32>().read_unaligned();
            let vaddr = ph.add(16).cast::<u64>().read_unaligned();
            let paddr = ph.add(24).cast::<u64>().read_unaligned();
            let memsz = ph.add(40).cast::<u64>().read_unaligned();
            if kind != PT_LOAD || memsz == 0 {
                continue;
            }
            if vaddr != paddr {
                return Err(MapError::BadImage(
                    "a segment not linked at its load address",
                ));
            }
            if n == MAX_SEGMENTS {
                return Err(MapError::BadImage("too many PT_LOAD segments"));
            }
            out[n] = Some(Segment {
                range: vaddr & !(PAGE - 1)..(vaddr + memsz).next_multiple_of(PAGE),
                access: Access::of_segment(flags),
            });
            n += 1;
        }
        Ok(out)
    }
}

/// Turns on EFER.NXE where the CPU has it and records the NX bit to use.
fn enable_nx() -> bool {
    let has = raw_cpuid::CpuId::new()
        .get_extended_processor_and_feature_identifiers()
        .is_some_and(|f| f.has_execute_disable());
    if has {
        // SAFETY: the CPU supports EFER.NXE (CPUID above); no entry has
        // bit 63 set yet, and setting NXE changes no existing translation.
        unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
        NX_BIT.store(NO_EXECUTE, Ordering::Relaxed);
    }
    has
}

/// Applies the page permissions described in the module documentation,
/// with `boot_guard` (the page under the boot stack) unmapped. Called once,
/// on the boot core, before any other core runs; needs the heap (for page
/// tables).
pub(crate) fn protect_kernel(boot_guard: Range<u64>) -> Result<Protection, MapError> {
    BOOT_PAGE_SIZE.store(page_size(), Ordering::Relaxed);
    let nx = enable_nx();
    let segments = image_segments()?;
    let segs = || segments.iter().flatten();
    let Some(text) = segs()
        .filter(|s| s.access.executable())
        .map(|s| s.range.clone())
        .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))
    else {
        return Err(MapError::BadImage("no executable segment"));
    };
    TEXT.call_once(|| text);

    // The 2 MiB regions to map with 4 KiB pages: the first (the AP
    // trampoline's page must be executable only while APs start) and those
    // of the image and the boot stack's guard.
    let image = super::mem::kernel_image();
    let mut split_regions = [0..LARGE, 0..0];
    split_regions[1] = image.start & !(LARGE - 1)..image.end.next_multiple_of(LARGE);
    // First split with unchanged rights, so no translation changes while
    // the tables are rebuilt under the running code.
    for r in &split_regions {
        for a in r.clone().step_by(LARGE as usize) {
            leaf_4k(a, true)?;
        }
    }
    tlb::flush_all();

    let mut shared_pages = 0;
    for r in &split_regions {
        for page in r.clone().step_by(PAGE as usize) {
            let mut access = Access::None;
            let mut hits = 0;
            for s in segs().filter(|s| s.range.contains(&page)) {
                access = access.union(s.access);
                hits += 1;
            }
            if hits > 1 {
                shared_pages += 1;
            }
            if boot_guard.contains(&page) {
                access = Access::None;
            } else if hits == 0 {
                access = Access::ReadWrite;
            }
            leaf_4k(page, false)?.store(page | access.bits(), Ordering::Release);
        }
    }
    // Every large page: no execute.
    let nx_bit = NX_BIT.load(Ordering::Relaxed);
    if nx_bit != 0 {
        let pdpt = table_at(boot::BOOT_PML4.0[0].load(Ordering::Acquire));
        let gib = boot::BOOT_MAPPED_GIB.load(Ordering::Relaxed) as usize;
        for e in &pdpt.0[..gib.min(512)] {
            let v = e.load(Ordering::Acquire);
            if v & PRESENT == 0 {
                continue;
            }
            if v & HUGE != 0 {
                e.fetch_or(nx_bit, Ordering::AcqRel);
                continue;
            }
            for pde in &table_at(v).0 {
                let v = pde.load(Ordering::Acquire);
                if v & PRESENT != 0 && v & HUGE != 0 {
                    pde.fetch_or(nx_bit, Ordering::AcqRel);
                }
            }
        }
    }
    tlb::flush_all();
    // SAFETY: the kernel writes to no read-only page: code and read-only
    // data are never written (the AP trampoline is copied out of
    // `.rodata`, and its page is made read-only only after the copy).
    unsafe { Cr0::update(|f| f.insert(Cr0Flags::WRITE_PROTECT)) };
    Ok(Protection {
        nx,
        segments,
        shared_pages,
    })
}
