//! Leaving the library OS: QEMU's `isa-debug-exit` device (port 0xf4).
//!
//! Writing `code` makes QEMU exit with status `(code << 1) | 1`; `cargo
//! ebbrt` maps it back with `(status - 1) / 2`. Without the device the
//! write is ignored and the core halts for good.

use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::instructions::port::Port;

/// Exit code of a kernel that panicked (as a Rust process's).
pub const PANIC: i32 = 101;
/// Exit code of a kernel stopped by a CPU exception (page fault, ...).
pub const FAULT: i32 = 102;
/// Exit code of a kernel that could not boot (bad boot info, no memory).
pub const BOOT_FAILURE: i32 = 103;

const DEBUG_EXIT_PORT: u16 = 0xf4;

static EXITING: AtomicBool = AtomicBool::new(false);

/// Ends the run with `code`: flushes this core's console line, then asks
/// QEMU to exit. Only the first caller (of any core) acts; others halt.
pub fn exit(code: i32) -> ! {
    if !EXITING.swap(true, Ordering::AcqRel) {
        crate::console::flush();
        let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
        // SAFETY: port 0xf4 is QEMU's isa-debug-exit (or nothing at all);
        // writing it has no effect on memory.
        unsafe { port.write(code as u32) };
    }
    halt_forever()
}

/// Stops this core: interrupts off, halted.
pub(crate) fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
