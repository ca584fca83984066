//! UDP sockets.

use core::fmt;
use core::net::SocketAddr;
use std::os::fd::AsRawFd;

use ebbrt_core::io;
use ebbrt_core::iobuf::IoBuf;

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
        self.inner.write_with(|s| s.send_to(buf, to)).await
    }

    /// Waits for one datagram; returns its length and sender. A datagram
    /// longer than `buf` is truncated to `buf.len()`.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf)).await
    }

    /// Waits for one datagram; returns it whole, in a buffer of its size
    /// (read straight from the kernel into it), and its sender.
    pub async fn recv_buf(&self) -> io::Result<(IoBuf, SocketAddr)> {
        let (v, from) = self
            .inner
            .read_with(|s| {
                let len = next_datagram_len(s.as_raw_fd())?;
                let mut v = vec![0u8; len];
                let (n, from) = s.recv_from(&mut v)?;
                v.truncate(n);
                Ok((v, from))
            })
            .await?;
        Ok((IoBuf::from(v), from))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr().map_err(from_std)
    }
}

/// The length of the next queued datagram, without reading it
/// (`MSG_PEEK | MSG_TRUNC` reports the real length); `WouldBlock` when
/// none is queued.
fn next_datagram_len(fd: std::os::fd::RawFd) -> std::io::Result<usize> {
    // SAFETY: a zero-length receive through a null pointer: the kernel
    // writes nothing, and MSG_PEEK leaves the datagram queued.
    let r = unsafe {
        libc::recv(
            fd,
            core::ptr::null_mut(),
            0,
            libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
