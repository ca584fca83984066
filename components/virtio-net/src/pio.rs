//! x86 port I/O: the legacy PCI configuration mechanism (0xCF8/0xCFC) and
//! legacy virtio's I/O BAR, over `x86_64`'s `Port` (the same `in`/`out`
//! instructions, with the same asm options, that this file once wrote out).

use x86_64::instructions::port::{Port, PortRead, PortWrite};

fn read<T: PortRead>(port: u16) -> T {
    // SAFETY: port reads have no memory effects; the ports this driver uses
    // belong to the PCI configuration mechanism or to its own device's BAR.
    unsafe { Port::<T>::new(port).read() }
}

fn write<T: PortWrite>(port: u16, v: T) {
    // SAFETY: port writes touch no memory; callers pass ports of the PCI
    // configuration mechanism or of their own device.
    unsafe { Port::<T>::new(port).write(v) }
}

/// Reads a byte from `port`.
pub(crate) fn inb(port: u16) -> u8 {
    read(port)
}

/// Reads a 16-bit word from `port`.
pub(crate) fn inw(port: u16) -> u16 {
    read(port)
}

/// Reads a 32-bit word from `port`.
pub(crate) fn inl(port: u16) -> u32 {
    read(port)
}

/// Writes a byte to `port`.
pub(crate) fn outb(port: u16, v: u8) {
    write(port, v)
}

/// Writes a 16-bit word to `port`.
pub(crate) fn outw(port: u16, v: u16) {
    write(port, v)
}

/// Writes a 32-bit word to `port`.
pub(crate) fn outl(port: u16, v: u32) {
    write(port, v)
}
