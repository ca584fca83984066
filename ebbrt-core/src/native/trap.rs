//! CPU exceptions: report and exit.
//!
//! Nothing in the library OS recovers from a fault, so every exception
//! prints what a developer needs (vector, error code, CR2, registers, a
//! backtrace of return addresses to feed to `addr2line`) and ends the run
//! with [`exit::FAULT`](super::exit::FAULT).

use core::fmt::Write;

use x86_64::registers::control::Cr2;

use super::idt::TrapFrame;
use super::{backtrace, exit, serial};

fn name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        20 => "virtualization exception",
        21 => "control protection exception",
        _ => "reserved exception",
    }
}

/// Entered from the common stub for vectors 0..32. Never returns.
pub(crate) extern "C" fn exception(f: &TrapFrame) -> ! {
    let mut out = serial::emergency();
    let core = super::percpu::current_index();
    let _ = writeln!(
        out,
        "\nebbrt: CPU exception {} ({}) on core {}, error code {:#x}",
        f.vector,
        name(f.vector),
        core.map_or(-1, |c| c as i64),
        f.error
    );
    if f.vector == 14 {
        let addr = Cr2::read_raw();
        let e = f.error;
        let _ = writeln!(
            out,
            "  faulting address (CR2) {addr:#018x}: {} {} in {} mode{}",
            if e & 1 != 0 {
                "protection violation"
            } else {
                "page not present"
            },
            if e & 0x10 != 0 {
                "on instruction fetch"
            } else if e & 2 != 0 {
                "on write"
            } else {
                "on read"
            },
            if e & 4 != 0 { "user" } else { "kernel" },
            if e & 8 != 0 { ", reserved bit set" } else { "" },
        );
    } else if f.vector == 8 {
        let _ = writeln!(
            out,
            "  (a fault while delivering a fault: often a stack overflow)"
        );
    }
    let _ = writeln!(
        out,
        "  rip {:#018x}  rsp {:#018x}  rflags {:#010x}  cs {:#x}  ss {:#x}",
        f.rip, f.rsp, f.rflags, f.cs, f.ss
    );
    let regs = [
        ("rax", f.rax),
        ("rbx", f.rbx),
        ("rcx", f.rcx),
        ("rdx", f.rdx),
        ("rsi", f.rsi),
        ("rdi", f.rdi),
        ("rbp", f.rbp),
        ("r8 ", f.r8),
        ("r9 ", f.r9),
        ("r10", f.r10),
        ("r11", f.r11),
        ("r12", f.r12),
        ("r13", f.r13),
        ("r14", f.r14),
        ("r15", f.r15),
    ];
    for row in regs.chunks(3) {
        let _ = write!(out, " ");
        for (n, v) in row {
            let _ = write!(out, " {n} {v:#018x}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "  backtrace (return addresses; addr2line -e <image> -f -C ADDR):"
    );
    let _ = writeln!(out, "    #0 {:#018x}", f.rip);
    let mut i = 1;
    backtrace::walk(f.rbp, |ret| {
        let _ = writeln!(out, "    #{i} {ret:#018x}");
        i += 1;
    });
    drop(out);
    super::report_fault_to_test(f.vector, name(f.vector));
    exit::exit(exit::FAULT)
}
