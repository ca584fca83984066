//! A kernel that overflows a core's stack on purpose: the unmapped guard
//! below every core stack must turn the overflow into a double fault that
//! the kernel reports as a stack overflow, instead of silently overwriting
//! memory. The hook this kernel arms checks the report and exits 0.
//! Native only (hosted it says so and passes).
#![cfg_attr(target_os = "none", no_std, no_main)]

// Links the facade, which brings the image's global allocator when the
// allocator components (not the kernel core's boot heap) provide it.
#[cfg(target_os = "none")]
use ebbrt as _;

#[cfg(target_os = "none")]
mod kernel {
    use core::hint::black_box;

    use ebbrt_core::console::print;
    use ebbrt_core::native::trap::{self, Fault};

    macro_rules! say {
        ($($t:tt)*) => { print(format_args!("{}\n", format_args!($($t)*))) };
    }

    fn check(f: &Fault) -> i32 {
        let checks = [
            ("a double fault", f.vector == 8),
            (
                "named a stack overflow",
                f.report.contains("stack overflow: "),
            ),
            ("on core 1's stack", f.report.contains("core 1's stack")),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            None => {
                say!("ebbrt-test: [0] qemu_overflow::stack_overflow_is_caught ... ok");
                say!("ebbrt-test: done: 1 passed, 0 failed");
                0
            }
            Some((what, _)) => {
                say!(
                    "ebbrt-test: [0] qemu_overflow::stack_overflow_is_caught ... FAILED: not {what}"
                );
                say!("ebbrt-test: done: 0 passed, 1 failed");
                1
            }
        }
    }

    /// Recurses with a 4 KiB frame until the stack runs out.
    #[inline(never)]
    fn deep(n: u64) -> u64 {
        let frame = black_box([n; 512]);
        if n == 0 {
            0
        } else {
            deep(n - 1).wrapping_add(black_box(frame)[7])
        }
    }

    #[unsafe(no_mangle)]
    pub extern "Rust" fn __ebbrt_app_main() -> ! {
        ebbrt_core::native::start_main(|| async {
            say!("ebbrt-test: running 1 tests (from 0)");
            trap::on_next_fault(check);
            let last = ebbrt_core::cpu::CoreId(ebbrt_core::cpu::count() as u32 - 1);
            // 1 GiB of frames: far more than any core stack.
            let v = ebbrt_core::spawn_on(last, async { deep(1 << 18) }).await;
            say!(
                "ebbrt-test: [0] qemu_overflow::stack_overflow_is_caught ... FAILED: recursion returned {v}"
            );
            say!("ebbrt-test: done: 0 passed, 1 failed");
            1
        })
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!("qemu_overflow is a native test kernel: `cargo ebbrt test` boots it under QEMU");
}
