//! # ebbrt-net
//!
//! The native network of EbbRT: a TCP/IP stack (smoltcp) per NIC queue
//! pair, managed by the [`NetworkManager`] Ebb, behind the same async
//! socket API as the hosted runtime's `ebbrt_std::net`: [`TcpListener`],
//! [`TcpStream`], [`UdpSocket`] with the same signatures, so a server's
//! source builds for either. Received data comes into the caller's buffer
//! (`read`), as an [`IoBuf`](ebbrt_core::iobuf::IoBuf) (`read_buf`,
//! `recv_buf`: one copy out of smoltcp's socket buffer, none after), or is
//! consumed in place (`read_with`: no copy out of the socket buffer); see
//! [`TcpStream`] for exactly which copies remain. Sending takes a slice
//! (`write`, `write_all`) or an
//! [`IoBufChain`](ebbrt_core::iobuf::IoBufChain) whose buffers go into the
//! socket's send ring as they are (`write_chain`: the ring's copy is the
//! only one).
//!
//! What it owns:
//! - [`device`]: the interface a NIC driver implements (queue pairs of
//!   frames, offload capabilities), and how the manager reaches the
//!   driver: an Ebb at `ids::NET_DEVICE` implementing the interface
//!   [`device::NetDeviceEbb`], found through its link-time binding; this
//!   crate never names a driver.
//! - [`Stack`]: one smoltcp interface over one queue pair, its sockets and
//!   its poll task, on one core; ARP, ICMP echo, TCP, UDP, DHCP.
//! - [`NetworkManager`]: which stack each core uses — its own with a
//!   multiqueue NIC, core 0's (through `spawn_on`) with one queue.
//! - [`frame`]: checks every received frame (malformed ones are counted
//!   and dropped, never a panic) and prepares checksum offload.
//! - [`sim`]: a simulated link with loss, reordering, duplication and
//!   corruption, so the stack is tested on the host without a VM.
//!
//! What it must not do: touch hardware (drivers do, in their own crates),
//! or use `unsafe` code (forbidden; only the host tests' harness, which
//! makes threads into cores, needs it).
//!
//! Sockets live on the core that made them, as hosted:
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<ebbrt_net::TcpStream>();
//! ```
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<ebbrt_net::TcpListener>();
//! ```
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<ebbrt_net::UdpSocket>();
//! ```
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<std::rc::Rc<ebbrt_net::Stack>>();
//! ```
#![no_std]
#![cfg_attr(not(test), forbid(unsafe_code))]
// The host tests' harness (`testing`) enters its threads as cores.
#![cfg_attr(test, deny(unsafe_code))]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod adapter;
pub mod config;
pub mod device;
mod error;
pub mod frame;
mod manager;
mod remote;
pub mod sim;
mod stack;
mod tcp;
mod udp;

pub use config::{AddrConfig, Ipv4Net, NetConfig};
pub use core::net::SocketAddr;
pub use manager::{NetRoot, NetworkManager};
pub use stack::{AddrHook, Stack, StackOptions, StackStats};
pub use tcp::{ListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;

/// Whether the calling core owns a network stack (one per NIC queue pair).
/// A core that does not reaches core 0's stack across cores for every
/// socket operation: with fewer queue pairs than cores, a server whose
/// requests are cheap serves more by listening only where this is true.
/// The hosted runtime's `net` has the same function (always true there:
/// every core reaches the host's stack directly).
pub fn has_local_stack() -> bool {
    NetworkManager::get().local_stack().is_some()
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
