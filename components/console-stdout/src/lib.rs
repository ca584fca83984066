//! # ebbrt-console-stdout
//!
//! The hosted console: [`StdoutConsole`], a shared Ebb at the well-known
//! id `CONSOLE` implementing [`ebbrt_core::console::Console`] over the
//! process's stdout (and stderr for `eprint`). The `ebbrt` facade links it
//! into hosted builds for either console feature (`console-serial`,
//! `console-debugcon`): a Linux process has no serial port of its own.
//!
//! Each call writes its whole text under the stream's lock, so lines
//! printed by different cores never interleave. Write errors (a closed
//! pipe, say) are ignored: printing never takes the library OS down. It
//! uses `std` and no `unsafe` code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::io::Write;

use ebbrt_core::console::Console;
use ebbrt_core::ebb;
use ebbrt_core::ebb::ids;

/// The hosted console: the process's stdout, and stderr for errors.
#[ebb(shared, id = ids::CONSOLE, interface = Console, static_rep = instance, feature = "console-serial", default)]
pub struct StdoutConsole {
    _private: (),
}

static INSTANCE: StdoutConsole = StdoutConsole { _private: () };

fn instance() -> &'static StdoutConsole {
    &INSTANCE
}

impl Console for StdoutConsole {
    fn print(&self, args: fmt::Arguments<'_>) {
        let _ = std::io::stdout().lock().write_fmt(args);
    }

    fn eprint(&self, args: fmt::Arguments<'_>) {
        let _ = std::io::stderr().lock().write_fmt(args);
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }

    fn emergency(&self, report: &mut dyn FnMut(&mut dyn fmt::Write)) {
        // Straight to stderr (unbuffered), without allocating.
        report(&mut Stderr);
    }
}

/// `fmt::Write` over the process's stderr, each piece written as it comes.
struct Stderr;

impl fmt::Write for Stderr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let _ = std::io::stderr().write_all(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ebbrt_core::console::Console;
    use ebbrt_core::ebb::{binding, bound};

    #[test]
    fn it_is_the_bound_console() {
        let b = binding::<dyn Console>().expect("exactly one console in this test binary");
        assert_eq!(
            (b.component, b.crate_name),
            ("StdoutConsole", "ebbrt-console-stdout")
        );
        let r = ebbrt_core::registry::find("StdoutConsole").expect("linked");
        assert_eq!(r.interface, "ebbrt_core::console::Console");
        bound::<dyn Console>().unwrap().print(format_args!(""));
    }
}
