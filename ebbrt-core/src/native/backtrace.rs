//! Backtraces by frame-pointer walking (the target spec keeps frame
//! pointers in every function, `core` and `alloc` included).

use core::arch::asm;

use super::{mem, stack};

/// Most frames printed.
const MAX_FRAMES: usize = 48;

/// Calls `f` with each return address found from the frame at `rbp`
/// upwards. Stops at a null, misaligned, non-RAM or non-increasing frame
/// pointer, so a corrupt stack ends the walk instead of faulting.
pub(crate) fn walk(mut rbp: u64, mut f: impl FnMut(u64)) {
    for _ in 0..MAX_FRAMES {
        if rbp == 0
            || !rbp.is_multiple_of(8)
            || !(mem::is_ram(rbp..rbp + 16) || stack::contains(rbp..rbp + 16))
        {
            return;
        }
        // SAFETY: `rbp..rbp+16` is identity-mapped RAM (checked above);
        // reading it has no side effects even when it is not a frame.
        let (next, ret) = unsafe {
            (
                (rbp as *const u64).read(),
                (rbp as *const u64).add(1).read(),
            )
        };
        if ret == 0 {
            return;
        }
        f(ret);
        if next <= rbp {
            return;
        }
        rbp = next;
    }
}

/// The caller's frame pointer.
#[inline(always)]
pub(crate) fn current_frame() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// The line printed above a backtrace (faults and panics alike).
pub(crate) const HEADER: &str = "  backtrace (return addresses; addr2line -e <image> -f -C ADDR):";

/// Prints the return addresses from the frame at `rbp`, numbered from
/// `first`, one per line; runs of one address (deep recursion) are folded
/// into a single line.
pub(crate) fn print(out: &mut dyn core::fmt::Write, rbp: u64, first: usize) {
    let mut i = first;
    let mut last = 0;
    let mut repeats = 0usize;
    let flush = |out: &mut dyn core::fmt::Write, repeats: &mut usize| {
        if *repeats > 0 {
            let _ = writeln!(out, "    ... the same address {repeats} more times");
            *repeats = 0;
        }
    };
    walk(rbp, |ret| {
        if ret == last {
            repeats += 1;
        } else {
            flush(out, &mut repeats);
            let _ = writeln!(out, "    #{i} {ret:#018x}");
            last = ret;
        }
        i += 1;
    });
    flush(out, &mut repeats);
}
