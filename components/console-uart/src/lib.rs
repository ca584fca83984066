//! # ebbrt-console-uart
//!
//! The default native console: [`UartConsole`], a shared Ebb at the
//! well-known id `CONSOLE` implementing [`ebbrt_core::console::Console`]
//! over the PC's COM1 16550 UART (the `uart_16550` crate). Selected by the
//! `ebbrt` facade's default feature `console-serial` on native builds
//! (hosted, that feature means stdout, `ebbrt-console-stdout`).
//!
//! It owns the UART: probing it at the first write, the lock that
//! serialises cores, and the take-over of that lock for fault reports. It
//! must not buffer beyond a line per core, nor allocate: a panic's report
//! travels through it. Its `unsafe` code is the port I/O, in `uart`.
//!
//! The port instructions compile on any x86_64 target, so the hosted
//! catalog links this crate for its record; the facade links it only into
//! native images, where ring 0 may use the port.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

use core::fmt::{self, Write};

use ebbrt_core::console::{Console, LineBuffers};
use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;

#[allow(unsafe_code)]
mod uart;

/// The native console on the COM1 16550 UART: per-core line buffers in
/// front of the port.
///
/// Each core collects its output and sends whole lines under the UART's
/// lock, so lines from different cores never interleave mid-line; a
/// partial line goes out when the core goes idle and before exit. Before
/// the cores start, output goes to the port directly. A fault or panic
/// report takes the lock over from its own core (interrupted mid-print) or
/// from a core that holds it for too long (one that died holding it).
#[ebb(shared, id = ids::CONSOLE, interface = Console, static_rep = instance, feature = "console-serial", default)]
pub struct UartConsole {
    lines: LineBuffers,
}

static INSTANCE: UartConsole = UartConsole {
    lines: LineBuffers::new(send),
};

fn instance() -> &'static UartConsole {
    &INSTANCE
}

fn send(bytes: &[u8]) {
    uart::lock().write_bytes(bytes);
}

impl Console for UartConsole {
    fn print(&self, args: fmt::Arguments<'_>) {
        self.lines.print(args, &mut |args| {
            let _ = uart::emergency().write_fmt(args);
        });
    }

    fn flush(&self) {
        self.lines.flush();
    }

    fn emergency(&self, report: &mut dyn FnMut(&mut dyn Write)) {
        report(&mut uart::emergency());
    }
}

#[cfg(test)]
mod tests {
    use ebbrt_core::registry;

    #[test]
    fn the_record_names_the_interface_and_feature() {
        let r = registry::find("UartConsole").expect("linked");
        assert_eq!(r.interface, "ebbrt_core::console::Console");
        assert_eq!((r.feature, r.default), (Some("console-serial"), true));
        assert_eq!(r.id, Some(ebbrt_core::ebb::ids::CONSOLE));
    }
}
