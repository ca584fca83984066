//! The PVH boot information (`hvm_start_info`): the kernel command line,
//! the memory map and the ACPI RSDP address.
//!
//! Everything is copied into the kernel's own statics at boot, so the
//! memory QEMU put it in can be reused (and the AP trampoline may land on
//! it).

use core::fmt;

const MAGIC: u32 = 0x336e_c578;
/// Most memory-map entries kept; QEMU reports fewer than ten.
pub(crate) const MAX_MEMMAP: usize = 64;
/// Longest command line kept (bytes).
const MAX_CMDLINE: usize = 4096;

/// `struct hvm_start_info` (version 1), as in Xen's `arch-x86/hvm/start_info.h`.
#[repr(C)]
#[derive(Clone, Copy)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// One entry of the boot memory map (`struct hvm_memmap_table_entry`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemMapEntry {
    /// Physical start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type: 1 usable RAM, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS.
    pub kind: u32,
    reserved: u32,
}

/// E820 type of usable RAM.
pub const RAM: u32 = 1;

/// What the kernel kept from `hvm_start_info`.
pub(crate) struct BootInfo {
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    memmap: [MemMapEntry; MAX_MEMMAP],
    memmap_len: usize,
    /// Physical address of the ACPI RSDP, if the loader gave one.
    pub rsdp: Option<u64>,
    /// Where the loader put the structure, the command line and the memory
    /// map (to check that the boot page directories did not land on them).
    pub placed: [u64; 3],
}

/// Why the boot information could not be read.
#[derive(Debug)]
pub(crate) enum BootInfoError {
    /// EBX did not point at a `hvm_start_info`.
    BadMagic(u32),
    /// A version-0 structure carries no memory map.
    NoMemoryMap,
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic(m) => write!(
                f,
                "hvm_start_info has magic {m:#x}, expected {MAGIC:#x}: not booted through the PVH entry?"
            ),
            Self::NoMemoryMap => f.write_str("hvm_start_info (version 0) has no memory map"),
        }
    }
}

impl BootInfo {
    /// An empty record (filled by [`BootInfo::read`]).
    pub(crate) const fn empty() -> Self {
        BootInfo {
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            memmap: [MemMapEntry {
                addr: 0,
                size: 0,
                kind: 0,
                reserved: 0,
            }; MAX_MEMMAP],
            memmap_len: 0,
            rsdp: None,
            placed: [0; 3],
        }
    }

    /// Copies what the kernel needs out of the `hvm_start_info` at `paddr`.
    ///
    /// # Safety
    /// `paddr` must be the address the PVH loader passed in EBX, and memory
    /// must be identity mapped.
    pub(crate) unsafe fn read(&mut self, paddr: u32) -> Result<(), BootInfoError> {
        // SAFETY: the loader placed a start_info at `paddr` (caller); it is
        // identity mapped and may be unaligned-safe read as a copy.
        let si: StartInfo =
            unsafe { core::ptr::read_unaligned(paddr as usize as *const StartInfo) };
        if si.magic != MAGIC {
            return Err(BootInfoError::BadMagic(si.magic));
        }
        self.placed = [u64::from(paddr), si.cmdline_paddr, si.memmap_paddr];
        if si.cmdline_paddr != 0 {
            let p = si.cmdline_paddr as usize as *const u8;
            let mut n = 0;
            // SAFETY: the loader's command line is a NUL-terminated string in
            // identity-mapped memory; we stop at the NUL or our buffer's end.
            while n < MAX_CMDLINE - 1 && unsafe { p.add(n).read() } != 0 {
                // SAFETY: as above, `n` is before the terminating NUL.
                self.cmdline[n] = unsafe { p.add(n).read() };
                n += 1;
            }
            self.cmdline_len = n;
        }
        self.rsdp = (si.rsdp_paddr != 0).then_some(si.rsdp_paddr);
        if si.version < 1 || si.memmap_paddr == 0 {
            return Err(BootInfoError::NoMemoryMap);
        }
        let n = (si.memmap_entries as usize).min(MAX_MEMMAP);
        for i in 0..n {
            let p = (si.memmap_paddr as usize as *const MemMapEntry).wrapping_add(i);
            // SAFETY: the map has `memmap_entries` entries at `memmap_paddr`.
            self.memmap[i] = unsafe { core::ptr::read_unaligned(p) };
        }
        self.memmap_len = n;
        Ok(())
    }

    /// The kernel command line (invalid UTF-8 yields an empty line).
    pub(crate) fn cmdline(&'static self) -> &'static str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The boot memory map.
    pub(crate) fn memmap(&'static self) -> &'static [MemMapEntry] {
        &self.memmap[..self.memmap_len]
    }
}
