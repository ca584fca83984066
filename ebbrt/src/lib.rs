//! # ebbrt
//!
//! The one dependency of an EbbRT application: the Ebb model and executor
//! from `ebbrt-core`, the attribute macros, and the runtime for the target
//! being built — the hosted runtime (`ebbrt-std`) on Linux, the native
//! library OS on `x86_64-ebbrt`. The same application source builds for
//! both.
//!
//! Cargo features of this crate select components (the menu is in its
//! Cargo.toml and in docs/components.md). A service with alternatives has
//! a default feature and alternatives that win over it, and only the
//! selected implementation is linked: a component crate that nothing
//! references is not linked, so neither are its records nor its bindings.
//! An application that turns a default off (`default-features = false`)
//! supplies its own implementation at the service's well-known id with
//! `#[ebb(..., interface = ...)]`, and `print!`, the kernel core and the
//! registry use it.
//!
//! It owns nothing but re-exports, the links that select components and
//! the `print!` family; it must not grow code of its own.
#![no_std]

pub use ebbrt_core::{
    Ebb, EbbError, EbbId, EbbKind, EbbRef, IoBuf, IoBufChain, JoinHandle, PerCore, PerCoreRoot,
    Shared, StaticEbb, console, cpu, ebb, exec, interface, io, iobuf, on_each_core, platform,
    registry, spawn_local, spawn_on, sync, time,
};
pub use ebbrt_macros::{main, test};

/// Memory interfaces, for applications that bring their own
/// general-purpose allocator.
pub mod memory {
    pub use ebbrt_core::memory::*;
}

/// The runtime of the target being built: hosted (`ebbrt-std`).
#[cfg(not(target_os = "none"))]
pub use ebbrt_std as runtime;

/// The runtime of the target being built: the native library OS.
#[cfg(target_os = "none")]
pub use ebbrt_core::native as runtime;

/// The network API of the runtime being built: async TCP and UDP sockets
/// (`TcpListener`, `TcpStream`, `UdpSocket`) with the same signatures on
/// both runtimes. Hosted, they are Linux sockets (`ebbrt_std::net`); a
/// listener sets `SO_REUSEPORT`, so every core may bind the same port.
#[cfg(all(not(target_os = "none"), feature = "net"))]
pub use runtime::net;

/// The network API of the runtime being built: natively, the smoltcp
/// stacks of `ebbrt-net` (one per NIC queue pair) over the virtio-net
/// driver, with the same socket types and signatures as hosted.
#[cfg(all(target_os = "none", feature = "net"))]
pub use ebbrt_net as net;

/// The virtio-net driver (natively, with the `net` feature): linked for
/// its NIC Ebb (at NET_DEVICE, bound to the network manager at link time)
/// and its component record; named for its diagnostics
/// (`VirtioNet::get().polling()`, `poll_stats()`).
#[cfg(all(target_os = "none", feature = "net"))]
pub use ebbrt_virtio_net as virtio_net;

// The console: the alternative wins over the default; hosted, either
// feature means stdout. Linked for its binding and record.
#[cfg(all(target_os = "none", feature = "console-debugcon"))]
use ebbrt_console_debugcon as _;
#[cfg(all(
    not(target_os = "none"),
    any(feature = "console-serial", feature = "console-debugcon")
))]
use ebbrt_console_stdout as _;
#[cfg(all(
    target_os = "none",
    feature = "console-serial",
    not(feature = "console-debugcon")
))]
use ebbrt_console_uart as _;

// The idle policy: polling wins over the default halt.
#[cfg(all(feature = "idle-halt", not(feature = "idle-poll")))]
use ebbrt_idle_halt as _;
#[cfg(feature = "idle-poll")]
use ebbrt_idle_poll as _;

/// The general-purpose allocator of this image: the default slab-based
/// allocator Ebb (`ebbrt-gp-alloc`, feature `gp-slab`), or with the `talc`
/// feature the talc allocator Ebb (`ebbrt-talc-alloc`). Natively its
/// `Global` is the `#[global_allocator]`; a hosted application may install
/// it too:
/// `#[global_allocator] static A: ebbrt::allocator::Global = ebbrt::allocator::Global;`
/// Without either feature the application brings its own (see
/// [`memory::EbbGlobal`]).
#[cfg(all(feature = "gp-slab", not(feature = "talc")))]
pub use ebbrt_gp_alloc as allocator;
/// The general-purpose allocator of this image: the talc allocator Ebb
/// (`ebbrt-talc-alloc`, selected by the `talc` feature). Natively its
/// `Global` is the `#[global_allocator]`.
#[cfg(feature = "talc")]
pub use ebbrt_talc_alloc as allocator;

#[cfg(all(target_os = "none", any(feature = "gp-slab", feature = "talc")))]
#[global_allocator]
static GLOBAL: allocator::Global = allocator::Global;

/// Items used by code the macros generate. Not a public API.
#[doc(hidden)]
pub mod __rt {
    pub use crate::runtime::start_main;
    pub use ebbrt_core;
}

/// Prints to the console: whichever component implements
/// [`console::Console`] in this image (by default stdout hosted, the COM1
/// UART native).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the console (see [`print!`]).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to the console's error stream (stderr hosted; natively the same
/// device as [`print!`]).
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::console::eprint(format_args!($($arg)*)) };
}

/// Prints a line to the console's error stream (see [`eprint!`]).
#[macro_export]
macro_rules! eprintln {
    () => { $crate::eprint!("\n") };
    ($($arg:tt)*) => { $crate::console::eprint(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Defines the entry of a test kernel: a binary of `#[ebbrt::test]`
/// functions (an integration test with `harness = false`) that runs hosted
/// under `cargo test` and natively under `cargo ebbrt test`.
///
/// It runs every test case with `ebbrt_core::test_support::run_all`,
/// starting at the index given by the boot argument `ebbrt.test.start`
/// (default 0), and exits with 0 iff every test that ran passed. A start
/// index that is not a number is reported and exits with failure.
///
/// ```ignore
/// #![cfg_attr(target_os = "none", no_std, no_main)]
///
/// #[ebbrt::test]
/// async fn spawn_on_reaches_core_1() {
///     assert_eq!(ebbrt::spawn_on(ebbrt::cpu::CoreId(1), async { ebbrt::cpu::current().0 }).await, 1);
/// }
///
/// ebbrt::test_main!();
/// ```
#[macro_export]
macro_rules! test_main {
    () => {
        // The entry symbols (hosted `main`, native `__ebbrt_app_main`) are
        // those of `#[ebbrt::main]`; a bad start index is its `Err`.
        #[$crate::main]
        async fn main()
        -> ::core::result::Result<i32, $crate::__rt::ebbrt_core::test_support::StartIndexError> {
            let start = $crate::__rt::ebbrt_core::test_support::parse_start(
                $crate::runtime::boot_arg("ebbrt.test.start"),
            )?;
            ::core::result::Result::Ok(
                $crate::__rt::ebbrt_core::test_support::run_all(start, $crate::console::print)
                    .await,
            )
        }
    };
}
