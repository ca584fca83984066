//! A kernel that writes to its own code on purpose: `.text` is mapped
//! read-only (and CR0.WP makes that bind the kernel too), so the write must
//! end in a reported page fault whose error code says "write, protection
//! violation" and whose CR2 is the written address, inside the kernel's
//! text. The hook this kernel arms checks the report and exits 0.
//! Native only (hosted it says so and passes).
#![cfg_attr(target_os = "none", no_std, no_main)]

// Links the facade, which brings the image's global allocator when the
// allocator components (not the kernel core's boot heap) provide it.
#[cfg(target_os = "none")]
use ebbrt as _;

#[cfg(target_os = "none")]
mod kernel {
    use core::sync::atomic::{AtomicU64, Ordering};

    use ebbrt_core::console::print;
    use ebbrt_core::native::paging;
    use ebbrt_core::native::trap::{self, Fault};

    const NAME: &str = "qemu_protect_text::write_to_text_faults";

    /// Where the kernel writes: the first byte of [`victim`].
    static TARGET: AtomicU64 = AtomicU64::new(0);

    macro_rules! say {
        ($($t:tt)*) => { print(format_args!("{}\n", format_args!($($t)*))) };
    }

    fn check(f: &Fault) -> i32 {
        let target = TARGET.load(Ordering::Relaxed);
        let checks = [
            ("a page fault (vector 14)", f.vector == 14),
            (
                "error code present | write, kernel mode, not a fetch (0x3)",
                f.error & 0x1f == 0x3,
            ),
            ("CR2 the written address", f.cr2 == target),
            (
                "CR2 in the kernel's text",
                paging::kernel_text().contains(&f.cr2),
            ),
            (
                "report says protection violation on write",
                f.report.contains("page fault")
                    && f.report.contains("protection violation on write"),
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
                    "ebbrt-test: [0] {NAME} ... FAILED: not {what} (error {:#x}, CR2 {:#x}, target {target:#x}, text {:#x?})",
                    f.error,
                    f.cr2,
                    paging::kernel_text()
                );
                say!("ebbrt-test: done: 0 passed, 1 failed");
                1
            }
        }
    }

    #[inline(never)]
    fn victim() -> u32 {
        core::hint::black_box(7)
    }

    #[unsafe(no_mangle)]
    pub extern "Rust" fn __ebbrt_app_main() -> ! {
        ebbrt_core::native::start_main(|| async {
            say!("ebbrt-test: running 1 tests (from 0)");
            let target = victim as fn() -> u32 as usize as u64;
            TARGET.store(target, Ordering::Relaxed);
            if !paging::kernel_text().contains(&target) {
                say!(
                    "ebbrt-test: [0] {NAME} ... FAILED: {target:#x} is not in the kernel text {:#x?}",
                    paging::kernel_text()
                );
                say!("ebbrt-test: done: 0 passed, 1 failed");
                return 1;
            }
            trap::on_next_fault(check);
            // SAFETY: none: this write is meant to fault (the page is
            // read-only), and the kernel's handler ends the run. Were it to
            // succeed, `ret` is a valid first byte for `victim`, which is
            // not called again.
            unsafe { core::ptr::write_volatile(target as *mut u8, 0xc3) };
            say!("ebbrt-test: [0] {NAME} ... FAILED: wrote to the kernel text without a fault");
            say!("ebbrt-test: done: 0 passed, 1 failed");
            1
        })
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!("qemu_protect_text is a native test kernel: `cargo ebbrt test` boots it under QEMU");
}
