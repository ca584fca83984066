//! # ebbrt-messenger
//!
//! Ebb-to-Ebb messages between the nodes of one application (a hosted
//! frontend and native nodes, or any mix), over TCP, on both runtimes.
//!
//! What it owns:
//! - the frame ([`frame`]): a versioned little-endian header (magic,
//!   version, kind, destination [`EbbId`](ebbrt_core::EbbId), a stable 64-bit
//!   type tag, a correlation id, payload and bulk lengths), a postcard
//!   payload and raw bulk bytes that stay [`IoBuf`](ebbrt_core::IoBuf) views;
//! - the incremental decoder ([`decode`]), which refuses oversized,
//!   malformed and truncated input with an error kind and never panics
//!   (a fuzz target in `fuzz/` drives it);
//! - type tags fixed at compile time from a name and version ([`tag`],
//!   [`message!`]);
//! - the handshake that authenticates both ends with the allocation's
//!   secret ([`auth`]);
//! - the [`Messenger`] Ebb: one connection per peer [`NodeId`], opened
//!   lazily, simultaneous connects resolved, a deadline on every request,
//!   reconnection on the next use after a drop, handlers registered per
//!   destination Ebb and type tag, counters ([`Stats`]).
//!
//! What it must not do: identify a node by its address (a node is a
//! logical [`NodeId`]; its endpoint is whatever the allocator says,
//! possibly NATed), crash on anything a peer sends, or copy bulk bytes
//! into a payload.
//!
//! Its sockets are those of the runtime being built: `ebbrt-std`'s hosted,
//! `ebbrt-net`'s natively (same API; a native image also needs a NIC
//! driver: the facade's feature `net`). It does not depend on the facade,
//! so that linking it enables no facade feature.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod auth;
pub mod bootstrap;
pub mod decode;
pub mod distributed;
pub mod frame;
mod messenger;
mod sync;
pub mod tag;

pub use bootstrap::{Bootstrap, NodeId};
pub use decode::{Frame, FrameDecoder, FrameError, Limits};
pub use distributed::{Distributed, Remote, Serve};
pub use frame::{ErrorKind, FrameKind, Header};
pub use messenger::{
    Admission, Config, ConnInfo, Messenger, MessengerRoot, Reply, StartError, Stats,
};
pub use tag::{Message, Request};

use core::fmt;

/// Why a request or a send failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MsgError {
    /// The deadline passed (connecting, sending or waiting for the reply).
    Deadline,
    /// No endpoint is known for the node.
    UnknownPeer(NodeId),
    /// The connection could not be opened.
    Connect(ebbrt_core::io::ErrorKind),
    /// The connection was lost before the reply came.
    ConnectionLost,
    /// The peer did not prove it holds the secret, or refused our proof.
    Unauthorized,
    /// The peer does not speak our protocol version, or broke the
    /// handshake.
    Handshake,
    /// The peer answered with an error frame of this kind.
    Remote(ErrorKind),
    /// A reply that does not decode as the expected type.
    BadReply(ErrorKind),
    /// The message does not fit the peer's limits (or 4 GiB).
    TooLarge,
    /// Handlers are registered on the messenger's home core only.
    NotHomeCore,
    /// The node's messenger has not been started ([`Messenger::start`]).
    NotStarted,
}

impl fmt::Display for MsgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgError::Deadline => f.write_str("deadline elapsed"),
            MsgError::UnknownPeer(n) => write!(f, "no endpoint known for node {n}"),
            MsgError::Connect(k) => write!(f, "cannot connect: {k:?}"),
            MsgError::ConnectionLost => f.write_str("connection lost"),
            MsgError::Unauthorized => f.write_str("authentication failed"),
            MsgError::Handshake => f.write_str("handshake failed"),
            MsgError::Remote(k) => write!(f, "peer answered: {k}"),
            MsgError::BadReply(k) => write!(f, "bad reply: {k}"),
            MsgError::TooLarge => f.write_str("message too large"),
            MsgError::NotHomeCore => f.write_str("not on the messenger's home core"),
            MsgError::NotStarted => f.write_str("the node's messenger is not started"),
        }
    }
}

impl core::error::Error for MsgError {}

/// Decodes a postcard payload that must be exactly one `T`.
pub fn decode_payload<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ErrorKind> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok(_) => Err(ErrorKind::Malformed),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(ErrorKind::Truncated),
        Err(_) => Err(ErrorKind::Malformed),
    }
}
