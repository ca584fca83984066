//! TCP: listeners and streams.

use core::fmt;
use core::net::SocketAddr;
use std::io::{Read, Write};
use std::net::Shutdown;

use ebbrt_core::io::{self, Error, ErrorKind};
use socket2::{Domain, Protocol, Socket, Type};

use crate::io_error::from_std;
use crate::reactor::Async;

/// Pending connections a listener queues before Linux refuses more.
const BACKLOG: i32 = 1024;

/// A TCP socket listening for connections, owned by the core that bound it.
///
/// Hosted, the socket has `SO_REUSEPORT` (and `SO_REUSEADDR`) set, so that
/// each core can bind its own listener on the same port; Linux then spreads
/// new connections over the listeners by a hash of the connection's
/// addresses. A consequence: binding succeeds on a port that another
/// `SO_REUSEPORT` socket of the same user already holds (another EbbRT
/// process, say), and the two share its connections. A port held by a
/// socket without `SO_REUSEPORT` gives [`ErrorKind::AddrInUse`].
pub struct TcpListener {
    inner: Async<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds a listener to `addr` (port 0: the system picks a port; see
    /// [`Self::local_addr`]) on the current core.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(from_std)?;
        socket.set_reuse_address(true).map_err(from_std)?;
        socket.set_reuse_port(true).map_err(from_std)?;
        socket.set_nonblocking(true).map_err(from_std)?;
        socket.bind(&addr.into()).map_err(from_std)?;
        socket.listen(BACKLOG).map_err(from_std)?;
        let listener = mio::net::TcpListener::from_std(socket.into());
        Ok(TcpListener {
            inner: Async::new(listener)?,
        })
    }

    /// Waits for a connection; returns it and the peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self
            .inner
            .read_with(|l| l.accept())
            .await
            .map_err(from_std)?;
        Ok((TcpStream::from_mio(stream)?, peer))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr().map_err(from_std)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// A TCP connection, owned by the core that connected or accepted it.
///
/// The methods take `&self`, so several tasks of the core may share a
/// stream (behind an `Rc`), one reading while another writes.
pub struct TcpStream {
    inner: Async<mio::net::TcpStream>,
}

impl TcpStream {
    fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Async::new(stream)?,
        })
    }

    /// Connects to `addr`, waiting until the connection is established or
    /// has failed ([`ErrorKind::ConnectionRefused`], [`ErrorKind::TimedOut`],
    /// ...).
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::from_mio(mio::net::TcpStream::connect(addr).map_err(from_std)?)?;
        // A non-blocking connect completes when the socket turns writable:
        // then it has either a pending error or a peer.
        stream
            .inner
            .write_with(|s| {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                        Err(std::io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(from_std)?;
        Ok(stream)
    }

    /// Reads into `buf`, waiting until at least one byte is available;
    /// returns how many were read. `Ok(0)` means the peer closed its write
    /// half (end of stream), or that `buf` is empty.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.inner
            .read_with(|mut s| s.read(buf))
            .await
            .map_err(from_std)
    }

    /// Writes some of `buf`, waiting (without spinning: the task sleeps
    /// until the socket turns writable) while the send buffer is full;
    /// returns how many bytes were written.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.inner
            .write_with(|mut s| s.write(buf))
            .await
            .map_err(from_std)
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => {
                    return Err(Error::new(
                        ErrorKind::Other,
                        "the connection accepted no bytes",
                    ));
                }
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Closes the write half: the peer reads the end of the stream once it
    /// has read what was written before. Reading goes on.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.inner
            .get_ref()
            .shutdown(Shutdown::Write)
            .map_err(from_std)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr().map_err(from_std)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr().map_err(from_std)
    }

    /// Turns Nagle's algorithm off (`on`) or back on.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(on).map_err(from_std)
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}
