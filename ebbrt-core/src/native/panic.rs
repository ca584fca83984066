//! The panic handler: location, message and backtrace on the console
//! (its emergency writer),
//! the running test's `FAILED` line, then exit with
//! [`exit::PANIC`](super::exit::PANIC).

use core::panic::PanicInfo;
use core::sync::atomic::Ordering;

use super::{backtrace, exit, percpu};
use crate::console;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // A panic while reporting a panic (say, in a Display impl) must not
    // recurse: say so on the raw port and leave.
    if let Some(cpu) = percpu::this()
        && cpu.panicking.swap(true, Ordering::AcqRel)
    {
        console::emergency(&mut |out| {
            let _ = writeln!(out, "\nebbrt: panic while panicking: {}", info.message());
        });
        exit::exit(exit::PANIC);
    }
    console::flush();
    let core = percpu::current_index().map_or(-1, |c| c as i64);
    console::emergency(&mut |out| {
        match info.location() {
            Some(loc) => {
                let _ = writeln!(
                    out,
                    "\nebbrt: core {core} panicked at {loc}:\n{}",
                    info.message()
                );
            }
            None => {
                let _ = writeln!(out, "\nebbrt: core {core} panicked:\n{}", info.message());
            }
        }
        let _ = writeln!(out, "{}", backtrace::HEADER);
        backtrace::print(out, backtrace::current_frame(), 0);
    });
    match info.location() {
        Some(loc) => crate::test_support::report_panic(format_args!("{loc}: {}", info.message())),
        None => crate::test_support::report_panic(format_args!("{}", info.message())),
    };
    exit::exit(exit::PANIC)
}
