//! # ebbrt-core
//!
//! The heart of EbbRT: the **Elastic Building Block** (Ebb) model and the
//! per-core, non-preemptive **executor**, both `no_std` + `alloc` so that the
//! very same code runs in the native library OS and in the hosted (Linux)
//! runtime.
//!
//! What this crate owns:
//! - [`ebb`]: [`EbbId`], [`EbbRef`], the per-core translation table, roots and
//!   representatives of per-core and shared Ebbs, and the id allocator Ebb.
//! - [`exec`]: the per-core event loop polling Rust futures, `spawn_local`,
//!   `spawn_on`, timers and idle pollers.
//! - [`console`]: the console interface (`print!` reaches whichever
//!   component implements it) and per-core line buffers for device consoles.
//! - [`cmdline`]: boot arguments (`key=value` words), the same syntax on
//!   both runtimes.
//! - [`memory`]: the general-purpose allocator's interface and a
//!   `GlobalAlloc` over any Ebb that implements it.
//! - [`cpu`]: core identity and count; [`time`]: the monotonic clock types.
//! - [`platform`]: the small trait a runtime implements (wake a core, the
//!   clock, idle until an event or a deadline).
//! - [`registry`]: the link-time records of every component (Ebb type).
//! - [`iobuf`]: [`IoBuf`], the shared, sliceable byte buffer both runtimes'
//!   network APIs hand received data in, with chains and a cursor.
//!
//! What it must not do: depend on `std`, know about any particular component,
//! or grow device drivers. Platform code (the native kernel core) is fenced
//! into the `native` module, compiled only for the `x86_64-ebbrt` target.
#![no_std]
#![cfg_attr(not(target_os = "none"), feature(thread_local))]
// `__static_ebb!` writes the `unsafe impl StaticEbb` of `#[ebb(id = ...)]`
// so that component crates can `forbid(unsafe_code)`.
#![feature(allow_internal_unsafe)]
#![allow(internal_features)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cmdline;
pub mod console;
pub mod cpu;
pub mod ebb;
pub mod exec;
pub mod io;
pub mod iobuf;
pub mod memory;
pub mod platform;
pub mod registry;
pub mod sync;
pub mod test_support;
pub mod time;

mod percore;

#[cfg(target_os = "none")]
pub mod native;

// The hardware-independent parts of the native kernel, unit-tested on the host.
#[cfg(all(test, not(target_os = "none")))]
#[path = "native/regions.rs"]
mod native_regions;

#[cfg(test)]
mod testing;

/// `#[ebb(...)]` and `#[interface(...)]`, for component crates that
/// depend on the core directly (applications use them from the facade).
pub use ebbrt_macros::{ebb, interface};

pub use ebb::{Ebb, EbbError, EbbId, EbbKind, EbbRef, PerCore, PerCoreRoot, Shared, StaticEbb};
pub use exec::{JoinHandle, on_each_core, spawn_local, spawn_on};
pub use iobuf::{IoBuf, IoBufChain};

/// Items used by code that `ebbrt-macros` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use linkme;

    /// The `StaticEbb` impl of `#[ebb(..., id = ...)]`: written here, with
    /// `allow_internal_unsafe`, so that a crate that forbids `unsafe` can
    /// still declare fixed-id Ebbs. Sound because the id is registered in
    /// the type's component record beside it, and runtimes refuse to start
    /// when two records claim one id (`registry::check_start`).
    #[macro_export]
    #[doc(hidden)]
    #[allow_internal_unsafe]
    macro_rules! __static_ebb {
        ($ty:ident, $id:expr) => {
            // SAFETY: the id is registered in this type's component record;
            // runtimes refuse to start when two records claim one id.
            unsafe impl $crate::StaticEbb for $ty {
                const ID: $crate::EbbId = $id;
            }
        };
    }
}
