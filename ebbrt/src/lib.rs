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
    Ebb, EbbError, EbbId, EbbKind, EbbRef, JoinHandle, PerCore, PerCoreRoot, Shared, StaticEbb, cpu, ebb, exec, io,
    on_each_core, registry, spawn_local, spawn_on, time,
};
pub use ebbrt_macros::{ebb, main};

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
