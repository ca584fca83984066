//! # ebbrt-console-debugcon
//!
//! An alternative native console: [`DebugconConsole`], a shared Ebb at the
//! well-known id `CONSOLE` implementing [`ebbrt_core::console::Console`]
//! over QEMU's debug console, I/O port 0xe9 (`-debugcon stdio` or
//! `-debugcon file:...` on QEMU's command line; `cargo ebbrt run` and
//! `test` add it). Selected by the `ebbrt` facade's feature
//! `console-debugcon` instead of the 16550 UART: no device to probe, no
//! baud rate, no line-status polling — a byte is one `out` instruction,
//! which QEMU handles without emulating a UART. Without a debug console
//! device the bytes are dropped by the machine.
//!
//! It owns port 0xe9 and nothing else; its `unsafe` code is the port
//! write, in `port`. As the UART console, it compiles on any x86_64
//! target (the hosted catalog links it for its record) and the facade
//! links it only into native images.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

use core::fmt::{self, Write};

use ebbrt_core::console::{Console, LineBuffers, SinkWriter};
use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;

#[allow(unsafe_code)]
mod port {
    use x86_64::instructions::port::PortWriteOnly;

    /// QEMU's debug console port.
    const DEBUGCON: u16 = 0xe9;

    /// Writes `bytes` to port 0xe9.
    pub(crate) fn write(bytes: &[u8]) {
        let mut port = PortWriteOnly::<u8>::new(DEBUGCON);
        for &b in bytes {
            // SAFETY: port 0xe9 is QEMU's debug console (or nothing): a
            // write has no effect beyond emitting the byte, touches no
            // memory and starts no DMA; this crate alone uses the port.
            unsafe { port.write(b) };
        }
    }
}

/// The native console on QEMU's debug console (port 0xe9): per-core line
/// buffers in front of the port.
///
/// Lines from different cores never interleave mid-line (each core sends
/// whole lines under one lock); a partial line goes out when the core
/// goes idle and before exit. Fault and panic reports write to the port
/// directly, without the lock: a byte write cannot be left half done.
#[ebb(shared, id = ids::CONSOLE, interface = Console, static_rep = instance, feature = "console-debugcon")]
pub struct DebugconConsole {
    lines: LineBuffers,
}

static INSTANCE: DebugconConsole = DebugconConsole {
    lines: LineBuffers::new(send),
};

/// Serialises whole lines from different cores.
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

fn instance() -> &'static DebugconConsole {
    &INSTANCE
}

fn send(bytes: &[u8]) {
    let _held = LOCK.lock();
    port::write(bytes);
}

impl Console for DebugconConsole {
    fn print(&self, args: fmt::Arguments<'_>) {
        self.lines.print(args, &mut |args| {
            let _ = SinkWriter(port::write).write_fmt(args);
        });
    }

    fn flush(&self) {
        self.lines.flush();
    }

    fn emergency(&self, report: &mut dyn FnMut(&mut dyn Write)) {
        report(&mut SinkWriter(port::write));
    }
}

#[cfg(test)]
mod tests {
    use ebbrt_core::registry;

    #[test]
    fn the_record_names_the_interface_and_feature() {
        let r = registry::find("DebugconConsole").expect("linked");
        assert_eq!(r.interface, "ebbrt_core::console::Console");
        assert_eq!((r.feature, r.default), (Some("console-debugcon"), false));
    }
}
