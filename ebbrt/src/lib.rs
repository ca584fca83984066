//! # ebbrt
//!
//! The one dependency of an EbbRT application: the Ebb model and executor
//! from `ebbrt-core`, the attribute macros, and the runtime for the target
//! being built — the hosted runtime (`ebbrt-std`) on Linux, the native
//! library OS on `x86_64-ebbrt`. The same application source builds for
//! both. Cargo features of this crate select components.
//!
//! It owns nothing but re-exports and the `print!` family; it must not grow
//! code of its own.
#![no_std]

pub use ebbrt_core::{
    Ebb, EbbError, EbbId, EbbKind, EbbRef, IoBuf, IoBufChain, JoinHandle, PerCore, PerCoreRoot,
    Shared, StaticEbb, cpu, ebb, exec, io, iobuf, on_each_core, registry, spawn_local, spawn_on,
    time,
};
pub use ebbrt_macros::{ebb, main, test};

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
#[cfg(not(target_os = "none"))]
pub use runtime::net;

/// The network API of the runtime being built: natively, the smoltcp
/// stacks of `ebbrt-net` (one per NIC queue pair) over the virtio-net
/// driver, with the same socket types and signatures as hosted.
#[cfg(target_os = "none")]
pub use ebbrt_net as net;

// Linked for its NIC Ebb (at NET_DEVICE, bound to the network manager at
// link time) and its component record, not for names.
#[cfg(target_os = "none")]
use ebbrt_virtio_net as _;

/// The general-purpose allocator of this image: the default slab-based
/// allocator Ebb (`ebbrt-gp-alloc`), or with the `talc` feature the talc
/// allocator Ebb (`ebbrt-talc-alloc`). Natively its `Global` is the
/// `#[global_allocator]`; a hosted application may install it too:
/// `#[global_allocator] static A: ebbrt::allocator::Global = ebbrt::allocator::Global;`
#[cfg(not(feature = "talc"))]
pub use ebbrt_gp_alloc as allocator;
/// The general-purpose allocator of this image: the talc allocator Ebb
/// (`ebbrt-talc-alloc`, selected by the `talc` feature). Natively its
/// `Global` is the `#[global_allocator]`.
#[cfg(feature = "talc")]
pub use ebbrt_talc_alloc as allocator;

#[cfg(target_os = "none")]
#[global_allocator]
static GLOBAL: allocator::Global = allocator::Global;

/// Items used by code the macros generate. Not a public API.
#[doc(hidden)]
pub mod __rt {
    pub use crate::runtime::start_main;
    pub use ebbrt_core;
}

/// Prints to the console (stdout hosted, the serial console native).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::runtime::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the console (stdout hosted, the serial console native).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::runtime::console::print(format_args!("{}\n", format_args!($($arg)*))) };
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
                $crate::__rt::ebbrt_core::test_support::run_all(
                    start,
                    $crate::runtime::console::print,
                )
                .await,
            )
        }
    };
}
