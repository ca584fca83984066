//! TCP: listeners and streams.

use core::cell::RefCell;
use core::fmt;
use core::net::SocketAddr;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;

use ebbrt_core::io;
use ebbrt_core::iobuf::IoBuf;
use socket2::{Domain, Protocol, Socket, Type};

use crate::io_error::from_std;
use crate::reactor::Async;

/// Pending connections a listener queues before Linux refuses more.
const BACKLOG: i32 = 1024;
/// The size of a `read_buf` buffer when the kernel says nothing is queued
/// (the data may arrive between asking and reading, or the stream ended).
const READ_BUF_MIN: usize = 4096;
/// The largest `read_buf` buffer.
const READ_BUF_MAX: usize = 256 * 1024;

/// Bytes queued for reading on a socket (`FIONREAD`); 0 if unknown.
pub(super) fn readable_bytes(fd: std::os::fd::RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points
    // at a live local; a bad descriptor makes ioctl fail, not write.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n as *mut libc::c_int) };
    if r < 0 { 0 } else { n.max(0) as usize }
}

/// A TCP socket listening for connections, owned by the core that bound it.
///
/// Hosted, the socket has `SO_REUSEPORT` (and `SO_REUSEADDR`) set, so that
/// each core can bind its own listener on the same port; Linux then spreads
/// new connections over the listeners by a hash of the connection's
/// addresses. A consequence: binding succeeds on a port that another
/// `SO_REUSEPORT` socket of the same user already holds (another EbbRT
/// process, say), and the two share its connections. A port held by a
/// socket without `SO_REUSEPORT` gives [`ErrorKind::AddrInUse`](io::ErrorKind::AddrInUse).
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
        let (stream, peer) = self.inner.read_with(|l| l.accept()).await?;
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
///
/// Receiving: [`read`](Self::read) copies from the kernel into the
/// caller's buffer; [`read_buf`](Self::read_buf) reads from the kernel
/// straight into a new [`IoBuf`] sized to what is queued (the one copy
/// Linux sockets make); [`read_with`](Self::read_with) hands the closure
/// such a buffer and keeps what it leaves for the next read (no further
/// copy). The native stack offers the same three.
pub struct TcpStream {
    inner: Async<mio::net::TcpStream>,
    /// Bytes received but not consumed yet (a `read_with` that took part).
    pending: RefCell<IoBuf>,
}

impl TcpStream {
    fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Async::new(stream)?,
            pending: RefCell::new(IoBuf::new()),
        })
    }

    /// Connects to `addr`, waiting until the connection is established or
    /// has failed ([`ErrorKind::ConnectionRefused`](io::ErrorKind::ConnectionRefused), [`ErrorKind::TimedOut`](io::ErrorKind::TimedOut),
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
            .await?;
        Ok(stream)
    }

    /// Reads into `buf`, waiting until at least one byte is available;
    /// returns how many were read. `Ok(0)` means the peer closed its write
    /// half (end of stream), or that `buf` is empty.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        {
            let mut p = self.pending.borrow_mut();
            if !p.is_empty() {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                p.advance(n);
                return Ok(n);
            }
        }
        self.inner.read_with(|mut s| s.read(buf)).await
    }

    /// Reads what has been received as one buffer (what the kernel has
    /// queued, up to 256 KiB, read straight into it), waiting until there
    /// is at least one byte. `Ok(None)` means the end of the stream.
    pub async fn read_buf(&self) -> io::Result<Option<IoBuf>> {
        let left = self.pending.take();
        if !left.is_empty() {
            return Ok(Some(left));
        }
        let mut v = self
            .inner
            .read_with(|mut s| {
                let size = readable_bytes(s.as_raw_fd()).clamp(READ_BUF_MIN, READ_BUF_MAX);
                let mut v = vec![0u8; size];
                let n = s.read(&mut v)?;
                v.truncate(n);
                Ok(v)
            })
            .await?;
        if v.is_empty() {
            return Ok(None);
        }
        if v.capacity() > 2 * v.len() + READ_BUF_MIN {
            // Far less came than was queued when asked: do not keep the
            // rest of the allocation alive with the buffer.
            v.shrink_to_fit();
        }
        Ok(Some(IoBuf::from(v)))
    }

    /// Reads without a further copy: `f` sees received bytes and returns
    /// how many it consumed (at most their length); bytes it leaves are
    /// read next time (by any of the read methods). Waits until some bytes
    /// are there; returns how many were consumed, and `Ok(0)` at the end of
    /// the stream. Hosted, the bytes are an [`IoBuf`] read from the kernel
    /// as [`read_buf`](Self::read_buf) does. Portable code keeps `f` away
    /// from the stream and other sockets: natively it runs while the stack
    /// is borrowed.
    pub async fn read_with(&self, mut f: impl FnMut(&[u8]) -> usize) -> io::Result<usize> {
        if self.pending.borrow().is_empty() {
            match self.read_buf().await? {
                Some(b) => *self.pending.borrow_mut() = b,
                None => return Ok(0),
            }
        }
        // Taken out while `f` runs, so that `f` may use the stream.
        let mut p = self.pending.take();
        let n = f(&p).min(p.len());
        p.advance(n);
        if !p.is_empty() {
            *self.pending.borrow_mut() = p;
        }
        Ok(n)
    }

    /// Writes some of `buf`, waiting (without spinning: the task sleeps
    /// until the socket turns writable) while the send buffer is full;
    /// returns how many bytes were written.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.inner.write_with(|mut s| s.write(buf)).await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        io::write_all(buf, |b| self.write(b)).await
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
