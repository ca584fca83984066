//! A kernel that page-faults on purpose: the kernel must print the vector,
//! the error code, CR2, the registers and a backtrace, then hand the fault
//! to the hook this kernel armed, which checks the report and exits 0.
//! Native only (hosted it says so and passes).
#![cfg_attr(target_os = "none", no_std, no_main)]

// Links the facade, which brings the image's global allocator when the
// allocator components (not the kernel core's boot heap) provide it.
#[cfg(target_os = "none")]
use ebbrt as _;

#[cfg(target_os = "none")]
mod kernel {
    use ebbrt_core::console::print;
    use ebbrt_core::native::trap::{self, Fault};

    const BAD: u64 = 0x5ead_0000_0000;

    macro_rules! say {
        ($($t:tt)*) => { print(format_args!("{}\n", format_args!($($t)*))) };
    }

    fn check(f: &Fault) -> i32 {
        let checks = [
            ("vector 14", f.vector == 14),
            ("not-present read", f.error & 0b11 == 0),
            ("CR2", f.cr2 == BAD),
            (
                "report names it",
                f.report.contains("page fault") && f.report.contains("0x00005ead00000000"),
            ),
            (
                "report has registers",
                f.report.contains("rip ") && f.report.contains("r15"),
            ),
            ("report has a backtrace", f.report.contains("#1 0x")),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            None => {
                say!("ebbrt-test: [0] qemu_fault::page_fault_is_reported ... ok");
                say!("ebbrt-test: done: 1 passed, 0 failed");
                0
            }
            Some((what, _)) => {
                say!("ebbrt-test: [0] qemu_fault::page_fault_is_reported ... FAILED: {what}");
                say!("ebbrt-test: done: 0 passed, 1 failed");
                1
            }
        }
    }

    #[inline(never)]
    fn fault() -> u64 {
        // SAFETY: none: this read is meant to fault (BAD is canonical but far above RAM
        // and the identity map), and the kernel's handler ends the run.
        unsafe { core::ptr::read_volatile(BAD as *const u64) }
    }

    #[unsafe(no_mangle)]
    pub extern "Rust" fn __ebbrt_app_main() -> ! {
        ebbrt_core::native::start_main(|| async {
            say!("ebbrt-test: running 1 tests (from 0)");
            trap::on_next_fault(check);
            let v = fault();
            say!("read {v:#x} from an unmapped address: no fault raised");
            say!("ebbrt-test: [0] qemu_fault::page_fault_is_reported ... FAILED: no fault");
            1
        })
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!("qemu_fault is a native test kernel: `cargo ebbrt test` boots it under QEMU");
}
