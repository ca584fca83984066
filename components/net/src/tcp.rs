//! TCP listeners and streams (the same API as `ebbrt_std::net`).

use alloc::rc::Rc;
use core::cell::RefCell;
use core::fmt;
use core::future::poll_fn;
use core::net::SocketAddr;

use ebbrt_core::EbbRef;
use ebbrt_core::io::{self, Error, ErrorKind};
use ebbrt_core::iobuf::{IoBuf, IoBufChain};

use crate::manager::{Home, NO_DEVICE, NetworkManager};
use crate::remote::RemoteStack;
use crate::stack::Stack;

/// The most bytes one remote read or write moves between cores.
const REMOTE_CHUNK: usize = 64 * 1024;

/// How a listener's connections are made: the sizes of their buffers and
/// how many may be open at once (the same builder as hosted).
///
/// ```no_run
/// # async fn f() -> ebbrt_core::io::Result<()> {
/// use ebbrt_net::ListenOptions;
/// // Many mostly idle connections: small buffers, and a bound on them.
/// let listener = ListenOptions::new()
///     .rx_buffer(4096)
///     .tx_buffer(4096)
///     .max_connections(20_000)
///     .bind("0.0.0.0:11211".parse().unwrap())?;
/// # Ok(()) }
/// ```
///
/// Natively the buffers are the connection's smoltcp rings (the receive
/// buffer is also its largest window); unset, they are the stack's
/// configuration ([`NetConfig::tcp_rx_buffer`](crate::NetConfig::tcp_rx_buffer),
/// 64 KiB each way). The listeners of one port in one stack share the
/// options of the first (one that asks for others is refused with
/// [`ErrorKind::InvalidInput`]), and the limit counts their connections
/// together: the connections handed out and not yet dropped, and those
/// the stack has promised a socket to (handshakes, the accept queue,
/// listening sockets). A SYN beyond the limit, or whose buffers do not
/// fit the stack's memory budget or its socket table, is answered with a
/// reset and counted ([`StackStats::refused_limit`](crate::StackStats::refused_limit),
/// [`StackStats::refused_no_memory`](crate::StackStats::refused_no_memory)):
/// connections already open keep being served.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenOptions {
    pub(crate) rx_buffer: Option<usize>,
    pub(crate) tx_buffer: Option<usize>,
    pub(crate) max_connections: Option<usize>,
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
        self.bind_with(NetworkManager::get(), addr)
    }

    /// Binds through the network manager `mgr`.
    pub fn bind_with(
        self,
        mgr: EbbRef<NetworkManager>,
        addr: SocketAddr,
    ) -> io::Result<TcpListener> {
        match mgr.home() {
            Home::Local(stack) => self.bind_on(&stack, addr),
            Home::Remote { mgr, owner } => {
                crate::error::listen_endpoint(addr)?;
                if addr.port() == 0 {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "a core without its own stack must bind a listener to a given port",
                    ));
                }
                let remote = RemoteStack::new(mgr, owner);
                let id = crate::remote::remote_id();
                remote.run_detached(move |s| s.tcp_listen_remote(id, addr, self));
                Ok(TcpListener {
                    imp: ListenerImp::Remote { remote, id },
                    local: addr,
                })
            }
            Home::None => Err(NO_DEVICE),
        }
    }

    /// Binds on `stack` (which must live on this core).
    pub fn bind_on(self, stack: &Rc<Stack>, addr: SocketAddr) -> io::Result<TcpListener> {
        let (id, local) = stack.tcp_listen(addr, self)?;
        Ok(TcpListener {
            imp: ListenerImp::Local {
                stack: stack.clone(),
                id,
            },
            local,
        })
    }
}

/// A TCP socket listening for connections, owned by the core that bound it.
///
/// Several listeners may bind one port (as with `SO_REUSEPORT` hosted): the
/// stack hands new connections to them in turn. With a multiqueue NIC each
/// core has its own stack, and a connection arrives at the stack of the
/// queue the NIC steered it to: a server binds a listener on every core
/// (as the echo example does). With one queue, every listener lives in
/// core 0's stack and the other cores reach it through `spawn_on`.
pub struct TcpListener {
    imp: ListenerImp,
    local: SocketAddr,
}

enum ListenerImp {
    Local { stack: Rc<Stack>, id: u64 },
    Remote { remote: RemoteStack, id: u64 },
}

impl TcpListener {
    /// Binds a listener to `addr` (port 0: the stack picks one; see
    /// [`Self::local_addr`]) on the current core.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        Self::bind_with(NetworkManager::get(), addr)
    }

    /// Binds through the network manager `mgr`.
    pub fn bind_with(mgr: EbbRef<NetworkManager>, addr: SocketAddr) -> io::Result<TcpListener> {
        ListenOptions::new().bind_with(mgr, addr)
    }

    /// Binds on `stack` (which must live on this core).
    pub fn bind_on(stack: &Rc<Stack>, addr: SocketAddr) -> io::Result<TcpListener> {
        ListenOptions::new().bind_on(stack, addr)
    }

    /// Waits for a connection; returns it and the peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match &self.imp {
            ListenerImp::Local { stack, id } => {
                let (sid, peer) = poll_fn(|cx| stack.poll_accept(*id, cx)).await?;
                Ok((TcpStream::local(stack.clone(), sid), peer))
            }
            ListenerImp::Remote { remote, id } => {
                let lid = *id;
                let (sid, peer, addrs) = remote
                    .run(move |s| async move {
                        let (sid, peer) = poll_fn(|cx| s.poll_accept(lid, cx)).await?;
                        Ok((sid, peer, s.tcp_addrs(sid).ok()))
                    })
                    .await?;
                Ok((TcpStream::remote(*remote, sid, addrs), peer))
            }
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        match &self.imp {
            ListenerImp::Local { stack, id } => stack.tcp_unlisten(*id),
            ListenerImp::Remote { remote, id } => {
                let id = *id;
                remote.run_detached(move |s| s.tcp_unlisten(id));
            }
        }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local)
            .finish()
    }
}

/// A TCP connection, owned by the core that connected or accepted it.
///
/// The methods take `&self`: one task may read while another writes (two
/// tasks reading at once is not supported: the stack keeps one reader's
/// waker per connection).
///
/// # Receiving without copies
///
/// Received TCP payload is copied once by smoltcp, from the driver's
/// receive buffer (which the device wrote by DMA) into the connection's
/// receive ring: reassembly and the advertised window need that ring, and
/// smoltcp has no way to keep the frame buffers instead. From the ring:
/// - [`read`](Self::read) copies into the caller's buffer;
/// - [`read_with`](Self::read_with) copies nothing: the closure sees the
///   bytes in the ring;
/// - [`read_buf`](Self::read_buf) copies them once into a new [`IoBuf`]
///   sized to the data, which the application then keeps, slices and hands
///   on (also to other cores) without further copies.
///
/// On a core without a stack of its own (one queue, reached through
/// `spawn_on`), the owner core makes the [`IoBuf`] and it crosses cores
/// as is; [`read`](Self::read) and [`read_with`](Self::read_with) work
/// from it (one copy less than before `IoBuf`).
pub struct TcpStream {
    imp: StreamImp,
}

enum StreamImp {
    Local {
        stack: Rc<Stack>,
        id: u64,
    },
    Remote {
        remote: RemoteStack,
        id: u64,
        addrs: Option<(SocketAddr, SocketAddr)>,
        /// Received bytes not consumed yet (by `read` into a short buffer,
        /// or a `read_with` that took part of them).
        pending: RefCell<IoBuf>,
    },
}

impl TcpStream {
    fn local(stack: Rc<Stack>, id: u64) -> TcpStream {
        TcpStream {
            imp: StreamImp::Local { stack, id },
        }
    }

    fn remote(remote: RemoteStack, id: u64, addrs: Option<(SocketAddr, SocketAddr)>) -> TcpStream {
        TcpStream {
            imp: StreamImp::Remote {
                remote,
                id,
                addrs,
                pending: RefCell::new(IoBuf::new()),
            },
        }
    }

    /// Connects to `addr`, waiting until the connection is established or
    /// has failed ([`ErrorKind::ConnectionRefused`], [`ErrorKind::TimedOut`]).
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        Self::connect_with(NetworkManager::get(), addr).await
    }

    /// Connects through the network manager `mgr`.
    pub async fn connect_with(
        mgr: EbbRef<NetworkManager>,
        addr: SocketAddr,
    ) -> io::Result<TcpStream> {
        match mgr.home() {
            Home::Local(stack) => Self::connect_on(&stack, addr).await,
            Home::Remote { mgr, owner } => {
                let remote = RemoteStack::new(mgr, owner);
                let (id, addrs) = remote
                    .run(move |s| async move {
                        let id = s.tcp_connect(addr).await?;
                        Ok((id, s.tcp_addrs(id).ok()))
                    })
                    .await?;
                Ok(TcpStream::remote(remote, id, addrs))
            }
            Home::None => Err(NO_DEVICE),
        }
    }

    /// Connects from `stack` (which must live on this core).
    pub async fn connect_on(stack: &Rc<Stack>, addr: SocketAddr) -> io::Result<TcpStream> {
        let id = stack.tcp_connect(addr).await?;
        Ok(TcpStream::local(stack.clone(), id))
    }

    /// Reads into `buf`, waiting until at least one byte is available;
    /// returns how many were read. `Ok(0)` means the peer closed its write
    /// half (end of stream), or that `buf` is empty.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &self.imp {
            StreamImp::Local { stack, id } => poll_fn(|cx| stack.poll_read(*id, buf, cx)).await,
            StreamImp::Remote { .. } => {
                let mut off = 0;
                self.read_with(|data| {
                    let n = data.len().min(buf.len() - off);
                    buf[off..off + n].copy_from_slice(&data[..n]);
                    off += n;
                    n
                })
                .await
            }
        }
    }

    /// Reads without copying: `f` sees received bytes where they are kept
    /// (natively, in the connection's receive ring) and returns how many it
    /// consumed (at most their length); bytes it leaves are read next time.
    /// Waits until some bytes are there; returns how many were consumed,
    /// and `Ok(0)` at the end of the stream. `f` may be called more than
    /// once per read (the ring may hold the bytes in two pieces) and must
    /// not use the stream or other sockets (the stack is borrowed while it
    /// runs).
    pub async fn read_with(&self, mut f: impl FnMut(&[u8]) -> usize) -> io::Result<usize> {
        match &self.imp {
            StreamImp::Local { stack, id } => {
                poll_fn(|cx| stack.poll_read_with(*id, cx, &mut f)).await
            }
            StreamImp::Remote { pending, .. } => {
                if pending.borrow().is_empty() {
                    match self.read_buf().await? {
                        Some(b) => *pending.borrow_mut() = b,
                        None => return Ok(0),
                    }
                }
                let mut p = pending.borrow_mut();
                let n = f(&p).min(p.len());
                p.advance(n);
                Ok(n)
            }
        }
    }

    /// Reads the bytes received so far as one buffer (natively: everything
    /// in the receive ring, copied once into a buffer of exactly that size;
    /// hosted: what the kernel holds, read straight into the buffer),
    /// waiting until there is at least one. `Ok(None)` means the end of the
    /// stream.
    pub async fn read_buf(&self) -> io::Result<Option<IoBuf>> {
        match &self.imp {
            StreamImp::Local { stack, id } => {
                poll_fn(|cx| stack.poll_read_buf(*id, usize::MAX, cx)).await
            }
            StreamImp::Remote {
                remote,
                id,
                pending,
                ..
            } => {
                let left = pending.take();
                if !left.is_empty() {
                    return Ok(Some(left));
                }
                let id = *id;
                remote
                    .run(move |s| async move {
                        poll_fn(|cx| s.poll_read_buf(id, REMOTE_CHUNK, cx)).await
                    })
                    .await
            }
        }
    }

    /// Writes some of `buf`, waiting (the task sleeps until the stack has
    /// room; no spinning) while the send buffer is full; returns how many
    /// bytes were written.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &self.imp {
            StreamImp::Local { stack, id } => poll_fn(|cx| stack.poll_write(*id, buf, cx)).await,
            StreamImp::Remote { remote, id, .. } => {
                let id = *id;
                let data = buf[..buf.len().min(REMOTE_CHUNK)].to_vec();
                remote
                    .run(move |s| async move { poll_fn(|cx| s.poll_write(id, &data, cx)).await })
                    .await
            }
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        io::write_all(buf, |b| self.write(b)).await
    }

    /// Writes all of `chain`, buffer after buffer, without gathering them
    /// into one (the same method as hosted). The application's buffers are
    /// copied once, by the stack, into the connection's send ring (which
    /// smoltcp keeps until the peer acknowledges the bytes); a server can
    /// thus send a stored value as a header [`IoBuf`], the value's own
    /// [`IoBuf`] (a clone: no copy) and a trailer. On a core without a
    /// stack of its own the chain moves to the owner core as it is (its
    /// buffers are reference-counted views), where the same copy happens.
    pub async fn write_chain(&self, chain: IoBufChain) -> io::Result<()> {
        match &self.imp {
            StreamImp::Local { stack, id } => write_chain_on(stack, *id, chain).await,
            StreamImp::Remote { remote, id, .. } => {
                let id = *id;
                remote
                    .run(move |s| async move { write_chain_on(&s, id, chain).await })
                    .await
            }
        }
    }

    /// Closes the write half: the peer reads the end of the stream once it
    /// has read what was written before. Reading goes on.
    pub async fn shutdown(&self) -> io::Result<()> {
        match &self.imp {
            StreamImp::Local { stack, id } => stack.tcp_shutdown(*id),
            StreamImp::Remote { remote, id, .. } => {
                let id = *id;
                remote.run(move |s| async move { s.tcp_shutdown(id) }).await
            }
        }
    }

    fn addrs(&self) -> io::Result<(SocketAddr, SocketAddr)> {
        match &self.imp {
            StreamImp::Local { stack, id } => stack.tcp_addrs(*id),
            StreamImp::Remote { addrs, .. } => addrs.ok_or(crate::error::NOT_CONNECTED),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.addrs().map(|(_, p)| p)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.addrs().map(|(l, _)| l)
    }

    /// Turns Nagle's algorithm off (`on`) or back on.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match &self.imp {
            StreamImp::Local { stack, id } => stack.tcp_set_nodelay(*id, on),
            StreamImp::Remote { remote, id, .. } => {
                let id = *id;
                remote.run_detached(move |s| {
                    let _ = s.tcp_set_nodelay(id, on);
                });
                Ok(())
            }
        }
    }
}

/// Writes all of `chain` into stream `id` of `stack`.
async fn write_chain_on(stack: &Stack, id: u64, mut chain: IoBufChain) -> io::Result<()> {
    while !chain.is_empty() {
        if poll_fn(|cx| stack.poll_write_chain(id, &mut chain, cx)).await? == 0 {
            return Err(Error::new(
                ErrorKind::Other,
                "the connection accepted no bytes",
            ));
        }
    }
    Ok(())
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        match &self.imp {
            StreamImp::Local { stack, id } => stack.tcp_close(*id),
            StreamImp::Remote { remote, id, .. } => {
                let id = *id;
                remote.run_detached(move |s| s.tcp_close(id));
            }
        }
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
