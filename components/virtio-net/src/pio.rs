//! x86 port I/O: the legacy PCI configuration mechanism (0xCF8/0xCFC) and
//! legacy virtio's I/O BAR.

use core::arch::asm;

/// Reads a byte from `port`.
pub(crate) fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port reads have no memory effects; the ports this driver uses
    // belong to the PCI configuration mechanism or to its own device's BAR.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Reads a 16-bit word from `port`.
pub(crate) fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: as for `inb`.
    unsafe {
        asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Reads a 32-bit word from `port`.
pub(crate) fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `inb`.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a byte to `port`.
pub(crate) fn outb(port: u16, v: u8) {
    // SAFETY: port writes touch no memory; callers pass ports of the PCI
    // configuration mechanism or of their own device.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 16-bit word to `port`.
pub(crate) fn outw(port: u16, v: u16) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 32-bit word to `port`.
pub(crate) fn outl(port: u16, v: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    };
}
