//! CPU exceptions: report and exit.
//!
//! Nothing in the library OS recovers from a fault, so every exception
//! prints what a developer needs (vector, error code, CR2, registers, a
//! backtrace of return addresses to feed to `addr2line`) and ends the run
//! with [`exit::FAULT`].

use core::fmt::{self, Write};

use x86_64::registers::control::Cr2;

use super::idt::TrapFrame;
use super::{backtrace, exit};

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

/// A CPU exception, as a [`on_next_fault`] hook sees it.
#[derive(Debug)]
pub struct Fault<'a> {
    /// The vector (14 for a page fault).
    pub vector: u8,
    /// The error code the CPU pushed (0 if none).
    pub error: u64,
    /// CR2: the faulting address of a page fault.
    pub cr2: u64,
    /// The interrupted registers.
    pub frame: &'a TrapFrame,
    /// The report the kernel printed (truncated to 4 KiB).
    pub report: &'a str,
}

/// What a test kernel does with an expected fault: returns the exit code.
pub type FaultHook = fn(&Fault) -> i32;

static HOOK: spin::Mutex<Option<FaultHook>> = spin::Mutex::new(None);

/// Arms a one-shot hook for the next CPU exception (on any core): after
/// printing its report, the kernel calls `hook` and exits with the code it
/// returns instead of [`exit::FAULT`]. For test kernels that check the
/// fault path itself.
pub fn on_next_fault(hook: FaultHook) {
    *HOOK.lock() = Some(hook);
}

/// Copies the report into a fixed buffer as it is printed.
struct Capture {
    buf: [u8; 4096],
    len: usize,
}

impl Write for Capture {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes to the console's emergency writer and to a capture.
struct Tee<'a> {
    console: &'a mut dyn Write,
    capture: &'a mut Capture,
}

impl Write for Tee<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let _ = self.console.write_str(s);
        self.capture.write_str(s)
    }
}

/// Entered from the common stub for vectors 0..32. Never returns.
pub(crate) extern "C" fn exception(f: &TrapFrame) -> ! {
    let cr2 = Cr2::read_raw();
    let mut capture = Capture {
        buf: [0; 4096],
        len: 0,
    };
    crate::console::emergency(&mut |console| {
        let mut out = Tee {
            console,
            capture: &mut capture,
        };
        report(&mut out, f, cr2);
    });
    let hook = HOOK.try_lock().and_then(|mut h| h.take());
    if let Some(hook) = hook {
        let text = core::str::from_utf8(&capture.buf[..capture.len]).unwrap_or("");
        let code = hook(&Fault {
            vector: f.vector as u8,
            error: f.error,
            cr2,
            frame: f,
            report: text,
        });
        exit::exit(code);
    }
    super::report_fault_to_test(f.vector, name(f.vector));
    exit::exit(exit::FAULT)
}

fn report(out: &mut impl Write, f: &TrapFrame, cr2: u64) {
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
        let e = f.error;
        let _ = writeln!(
            out,
            "  faulting address (CR2) {cr2:#018x}: {} {} in {} mode{}",
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
    if matches!(f.vector, 8 | 14)
        && let Some(stack) = super::stack::guard_owner(cr2)
    {
        let _ = writeln!(
            out,
            "  stack overflow: {cr2:#x} is in the guard below {stack}"
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
    let _ = writeln!(out, "{}", backtrace::HEADER);
    let _ = writeln!(out, "    #0 {:#018x}", f.rip);
    backtrace::print(out, f.rbp, 1);
}
