//! The Messenger Ebb: connections, the handshake's driver, requests,
//! handlers and counters.
//!
//! Every connection and handler of one messenger lives on its *home core*
//! (the core that started it): sockets are `!Send` and stay where they
//! were made. A request from another core is shipped there (`spawn_on_with`)
//! as encoded bytes and its reply comes back the same way, so there is one
//! connection per peer for the whole node.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::net::SocketAddr;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use core::time::Duration;

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::ebb::ids;
use ebbrt_core::exec::timeout;
// The socket API of the runtime being built: Linux sockets hosted, the
// smoltcp stacks of `ebbrt-net` natively (the same signatures).
use ebbrt_core::{EbbId, EbbRef, IoBufChain, PerCore, PerCoreRoot, ebb};
#[cfg(target_os = "none")]
use ebbrt_net::{TcpListener, TcpStream};
#[cfg(not(target_os = "none"))]
use ebbrt_std::net::{TcpListener, TcpStream};

use crate::auth::{self, Challenge, Hello, PROTO_VERSION, Proof, Side, Transcript, Welcome};
use crate::decode::{Frame, FrameDecoder, FrameError, Limits};
use crate::frame::{ERROR_TAG, ErrorBody, ErrorKind, FrameKind, encode_error, encode_head};
use crate::sync::{Notify, Slot};
use crate::{Message, MsgError, NodeId, Request, decode_payload};

/// The destination of handshake frames: the messenger's well-known id.
const CONTROL: EbbId = ids::MESSENGER;
/// Limits while the peer is not authenticated yet.
const HANDSHAKE_LIMITS: Limits = Limits {
    max_payload: 512,
    max_bulk: 0,
};

/// How a messenger is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node.
    pub node: NodeId,
    /// Where to accept connections (`None`: dial out only).
    pub listen: Option<SocketAddr>,
    /// The allocation's secret, shared by every node of the application.
    pub secret: Vec<u8>,
    /// This build's id, sent in the handshake (informational).
    pub build_id: u64,
    /// The largest frame accepted (and sent).
    pub limits: Limits,
    /// How long opening a connection (TCP and handshake) may take.
    pub handshake_timeout: Duration,
    /// How long a handler may take before its request is answered with a
    /// `Deadline` error frame.
    pub handler_timeout: Duration,
    /// Whether a peer that proved the secret may connect (the frontend
    /// asks its node allocator whether it allocated that node); `None`
    /// admits every authenticated peer.
    pub admit: Option<Admission>,
}

/// Decides whether an authenticated peer may connect; refused peers get an
/// `Unauthorized` error frame and are counted in `auth_refused`.
#[derive(Clone)]
pub struct Admission(Arc<dyn Fn(NodeId) -> bool + Send + Sync>);

impl Admission {
    /// An admission check.
    pub fn new(f: impl Fn(NodeId) -> bool + Send + Sync + 'static) -> Admission {
        Admission(Arc::new(f))
    }
}

impl core::fmt::Debug for Admission {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Admission(..)")
    }
}

impl Config {
    /// A configuration with default limits and timeouts (5 s handshake,
    /// 30 s per handler).
    pub fn new(node: NodeId, secret: &[u8]) -> Config {
        Config {
            node,
            listen: None,
            secret: secret.to_vec(),
            build_id: 0,
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(5),
            handler_timeout: Duration::from_secs(30),
            admit: None,
        }
    }
}

/// Why a messenger could not start.
#[derive(Debug)]
pub enum StartError {
    /// The node's messenger is already started.
    AlreadyStarted,
    /// Its listener could not be opened.
    Listen(ebbrt_core::io::Error),
    /// No Ebb id was left (a detached messenger).
    Ebb(ebbrt_core::EbbError),
    /// A distributed Ebb's handlers could not be installed.
    Distributed(alloc::string::String),
}

impl From<ebbrt_core::io::Error> for StartError {
    fn from(e: ebbrt_core::io::Error) -> StartError {
        StartError::Listen(e)
    }
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::AlreadyStarted => f.write_str("the node's messenger is already started"),
            StartError::Listen(e) => write!(f, "messenger listener: {e}"),
            StartError::Ebb(e) => write!(f, "messenger: {e}"),
            StartError::Distributed(e) => f.write_str(e),
        }
    }
}

impl core::error::Error for StartError {}

/// A typed reply: the message and the bulk bytes after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply<R> {
    /// The reply message.
    pub msg: R,
    /// Bulk bytes (views of what was received; empty if none).
    pub bulk: IoBufChain,
}

impl<R> Reply<R> {
    /// A reply without bulk bytes.
    pub fn new(msg: R) -> Reply<R> {
        Reply {
            msg,
            bulk: IoBufChain::new(),
        }
    }
}

/// A snapshot of a messenger's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received after the handshake.
    pub frames_in: u64,
    /// Frames sent after the handshake.
    pub frames_out: u64,
    /// Error frames sent, by [`ErrorKind::ALL`] index.
    pub errors_sent: [u64; 9],
    /// Error frames received, by [`ErrorKind::ALL`] index (other codes are
    /// not counted here).
    pub errors_received: [u64; 9],
    /// Peers refused because they could not prove the secret.
    pub auth_refused: u64,
    /// Connections on which the peer refused our proof.
    pub refused_by_peer: u64,
    /// Connections established (both directions).
    pub connections_opened: u64,
    /// Connects that failed (TCP or handshake).
    pub connect_failures: u64,
    /// Requests whose deadline passed.
    pub deadlines: u64,
    /// Replies that came after their request had given up.
    pub late_replies: u64,
}

impl Stats {
    /// Error frames of `kind` sent.
    pub fn sent(&self, kind: ErrorKind) -> u64 {
        kind.index().map_or(0, |i| self.errors_sent[i])
    }
    /// Error frames of `kind` received.
    pub fn received(&self, kind: ErrorKind) -> u64 {
        kind.index().map_or(0, |i| self.errors_received[i])
    }
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    errors_sent: [AtomicU64; 9],
    errors_received: [AtomicU64; 9],
    auth_refused: AtomicU64,
    refused_by_peer: AtomicU64,
    connections_opened: AtomicU64,
    connect_failures: AtomicU64,
    deadlines: AtomicU64,
    late_replies: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// What a connection is, for inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The node that opened it.
    pub initiator: NodeId,
    /// This end's address.
    pub local: Option<SocketAddr>,
    /// The other end's address.
    pub remote: Option<SocketAddr>,
    /// The peer's build id.
    pub peer_build: u64,
}

/// What [`Messenger::start`] fixes: the configuration and the home core.
struct Started {
    config: Config,
    home: CoreId,
}

/// The messenger's shared state: its configuration once started, the
/// peers' endpoints, its counters.
pub struct MessengerRoot {
    started: spin::Once<Started>,
    peers: spin::Mutex<BTreeMap<NodeId, SocketAddr>>,
    local_addr: spin::Mutex<Option<SocketAddr>>,
    counters: Counters,
}

/// Ebb-to-Ebb messages between the nodes of one application over TCP,
/// authenticated with the allocation's secret, on both runtimes (an
/// application depends on `ebbrt-messenger`; no facade feature).
///
/// One connection per peer `NodeId`, opened on first use; simultaneous
/// connects settle on the lower node's; a deadline on every request; a
/// dropped connection is reopened on next use. Frames with unknown tags,
/// over the limits or truncated are answered with error frames and
/// counted.
///
/// Start one per node with [`Messenger::start`]; tell it where peers are
/// with [`add_peer`](Self::add_peer); register handlers on its home core
/// with [`handle`](Self::handle); call [`request`](Self::request) and
/// [`send`](Self::send) from any core.
///
/// The node's messenger lives at the well-known id
/// [`ids::MESSENGER`](ebbrt_core::ebb::ids::MESSENGER) (so that distributed
/// Ebbs, the global id map and file offload find it:
/// [`Messenger::node_messenger`]); [`Messenger::start_detached`] makes
/// more at run-time ids (tests with several nodes in one process).
#[ebb(
    per_core,
    id = ids::MESSENGER,
    root = MessengerRoot,
    root_new = MessengerRoot::unstarted,
    new = Messenger::new_rep
)]
pub struct Messenger {
    root: &'static PerCoreRoot<Messenger>,
    core: CoreId,
    /// Connections and handlers: used on the home core only.
    home: Home,
}

impl MessengerRoot {
    /// The root of a messenger not started yet.
    fn unstarted() -> MessengerRoot {
        MessengerRoot {
            started: spin::Once::new(),
            peers: spin::Mutex::new(BTreeMap::new()),
            local_addr: spin::Mutex::new(None),
            counters: Counters::default(),
        }
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<Outgoing>, ErrorKind>>>>;
type HandlerFn = Rc<dyn Fn(NodeId, Frame) -> HandlerFuture>;
type Resolver = Rc<dyn Fn(NodeId) -> Pin<Box<dyn Future<Output = Option<SocketAddr>>>>>;

struct Outgoing {
    tag: u64,
    payload: Vec<u8>,
    bulk: IoBufChain,
}

/// A connection being opened by this node; waiters look at its outcome.
struct Attempt {
    /// `Ok(true)`: established; `Ok(false)`: the peer's own connection
    /// wins; `Err`: failed.
    outcome: RefCell<Option<Result<bool, MsgError>>>,
}

#[derive(Default)]
struct Home {
    conns: RefCell<BTreeMap<NodeId, Rc<Conn>>>,
    dialing: RefCell<BTreeMap<NodeId, Rc<Attempt>>>,
    handlers: RefCell<BTreeMap<(EbbId, u64), HandlerFn>>,
    resolver: RefCell<Option<Resolver>>,
    next_corr: Cell<u64>,
    changed: Rc<Notify>,
}

type Pending = Rc<Slot<Result<Frame, MsgError>>>;

struct Conn {
    initiator: NodeId,
    peer_build: u64,
    stream: TcpStream,
    out: RefCell<VecDeque<(Vec<u8>, IoBufChain)>>,
    out_ready: Rc<Notify>,
    /// No new frames; the writer flushes what is queued, then shuts down.
    closing: Cell<bool>,
    /// Replaced by another connection to the same peer: no new requests;
    /// closes once its pending requests are answered.
    retired: Cell<bool>,
    pending: RefCell<BTreeMap<u64, Pending>>,
}

impl Conn {
    fn enqueue(&self, head: Vec<u8>, bulk: IoBufChain) -> Result<(), MsgError> {
        if self.closing.get() {
            return Err(MsgError::ConnectionLost);
        }
        self.out.borrow_mut().push_back((head, bulk));
        self.out_ready.notify();
        Ok(())
    }

    fn close(&self) {
        self.closing.set(true);
        self.out_ready.notify();
    }

    fn close_if_idle(&self) {
        if self.retired.get() && self.pending.borrow().is_empty() {
            self.close();
        }
    }
}

/// Removes a request's pending entry when the request ends (answered,
/// failed or dropped by its deadline).
struct PendingGuard {
    conn: Rc<Conn>,
    corr: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.conn.pending.borrow_mut().remove(&self.corr);
        self.conn.close_if_idle();
    }
}

impl Messenger {
    fn new_rep(root: &'static PerCoreRoot<Messenger>, core: CoreId) -> Messenger {
        Messenger {
            root,
            core,
            home: Home::default(),
        }
    }

    /// The node's messenger, at [`ids::MESSENGER`]; usable once
    /// [`Messenger::start`] ran (before, calls fail with
    /// [`MsgError::NotStarted`]).
    pub fn node_messenger() -> EbbRef<Messenger> {
        EbbRef::fixed()
    }

    /// Starts the node's messenger (at [`ids::MESSENGER`]) on the current
    /// core, its home core: binds `config.listen`, if any, and accepts
    /// connections there; registers the handlers of every distributed Ebb
    /// linked into the image ([`crate::distributed`]). A second start is
    /// refused.
    pub fn start(config: Config) -> Result<EbbRef<Messenger>, StartError> {
        if Messenger::node_messenger().get().started().is_ok() {
            return Err(StartError::AlreadyStarted);
        }
        let listener = match config.listen {
            Some(addr) => Some(TcpListener::bind(addr)?),
            None => None,
        };
        Messenger::start_node(config, listener)
    }

    /// [`Messenger::start`] accepting on `listener` (one the application
    /// opened: hosted, inside the node allocator's network namespace with
    /// `TcpListener::from_std`); `config.listen` is not used.
    pub fn start_on(
        config: Config,
        listener: TcpListener,
    ) -> Result<EbbRef<Messenger>, StartError> {
        Messenger::start_node(config, Some(listener))
    }

    fn start_node(
        config: Config,
        listener: Option<TcpListener>,
    ) -> Result<EbbRef<Messenger>, StartError> {
        let ebb = Messenger::node_messenger();
        let me = ebb.get();
        let mut fresh = false;
        me.data().started.call_once(|| {
            fresh = true;
            Started {
                config: config.clone(),
                home: cpu::current(),
            }
        });
        if !fresh {
            return Err(StartError::AlreadyStarted);
        }
        if let Some(l) = listener {
            me.accept_on(l)?;
        }
        crate::distributed::register_all(me).map_err(StartError::Distributed)?;
        Ok(ebb)
    }

    /// Starts a messenger of its own at a run-time id on the current core
    /// (several nodes in one process, for tests). Distributed Ebbs are not
    /// registered on it.
    pub fn start_detached(config: Config) -> Result<EbbRef<Messenger>, StartError> {
        let listen = config.listen;
        let root = MessengerRoot::unstarted();
        root.started.call_once(|| Started {
            config,
            home: cpu::current(),
        });
        let ebb = Messenger::create(root).map_err(StartError::Ebb)?;
        if let Some(addr) = listen {
            ebb.get().accept_on(TcpListener::bind(addr)?)?;
        }
        Ok(ebb)
    }

    fn accept_on(&'static self, listener: TcpListener) -> Result<(), ebbrt_core::io::Error> {
        *self.data().local_addr.lock() = Some(listener.local_addr()?);
        ebbrt_core::spawn_local(self.accept_loop(listener)).detach();
        Ok(())
    }

    fn started(&self) -> Result<&'static Started, MsgError> {
        self.root.data().started.get().ok_or(MsgError::NotStarted)
    }

    /// The configuration; only on paths that run after the start.
    fn cfg(&self) -> &'static Config {
        &self
            .root
            .data()
            .started
            .get()
            .expect("connections exist only once the messenger started")
            .config
    }

    fn data(&self) -> &'static MessengerRoot {
        self.root.data()
    }

    fn me(&self) -> &'static Messenger {
        self.root.local_rep()
    }

    /// This node.
    pub fn node(&self) -> Result<NodeId, MsgError> {
        Ok(self.started()?.config.node)
    }

    /// The address this messenger accepts connections on, if it listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *self.data().local_addr.lock()
    }

    /// Sets (or changes) where `node` is reached. An existing connection is
    /// kept; the address is used the next time one is opened.
    pub fn add_peer(&self, node: NodeId, addr: SocketAddr) {
        self.data().peers.lock().insert(node, addr);
    }

    /// Sets how endpoints of nodes not given with [`add_peer`](Self::add_peer)
    /// are found (the global id map asks the frontend, say): called when a
    /// message goes to such a node, within the handshake timeout; `None`
    /// means the node is unknown. On the home core only.
    pub fn set_resolver<F, Fut>(&self, f: F) -> Result<(), MsgError>
    where
        F: Fn(NodeId) -> Fut + 'static,
        Fut: Future<Output = Option<SocketAddr>> + 'static,
    {
        let r: Resolver = Rc::new(move |n| Box::pin(f(n)));
        *self.home()?.resolver.borrow_mut() = Some(r);
        Ok(())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.data().counters;
        let ld = |a: &AtomicU64| a.load(Relaxed);
        Stats {
            frames_in: ld(&c.frames_in),
            frames_out: ld(&c.frames_out),
            errors_sent: core::array::from_fn(|i| ld(&c.errors_sent[i])),
            errors_received: core::array::from_fn(|i| ld(&c.errors_received[i])),
            auth_refused: ld(&c.auth_refused),
            refused_by_peer: ld(&c.refused_by_peer),
            connections_opened: ld(&c.connections_opened),
            connect_failures: ld(&c.connect_failures),
            deadlines: ld(&c.deadlines),
            late_replies: ld(&c.late_replies),
        }
    }

    fn count_sent(&self, kind: ErrorKind) {
        if let Some(i) = kind.index() {
            bump(&self.data().counters.errors_sent[i]);
        }
    }

    fn home(&self) -> Result<&Home, MsgError> {
        if self.core == self.started()?.home {
            Ok(&self.home)
        } else {
            Err(MsgError::NotHomeCore)
        }
    }

    /// The live connection to `node` (on the home core only).
    pub fn connection_info(&self, node: NodeId) -> Option<ConnInfo> {
        let home = self.home().ok()?;
        let conns = home.conns.borrow();
        let c = conns.get(&node)?;
        Some(ConnInfo {
            initiator: c.initiator,
            local: c.stream.local_addr().ok(),
            remote: c.stream.peer_addr().ok(),
            peer_build: c.peer_build,
        })
    }

    /// Waits until a connection to `node` is up (opened by either side), at
    /// most `deadline`. From any core.
    pub async fn wait_connected(&self, node: NodeId, deadline: Duration) -> Result<(), MsgError> {
        let started = self.started()?;
        let root = self.root;
        let wait = move || async move {
            let me = root.local_rep();
            let home = me.home()?;
            let up = async {
                loop {
                    let changed = home.changed.listen();
                    if home
                        .conns
                        .borrow()
                        .get(&node)
                        .is_some_and(|c| !c.closing.get() && !c.retired.get())
                    {
                        return;
                    }
                    changed.await;
                }
            };
            timeout(deadline, up).await.map_err(|_| MsgError::Deadline)
        };
        if self.core == started.home {
            wait().await
        } else {
            ebbrt_core::exec::spawn_on_with(started.home, wait).await
        }
    }

    /// Closes the connection to `node`, if any (on the home core only); the
    /// next message to it opens a new one. Requests waiting on it fail with
    /// [`MsgError::ConnectionLost`] once the peer has closed its end.
    pub fn disconnect(&self, node: NodeId) {
        if let Ok(home) = self.home()
            && let Some(c) = home.conns.borrow_mut().remove(&node)
        {
            c.close();
            home.changed.notify();
        }
    }

    /// Registers the handler of requests `M` to the Ebb `ebb` of this node.
    /// On the home core only; a second registration replaces the first.
    pub fn handle<M, F, Fut>(&self, ebb: EbbId, f: F) -> Result<(), MsgError>
    where
        M: Request,
        F: Fn(NodeId, M, IoBufChain) -> Fut + 'static,
        Fut: Future<Output = Result<Reply<M::Reply>, ErrorKind>> + 'static,
    {
        let f = Rc::new(f);
        let h: HandlerFn = Rc::new(move |from, frame: Frame| {
            let f = f.clone();
            Box::pin(async move {
                let msg: M = decode_payload(&frame.payload)?;
                let r = f(from, msg, frame.bulk).await?;
                let payload =
                    postcard::to_allocvec(&r.msg).map_err(|_| ErrorKind::HandlerFailed)?;
                Ok(Some(Outgoing {
                    tag: <M::Reply as Message>::TAG,
                    payload,
                    bulk: r.bulk,
                }))
            })
        });
        self.home()?.handlers.borrow_mut().insert((ebb, M::TAG), h);
        Ok(())
    }

    /// Registers the handler of one-way messages `M` to the Ebb `ebb` of
    /// this node. On the home core only.
    pub fn handle_message<M, F, Fut>(&self, ebb: EbbId, f: F) -> Result<(), MsgError>
    where
        M: Message,
        F: Fn(NodeId, M, IoBufChain) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let f = Rc::new(f);
        let h: HandlerFn = Rc::new(move |from, frame: Frame| {
            let f = f.clone();
            Box::pin(async move {
                let msg: M = decode_payload(&frame.payload)?;
                f(from, msg, frame.bulk).await;
                Ok(None)
            })
        });
        self.home()?.handlers.borrow_mut().insert((ebb, M::TAG), h);
        Ok(())
    }

    /// Sends the request `msg` (and `bulk` after it) to the Ebb `ebb` on
    /// `node` and waits for its reply, at most `deadline` in all (opening
    /// the connection included). From any core.
    pub async fn request<M: Request>(
        &self,
        node: NodeId,
        ebb: EbbId,
        msg: &M,
        bulk: IoBufChain,
        deadline: Duration,
    ) -> Result<Reply<M::Reply>, MsgError> {
        let payload = postcard::to_allocvec(msg).map_err(|_| MsgError::TooLarge)?;
        let frame = self
            .raw(node, ebb, M::TAG, payload, bulk, deadline, true)
            .await?
            .ok_or(MsgError::ConnectionLost)?;
        match frame.header.kind {
            FrameKind::Reply if frame.header.tag == <M::Reply as Message>::TAG => Ok(Reply {
                msg: decode_payload(&frame.payload).map_err(MsgError::BadReply)?,
                bulk: frame.bulk,
            }),
            FrameKind::Reply => Err(MsgError::BadReply(ErrorKind::UnknownTag)),
            _ => Err(remote_error(&frame)),
        }
    }

    /// Sends the one-way message `msg` (and `bulk`) to the Ebb `ebb` on
    /// `node`: returns once it is queued on the connection, which must open
    /// within `deadline`. From any core.
    pub async fn send<M: Message>(
        &self,
        node: NodeId,
        ebb: EbbId,
        msg: &M,
        bulk: IoBufChain,
        deadline: Duration,
    ) -> Result<(), MsgError> {
        let payload = postcard::to_allocvec(msg).map_err(|_| MsgError::TooLarge)?;
        self.raw(node, ebb, M::TAG, payload, bulk, deadline, false)
            .await
            .map(|_| ())
    }

    #[allow(clippy::too_many_arguments)]
    async fn raw(
        &self,
        node: NodeId,
        ebb: EbbId,
        tag: u64,
        payload: Vec<u8>,
        bulk: IoBufChain,
        deadline: Duration,
        want_reply: bool,
    ) -> Result<Option<Frame>, MsgError> {
        let started = self.started()?;
        let limits = started.config.limits;
        if payload.len() > limits.max_payload as usize || bulk.len() > limits.max_bulk as usize {
            return Err(MsgError::TooLarge);
        }
        if self.core == started.home {
            return self
                .me()
                .raw_home(node, ebb, tag, payload, bulk, deadline, want_reply)
                .await;
        }
        let root = self.root;
        ebbrt_core::exec::spawn_on_with(started.home, move || async move {
            root.local_rep()
                .raw_home(node, ebb, tag, payload, bulk, deadline, want_reply)
                .await
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn raw_home(
        &'static self,
        node: NodeId,
        ebb: EbbId,
        tag: u64,
        payload: Vec<u8>,
        bulk: IoBufChain,
        deadline: Duration,
        want_reply: bool,
    ) -> Result<Option<Frame>, MsgError> {
        let home = self.home()?;
        let work = async {
            let conn = self.connection(node).await?;
            let kind = if want_reply {
                FrameKind::Request
            } else {
                FrameKind::Message
            };
            let corr = if want_reply {
                let c = home.next_corr.get().wrapping_add(1).max(1);
                home.next_corr.set(c);
                c
            } else {
                0
            };
            let head = encode_head(kind, ebb, tag, corr, &payload, bulk.len());
            if !want_reply {
                conn.enqueue(head, bulk)?;
                return Ok(None);
            }
            let slot = Slot::new();
            conn.pending.borrow_mut().insert(corr, slot.clone());
            let _guard = PendingGuard {
                conn: conn.clone(),
                corr,
            };
            conn.enqueue(head, bulk)?;
            slot.wait().await.map(Some)
        };
        match timeout(deadline, work).await {
            Ok(r) => r,
            Err(_) => {
                bump(&self.data().counters.deadlines);
                Err(MsgError::Deadline)
            }
        }
    }

    /// The connection to `node`: the live one, or one opened now (or by
    /// the peer, when its simultaneous connect wins).
    async fn connection(&'static self, node: NodeId) -> Result<Rc<Conn>, MsgError> {
        let home = self.home()?;
        let mut attempt: Option<Rc<Attempt>> = None;
        loop {
            let changed = home.changed.listen();
            if let Some(c) = home.conns.borrow().get(&node)
                && !c.closing.get()
                && !c.retired.get()
            {
                return Ok(c.clone());
            }
            if let Some(a) = &attempt {
                match &*a.outcome.borrow() {
                    Some(Err(e)) => return Err(e.clone()),
                    // Established but gone already: the caller may retry.
                    Some(Ok(true)) => return Err(MsgError::ConnectionLost),
                    // Ok(false): the peer's connection is coming; wait.
                    _ => {}
                }
            } else {
                let existing = home.dialing.borrow().get(&node).cloned();
                attempt = Some(match existing {
                    Some(a) => a,
                    None => self.start_dial(node)?,
                });
            }
            changed.await;
        }
    }

    fn start_dial(&'static self, node: NodeId) -> Result<Rc<Attempt>, MsgError> {
        let home = self.home()?;
        let known = self.data().peers.lock().get(&node).copied();
        let resolver = home.resolver.borrow().clone();
        if known.is_none() && resolver.is_none() {
            return Err(MsgError::UnknownPeer(node));
        }
        let a = Rc::new(Attempt {
            outcome: RefCell::new(None),
        });
        home.dialing.borrow_mut().insert(node, a.clone());
        let a2 = a.clone();
        ebbrt_core::spawn_local(async move {
            let limit = self.cfg().handshake_timeout;
            let open = async {
                let addr = match (known, resolver) {
                    (Some(a), _) => a,
                    (None, Some(resolve)) => {
                        let a = resolve(node).await.ok_or(MsgError::UnknownPeer(node))?;
                        self.add_peer(node, a);
                        a
                    }
                    (None, None) => return Err(MsgError::UnknownPeer(node)),
                };
                self.dial(node, addr).await
            };
            let r = match timeout(limit, open).await {
                Ok(r) => r,
                Err(_) => Err(MsgError::Deadline),
            };
            if r.is_err() {
                bump(&self.data().counters.connect_failures);
            }
            let home = &self.home;
            let mut d = home.dialing.borrow_mut();
            if d.get(&node).is_some_and(|x| Rc::ptr_eq(x, &a2)) {
                d.remove(&node);
            }
            drop(d);
            *a2.outcome.borrow_mut() = Some(r);
            home.changed.notify();
        })
        .detach();
        Ok(a)
    }

    /// Opens a connection to `node` at `addr` and runs the connector's
    /// half of the handshake.
    async fn dial(&'static self, node: NodeId, addr: SocketAddr) -> Result<bool, MsgError> {
        let cfg = self.cfg();
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| MsgError::Connect(e.kind()))?;
        let _ = stream.set_nodelay(true);
        let mut dec = FrameDecoder::new(HANDSHAKE_LIMITS);
        let nonce_c = auth::nonce(&cfg.secret, cfg.node);
        let hello = Hello {
            node: cfg.node,
            proto: PROTO_VERSION,
            build_id: cfg.build_id,
            nonce: nonce_c,
        };
        write_control(&stream, &hello).await?;
        let f = read_frame(&stream, &mut dec).await?;
        let ch: Challenge = self.expect_control(&stream, &f).await?;
        if ch.node != node {
            // Whoever answers at that endpoint is not the node we wanted.
            return Err(MsgError::Handshake);
        }
        let t = Transcript {
            nonce_c,
            nonce_a: ch.nonce,
            node_c: cfg.node,
            node_a: node,
            proto: PROTO_VERSION,
        };
        if !t.verify(&cfg.secret, Side::Acceptor, &ch.mac) {
            bump(&self.data().counters.auth_refused);
            self.refuse(&stream, ErrorKind::Unauthorized, Challenge::TAG)
                .await;
            return Err(MsgError::Unauthorized);
        }
        let proof = Proof {
            mac: t.prove(&cfg.secret, Side::Connector),
        };
        write_control(&stream, &proof).await?;
        let f = read_frame(&stream, &mut dec).await?;
        let w: Welcome = self.expect_control(&stream, &f).await?;
        if w.accepted {
            self.install(node, cfg.node, ch.build_id, stream, dec);
        }
        Ok(w.accepted)
    }

    /// The control message `M` in `f`, or why not (an error frame from the
    /// peer, or one we send it).
    async fn expect_control<M: Message>(
        &self,
        stream: &TcpStream,
        f: &Frame,
    ) -> Result<M, MsgError> {
        if f.header.kind == FrameKind::Error {
            let e = remote_error(f);
            if e == MsgError::Remote(ErrorKind::Unauthorized) {
                bump(&self.data().counters.refused_by_peer);
                return Err(MsgError::Unauthorized);
            }
            return Err(e);
        }
        if f.header.tag != M::TAG || f.header.kind != FrameKind::Message {
            self.refuse(stream, ErrorKind::UnknownTag, f.header.tag)
                .await;
            return Err(MsgError::Handshake);
        }
        match decode_payload(&f.payload) {
            Ok(m) => Ok(m),
            Err(kind) => {
                self.refuse(stream, kind, f.header.tag).await;
                Err(MsgError::Handshake)
            }
        }
    }

    /// Sends an error frame about the connection (best effort).
    async fn refuse(&self, stream: &TcpStream, kind: ErrorKind, tag: u64) {
        self.count_sent(kind);
        let _ = stream.write_all(&encode_error(CONTROL, 0, kind, tag)).await;
        let _ = stream.shutdown().await;
    }

    async fn accept_loop(&'static self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let limit = self.cfg().handshake_timeout;
                    ebbrt_core::spawn_local(async move {
                        let _ = timeout(limit, self.accept_one(stream)).await;
                    })
                    .detach();
                }
                // Out of descriptors, say: back off instead of spinning.
                Err(_) => ebbrt_core::exec::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// The acceptor's half of the handshake on a new connection.
    async fn accept_one(&'static self, stream: TcpStream) -> Result<(), MsgError> {
        let cfg = self.cfg();
        let _ = stream.set_nodelay(true);
        let mut dec = FrameDecoder::new(HANDSHAKE_LIMITS);
        let f = match read_frame(&stream, &mut dec).await {
            Ok(f) => f,
            Err(FrameFail::Frame(e)) => {
                self.refuse(&stream, e.kind, e.header.map_or(0, |h| h.tag))
                    .await;
                return Err(MsgError::Handshake);
            }
            Err(FrameFail::Lost) => return Err(MsgError::ConnectionLost),
        };
        let hello: Hello = self.expect_control(&stream, &f).await?;
        if hello.proto != PROTO_VERSION {
            self.refuse(&stream, ErrorKind::BadVersion, Hello::TAG)
                .await;
            return Err(MsgError::Handshake);
        }
        let t = Transcript {
            nonce_c: hello.nonce,
            nonce_a: auth::nonce(&cfg.secret, cfg.node),
            node_c: hello.node,
            node_a: cfg.node,
            proto: PROTO_VERSION,
        };
        let ch = Challenge {
            node: cfg.node,
            proto: PROTO_VERSION,
            build_id: cfg.build_id,
            nonce: t.nonce_a,
            mac: t.prove(&cfg.secret, Side::Acceptor),
        };
        write_control(&stream, &ch).await?;
        let f = read_frame(&stream, &mut dec).await?;
        let proof: Proof = self.expect_control(&stream, &f).await?;
        let admitted = cfg.admit.as_ref().is_none_or(|a| (a.0)(hello.node));
        if !t.verify(&cfg.secret, Side::Connector, &proof.mac)
            || hello.node == cfg.node
            || !admitted
        {
            bump(&self.data().counters.auth_refused);
            self.refuse(&stream, ErrorKind::Unauthorized, Proof::TAG)
                .await;
            return Err(MsgError::Unauthorized);
        }
        // Simultaneous connects: the connection opened by the lower node
        // wins. If we are lower and are opening our own, refuse this one.
        let home = self.home()?;
        let ours_wins = cfg.node < hello.node && home.dialing.borrow().contains_key(&hello.node);
        write_control(
            &stream,
            &Welcome {
                accepted: !ours_wins,
            },
        )
        .await?;
        if !ours_wins {
            self.install(hello.node, hello.node, hello.build_id, stream, dec);
        }
        Ok(())
    }

    /// Makes an authenticated connection the one to `peer`; a previous one
    /// is retired (no new requests, closed when its requests are answered).
    fn install(
        &'static self,
        peer: NodeId,
        initiator: NodeId,
        peer_build: u64,
        stream: TcpStream,
        dec: FrameDecoder,
    ) {
        let home = &self.home;
        let conn = Rc::new(Conn {
            initiator,
            peer_build,
            stream,
            out: RefCell::new(VecDeque::new()),
            out_ready: Rc::new(Notify::default()),
            closing: Cell::new(false),
            retired: Cell::new(false),
            pending: RefCell::new(BTreeMap::new()),
        });
        bump(&self.data().counters.connections_opened);
        if let Some(old) = home.conns.borrow_mut().insert(peer, conn.clone()) {
            old.retired.set(true);
            old.close_if_idle();
        }
        let limits = self.cfg().limits;
        ebbrt_core::spawn_local(self.writer(conn.clone())).detach();
        ebbrt_core::spawn_local(self.reader(peer, conn, dec.with_limits(limits))).detach();
        home.changed.notify();
    }

    async fn writer(&'static self, conn: Rc<Conn>) {
        loop {
            let ready = conn.out_ready.listen();
            let next = conn.out.borrow_mut().pop_front();
            match next {
                Some((head, bulk)) => {
                    // Header and payload, then the bulk buffers themselves
                    // (views, not copies) in one vectored write.
                    let mut frame = bulk;
                    frame.push_front(ebbrt_core::IoBuf::from_vec(head));
                    if conn.stream.write_chain(frame).await.is_err() {
                        conn.closing.set(true);
                        conn.out.borrow_mut().clear();
                        return;
                    }
                    bump(&self.data().counters.frames_out);
                }
                None if conn.closing.get() => {
                    let _ = conn.stream.shutdown().await;
                    return;
                }
                None => ready.await,
            }
        }
    }

    async fn reader(&'static self, peer: NodeId, conn: Rc<Conn>, mut dec: FrameDecoder) {
        'stream: loop {
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => {
                        bump(&self.data().counters.frames_in);
                        self.dispatch(peer, &conn, f);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.frame_error(&conn, e);
                        break 'stream;
                    }
                }
            }
            match conn.stream.read_buf().await {
                Ok(Some(b)) => dec.push(b),
                Ok(None) => {
                    if let Err(e) = dec.finish() {
                        self.frame_error(&conn, e);
                    }
                    break;
                }
                Err(_) => break,
            }
        }
        self.conn_ended(peer, &conn);
    }

    /// Answers a frame the decoder refused; the stream is then closed.
    fn frame_error(&self, conn: &Conn, e: FrameError) {
        self.count_sent(e.kind);
        let (dst, corr, tag) = e.header.map_or((CONTROL, 0, 0), |h| (h.dst, h.corr, h.tag));
        let _ = conn.enqueue(encode_error(dst, corr, e.kind, tag), IoBufChain::new());
    }

    fn conn_ended(&self, peer: NodeId, conn: &Rc<Conn>) {
        conn.close();
        for (_, slot) in core::mem::take(&mut *conn.pending.borrow_mut()) {
            slot.put(Err(MsgError::ConnectionLost));
        }
        let home = &self.home;
        let mut conns = home.conns.borrow_mut();
        if conns.get(&peer).is_some_and(|c| Rc::ptr_eq(c, conn)) {
            conns.remove(&peer);
        }
        drop(conns);
        home.changed.notify();
    }

    fn dispatch(&'static self, peer: NodeId, conn: &Rc<Conn>, f: Frame) {
        let h = f.header;
        match h.kind {
            FrameKind::Reply | FrameKind::Error => {
                if h.kind == FrameKind::Error
                    && let MsgError::Remote(kind) = remote_error(&f)
                    && let Some(i) = kind.index()
                {
                    bump(&self.data().counters.errors_received[i]);
                }
                let slot = conn.pending.borrow_mut().remove(&h.corr);
                match slot {
                    Some(s) => s.put(Ok(f)),
                    None if h.corr != 0 => bump(&self.data().counters.late_replies),
                    None => {}
                }
            }
            FrameKind::Request | FrameKind::Message => {
                let home = &self.home;
                let handler = home.handlers.borrow().get(&(h.dst, h.tag)).cloned();
                let Some(handler) = handler else {
                    let known_ebb = home
                        .handlers
                        .borrow()
                        .range((h.dst, 0)..=(h.dst, u64::MAX))
                        .next()
                        .is_some();
                    let kind = if known_ebb {
                        ErrorKind::UnknownTag
                    } else {
                        ErrorKind::NoSuchEbb
                    };
                    self.count_sent(kind);
                    let _ =
                        conn.enqueue(encode_error(h.dst, h.corr, kind, h.tag), IoBufChain::new());
                    return;
                };
                let conn = conn.clone();
                let limit = self.cfg().handler_timeout;
                ebbrt_core::spawn_local(async move {
                    let r = match timeout(limit, handler(peer, f)).await {
                        Ok(r) => r,
                        Err(_) => Err(ErrorKind::Deadline),
                    };
                    let corr = if h.kind == FrameKind::Request {
                        h.corr
                    } else {
                        0
                    };
                    let (head, bulk) = match r {
                        Ok(None) => return,
                        Ok(Some(_)) if corr == 0 => return,
                        Ok(Some(out)) => (
                            encode_head(
                                FrameKind::Reply,
                                h.dst,
                                out.tag,
                                corr,
                                &out.payload,
                                out.bulk.len(),
                            ),
                            out.bulk,
                        ),
                        Err(kind) => {
                            self.count_sent(kind);
                            (encode_error(h.dst, corr, kind, h.tag), IoBufChain::new())
                        }
                    };
                    let _ = conn.enqueue(head, bulk);
                })
                .detach();
            }
        }
    }
}

/// The error an error frame carries.
fn remote_error(f: &Frame) -> MsgError {
    if f.header.tag != ERROR_TAG {
        return MsgError::BadReply(ErrorKind::UnknownTag);
    }
    match decode_payload::<ErrorBody>(&f.payload) {
        Ok(b) => MsgError::Remote(ErrorKind::from_code(b.code)),
        Err(k) => MsgError::BadReply(k),
    }
}

enum FrameFail {
    Frame(FrameError),
    Lost,
}

impl From<FrameFail> for MsgError {
    fn from(f: FrameFail) -> MsgError {
        match f {
            FrameFail::Frame(_) => MsgError::Handshake,
            FrameFail::Lost => MsgError::ConnectionLost,
        }
    }
}

async fn read_frame(stream: &TcpStream, dec: &mut FrameDecoder) -> Result<Frame, FrameFail> {
    loop {
        match dec.next_frame() {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(FrameFail::Frame(e)),
        }
        match stream.read_buf().await {
            Ok(Some(b)) => dec.push(b),
            Ok(None) => {
                dec.finish().map_err(FrameFail::Frame)?;
                return Err(FrameFail::Lost);
            }
            Err(_) => return Err(FrameFail::Lost),
        }
    }
}

async fn write_control<M: Message>(stream: &TcpStream, msg: &M) -> Result<(), MsgError> {
    let payload = postcard::to_allocvec(msg).map_err(|_| MsgError::Handshake)?;
    stream
        .write_all(&encode_head(
            FrameKind::Message,
            CONTROL,
            M::TAG,
            0,
            &payload,
            0,
        ))
        .await
        .map_err(|_| MsgError::ConnectionLost)
}
