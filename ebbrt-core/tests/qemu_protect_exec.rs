//! A kernel that jumps into its own data on purpose: `.data` is mapped
//! no-execute (EFER.NXE), so calling a function pointer that points at a
//! `ret` instruction stored in a static must end in a reported page fault
//! whose error code has the instruction-fetch bit and whose CR2 and RIP are
//! the static's address. The hook this kernel arms checks the report and
//! exits 0. Native only (hosted it says so and passes).
#![cfg_attr(target_os = "none", no_std, no_main)]

// Links the facade, which brings the image's global allocator when the
// allocator components (not the kernel core's boot heap) provide it.
#[cfg(target_os = "none")]
use ebbrt as _;

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::AtomicU8;

    use ebbrt_core::console::print;
    use ebbrt_core::native::paging;
    use ebbrt_core::native::trap::{self, Fault};

    const NAME: &str = "qemu_protect_exec::jump_into_data_faults";

    /// A `ret` instruction in `.data` (interior mutability keeps it out of
    /// `.rodata`, a non-zero value out of `.bss`).
    static RET: AtomicU8 = AtomicU8::new(0xc3);

    macro_rules! say {
        ($($t:tt)*) => { print(format_args!("{}\n", format_args!($($t)*))) };
    }

    fn target() -> u64 {
        RET.as_ptr() as u64
    }

    fn check(f: &Fault) -> i32 {
        let checks = [
            ("a page fault (vector 14)", f.vector == 14),
            (
                "error code present | instruction fetch, kernel mode (0x11)",
                f.error & 0x1d == 0x11,
            ),
            ("CR2 the static's address", f.cr2 == target()),
            ("RIP the static's address", f.frame.rip == target()),
            (
                "report says protection violation on instruction fetch",
                f.report.contains("page fault")
                    && f.report
                        .contains("protection violation on instruction fetch"),
            ),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            None => {
                say!("ebbrt-test: [0] {NAME} ... ok");
                say!("ebbrt-test: done: 1 passed, 0 failed");
                0
            }
            Some((what, _)) => {
                say!(
                    "ebbrt-test: [0] {NAME} ... FAILED: not {what} (error {:#x}, CR2 {:#x}, RIP {:#x}, target {:#x})",
                    f.error,
                    f.cr2,
                    f.frame.rip,
                    target()
                );
                say!("ebbrt-test: done: 0 passed, 1 failed");
                1
            }
        }
    }

    fn fail(why: core::fmt::Arguments) -> i32 {
        say!("ebbrt-test: [0] {NAME} ... FAILED: {why}");
        say!("ebbrt-test: done: 0 passed, 1 failed");
        1
    }

    #[unsafe(no_mangle)]
    pub extern "Rust" fn __ebbrt_app_main() -> ! {
        ebbrt_core::native::start_main(|| async {
            say!("ebbrt-test: running 1 tests (from 0)");
            if !paging::no_execute() {
                return fail(format_args!(
                    "the CPU has no no-execute bit, so data stays executable"
                ));
            }
            if paging::kernel_text().contains(&target()) {
                return fail(format_args!("the static is in the kernel text"));
            }
            trap::on_next_fault(check);
            // SAFETY: none: the call is meant to fault on its first
            // instruction fetch (the page is no-execute), and the kernel's
            // handler ends the run. Were it to run, `ret` returns at once
            // with nothing changed, as an `extern "C" fn()` may.
            let f: extern "C" fn() = unsafe { core::mem::transmute(RET.as_ptr()) };
            f();
            fail(format_args!("executed a `ret` in .data without a fault"))
        })
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!("qemu_protect_exec is a native test kernel: `cargo ebbrt test` boots it under QEMU");
}
