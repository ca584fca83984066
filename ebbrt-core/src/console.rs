//! The console: the [`Console`] interface, what `print!` reaches, and the
//! per-core line buffers that device consoles put in front of their port.
//!
//! The console is a swappable service: an Ebb at the well-known id
//! [`ids::CONSOLE`] that implements [`Console`], declared with
//! `#[ebb(shared, id = ids::CONSOLE, interface = Console, ...)]` by a
//! component crate (the 16550 UART and QEMU's debug console natively,
//! stdout hosted; the `ebbrt` facade's features pick one) or by the
//! application itself. [`print`], [`eprint`], [`flush`] and [`emergency`]
//! find it through the interface's link-time binding, so neither the
//! kernel core nor the print macros name the implementation.
//!
//! # The contract an implementation meets
//! - It is reachable on any thread at any time, including before the cores
//!   start (native early boot, a hosted thread that is no core) and inside
//!   a panic: declare it with `static_rep` (static storage, no heap on the
//!   way to it), or make sure its construction never fails.
//! - `print` sends the text of one call whole (lines from different cores
//!   do not interleave mid-line), or buffers and sends it by `flush`.
//! - [`Console::emergency`] never waits forever on a lock the interrupted
//!   code (or a dead core) holds and never allocates: it carries fault
//!   and panic reports.
//! - Output errors are swallowed: printing never takes the library OS
//!   down.

use core::fmt::{self, Write};

use crate::cpu::{self, MAX_CORES};
use crate::ebb::{bound, ids};

/// The console's contract (see the [module docs](self) for the rules an
/// implementation keeps).
#[ebbrt_macros::interface(id = ids::CONSOLE)]
pub trait Console: Sync {
    /// Prints formatted text.
    fn print(&self, args: fmt::Arguments<'_>);

    /// Prints to the error stream (by default the same as [`Self::print`]).
    fn eprint(&self, args: fmt::Arguments<'_>) {
        self.print(args)
    }

    /// Sends what the calling core has buffered, if anything.
    fn flush(&self) {}

    /// Runs `report` with a writer straight to the device, for a fatal
    /// report: must not wait on a lock held by the interrupted code or a
    /// dead core, nor allocate.
    fn emergency(&self, report: &mut dyn FnMut(&mut dyn Write));
}

/// Prints to the console (what `ebbrt::print!` calls). Without a console
/// in the image (an application that turned the default off and brought
/// none) the text is dropped; runtimes refuse to start in that case.
pub fn print(args: fmt::Arguments<'_>) {
    if let Ok(c) = bound::<dyn Console>() {
        c.print(args);
    }
}

/// Prints to the console's error stream.
pub fn eprint(args: fmt::Arguments<'_>) {
    if let Ok(c) = bound::<dyn Console>() {
        c.eprint(args);
    }
}

/// Sends the calling core's buffered console output.
pub fn flush() {
    if let Ok(c) = bound::<dyn Console>() {
        c.flush();
    }
}

/// Runs `report` with the console's emergency writer (see
/// [`Console::emergency`]); not at all without a console.
pub fn emergency(report: &mut dyn FnMut(&mut dyn Write)) {
    if let Ok(c) = bound::<dyn Console>() {
        c.emergency(report);
    }
}

const LINE: usize = 256;

/// One core's pending output.
pub struct LineBuf {
    buf: [u8; LINE],
    len: usize,
    sink: fn(&[u8]),
}

impl LineBuf {
    /// Sends everything up to the last newline (or everything, if `all`).
    fn send(&mut self, all: bool) {
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
        (self.sink)(&self.buf[..upto]);
        self.buf.copy_within(upto..self.len, 0);
        self.len -= upto;
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == LINE {
                self.send(false);
                if self.len == LINE {
                    // One line longer than the buffer: send what we have.
                    self.send(true);
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

/// Per-core line buffers in front of a byte sink, for device consoles:
/// each core collects its output and sends whole lines through `sink`
/// (which serialises cores, e.g. under the device's lock), so lines from
/// different cores never interleave mid-line even when one line is built by
/// several `print!` calls. A partial line goes out when the buffer fills,
/// on [`Self::flush`] (the event loop flushes before its core sleeps, and
/// runtimes before exit). Off-core (early boot, a thread that is no core)
/// output goes to `sink` directly. Static storage: `const fn new`.
pub struct LineBuffers {
    lines: [spin::Mutex<LineBuf>; MAX_CORES],
    sink: fn(&[u8]),
}

impl LineBuffers {
    /// Buffers in front of `sink`.
    pub const fn new(sink: fn(&[u8])) -> Self {
        LineBuffers {
            lines: [const {
                spin::Mutex::new(LineBuf {
                    buf: [0; LINE],
                    len: 0,
                    sink: drop_bytes,
                })
            }; MAX_CORES],
            sink,
        }
    }

    /// Buffers `args` on this core and sends the whole lines; `fallback`
    /// writes directly when this core's buffer is held (a panic or fault
    /// interrupted a print on this very core).
    pub fn print(&self, args: fmt::Arguments<'_>, fallback: &mut dyn FnMut(fmt::Arguments<'_>)) {
        let Some(core) = cpu::try_current() else {
            let _ = SinkWriter(self.sink).write_fmt(args);
            return;
        };
        match self.lines[core.index()].try_lock() {
            Some(mut line) => {
                line.sink = self.sink;
                let _ = line.write_fmt(args);
                line.send(false);
            }
            None => fallback(args),
        }
    }

    /// Sends this core's partial line, if any.
    pub fn flush(&self) {
        if let Some(core) = cpu::try_current()
            && let Some(mut line) = self.lines[core.index()].try_lock()
        {
            line.sink = self.sink;
            line.send(true);
        }
    }
}

fn drop_bytes(_: &[u8]) {}

/// A `fmt::Write` over a byte sink.
pub struct SinkWriter(pub fn(&[u8]));

impl Write for SinkWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        (self.0)(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::sync::Mutex;

    static OUT: Mutex<String> = Mutex::new(String::new());

    fn sink(b: &[u8]) {
        OUT.lock()
            .unwrap()
            .push_str(core::str::from_utf8(b).unwrap());
        OUT.lock().unwrap().push('|');
    }

    #[test]
    fn whole_lines_go_out_and_partial_ones_wait_for_flush() {
        static LB: LineBuffers = LineBuffers::new(sink);
        let out = crate::testing::run_on(1, || async {
            OUT.lock().unwrap().clear();
            let mut seen = std::vec::Vec::new();
            LB.print(format_args!("a{}", 1), &mut |_| panic!("not held"));
            seen.push(OUT.lock().unwrap().clone());
            LB.print(format_args!("b\nc"), &mut |_| panic!("not held"));
            seen.push(OUT.lock().unwrap().clone());
            LB.flush();
            seen.push(OUT.lock().unwrap().clone());
            let long = "x".repeat(300);
            LB.print(format_args!("{long}"), &mut |_| panic!("not held"));
            seen.push(OUT.lock().unwrap().clone());
            seen
        });
        assert_eq!(out[0], "");
        assert_eq!(out[1], "a1b\n|");
        assert_eq!(out[2], "a1b\n|c|");
        // A line longer than the buffer goes out in pieces, nothing lost.
        assert_eq!(out[3].matches('x').count(), 256);
        LB.print(format_args!("off-core\n"), &mut |_| panic!("not held"));
        assert!(OUT.lock().unwrap().ends_with("off-core\n|"));
    }
}
