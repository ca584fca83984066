//! The console of the hosted runtime: the process's stdout and stderr.
//!
//! Each call writes its whole text under the stream's lock, so lines printed
//! by different cores never interleave. Write errors (a closed pipe, say)
//! are ignored: printing must never take the library OS down.

use core::fmt;
use std::io::Write;

/// Prints to stdout; what `ebbrt::print!`/`ebbrt::println!` call.
pub fn print(args: fmt::Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Prints to stderr.
pub fn eprint(args: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}
