//! x86 port I/O: the legacy PCI configuration mechanism (0xCF8/0xCFC) and
//! legacy virtio's I/O BAR, over `x86_64`'s `Port` (the same `in`/`out`
//! instructions, with the same asm options, that this file once wrote out).
//!
//! Every function is `unsafe`: a port write can program a device to read
//! or write memory (a queue's physical address, a driver-ready status, a
//! bus-master enable), so its caller vouches for the port and the value.
//! The types that use them carry that promise instead: [`crate::pci::PortCam`]
//! and [`crate::legacy::LegacyTransport`] are made by `unsafe fn`s.

use x86_64::instructions::port::{Port, PortRead, PortWrite};

/// # Safety
/// `port` belongs to the PCI configuration mechanism or to a device this
/// driver owns; reading it has no effect the driver does not expect.
unsafe fn read<T: PortRead>(port: u16) -> T {
    // SAFETY: port reads touch no memory; the port is ours (the caller's
    // contract).
    unsafe { Port::<T>::new(port).read() }
}

/// # Safety
/// `port` belongs to the PCI configuration mechanism or to a device this
/// driver owns, and `v` directs the device to no memory but what the
/// driver gave it (a port write can start DMA).
unsafe fn write<T: PortWrite>(port: u16, v: T) {
    // SAFETY: the caller's contract: our port, a value that points the
    // device only at memory the driver owns.
    unsafe { Port::<T>::new(port).write(v) }
}

/// Reads a byte from `port`.
///
/// # Safety
/// As for every read here: the port is the configuration mechanism's or
/// our device's.
pub(crate) unsafe fn inb(port: u16) -> u8 {
    // SAFETY: forwarded.
    unsafe { read(port) }
}

/// Reads a 16-bit word from `port`.
///
/// # Safety
/// As for [`inb`].
pub(crate) unsafe fn inw(port: u16) -> u16 {
    // SAFETY: forwarded.
    unsafe { read(port) }
}

/// Reads a 32-bit word from `port`.
///
/// # Safety
/// As for [`inb`].
pub(crate) unsafe fn inl(port: u16) -> u32 {
    // SAFETY: forwarded.
    unsafe { read(port) }
}

/// Writes a byte to `port`.
///
/// # Safety
/// The port is the configuration mechanism's or our device's, and the value
/// points the device at no memory the driver does not own.
pub(crate) unsafe fn outb(port: u16, v: u8) {
    // SAFETY: forwarded.
    unsafe { write(port, v) }
}

/// Writes a 16-bit word to `port`.
///
/// # Safety
/// As for [`outb`].
pub(crate) unsafe fn outw(port: u16, v: u16) {
    // SAFETY: forwarded.
    unsafe { write(port, v) }
}

/// Writes a 32-bit word to `port`.
///
/// # Safety
/// As for [`outb`].
pub(crate) unsafe fn outl(port: u16, v: u32) {
    // SAFETY: forwarded.
    unsafe { write(port, v) }
}
