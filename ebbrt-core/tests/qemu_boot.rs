//! The smallest native kernel that exercises the kernel core without the
//! macros: it defines `__ebbrt_app_main` by hand, runs a task on every
//! core that sleeps 10 ms, checks each ran on its own core, and exits 0.
//! Follows the test-kernel output protocol so `cargo ebbrt test` counts it.
#![cfg_attr(target_os = "none", no_std, no_main)]

// Links the facade, which brings the image's global allocator when the
// allocator components (not the kernel core's boot heap) provide it.
#[cfg(target_os = "none")]
use ebbrt as _;

#[cfg(target_os = "none")]
mod kernel {
    use core::time::Duration;

    use ebbrt_core::console;
    use ebbrt_core::cpu;
    use ebbrt_core::exec;
    use ebbrt_core::native::start_main;
    use ebbrt_core::time::Instant;

    macro_rules! say {
        ($($t:tt)*) => { console::print(format_args!("{}\n", format_args!($($t)*))) };
    }

    async fn main() -> i32 {
        say!("ebbrt-test: running 1 tests (from 0)");
        let n = cpu::count();
        let t0 = Instant::now();
        let seen = ebbrt_core::on_each_core(|core| async move {
            exec::sleep(Duration::from_millis(10)).await;
            (core, cpu::current())
        })
        .await;
        let slept = t0.elapsed();
        let ok_cores = seen.len() == n && seen.iter().all(|(want, got)| want == got);
        let ok_time = slept >= Duration::from_millis(10) && slept < Duration::from_secs(5);
        if ok_cores && ok_time {
            say!("ebbrt-test: [0] qemu_boot::every_core_sleeps ... ok");
            say!("ebbrt-test: done: 1 passed, 0 failed");
            0
        } else {
            say!(
                "ebbrt-test: [0] qemu_boot::every_core_sleeps ... FAILED: {n} cores, ran on {seen:?}, slept {slept:?}"
            );
            say!("ebbrt-test: done: 0 passed, 1 failed");
            1
        }
    }

    #[unsafe(no_mangle)]
    pub extern "Rust" fn __ebbrt_app_main() -> ! {
        start_main(main)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!("qemu_boot is a native test kernel: `cargo ebbrt test` boots it under QEMU");
}
