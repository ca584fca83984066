//! UDP sockets.

use core::fmt;
use core::net::SocketAddr;

use ebbrt_core::io;

use crate::io_error::from_std;
use crate::reactor::Async;

/// A UDP socket, owned by the core that bound it. Unlike a
/// [`TcpListener`](super::TcpListener), it does not set `SO_REUSEPORT`:
/// binding a port in use gives [`io::ErrorKind::AddrInUse`].
pub struct UdpSocket {
    inner: Async<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds a socket to `addr` (port 0: the system picks one) on the
    /// current core.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket = mio::net::UdpSocket::bind(addr).map_err(from_std)?;
        Ok(UdpSocket {
            inner: Async::new(socket)?,
        })
    }

    /// Sends one datagram to `to`, waiting while the send buffer is full;
    /// returns the bytes sent.
    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.inner
            .write_with(|s| s.send_to(buf, to))
            .await
            .map_err(from_std)
    }

    /// Waits for one datagram; returns its length and sender. A datagram
    /// longer than `buf` is truncated to `buf.len()`.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner
            .read_with(|s| s.recv_from(buf))
            .await
            .map_err(from_std)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr().map_err(from_std)
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
