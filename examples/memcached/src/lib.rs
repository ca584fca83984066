//! memcached on EbbRT: the protocols and the cache, without the network.
//!
//! This library owns everything a memcached server does between bytes in
//! and bytes out: the ASCII, binary and meta protocols' parsers
//! ([`ascii`], [`binary`], [`meta`]), memcached 1.6's semantics (expiry,
//! CAS, limits, eviction, `stats`) in [`Session`] over a [`Store`], and
//! two stores: [`RcuStore`] (the default: an RCU hash table, lock-free
//! reads, CLOCK eviction; [`SharedRcuStore`] is it as a shared Ebb) and
//! [`MemStore`] (one lock, exact LRU). It must not touch the network or
//! the time itself: the server binary (`src/main.rs`) feeds each
//! connection's bytes to a [`Session`] and sends back the [`Response`] it
//! writes (stored values as the store's own buffers, for a vectored
//! write); the time comes from a [`Clock`] the binary provides. The
//! runtime it touches is the RCU of the cores, through [`RcuStore`].
//!
//! `no_std` with `alloc`, and no unsafe code, so the same code runs in the
//! native library OS, in the hosted process, in unit tests and under the
//! fuzzer.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod ascii;
pub mod binary;
pub mod clock;
mod clock_ring;
mod mem_store;
pub mod meta;
mod rcu_store;
pub mod response;
pub mod session;
pub mod stats;
pub mod store;
#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock};
pub use mem_store::{ITEM_OVERHEAD, MemStore};
pub use rcu_store::{RcuStore, SharedRcuStore};
pub use response::{Response, Sink};
pub use session::{Cache, Config, Flow, Session};
pub use store::Store;

/// The version this server reports: memcached's protocol level it
/// follows (clients, memccapable among them, change their checks at 1.6).
pub const VERSION: &str = "1.6.21";
