//! One TCP/IP stack: a smoltcp interface over one queue pair, its sockets,
//! and the task that polls it. A stack lives on one core and is reached
//! only there (`Rc<Stack>` is `!Send`).
//!
//! Readiness never spins: a task that cannot make progress registers its
//! waker with the smoltcp socket (or with a listener's accept queue), and
//! the poll task wakes it when a packet or a timer changes the socket. The
//! poll task itself sleeps until the device's interrupt (or idle poller)
//! wakes it, another stack hands it a frame, an application operation
//! needs it, or smoltcp's next timer is due.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::net::{Ipv4Addr, SocketAddr};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use ebbrt_core::exec;
use ebbrt_core::io::{self, Error, ErrorKind};
use ebbrt_core::iobuf::{IoBuf, IoBufChain};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, Ipv4Cidr,
};

use crate::adapter::{Adapter, Dev, Peers};
use crate::config::{AddrConfig, Ipv4Net, NetConfig};
use crate::device::NetQueue;
use crate::error::{self, NOT_CONNECTED};
use crate::frame::DropReason;
use crate::tcp::ListenOptions;

/// Listening sockets kept per port: SYNs beyond these within one burst are
/// refused, but the table refills after every packet that used one.
const LISTEN_BACKLOG: usize = 4;
/// Connections accepted by the stack but not yet by the application, per
/// port; beyond this, new SYNs are refused.
const MAX_PENDING: usize = 256;
/// Socket-table slots beyond `max_tcp_sockets`: UDP and DHCP sockets, and
/// the buffer-less sockets that refuse connections (see `Refuser`).
const SPARE_SLOTS: usize = 64;
/// The smallest socket table a stack settles for when memory is short.
const MIN_SLOTS: usize = 16;
/// How long a connect waits for the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Datagrams (and bytes) a UDP socket buffers each way.
const UDP_PACKETS: usize = 64;
const UDP_BYTES: usize = 64 * 1024;
/// How often closed connections are reclaimed.
const REAP_EVERY: Duration = Duration::from_millis(100);

fn now_ns() -> u64 {
    ebbrt_core::time::Instant::now().as_nanos()
}

fn smol_now() -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((now_ns() / 1000) as i64)
}

/// A snapshot of a stack's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    /// Frames received from the device.
    pub rx_frames: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Received frames dropped, by reason (see [`DropReason::ALL`]).
    pub rx_dropped: [u64; DropReason::ALL.len()],
    /// Frames that found the transmit ring full.
    pub tx_dropped: u64,
    /// Frames handed to other stacks (ARP, DHCP).
    pub forwarded: u64,
    /// Frames received from other stacks.
    pub injected: u64,
    /// Times the poll task ran.
    pub polls: u64,
    /// Open TCP connections (including ones closing).
    pub tcp_sockets: usize,
    /// Bytes of TCP socket buffers held (connections and listening
    /// sockets).
    pub tcp_buffer_bytes: usize,
    /// Connections refused (reset at their SYN) because their buffers
    /// did not fit the stack's budget or the allocator could not give
    /// them.
    pub refused_no_memory: u64,
    /// Connections refused (reset at their SYN) because a listener's
    /// connection limit, the stack's socket table or the queue of
    /// connections not yet accepted was full.
    pub refused_limit: u64,
}

impl StackStats {
    /// Received frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.rx_dropped[reason.index()]
    }
    /// All received frames dropped.
    pub fn dropped_total(&self) -> u64 {
        self.rx_dropped.iter().sum()
    }

    /// Adds `other`'s counters to these (the totals of several stacks).
    pub fn add(&mut self, other: &StackStats) {
        self.rx_frames += other.rx_frames;
        self.tx_frames += other.tx_frames;
        for (d, o) in self.rx_dropped.iter_mut().zip(other.rx_dropped) {
            *d += o;
        }
        self.tx_dropped += other.tx_dropped;
        self.forwarded += other.forwarded;
        self.injected += other.injected;
        self.polls += other.polls;
        self.tcp_sockets += other.tcp_sockets;
        self.tcp_buffer_bytes += other.tcp_buffer_bytes;
        self.refused_no_memory += other.refused_no_memory;
        self.refused_limit += other.refused_limit;
    }
}

/// `rx_frames=N tx_frames=N dropped=N truncated=N ... tx_dropped=N
/// forwarded=N injected=N tcp_sockets=N tcp_buffer_bytes=N
/// refused_no_memory=N refused_limit=N`: `key=value` words, the drop
/// reasons by [`DropReason::name`].
impl core::fmt::Display for StackStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "rx_frames={} tx_frames={} dropped={}",
            self.rx_frames,
            self.tx_frames,
            self.dropped_total()
        )?;
        for r in DropReason::ALL {
            write!(f, " {}={}", r.name(), self.dropped(r))?;
        }
        write!(
            f,
            " tx_dropped={} forwarded={} injected={} tcp_sockets={} tcp_buffer_bytes={} \
             refused_no_memory={} refused_limit={}",
            self.tx_dropped,
            self.forwarded,
            self.injected,
            self.tcp_sockets,
            self.tcp_buffer_bytes,
            self.refused_no_memory,
            self.refused_limit
        )
    }
}

/// Called when the stack's address changes (DHCP): the new address and
/// gateway, or `None` when the lease is lost.
pub type AddrHook = Box<dyn Fn(Option<(Ipv4Net, Option<Ipv4Addr>)>)>;

/// Options of one stack.
pub struct StackOptions {
    /// Addressing and buffer sizes.
    pub config: NetConfig,
    /// The queue's index among the device's queues (ephemeral ports are
    /// partitioned by it so that stacks sharing one address never pick the
    /// same connection 4-tuple).
    pub queue_index: usize,
    /// How many queues share the address.
    pub queue_count: usize,
    /// Whether this stack runs DHCP (when the configuration asks for it).
    pub run_dhcp: bool,
}

struct PortListen {
    endpoint: IpListenEndpoint,
    /// Buffer sizes and connection limit, from the port's first listener.
    opts: PortOptions,
    backlog: Vec<SocketHandle>,
    embryonic: Vec<SocketHandle>,
    listeners: Vec<ListenerSlot>,
    rr: usize,
    /// Connections handed to the application and not yet dropped by it.
    live: usize,
    /// While nothing else may listen: the socket that resets the next SYN.
    refuser: Option<Refuser>,
}

/// What a port's connections get, fixed by its first listener.
#[derive(Copy, Clone, PartialEq, Eq)]
struct PortOptions {
    rx_buffer: usize,
    tx_buffer: usize,
    max_connections: usize,
}

/// Why a connection does not fit.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Refusal {
    NoMemory,
    Limit,
}

impl Refusal {
    fn error(self) -> Error {
        match self {
            Refusal::NoMemory => Error::new(
                ErrorKind::OutOfMemory,
                "no memory for the connection's buffers",
            ),
            Refusal::Limit => Error::new(
                ErrorKind::OutOfMemory,
                "the stack's table of TCP sockets is full",
            ),
        }
    }
}

/// A listening socket without buffers (it costs a table slot and no
/// allocation), kept on a port that cannot take another connection: the
/// SYN it catches is answered with a reset and counted as `why`.
struct Refuser {
    handle: SocketHandle,
    why: Refusal,
}

struct ListenerSlot {
    id: u64,
    ready: VecDeque<SocketHandle>,
    waker: Option<Waker>,
}

impl PortListen {
    fn pending(&self) -> usize {
        self.embryonic.len() + self.listeners.iter().map(|l| l.ready.len()).sum::<usize>()
    }

    /// Connections this port holds or has promised a socket to.
    fn admitted(&self) -> usize {
        self.live + self.pending() + self.backlog.len()
    }
}

/// The stack's socket table and what its TCP sockets hold. Every socket
/// goes in and out through it, so that the table never grows past the
/// capacity reserved at start and the buffer budget stays exact.
struct Table {
    sockets: SocketSet<'static>,
    /// Sockets in the set.
    len: usize,
    /// Slots reserved: the set's vector never reallocates below this.
    slots: usize,
    /// TCP sockets with buffers (not refusers).
    tcp: usize,
    max_tcp: usize,
    buffer_bytes: usize,
    budget: Option<usize>,
    refused_no_memory: u64,
    refused_limit: u64,
}

impl Table {
    /// A table for `max_tcp` TCP sockets and the spares, reserved now
    /// (fewer when memory is short).
    fn new(max_tcp: usize, budget: Option<usize>) -> Table {
        let mut max_tcp = max_tcp.max(1);
        let mut v = Vec::new();
        while v.try_reserve_exact(max_tcp + SPARE_SLOTS).is_err() && max_tcp > MIN_SLOTS {
            max_tcp /= 2;
        }
        if v.capacity() < max_tcp + SPARE_SLOTS {
            // Even the smallest table did not fit: take what the vector
            // has (nothing); every socket will be refused.
            max_tcp = 0;
        }
        Table {
            slots: if max_tcp == 0 {
                0
            } else {
                max_tcp + SPARE_SLOTS
            },
            sockets: SocketSet::new(v),
            len: 0,
            tcp: 0,
            max_tcp,
            buffer_bytes: 0,
            budget,
            refused_no_memory: 0,
            refused_limit: 0,
        }
    }

    /// Adds `s` if the table has a slot left.
    fn add<T: smoltcp::socket::AnySocket<'static>>(&mut self, s: T) -> Option<SocketHandle> {
        if self.len >= self.slots {
            return None;
        }
        self.len += 1;
        Some(self.sockets.add(s))
    }

    /// Adds a TCP socket made by [`Self::new_tcp`].
    fn add_tcp(&mut self, s: tcp::Socket<'static>) -> Option<SocketHandle> {
        let bytes = s.recv_capacity() + s.send_capacity();
        let h = self.add(s)?;
        self.tcp += 1;
        self.buffer_bytes += bytes;
        Some(h)
    }

    /// Removes a socket, releasing what it held.
    fn remove(&mut self, h: SocketHandle) {
        let s = self.sockets.remove(h);
        self.len -= 1;
        if let smoltcp::socket::Socket::Tcp(t) = &s {
            let bytes = t.recv_capacity() + t.send_capacity();
            if bytes > 0 {
                self.tcp -= 1;
                self.buffer_bytes -= bytes;
            }
        }
    }

    /// A TCP socket with `rx` and `tx` bytes of buffers, if the limit, the
    /// budget and the allocator allow it.
    fn new_tcp(&self, rx: usize, tx: usize) -> Result<tcp::Socket<'static>, Refusal> {
        if self.tcp >= self.max_tcp || self.len + 1 > self.slots {
            return Err(Refusal::Limit);
        }
        let bytes = rx.saturating_add(tx);
        if self
            .budget
            .is_some_and(|b| self.buffer_bytes.saturating_add(bytes) > b)
        {
            return Err(Refusal::NoMemory);
        }
        new_tcp_socket(rx, tx).ok_or(Refusal::NoMemory)
    }

    fn get<T: smoltcp::socket::AnySocket<'static>>(&self, h: SocketHandle) -> &T {
        self.sockets.get(h)
    }

    fn get_mut<T: smoltcp::socket::AnySocket<'static>>(&mut self, h: SocketHandle) -> &mut T {
        self.sockets.get_mut(h)
    }

    fn count(&mut self, why: Refusal) {
        match why {
            Refusal::NoMemory => self.refused_no_memory += 1,
            Refusal::Limit => self.refused_limit += 1,
        }
    }
}

struct Inner {
    iface: Interface,
    sockets: Table,
    tcp: BTreeMap<u64, SocketHandle>,
    /// The port of each stream accepted from a listener (counted in the
    /// port's `live` until the application drops it).
    stream_port: BTreeMap<u64, u16>,
    udp: BTreeMap<u64, SocketHandle>,
    ports: BTreeMap<u16, PortListen>,
    listener_port: BTreeMap<u64, u16>,
    local_ports: BTreeMap<SocketHandle, u16>,
    orphans: Vec<SocketHandle>,
    /// Refusers that caught a SYN: removed once their reset is sent.
    refused: Vec<SocketHandle>,
    dhcp: Option<SocketHandle>,
    next_port: u16,
    last_reap: u64,
}

/// One TCP/IP stack over one queue pair.
pub struct Stack {
    inner: RefCell<Inner>,
    adapter: Adapter,
    opts: StackOptions,
    next_id: Cell<u64>,
    kicked: Cell<bool>,
    poll_waker: RefCell<Option<Waker>>,
    /// The deadline the poll task sleeps until (ns), if any.
    armed: Cell<Option<u64>>,
    polls: Cell<u64>,
    addr_waiters: RefCell<Vec<Waker>>,
    addr_hook: RefCell<Option<AddrHook>>,
    bind_errors: RefCell<BTreeMap<u64, Error>>,
}

impl Stack {
    /// A stack over `queue` with Ethernet address `mac`. Start its poll
    /// task with [`Stack::start`].
    pub fn new(queue: Box<dyn NetQueue>, mac: [u8; 6], opts: StackOptions) -> Rc<Stack> {
        Self::with_peers(queue, mac, opts, None)
    }

    pub(crate) fn with_peers(
        queue: Box<dyn NetQueue>,
        mac: [u8; 6],
        opts: StackOptions,
        peers: Option<Peers>,
    ) -> Rc<Stack> {
        let adapter = Adapter::new(queue, peers);
        let seed = now_ns()
            ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0x5a, 0xa5])
                .rotate_left(17);
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = seed;
        let iface = Interface::new(cfg, &mut Dev(&adapter), smol_now());
        let mut sockets = Table::new(opts.config.max_tcp_sockets, opts.config.tcp_memory);
        if sockets.max_tcp < opts.config.max_tcp_sockets {
            log::warn!(
                "net: no memory for a table of {} TCP sockets; this stack holds {}",
                opts.config.max_tcp_sockets,
                sockets.max_tcp
            );
        }
        let dhcp = if opts.run_dhcp && opts.config.addr == AddrConfig::Dhcp {
            let h = sockets.add(dhcpv4::Socket::new());
            if h.is_none() {
                log::error!("net: no memory for the DHCP socket");
            }
            h
        } else {
            None
        };
        let n = opts.queue_count.max(1) as u16;
        let first = 49152 + (seed % 8192) as u16;
        let next_port = first - first % n + opts.queue_index as u16 % n;
        let stack = Rc::new(Stack {
            inner: RefCell::new(Inner {
                iface,
                sockets,
                tcp: BTreeMap::new(),
                stream_port: BTreeMap::new(),
                udp: BTreeMap::new(),
                ports: BTreeMap::new(),
                listener_port: BTreeMap::new(),
                local_ports: BTreeMap::new(),
                orphans: Vec::new(),
                refused: Vec::new(),
                dhcp,
                next_port,
                last_reap: 0,
            }),
            adapter,
            opts,
            next_id: Cell::new(1),
            kicked: Cell::new(false),
            poll_waker: RefCell::new(None),
            armed: Cell::new(None),
            polls: Cell::new(0),
            addr_waiters: RefCell::new(Vec::new()),
            addr_hook: RefCell::new(None),
            bind_errors: RefCell::new(BTreeMap::new()),
        });
        if let AddrConfig::Static { net, gateway } = stack.opts.config.addr {
            stack.set_address(Some((net, gateway)));
        }
        stack
    }

    /// Spawns the stack's poll task on this core.
    pub fn start(self: &Rc<Self>) {
        let me = self.clone();
        exec::spawn_local(async move { me.run().await }).detach();
    }

    /// Sets the hook told about address changes (DHCP).
    pub fn set_addr_hook(&self, hook: AddrHook) {
        *self.addr_hook.borrow_mut() = Some(hook);
    }

    /// The stack's IPv4 address, once configured.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.inner.borrow().iface.ipv4_addr()
    }

    /// Waits until the stack has an address (static: at once; DHCP: the
    /// first lease).
    pub async fn wait_configured(&self) -> Ipv4Addr {
        poll_fn(|cx| match self.ipv4() {
            Some(a) => Poll::Ready(a),
            None => {
                self.addr_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Sets (or clears) the address and default gateway.
    pub fn set_address(&self, addr: Option<(Ipv4Net, Option<Ipv4Addr>)>) {
        {
            let mut inner = self.inner.borrow_mut();
            let iface = &mut inner.iface;
            iface.update_ip_addrs(|addrs| {
                addrs.clear();
                if let Some((net, _)) = addr {
                    // Cannot fail: the list was just cleared.
                    let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(net.addr, net.prefix)));
                }
            });
            iface.routes_mut().remove_default_ipv4_route();
            if let Some((_, Some(gw))) = addr {
                // Fails only when the route table is full; it was just emptied.
                let _ = iface.routes_mut().add_default_ipv4_route(gw);
            }
        }
        if addr.is_some() {
            for w in self.addr_waiters.take() {
                w.wake();
            }
        }
        self.kick();
    }

    /// The stack's counters.
    pub fn stats(&self) -> StackStats {
        let c = &self.adapter.counters;
        let mut s = StackStats {
            rx_frames: c.rx_frames.get(),
            tx_frames: c.tx_frames.get(),
            tx_dropped: c.tx_dropped.get(),
            forwarded: c.forwarded.get(),
            injected: c.injected.get(),
            polls: self.polls.get(),
            tcp_sockets: 0,
            ..StackStats::default()
        };
        for (i, d) in c.rx_dropped.iter().enumerate() {
            s.rx_dropped[i] = d.get();
        }
        let inner = self.inner.borrow();
        let t = &inner.sockets;
        s.tcp_sockets = t.tcp;
        s.tcp_buffer_bytes = t.buffer_bytes;
        s.refused_no_memory = t.refused_no_memory;
        s.refused_limit = t.refused_limit;
        s
    }

    fn fresh_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Asks the poll task to poll soon.
    pub(crate) fn kick(&self) {
        if !self.kicked.replace(true)
            && let Some(w) = self.poll_waker.borrow().as_ref()
        {
            w.wake_by_ref();
        }
    }

    /// After an operation queued data: transmit now, and make sure the
    /// poll task wakes for the timers this armed.
    fn flush(&self, inner: &mut Inner) {
        let now = smol_now();
        let Inner { iface, sockets, .. } = inner;
        iface.poll_egress(now, &mut Dev(&self.adapter), &mut sockets.sockets);
        if let Some(at) = iface.poll_at(now, &sockets.sockets) {
            let at_ns = (at.total_micros().max(0) as u64).saturating_mul(1000);
            if self.armed.get().is_none_or(|armed| at_ns < armed) {
                self.kick();
            }
        }
    }

    /// One pass: ingress (checking listeners after each packet that
    /// changed a socket), egress, housekeeping. Returns smoltcp's delay
    /// until its next timer.
    #[allow(clippy::type_complexity)]
    fn poll_once(
        &self,
    ) -> (
        Option<Duration>,
        Option<Option<(Ipv4Net, Option<Ipv4Addr>)>>,
    ) {
        self.polls.set(self.polls.get() + 1);
        let now = smol_now();
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let mut dev = Dev(&self.adapter);
        inner.iface.poll_maintenance(now);
        loop {
            match inner
                .iface
                .poll_ingress_single(now, &mut dev, &mut inner.sockets.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => maintain_listeners(inner),
            }
        }
        while inner
            .iface
            .poll_egress(now, &mut dev, &mut inner.sockets.sockets)
            == smoltcp::iface::PollResult::SocketStateChanged
        {}
        maintain_listeners(inner);
        drop_refused(inner);
        let t = now_ns();
        if !inner.orphans.is_empty()
            && t.saturating_sub(inner.last_reap) >= REAP_EVERY.as_nanos() as u64
        {
            inner.last_reap = t;
            if reap(inner) {
                // Memory and slots came back: ports that refused may listen.
                refill_all(inner);
            }
        }
        let dhcp_event =
            inner.dhcp.and_then(
                |h| match inner.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
                    Some(dhcpv4::Event::Configured(c)) => Some(Some((
                        Ipv4Net {
                            addr: c.address.address(),
                            prefix: c.address.prefix_len(),
                        },
                        c.router,
                    ))),
                    Some(dhcpv4::Event::Deconfigured) => Some(None),
                    None => None,
                },
            );
        let mut delay = inner.iface.poll_delay(now, &inner.sockets.sockets);
        if !inner.orphans.is_empty() {
            delay = Some(delay.map_or(REAP_EVERY.into(), |d| d.min(REAP_EVERY.into())));
        }
        (
            delay.map(|d| Duration::from_micros(d.total_micros())),
            dhcp_event,
        )
    }

    async fn run(self: Rc<Self>) {
        loop {
            self.kicked.set(false);
            let (delay, dhcp) = self.poll_once();
            if let Some(addr) = dhcp {
                match addr {
                    Some((n, gw)) => {
                        log::info!("net: DHCP lease {}/{} gateway {:?}", n.addr, n.prefix, gw)
                    }
                    // smoltcp also reports "deconfigured" once at start.
                    None if self.ipv4().is_some() => log::warn!("net: DHCP lease lost"),
                    None => {}
                }
                self.set_address(addr);
                if let Some(h) = self.addr_hook.borrow().as_ref() {
                    h(addr);
                }
            }
            if self.adapter.rearm() {
                continue;
            }
            match delay {
                Some(d) if d.is_zero() => {
                    self.armed.set(Some(now_ns()));
                    exec::yield_now().await;
                }
                Some(d) => {
                    self.armed.set(Some(now_ns() + d.as_nanos() as u64));
                    let _ = exec::timeout(d, self.wait_kick()).await;
                }
                None => {
                    self.armed.set(None);
                    self.wait_kick().await;
                }
            }
        }
    }

    /// Waits for any wake: a kick, the device, another stack's inbox.
    async fn wait_kick(&self) {
        let mut first = true;
        poll_fn(|cx| {
            if self.kicked.get() || !first {
                return Poll::Ready(());
            }
            first = false;
            let mut slot = self.poll_waker.borrow_mut();
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
                self.adapter.set_waker(cx.waker());
            }
            Poll::Pending
        })
        .await
    }

    fn ephemeral_port(&self, inner: &mut Inner) -> u16 {
        let step = self.opts.queue_count.max(1) as u16;
        loop {
            let p = inner.next_port;
            inner.next_port = if p.checked_add(step).is_none_or(|n| n < 49152) {
                49152 + (p % step)
            } else {
                p + step
            };
            let used = inner.local_ports.values().any(|&u| u == p) || inner.ports.contains_key(&p);
            if !used {
                return p;
            }
        }
    }

    fn check_local(&self, inner: &Inner, addr: SocketAddr) -> io::Result<()> {
        let ip = match addr {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(_) => return Err(error::IPV6),
        };
        if ip.is_unspecified() || inner.iface.has_ip_addr(IpAddress::Ipv4(ip)) {
            Ok(())
        } else if inner.iface.ipv4_addr().is_none() && self.opts.config.addr == AddrConfig::Dhcp {
            // Not configured yet: the lease may bring this address.
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::AddrNotAvailable,
                "the address is not this node's",
            ))
        }
    }

    // ---- TCP listeners ----

    /// Starts listening on `addr` with `opts`; returns the listener's id
    /// and address. Several listeners may share a port (as with
    /// `SO_REUSEPORT`): new connections go to them in turn, and they share
    /// the options of the port's first listener (a listener asking for
    /// others is refused).
    pub(crate) fn tcp_listen(
        &self,
        addr: SocketAddr,
        opts: ListenOptions,
    ) -> io::Result<(u64, SocketAddr)> {
        let id = self.fresh_id();
        self.tcp_listen_as(id, addr, opts)
    }

    /// Like [`Self::tcp_listen`] under an id the caller chose (a core
    /// without its own stack picks it, so that it need not wait for the
    /// answer); a failure is kept and reported by the first operation.
    pub(crate) fn tcp_listen_remote(&self, id: u64, addr: SocketAddr, opts: ListenOptions) {
        if let Err(e) = self.tcp_listen_as(id, addr, opts) {
            self.bind_errors.borrow_mut().insert(id, e);
        }
    }

    fn bind_error(&self, id: u64, what: &'static str) -> Error {
        self.bind_errors
            .borrow_mut()
            .remove(&id)
            .unwrap_or(Error::new(ErrorKind::InvalidInput, what))
    }

    fn tcp_listen_as(
        &self,
        id: u64,
        addr: SocketAddr,
        opts: ListenOptions,
    ) -> io::Result<(u64, SocketAddr)> {
        let config = &self.opts.config;
        let port_opts = PortOptions {
            rx_buffer: opts.rx_buffer.unwrap_or(config.tcp_rx_buffer),
            tx_buffer: opts.tx_buffer.unwrap_or(config.tcp_tx_buffer),
            max_connections: opts.max_connections.unwrap_or(usize::MAX),
        };
        let mut ep = error::listen_endpoint(addr)?;
        let mut inner = self.inner.borrow_mut();
        self.check_local(&inner, addr)?;
        if ep.port == 0 {
            ep.port = self.ephemeral_port(&mut inner);
        }
        let inner = &mut *inner;
        match inner.ports.get_mut(&ep.port) {
            Some(p) => {
                if p.endpoint.addr != ep.addr {
                    return Err(Error::new(
                        ErrorKind::AddrInUse,
                        "the port is bound to another address",
                    ));
                }
                if p.opts != port_opts {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "the port's listeners have other buffer sizes or connection limits",
                    ));
                }
                p.listeners.push(ListenerSlot {
                    id,
                    ready: VecDeque::new(),
                    waker: None,
                });
            }
            None => {
                inner.ports.insert(
                    ep.port,
                    PortListen {
                        endpoint: ep,
                        opts: port_opts,
                        backlog: Vec::new(),
                        embryonic: Vec::new(),
                        listeners: vec![ListenerSlot {
                            id,
                            ready: VecDeque::new(),
                            waker: None,
                        }],
                        rr: 0,
                        live: 0,
                        refuser: None,
                    },
                );
            }
        }
        inner.listener_port.insert(id, ep.port);
        if let Some(p) = inner.ports.get_mut(&ep.port) {
            refill(p, &mut inner.sockets, ep.port);
        }
        Ok((id, error::listen_addr(ep)))
    }

    /// Polls listener `id` for an established connection.
    pub(crate) fn poll_accept(
        &self,
        id: u64,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(u64, SocketAddr)>> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let Some(port) = inner.listener_port.get(&id).copied() else {
            return Poll::Ready(Err(self.bind_error(id, "the listener is closed")));
        };
        let Some(slot) = inner
            .ports
            .get_mut(&port)
            .and_then(|p| p.listeners.iter_mut().find(|l| l.id == id))
        else {
            return Poll::Ready(Err(Error::new(
                ErrorKind::InvalidInput,
                "the listener is closed",
            )));
        };
        match slot.ready.pop_front() {
            Some(h) => {
                let peer = inner.sockets.get::<tcp::Socket>(h).remote_endpoint();
                let sid = self.fresh_id();
                inner.tcp.insert(sid, h);
                inner.stream_port.insert(sid, port);
                if let Some(p) = inner.ports.get_mut(&port) {
                    p.live += 1;
                    // The stack may have refused SYNs while the queue was full.
                    refill(p, &mut inner.sockets, port);
                }
                match peer {
                    Some(p) => Poll::Ready(Ok((sid, SocketAddr::from(p)))),
                    // Reset between the handshake and now: hand it out
                    // anyway; its first read reports the end.
                    None => Poll::Ready(Ok((sid, SocketAddr::from(([0, 0, 0, 0], 0))))),
                }
            }
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Closes listener `id`; connections queued for it go to the port's
    /// other listeners, or are aborted with the port when it was the last.
    pub(crate) fn tcp_unlisten(&self, id: u64) {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let Some(port) = inner.listener_port.remove(&id) else {
            return;
        };
        let Some(p) = inner.ports.get_mut(&port) else {
            return;
        };
        let Some(pos) = p.listeners.iter().position(|l| l.id == id) else {
            return;
        };
        let slot = p.listeners.remove(pos);
        if let Some(other) = p.listeners.first_mut() {
            other.ready.extend(slot.ready);
            if let Some(w) = other.waker.take() {
                w.wake();
            }
            return;
        }
        let p = inner.ports.remove(&port).expect("port entry checked above");
        for h in p.backlog.into_iter().chain(p.embryonic).chain(slot.ready) {
            inner.sockets.get_mut::<tcp::Socket>(h).abort();
            inner.orphans.push(h);
        }
        if let Some(r) = p.refuser {
            inner.sockets.remove(r.handle);
        }
        // Its streams no longer count against a port (a new listener on
        // it starts afresh).
        inner.stream_port.retain(|_, p| *p != port);
        self.kick();
    }

    // ---- TCP streams ----

    /// Connects to `addr`; returns the new stream's id once established.
    pub(crate) async fn tcp_connect(&self, addr: SocketAddr) -> io::Result<u64> {
        let remote = error::endpoint(addr)?;
        if remote.port == 0 || remote.addr.is_unspecified() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "cannot connect to port 0 or an unspecified address",
            ));
        }
        let id = {
            let mut inner = self.inner.borrow_mut();
            let inner = &mut *inner;
            let port = self.ephemeral_port(inner);
            let config = &self.opts.config;
            let mut s = inner
                .sockets
                .new_tcp(config.tcp_rx_buffer, config.tcp_tx_buffer)
                .map_err(Refusal::error)?;
            s.connect(inner.iface.context(), remote, port)
                .map_err(|_| {
                    Error::new(ErrorKind::InvalidInput, "cannot connect to that address")
                })?;
            let h = inner
                .sockets
                .add_tcp(s)
                .ok_or_else(|| Refusal::Limit.error())?;
            inner.local_ports.insert(h, port);
            let id = self.fresh_id();
            inner.tcp.insert(id, h);
            self.flush(inner);
            id
        };
        let established = poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            let Some(&h) = inner.tcp.get(&id) else {
                return Poll::Ready(Err(NOT_CONNECTED));
            };
            let s = inner.sockets.get_mut::<tcp::Socket>(h);
            match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                tcp::State::Closed | tcp::State::Listen => Poll::Ready(Err(Error::new(
                    ErrorKind::ConnectionRefused,
                    "the peer refused the connection",
                ))),
                _ => Poll::Ready(Ok(())),
            }
        });
        match exec::timeout(CONNECT_TIMEOUT, established).await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(e)) => {
                self.tcp_close(id);
                Err(e)
            }
            Err(_) => {
                self.tcp_close(id);
                Err(Error::new(
                    ErrorKind::TimedOut,
                    "the connection attempt timed out",
                ))
            }
        }
    }

    fn with_tcp<R>(&self, id: u64, f: impl FnOnce(&mut Inner, SocketHandle) -> R) -> io::Result<R> {
        let mut inner = self.inner.borrow_mut();
        let Some(&h) = inner.tcp.get(&id) else {
            return Err(NOT_CONNECTED);
        };
        Ok(f(&mut inner, h))
    }

    /// Polls a read of stream `id` into `buf`.
    pub(crate) fn poll_read(
        &self,
        id: u64,
        buf: &mut [u8],
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut off = 0;
        self.poll_read_with(id, cx, |data| {
            let n = data.len().min(buf.len() - off);
            buf[off..off + n].copy_from_slice(&data[..n]);
            off += n;
            n
        })
    }

    /// Polls a read of stream `id`: `f` sees the received bytes in the
    /// socket's buffer (no copy) and says how many it consumed. `Ok(0)`
    /// means the end of the stream.
    pub(crate) fn poll_read_with(
        &self,
        id: u64,
        cx: &mut Context<'_>,
        mut f: impl FnMut(&[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        let r = self.with_tcp(id, |inner, h| {
            let s = inner.sockets.get_mut::<tcp::Socket>(h);
            if s.can_recv() {
                let was_full = s.recv_queue() * 2 >= s.recv_capacity();
                let mut total = 0;
                // The ring buffer may hand out its data in two pieces.
                for _ in 0..2 {
                    let mut whole = false;
                    let n = s
                        .recv(|data| {
                            let n = f(data).min(data.len());
                            whole = n == data.len();
                            (n, n)
                        })
                        .unwrap_or(0);
                    total += n;
                    if !whole || !s.can_recv() {
                        break;
                    }
                }
                if total > 0 {
                    if was_full {
                        // The window reopened: tell the peer now.
                        self.flush(inner);
                    }
                    return Poll::Ready(Ok(total));
                }
            }
            if !s.may_recv() {
                return match s.state() {
                    tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => {
                        Poll::Ready(Err(NOT_CONNECTED))
                    }
                    _ => Poll::Ready(Ok(0)),
                };
            }
            s.register_recv_waker(cx.waker());
            Poll::Pending
        });
        match r {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Polls a read of stream `id` into a new buffer of what the receive
    /// ring holds (at most `max` bytes, `max > 0`): one copy, out of the
    /// ring. `Ok(None)` means the end of the stream.
    pub(crate) fn poll_read_buf(
        &self,
        id: u64,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Option<IoBuf>>> {
        let queued = self
            .with_tcp(id, |inner, h| {
                inner.sockets.get::<tcp::Socket>(h).recv_queue()
            })
            .unwrap_or(0);
        let mut v: Vec<u8> = Vec::new();
        if v.try_reserve_exact(queued.min(max)).is_err() {
            return Poll::Ready(Err(Error::new(
                ErrorKind::OutOfMemory,
                "no memory for the received bytes",
            )));
        }
        let r = self.poll_read_with(id, cx, |data| {
            let n = data.len().min(max - v.len());
            v.extend_from_slice(&data[..n]);
            n
        });
        r.map(|r| r.map(|n| (n > 0).then(|| IoBuf::from(v))))
    }

    /// Polls a write of `buf` to stream `id`.
    pub(crate) fn poll_write(
        &self,
        id: u64,
        buf: &[u8],
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let r = self.with_tcp(id, |inner, h| {
            let s = inner.sockets.get_mut::<tcp::Socket>(h);
            if let Some(e) = send_refusal(s) {
                return Poll::Ready(Err(e));
            }
            if s.can_send() {
                match s.send_slice(buf) {
                    Ok(n) if n > 0 => {
                        self.flush(inner);
                        return Poll::Ready(Ok(n));
                    }
                    Ok(_) => {}
                    Err(_) => return Poll::Ready(Err(NOT_CONNECTED)),
                }
            }
            s.register_send_waker(cx.waker());
            Poll::Pending
        });
        match r {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Writes from the front of `chain` into stream `id`'s send ring as
    /// much as fits, taking what was written off the chain; returns how
    /// many bytes. This `send_slice` is the one copy of the bytes on their
    /// way out natively: from the application's buffers into smoltcp's
    /// send ring (which it keeps for retransmission), from where the
    /// driver copies each segment into a transmit frame. Several buffers
    /// go in per poll, then one flush sends them.
    pub(crate) fn poll_write_chain(
        &self,
        id: u64,
        chain: &mut IoBufChain,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if chain.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let r = self.with_tcp(id, |inner, h| {
            let s = inner.sockets.get_mut::<tcp::Socket>(h);
            if let Some(e) = send_refusal(s) {
                return Poll::Ready(Err(e));
            }
            let mut written = 0;
            while let Some(front) = chain.front() {
                match s.send_slice(front) {
                    Ok(0) => break,
                    Ok(n) => {
                        written += n;
                        chain.advance(n);
                    }
                    Err(_) => return Poll::Ready(Err(NOT_CONNECTED)),
                }
            }
            if written > 0 {
                self.flush(inner);
                return Poll::Ready(Ok(written));
            }
            s.register_send_waker(cx.waker());
            Poll::Pending
        });
        match r {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Closes the write half of stream `id` (a FIN after the queued data).
    pub(crate) fn tcp_shutdown(&self, id: u64) -> io::Result<()> {
        self.with_tcp(id, |inner, h| {
            inner.sockets.get_mut::<tcp::Socket>(h).close();
            self.flush(inner);
        })
    }

    /// Releases stream `id`: the connection closes gracefully in the
    /// background and its socket is reclaimed once closed.
    pub(crate) fn tcp_close(&self, id: u64) {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        if let Some(h) = inner.tcp.remove(&id) {
            let s = inner.sockets.get_mut::<tcp::Socket>(h);
            if s.can_recv() {
                // Unread data: reset, as Linux does, rather than pretend.
                s.abort();
            } else {
                s.close();
            }
            inner.orphans.push(h);
            if let Some(port) = inner.stream_port.remove(&id)
                && let Some(p) = inner.ports.get_mut(&port)
            {
                p.live -= 1;
                refill(p, &mut inner.sockets, port);
            }
            self.flush(inner);
        }
    }

    /// The local and peer addresses of stream `id`.
    pub(crate) fn tcp_addrs(&self, id: u64) -> io::Result<(SocketAddr, SocketAddr)> {
        self.with_tcp(id, |inner, h| {
            let s = inner.sockets.get::<tcp::Socket>(h);
            match (s.local_endpoint(), s.remote_endpoint()) {
                (Some(l), Some(r)) => Ok((SocketAddr::from(l), SocketAddr::from(r))),
                _ => Err(NOT_CONNECTED),
            }
        })?
    }

    /// Turns Nagle's algorithm off (`on`) or back on for stream `id`.
    pub(crate) fn tcp_set_nodelay(&self, id: u64, on: bool) -> io::Result<()> {
        self.with_tcp(id, |inner, h| {
            inner
                .sockets
                .get_mut::<tcp::Socket>(h)
                .set_nagle_enabled(!on)
        })
    }

    // ---- UDP ----

    /// Binds a UDP socket; returns its id and address.
    pub(crate) fn udp_bind(&self, addr: SocketAddr) -> io::Result<(u64, SocketAddr)> {
        let id = self.fresh_id();
        self.udp_bind_as(id, addr)
    }

    /// Like [`Self::udp_bind`] under an id the caller chose; see
    /// [`Self::tcp_listen_remote`].
    pub(crate) fn udp_bind_remote(&self, id: u64, addr: SocketAddr) {
        if let Err(e) = self.udp_bind_as(id, addr) {
            self.bind_errors.borrow_mut().insert(id, e);
        }
    }

    fn udp_bind_as(&self, id: u64, addr: SocketAddr) -> io::Result<(u64, SocketAddr)> {
        let mut ep = error::listen_endpoint(addr)?;
        let mut inner = self.inner.borrow_mut();
        self.check_local(&inner, addr)?;
        let inner = &mut *inner;
        if ep.port == 0 {
            ep.port = self.ephemeral_port(inner);
        }
        let taken = inner
            .udp
            .values()
            .any(|&h| inner.sockets.get::<udp::Socket>(h).endpoint().port == ep.port);
        if taken {
            return Err(Error::new(ErrorKind::AddrInUse, "the UDP port is in use"));
        }
        const NO_MEMORY: Error =
            Error::new(ErrorKind::OutOfMemory, "no memory for the socket's buffers");
        let buffer = || {
            Some(udp::PacketBuffer::new(
                zeroed(UDP_PACKETS, udp::PacketMetadata::EMPTY)?,
                zeroed(UDP_BYTES, 0u8)?,
            ))
        };
        let (Some(rx), Some(tx)) = (buffer(), buffer()) else {
            return Err(NO_MEMORY);
        };
        let mut s = udp::Socket::new(rx, tx);
        s.bind(ep)
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "cannot bind to that address"))?;
        let h = inner.sockets.add(s).ok_or(NO_MEMORY)?;
        inner.udp.insert(id, h);
        Ok((id, error::listen_addr(ep)))
    }

    fn with_udp<R>(&self, id: u64, f: impl FnOnce(&mut Inner, SocketHandle) -> R) -> io::Result<R> {
        let mut inner = self.inner.borrow_mut();
        let Some(&h) = inner.udp.get(&id) else {
            drop(inner);
            return Err(self.bind_error(id, "the socket is closed"));
        };
        Ok(f(&mut inner, h))
    }

    /// Polls sending `buf` to `to` from UDP socket `id`.
    pub(crate) fn poll_send_to(
        &self,
        id: u64,
        buf: &[u8],
        to: SocketAddr,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let to = match error::endpoint(to) {
            Ok(t) => t,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let r = self.with_udp(id, |inner, h| {
            let s = inner.sockets.get_mut::<udp::Socket>(h);
            if buf.len() > s.payload_send_capacity() {
                return Poll::Ready(Err(Error::new(
                    ErrorKind::InvalidInput,
                    "the datagram is larger than the send buffer",
                )));
            }
            match s.send_slice(buf, to) {
                Ok(()) => {
                    self.flush(inner);
                    Poll::Ready(Ok(buf.len()))
                }
                Err(udp::SendError::BufferFull) => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(udp::SendError::Unaddressable) => Poll::Ready(Err(Error::new(
                    ErrorKind::InvalidInput,
                    "cannot send to that address",
                ))),
            }
        });
        match r {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Polls receiving a datagram on UDP socket `id` (truncated to `buf`,
    /// as with Linux sockets).
    pub(crate) fn poll_recv_from(
        &self,
        id: u64,
        buf: &mut [u8],
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.poll_recv_with(id, cx, |data| {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            n
        })
    }

    /// Polls receiving a datagram on UDP socket `id` into a new buffer of
    /// its size (one copy, out of the socket's packet ring).
    pub(crate) fn poll_recv_buf(
        &self,
        id: u64,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(IoBuf, SocketAddr)>> {
        let mut out = IoBuf::new();
        self.poll_recv_with(id, cx, |data| {
            out = IoBuf::copy_from_slice(data);
            data.len()
        })
        .map(|r| r.map(|(_, from)| (out, from)))
    }

    /// Polls receiving a datagram on UDP socket `id`: `f` sees it in the
    /// socket's packet ring and returns the length to report.
    fn poll_recv_with(
        &self,
        id: u64,
        cx: &mut Context<'_>,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let r = self.with_udp(id, |inner, h| {
            let s = inner.sockets.get_mut::<udp::Socket>(h);
            match s.recv() {
                Ok((data, meta)) => Poll::Ready(Ok((f(data), SocketAddr::from(meta.endpoint)))),
                Err(_) => {
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            }
        });
        match r {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Closes UDP socket `id`.
    pub(crate) fn udp_close(&self, id: u64) {
        let mut inner = self.inner.borrow_mut();
        if let Some(h) = inner.udp.remove(&id) {
            inner.sockets.remove(h);
        }
    }
}

/// `n` copies of `value` in a vector allocated fallibly (`None` when the
/// allocator cannot give it).
fn zeroed<T: Clone>(n: usize, value: T) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, value);
    Some(v)
}

/// A TCP socket with `rx` and `tx` bytes of buffers, for a connection or a
/// listening slot, or `None` when the allocator cannot give them. Its ACK
/// delay is smoltcp's default, 10 ms (Linux answers within 40 ms at most;
/// an echo reply carries the ACK anyway).
fn new_tcp_socket(rx: usize, tx: usize) -> Option<tcp::Socket<'static>> {
    let rx = zeroed(rx, 0u8)?;
    let tx = zeroed(tx, 0u8)?;
    Some(tcp::Socket::new(
        tcp::SocketBuffer::new(rx),
        tcp::SocketBuffer::new(tx),
    ))
}

/// Keeps `LISTEN_BACKLOG` listening sockets on `port` (whose state is `p`)
/// while the port's limit, the stack's table and its buffer budget allow;
/// when none is left, a [`Refuser`] takes the next SYN.
fn refill(p: &mut PortListen, sockets: &mut Table, port: u16) {
    let mut why = None;
    while p.backlog.len() < LISTEN_BACKLOG {
        if p.admitted() >= p.opts.max_connections || p.pending() >= MAX_PENDING {
            why = Some(Refusal::Limit);
            break;
        }
        let mut s = match sockets.new_tcp(p.opts.rx_buffer, p.opts.tx_buffer) {
            Ok(s) => s,
            Err(r) => {
                why = Some(r);
                break;
            }
        };
        if s.listen(p.endpoint).is_err() {
            log::warn!("net: cannot listen on port {port}");
            return;
        }
        match sockets.add_tcp(s) {
            Some(h) => p.backlog.push(h),
            None => {
                why = Some(Refusal::Limit);
                break;
            }
        }
    }
    match (p.backlog.is_empty(), why) {
        (true, Some(why)) => {
            if let Some(r) = &mut p.refuser {
                r.why = why;
                return;
            }
            // Buffer-less: smoltcp never needs its buffers to answer a SYN
            // with a reset.
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(Vec::new()),
                tcp::SocketBuffer::new(Vec::new()),
            );
            if s.listen(p.endpoint).is_ok() {
                // Without a slot, smoltcp resets the SYN itself, uncounted.
                p.refuser = sockets.add(s).map(|handle| Refuser { handle, why });
            }
        }
        _ => {
            // A real listening socket must get the next SYN, not a refuser.
            if let Some(r) = p.refuser.take() {
                sockets.remove(r.handle);
            }
        }
    }
}

/// [`refill`] for every port: after connections closed or were reclaimed.
fn refill_all(inner: &mut Inner) {
    let Inner { ports, sockets, .. } = inner;
    for (&port, p) in ports.iter_mut() {
        if p.backlog.len() < LISTEN_BACKLOG {
            refill(p, sockets, port);
        }
    }
}

/// Removes refusers whose reset has gone out (smoltcp forgets the peer
/// once it sent it).
fn drop_refused(inner: &mut Inner) {
    let Inner {
        refused, sockets, ..
    } = inner;
    refused.retain(|&h| {
        let s = sockets.get::<tcp::Socket>(h);
        if s.state() == tcp::State::Closed && s.remote_endpoint().is_none() {
            sockets.remove(h);
            false
        } else {
            true
        }
    });
}

/// Moves listening sockets that got a SYN to the embryonic list, hands
/// established connections to the port's listeners (in turn), drops
/// handshakes that failed, and resets SYNs that a refuser caught.
fn maintain_listeners(inner: &mut Inner) {
    let Inner {
        ports,
        sockets,
        refused,
        ..
    } = inner;
    for (&port, p) in ports.iter_mut() {
        let mut changed = false;
        if let Some(r) = &p.refuser
            && sockets.get::<tcp::Socket>(r.handle).state() != tcp::State::Listen
        {
            // Aborted before the poll sends its SYN-ACK: the reset goes
            // out instead.
            sockets.get_mut::<tcp::Socket>(r.handle).abort();
            sockets.count(r.why);
            refused.push(r.handle);
            p.refuser = None;
            changed = true;
        }
        let mut i = 0;
        while i < p.backlog.len() {
            let h = p.backlog[i];
            if sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen {
                i += 1;
            } else {
                p.backlog.swap_remove(i);
                p.embryonic.push(h);
                changed = true;
            }
        }
        let mut i = 0;
        while i < p.embryonic.len() {
            let h = p.embryonic[i];
            match sockets.get::<tcp::Socket>(h).state() {
                tcp::State::SynReceived => i += 1,
                tcp::State::Closed | tcp::State::Listen | tcp::State::TimeWait => {
                    p.embryonic.swap_remove(i);
                    sockets.remove(h);
                    changed = true;
                }
                _ if p.listeners.is_empty() => i += 1,
                _ => {
                    p.embryonic.swap_remove(i);
                    let n = p.listeners.len();
                    let slot = &mut p.listeners[p.rr % n];
                    p.rr = p.rr.wrapping_add(1);
                    slot.ready.push_back(h);
                    if let Some(w) = slot.waker.take() {
                        w.wake();
                    }
                }
            }
        }
        if changed {
            refill(p, sockets, port);
        }
    }
}

/// Removes closed connections that no stream owns any more; returns
/// whether it removed any.
fn reap(inner: &mut Inner) -> bool {
    let before = inner.orphans.len();
    let mut i = 0;
    while i < inner.orphans.len() {
        let h = inner.orphans[i];
        if inner.sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed {
            inner.orphans.swap_remove(i);
            inner.sockets.remove(h);
            inner.local_ports.remove(&h);
        } else {
            i += 1;
        }
    }
    inner.orphans.len() < before
}

/// Why stream `s` takes no more bytes to send, if it does not: closed,
/// not connected yet, or its write half shut down.
fn send_refusal(s: &tcp::Socket) -> Option<Error> {
    if s.may_send() {
        return None;
    }
    Some(match s.state() {
        tcp::State::Closed | tcp::State::TimeWait => {
            Error::new(ErrorKind::ConnectionReset, "the connection is closed")
        }
        tcp::State::SynSent | tcp::State::SynReceived => NOT_CONNECTED,
        _ => Error::new(ErrorKind::BrokenPipe, "the write half is shut down"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_sockets_get_the_asked_buffers_and_a_10_ms_ack_delay() {
        let s = new_tcp_socket(3000, 5000).unwrap();
        assert_eq!(s.recv_capacity(), 3000);
        assert_eq!(s.send_capacity(), 5000);
        // smoltcp's default, which connections used to set explicitly.
        assert_eq!(
            s.ack_delay(),
            Some(smoltcp::time::Duration::from_millis(10))
        );
    }
}
