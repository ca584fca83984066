//! The console: a shared Ebb at the well-known id [`ids::CONSOLE`] over
//! the COM1 UART.
//!
//! Each core collects its output in a line buffer and sends whole lines to
//! the UART under its lock, so lines from different cores never interleave
//! mid-line even when one line is built by several `print!` calls. A
//! partial line is sent when the buffer fills, when the core goes idle,
//! and before exit. Before a core has entered its event loop (early boot)
//! output goes to the UART directly.

use alloc::boxed::Box;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use super::serial;
use crate::cpu::{self, MAX_CORES};
use crate::ebb::ids;
use crate::{Ebb, EbbId, EbbRef, Shared, StaticEbb};

const LINE: usize = 256;

struct LineBuf {
    buf: [u8; LINE],
    len: usize,
}

impl LineBuf {
    /// Sends everything up to the last newline (or everything, if `all`).
    fn flush(&mut self, all: bool) {
        let upto = if all {
            self.len
        } else {
            match self.buf[..self.len].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => return,
            }
        };
        if upto == 0 {
            return;
        }
        serial::lock().write_bytes(&self.buf[..upto]);
        self.buf.copy_within(upto..self.len, 0);
        self.len -= upto;
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == LINE {
                self.flush(false);
                if self.len == LINE {
                    // One line longer than the buffer: send what we have.
                    self.flush(true);
                }
            }
            let n = bytes.len().min(LINE - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

/// The console Ebb: per-core line buffers in front of the serial port.
pub struct Console {
    lines: Box<[spin::Mutex<LineBuf>]>,
}

impl Console {
    fn new() -> Self {
        Console {
            lines: (0..MAX_CORES)
                .map(|_| {
                    spin::Mutex::new(LineBuf {
                        buf: [0; LINE],
                        len: 0,
                    })
                })
                .collect(),
        }
    }

    /// Writes formatted output; whole lines reach the UART at once.
    pub fn write_fmt(&self, args: fmt::Arguments) {
        let Some(core) = cpu::try_current() else {
            serial::write_fmt(args);
            return;
        };
        // Only this core uses its buffer; it is held only if a panic or a
        // fault interrupted a print on this very core: then write directly.
        match self.lines[core.index()].try_lock() {
            Some(mut line) => {
                let _ = line.write_fmt(args);
                line.flush(false);
            }
            None => {
                let _ = serial::emergency().write_fmt(args);
            }
        }
    }

    /// Sends this core's partial line, if any.
    pub fn flush(&self) {
        if let Some(core) = cpu::try_current()
            && let Some(mut line) = self.lines[core.index()].try_lock()
        {
            line.flush(true);
        }
    }
}

impl Ebb for Console {
    fn miss(id: EbbId) -> &'static Self {
        crate::ebb::shared_miss(id)
    }
}

/// Set once the console instance exists: flushing must not create it
/// (flushes happen on the way out of a panic, maybe out of memory).
static CREATED: AtomicBool = AtomicBool::new(false);

impl Shared for Console {
    fn new_instance() -> Option<Self> {
        CREATED.store(true, Ordering::Release);
        Some(Console::new())
    }
}

// SAFETY: `ids::CONSOLE` is reserved for the console, and on native this is
// the only type registered under it.
unsafe impl StaticEbb for Console {
    const ID: EbbId = ids::CONSOLE;
}

crate::register_component! {
    Console {
        name: "Console",
        kind: crate::EbbKind::Shared,
        interface: "ebbrt_core::native::console::Console",
        summary: "The native console: per-core line buffers in front of the COM1 16550 UART.",
        id: Some(ids::CONSOLE),
    }
}

/// The console Ebb.
pub static CONSOLE: EbbRef<Console> = EbbRef::fixed();

/// Prints to the console (used by `ebbrt::print!`).
pub fn print(args: fmt::Arguments) {
    if cpu::try_current().is_some() {
        CONSOLE.write_fmt(args);
    } else {
        serial::write_fmt(args);
    }
}

/// Prints to the console's error stream: the same serial port natively.
pub fn eprint(args: fmt::Arguments) {
    print(args)
}

/// Sends the current core's partial console line.
pub(crate) fn flush_local() {
    if cpu::try_current().is_some() && CREATED.load(Ordering::Acquire) {
        CONSOLE.flush();
    }
}
