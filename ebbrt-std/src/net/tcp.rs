//! TCP: listeners and streams.

use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::net::SocketAddr;
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use ebbrt_core::io;
use ebbrt_core::iobuf::{IoBuf, IoBufChain};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::balance::{Member, Membership, Place};
use crate::io_error::{exhausts, from_std};
use crate::reactor::Async;

/// Pending connections a listener queues before Linux refuses more.
const BACKLOG: i32 = 1024;
/// The least room a `read_buf` gives what follows a full scratch buffer
/// when the kernel says nothing more is queued (it may arrive between
/// asking and reading).
const READ_BUF_MIN: usize = 4096;
/// The per-thread buffer every read goes through first (see
/// [`TcpStream::read_buf`]).
const SCRATCH_LEN: usize = 16 * 1024;

std::thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; SCRATCH_LEN].into_boxed_slice());
}
/// The largest `read_buf` buffer.
const READ_BUF_MAX: usize = 256 * 1024;
/// The most buffers one `writev` takes (Linux's `IOV_MAX`).
pub(super) const MAX_IOVECS: usize = 1024;
/// The first pause of a listener after an accept failed for want of
/// descriptors or memory; it doubles with every failure in a row.
const BACKOFF_FIRST: Duration = Duration::from_millis(1);
/// The longest pause between accepts while they keep failing.
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Bytes queued for reading on a socket (`FIONREAD`); 0 if unknown.
pub(super) fn readable_bytes(fd: std::os::fd::RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points
    // at a live local; a bad descriptor makes ioctl fail, not write.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n as *mut libc::c_int) };
    if r < 0 { 0 } else { n.max(0) as usize }
}

/// How a listener's connections are made: the sizes of their buffers and
/// how many may be open at once (the same builder as natively).
///
/// ```no_run
/// # async fn f() -> ebbrt_core::io::Result<()> {
/// use ebbrt_std::net::ListenOptions;
/// // Many mostly idle connections: small buffers, and a bound on them.
/// let listener = ListenOptions::new()
///     .rx_buffer(4096)
///     .tx_buffer(4096)
///     .max_connections(20_000)
///     .bind("127.0.0.1:11211".parse().unwrap())?;
/// # Ok(()) }
/// ```
///
/// Hosted, the buffer sizes become the listening socket's `SO_RCVBUF` and
/// `SO_SNDBUF`, which its connections inherit (Linux doubles the value
/// for its bookkeeping, clamps it to `net.core.rmem_max`/`wmem_max`, and
/// stops tuning it automatically); unset, Linux sizes them. The limit is
/// the listener's own: a connection accepted while that many of its
/// streams are alive is closed at once with a reset, counted in the
/// listener's log line. A server binding one listener per core holds up
/// to that many per core.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenOptions {
    rx_buffer: Option<usize>,
    tx_buffer: Option<usize>,
    max_connections: Option<usize>,
}

impl ListenOptions {
    /// The defaults: the runtime's buffer sizes, no limit of the
    /// listener's own.
    pub const fn new() -> ListenOptions {
        ListenOptions {
            rx_buffer: None,
            tx_buffer: None,
            max_connections: None,
        }
    }

    /// Bytes of receive buffer per connection.
    pub const fn rx_buffer(mut self, bytes: usize) -> ListenOptions {
        self.rx_buffer = Some(bytes);
        self
    }

    /// Bytes of send buffer per connection.
    pub const fn tx_buffer(mut self, bytes: usize) -> ListenOptions {
        self.tx_buffer = Some(bytes);
        self
    }

    /// The most connections open at once; more are refused.
    pub const fn max_connections(mut self, n: usize) -> ListenOptions {
        self.max_connections = Some(n);
        self
    }

    /// Binds a listener with these options to `addr` on the current core
    /// (as [`TcpListener::bind`]).
    pub fn bind(self, addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(from_std)?;
        socket.set_reuse_address(true).map_err(from_std)?;
        socket.set_reuse_port(true).map_err(from_std)?;
        socket.set_nonblocking(true).map_err(from_std)?;
        if let Some(n) = self.rx_buffer {
            socket.set_recv_buffer_size(n).map_err(from_std)?;
        }
        if let Some(n) = self.tx_buffer {
            socket.set_send_buffer_size(n).map_err(from_std)?;
        }
        socket.bind(&addr.into()).map_err(from_std)?;
        socket.listen(BACKLOG).map_err(from_std)?;
        let listener = mio::net::TcpListener::from_std(socket.into());
        let bound = listener.local_addr().map_err(from_std)?;
        Ok(TcpListener {
            inner: Async::new(listener)?,
            membership: Membership::join(bound, self.max_connections),
            episode: Episode::default(),
        })
    }
}

/// A listener's run of accepts that failed for want of descriptors or
/// memory, or of connections refused at its limit: one log line when it
/// starts, one with the count when it ends.
#[derive(Default)]
pub(super) struct Episode {
    /// The pause before the next accept (while accepts fail).
    pub(super) delay: Cell<Option<Duration>>,
    pub(super) failures: Cell<u64>,
    refused: Cell<u64>,
}

impl Episode {
    /// An accept failed with `e`, for want of a resource: pause longer.
    pub(super) fn failed(&self, local: Option<SocketAddr>, e: &io::Error) {
        let next = self
            .delay
            .get()
            .map_or(BACKOFF_FIRST, |d| (d * 2).min(BACKOFF_MAX));
        self.delay.set(Some(next));
        self.failures.set(self.failures.get() + 1);
        if self.failures.get() == 1 {
            log::warn!(
                "net: accept on {}: {} ({e}); pausing accepts (up to {} ms) until it works",
                show(local),
                exhausted_what(e),
                BACKOFF_MAX.as_millis()
            );
        }
    }

    /// An accept worked: a run of failures is over.
    pub(super) fn worked(&self, local: Option<SocketAddr>) {
        self.delay.set(None);
        let n = self.failures.replace(0);
        if n > 0 {
            log::warn!(
                "net: accept on {}: works again after {n} failed attempts",
                show(local)
            );
        }
    }

    /// A connection was refused at the listener's limit of `max`.
    fn refused(&self, local: Option<SocketAddr>, max: usize) {
        self.refused.set(self.refused.get() + 1);
        if self.refused.get() == 1 {
            log::warn!(
                "net: listener on {}: at its limit of {max} connections; refusing more",
                show(local)
            );
        }
    }

    /// A connection was admitted: a run of refusals is over.
    fn admitted(&self, local: Option<SocketAddr>) {
        let n = self.refused.replace(0);
        if n > 0 {
            log::warn!(
                "net: listener on {}: admitting again after refusing {n} connections",
                show(local)
            );
        }
    }
}

fn show(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "?".into(), |a| a.to_string())
}

/// What ran out, in words, for the log.
fn exhausted_what(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE) => "the process is out of file descriptors (EMFILE)",
        Some(libc::ENFILE) => "the system is out of file descriptors (ENFILE)",
        _ => "the kernel is out of memory for sockets",
    }
}

/// A place among a listener's live connections, given back when the
/// stream drops.
struct Admitted(Arc<Member>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.left();
    }
}

/// What a listener's `accept` found.
enum Got {
    /// A connection its own socket accepted.
    Own(io::Result<(mio::net::TcpStream, SocketAddr)>),
    /// One another core's listener accepted and handed over.
    Handed((std::net::TcpStream, SocketAddr)),
}

/// A TCP socket listening for connections, owned by the core that bound it.
///
/// Hosted, the socket has `SO_REUSEPORT` (and `SO_REUSEADDR`) set, so that
/// each core can bind its own listener on the same port; Linux then spreads
/// new connections over the listeners by a hash of the connection's
/// addresses. Since a hash spreads a few connections unevenly, the
/// listeners this process binds to one address share them out: the core
/// whose listener accepted a connection hands it to the listener with the
/// fewest live connections (itself among equals; one hand-off across cores
/// per connection, none per read or write), so that connections are spread
/// as evenly as they are open. (Natively, with one NIC queue pair the stack
/// gives new connections to the cores' listeners in turn; with several, the
/// NIC steers each connection to a queue pair by a hash, and it stays
/// there.) A consequence of `SO_REUSEPORT`: binding succeeds on a port that another
/// `SO_REUSEPORT` socket of the same user already holds (another EbbRT
/// process, say), and the two share its connections. A port held by a
/// socket without `SO_REUSEPORT` gives [`ErrorKind::AddrInUse`](io::ErrorKind::AddrInUse).
pub struct TcpListener {
    inner: Async<mio::net::TcpListener>,
    /// Its live connections, its limit, and the listeners it shares
    /// connections with.
    membership: Membership,
    episode: Episode,
}

impl TcpListener {
    /// Binds a listener to `addr` (port 0: the system picks a port; see
    /// [`Self::local_addr`]) on the current core.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        ListenOptions::new().bind(addr)
    }

    /// Waits for a connection; returns it and the peer's address.
    ///
    /// When the process or the system is out of descriptors (`EMFILE`,
    /// `ENFILE`) or the kernel out of socket memory, the error is returned
    /// (kind [`ErrorKind::OutOfMemory`](io::ErrorKind::OutOfMemory), with
    /// its errno) and the listener pauses before its next accept, twice as
    /// long after each failure in a row, up to 100 ms: a server that loops
    /// on `accept` neither spins nor floods its log while the connections
    /// it has are served (the ones waiting stay queued in the kernel). It
    /// logs once when such a run starts and once, with the count, when it
    /// ends.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        loop {
            if let Some(d) = self.episode.delay.get() {
                ebbrt_core::exec::sleep(d).await;
            }
            let got = {
                let me = self.membership.me();
                let mut own = pin!(self.inner.read_with(|l| l.accept()));
                core::future::poll_fn(|cx| {
                    if let Some(handed) = me.take(cx) {
                        return Poll::Ready(Got::Handed(handed));
                    }
                    own.as_mut().poll(cx).map(Got::Own)
                })
                .await
            };
            let (stream, peer) = match got {
                // Counted by the core that handed it over.
                Got::Handed((stream, peer)) => {
                    let admitted = Admitted(self.membership.me().clone());
                    return self.admit(mio::net::TcpStream::from_std(stream), peer, admitted);
                }
                Got::Own(Ok(got)) => got,
                Got::Own(Err(e)) => {
                    if exhausts(&e) {
                        self.episode.failed(self.local_addr().ok(), &e);
                    }
                    return Err(e);
                }
            };
            self.episode.worked(self.local_addr().ok());
            match self.membership.place() {
                Place::Here => {
                    let admitted = Admitted(self.membership.me().clone());
                    return self.admit(stream, peer, admitted);
                }
                Place::There(member) => member.give((stream.into(), peer)),
                Place::Full => {
                    // A reset, not a close that the peer would take for an
                    // empty answer.
                    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    drop(stream);
                    self.episode
                        .refused(self.local_addr().ok(), self.membership.me().max());
                }
            }
        }
    }

    /// Makes a counted connection a stream of this core.
    fn admit(
        &self,
        stream: mio::net::TcpStream,
        peer: SocketAddr,
        admitted: Admitted,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        self.episode.admitted(self.local_addr().ok());
        let mut s = TcpStream::from_mio(stream)?;
        s.admitted = Some(admitted);
        Ok((s, peer))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr().map_err(from_std)
    }

    /// Adopts a listening socket made elsewhere — inside another network
    /// namespace, say, by a thread that entered it (a socket stays in the
    /// namespace it was made in) — as a listener of the current core.
    /// Hosted only: a native image has no such sockets.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true).map_err(from_std)?;
        Ok(TcpListener {
            inner: Async::new(mio::net::TcpListener::from_std(listener))?,
            membership: Membership::solo(None),
            episode: Episode::default(),
        })
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
    pub(super) inner: Async<mio::net::TcpStream>,
    /// Bytes received but not consumed yet (a `read_with` that took part).
    pending: RefCell<IoBuf>,
    /// Its place among its listener's connections (accepted streams).
    admitted: Option<Admitted>,
}

impl TcpStream {
    fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Async::new(stream)?,
            pending: RefCell::new(IoBuf::new()),
            admitted: None,
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
        let len = buf.len();
        self.inner
            .read_stream(|mut s| s.read(buf).map(|n| (n, n > 0 && n < len)))
            .await
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
            .read_stream(|mut s| {
                // Most reads are small (a request or two): one `read` into
                // this thread's scratch buffer, and a buffer of exactly what
                // came — no `FIONREAD` call, no zeroing of a large buffer.
                // A full scratch means more is queued: one buffer for it all,
                // sized by `FIONREAD`.
                SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    let n = s.read(&mut scratch[..])?;
                    if n < scratch.len() {
                        return Ok((scratch[..n].to_vec(), n > 0));
                    }
                    let more = readable_bytes(s.as_raw_fd()).min(READ_BUF_MAX);
                    let mut v = Vec::with_capacity(n + more.max(READ_BUF_MIN));
                    v.extend_from_slice(&scratch[..n]);
                    v.resize(n + more.max(READ_BUF_MIN), 0);
                    let asked = v.len() - n;
                    let drained = match s.read(&mut v[n..]) {
                        Ok(m) => {
                            v.truncate(n + m);
                            m > 0 && m < asked
                        }
                        // What is in hand is returned; the rest waits.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            v.truncate(n);
                            true
                        }
                        Err(e) => return Err(e),
                    };
                    Ok((v, drained))
                })
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

    /// Writes all of `chain`, buffer after buffer, without gathering them
    /// into one (the same method as natively): each write hands the kernel
    /// the chain's buffers as an I/O vector (`writev`), so the bytes go
    /// from the application's [`IoBuf`]s straight into the socket, the one
    /// copy Linux makes. A server can thus send a stored value as a header
    /// [`IoBuf`], the value's own [`IoBuf`] (a clone: no copy) and a
    /// trailer.
    pub async fn write_chain(&self, mut chain: IoBufChain) -> io::Result<()> {
        while !chain.is_empty() {
            let n = self
                .inner
                .write_with(|mut s| {
                    let slices: Vec<std::io::IoSlice<'_>> = chain
                        .buffers()
                        .take(MAX_IOVECS)
                        .map(|b| std::io::IoSlice::new(b))
                        .collect();
                    s.write_vectored(&slices)
                })
                .await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::Other,
                    "the connection accepted no bytes",
                ));
            }
            chain.advance(n);
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
