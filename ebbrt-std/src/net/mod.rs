//! The async network API of EbbRT, hosted over Linux sockets.
//!
//! The same types with the same signatures exist in the native network
//! stack, so an application's networking code builds for both. Every
//! socket is registered with the reactor of the core that created it and is
//! `!Send`: it lives, and is used, on that core. Per-core servers bind one
//! listener per core: hosted, [`TcpListener::bind`] sets `SO_REUSEPORT`, so
//! every core may bind the same port and Linux spreads incoming connections
//! over them.
//!
//! Received data can also come as an [`IoBuf`](ebbrt_core::iobuf::IoBuf)
//! (`TcpStream::read_buf`, `UdpSocket::recv_buf`), the buffer type both
//! runtimes share, read from the kernel straight into it; or be consumed in
//! place with `TcpStream::read_with`. An
//! [`IoBufChain`](ebbrt_core::iobuf::IoBufChain) is sent without gathering
//! it first (`TcpStream::write_chain`: one `writev` of its buffers).
//!
//! Errors are [`ebbrt_core::io::Error`] values whose kind comes from the
//! errno (connection refused, address in use, ...) and which keep the errno
//! ([`Error::raw_os_error`](ebbrt_core::io::Error::raw_os_error)).
//!
//! Sockets are `!Send`: a socket never leaves its core.
//! ```
//! fn assert_exists<T>() {}
//! assert_exists::<ebbrt_std::net::TcpStream>();
//! assert_exists::<ebbrt_std::net::TcpListener>();
//! assert_exists::<ebbrt_std::net::UdpSocket>();
//! ```
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<ebbrt_std::net::TcpStream>();
//! ```
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<ebbrt_std::net::TcpListener>();
//! ```
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<ebbrt_std::net::UdpSocket>();
//! ```

mod balance;
mod tcp;
mod udp;

pub use core::net::SocketAddr;
pub use tcp::{ListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;

/// Whether the calling core owns a network stack: hosted, always (every
/// core's sockets are the host kernel's, reached directly). Natively
/// (`ebbrt_net::has_local_stack`) only the cores with a NIC queue pair of
/// their own do; the function exists in both so that a server's source
/// builds for either.
pub fn has_local_stack() -> bool {
    true
}

#[cfg(test)]
mod tests;
