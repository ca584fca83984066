//! memcached: a drop-in memcached server (ASCII, binary and meta
//! protocols) with a TCP listener on every core that owns a network stack,
//! hosted and native.
//!
//! Every such core binds the same address and serves the connections its
//! own listener accepts (hosted every core, through `SO_REUSEPORT`, the
//! process's listeners sharing connections out evenly; natively one core
//! per NIC queue pair, each with its stack), as `examples/echo` does. With
//! fewer queue pairs than cores the others stay out of it unless
//! `memcached.listen=all` (their every read and write would cross to core
//! 0's stack and back). Each connection is a task on its core that feeds
//! what it reads to a [`memcached::Session`] and writes back the replies of everything whole it received (one write per
//! read, so pipelined requests are answered in one batch), as a chain
//! whose values are the stored buffers themselves (`TcpStream::write_chain`).
//! All cores share one cache: by default [`memcached::RcuStore`] (an RCU
//! hash table Ebb, reads without locks), or [`memcached::MemStore`] (one
//! lock) with `--store mem`.
//!
//! Options, memcached's names (default in brackets):
//! - boot arguments (native: the kernel command line; hosted:
//!   `EBBRT_ARGS`): `memcached.port=` [11211], `memcached.addr=`
//!   [0.0.0.0], `memcached.m=` megabytes [64], `memcached.c=` connections
//!   [1024], `memcached.I=` item size, with `k`/`m` [1m], `memcached.buffers=`
//!   each connection's receive and send buffer, with `k`/`m` (at least 1k)
//!   [the runtime's: 64 KiB natively], `memcached.store=` `rcu` or `mem`
//!   [rcu], `memcached.listen=` `stacks` (the cores that own a network
//!   stack) or `all` [stacks], `memcached.t=`
//!   threads (reported only), `memcached.epoch=` Unix
//!   time at boot (native: the kernel has no wall clock; without it the
//!   clock starts at 0 and absolute expiry times lie far in the future);
//! - hosted, also memcached's flags, which win: `-p`, `-l`, `-m`, `-c`,
//!   `-I`, `-t`, and `-U 0`, `-u`, `-v` accepted and ignored; and
//!   `--buffers SIZE`, `--store rcu|mem` and `--listen stacks|all`.
//!
//! It prints `memcached: listening on ADDR on N cores` once every core
//! that is to listen does, and serves until it is killed.
#![cfg_attr(target_os = "none", no_std, no_main)]
// `deny`, not `forbid`: natively `#[ebbrt::main]` emits the kernel entry point,
// which allows the unsafe code of its own expansion.
#![deny(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use ebbrt::cpu::{self, CoreId};
use ebbrt::io;
use ebbrt::net::{ListenOptions, TcpListener, TcpStream};
use memcached::{
    Cache, Clock, Config, Flow, MemStore, Response, Session, SharedRcuStore, Sink, Store,
};

/// Why the server could not start. `Debug` is what `main` prints.
enum StartError {
    BadArgument(String),
    Bind {
        core: CoreId,
        addr: SocketAddr,
        error: io::Error,
    },
}

impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::BadArgument(msg) => f.write_str(msg),
            StartError::Bind { core, addr, error } => {
                write!(f, "{core} cannot listen on {addr}: {error}")
            }
        }
    }
}

/// The options, as memcached names them.
struct Options {
    addr: IpAddr,
    port: u16,
    megabytes: u64,
    connections: u64,
    item_size_max: usize,
    threads: Option<u64>,
    epoch: Option<u64>,
    /// Each connection's receive and send buffer, bytes (`None`: the
    /// runtime's).
    buffers: Option<usize>,
    /// Which store keeps the items.
    store: StoreKind,
    /// Which cores listen.
    listen: ListenCores,
}

/// Which cores take connections.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ListenCores {
    /// Those that own a network stack (`ebbrt::net::has_local_stack`):
    /// hosted every core, natively one per NIC queue pair. A core without
    /// one would reach core 0's stack across cores for every read and
    /// write, which costs more than a memcached request.
    Stacks,
    /// Every core, with or without a stack of its own.
    All,
}

/// The stores the server can keep its items in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum StoreKind {
    /// [`memcached::RcuStore`]: lock-free reads, CLOCK eviction.
    Rcu,
    /// [`memcached::MemStore`]: one lock, exact LRU.
    Mem,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 11211,
            megabytes: 64,
            connections: 1024,
            item_size_max: 1 << 20,
            threads: None,
            epoch: None,
            buffers: None,
            store: StoreKind::Rcu,
            listen: ListenCores::Stacks,
        }
    }
}

fn bad(what: &str, value: &str, expected: &str) -> StartError {
    StartError::BadArgument(alloc::format!(
        "invalid {what} `{value}`: expected {expected}"
    ))
}

fn number<T: core::str::FromStr>(what: &str, value: &str) -> Result<T, StartError> {
    value.parse().map_err(|_| bad(what, value, "a number"))
}

/// A size as memcached's `-I` takes it: bytes, or with `k`/`m`.
fn size(what: &str, value: &str) -> Result<usize, StartError> {
    let (digits, unit) = match value.as_bytes().last() {
        Some(b'k' | b'K') => (&value[..value.len() - 1], 1 << 10),
        Some(b'm' | b'M') => (&value[..value.len() - 1], 1 << 20),
        _ => (value, 1),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| bad(what, value, "a size (bytes, or with k or m)"))?;
    let n = n.saturating_mul(unit);
    // memcached refuses under 1 KiB and over 1 GiB.
    if !(1024..=1 << 30).contains(&n) {
        return Err(bad(what, value, "between 1k and 1024m"));
    }
    Ok(n)
}

impl Options {
    /// Sets option `key` (a flag or a boot argument's name) to `value`.
    fn set(&mut self, key: &str, value: &str) -> Result<(), StartError> {
        match key {
            "port" | "-p" => self.port = number(key, value)?,
            "addr" | "-l" => {
                self.addr = value
                    .parse()
                    .map_err(|_| bad(key, value, "an IP address"))?
            }
            "m" | "-m" => self.megabytes = number(key, value)?,
            "c" | "-c" => self.connections = number(key, value)?,
            "I" | "-I" => self.item_size_max = size(key, value)?,
            "t" | "-t" => self.threads = Some(number(key, value)?),
            "epoch" => self.epoch = Some(number(key, value)?),
            "buffers" | "--buffers" => self.buffers = Some(size(key, value)?),
            "store" | "--store" => {
                self.store = match value {
                    "rcu" => StoreKind::Rcu,
                    "mem" => StoreKind::Mem,
                    _ => return Err(bad(key, value, "`rcu` or `mem`")),
                }
            }
            "listen" | "--listen" => {
                self.listen = match value {
                    "stacks" => ListenCores::Stacks,
                    "all" => ListenCores::All,
                    _ => return Err(bad(key, value, "`stacks` or `all`")),
                }
            }
            // UDP is off, as in memcached 1.6 by default; only 0 is honest.
            "-U" if value == "0" => {}
            "-u" => {}
            _ => {
                return Err(StartError::BadArgument(alloc::format!(
                    "unknown option `{key}` (usage: memcached [-p PORT] [-l ADDR] [-m MB] \
                     [-c CONNS] [-I SIZE] [-t THREADS] [--buffers SIZE] [--store rcu|mem] \
                     [--listen stacks|all])"
                )));
            }
        }
        Ok(())
    }

    fn load() -> Result<Options, StartError> {
        let mut o = Options::default();
        for key in [
            "port", "addr", "m", "c", "I", "t", "epoch", "buffers", "store", "listen",
        ] {
            let name = alloc::format!("memcached.{key}");
            if let Some(v) = ebbrt::runtime::boot_arg(&name) {
                o.set(key, v)?;
            }
        }
        #[cfg(not(target_os = "none"))]
        o.command_line()?;
        Ok(o)
    }

    /// Hosted: memcached's flags, `-p 11211` or `-p11211`, and ours,
    /// `--buffers 4k` or `--buffers=4k`, `--store mem`.
    #[cfg(not(target_os = "none"))]
    fn command_line(&mut self) -> Result<(), StartError> {
        let mut args = ebbrt::runtime::args().iter();
        while let Some(arg) = args.next() {
            if arg == "-v" || arg == "-vv" {
                continue;
            }
            let (flag, inline) = if let Some((flag, v)) = arg.split_once('=')
                && flag.starts_with("--")
            {
                (flag, Some(v))
            } else if arg.starts_with("--") {
                (arg.as_str(), None)
            } else if arg.len() > 2 && arg.starts_with('-') {
                (&arg[..2], Some(&arg[2..]))
            } else {
                (arg.as_str(), None)
            };
            let value = match inline {
                Some(v) => v,
                None => args.next().map(String::as_str).ok_or_else(|| {
                    StartError::BadArgument(alloc::format!("`{flag}` needs a value"))
                })?,
            };
            self.set(flag, value)?;
        }
        Ok(())
    }
}

/// Hosted: the system's real-time clock.
#[cfg(not(target_os = "none"))]
struct WallClock;

#[cfg(not(target_os = "none"))]
impl Clock for WallClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Natively: the Unix time handed over at boot plus the monotonic clock.
#[cfg(target_os = "none")]
struct BootClock {
    epoch: u64,
    origin: ebbrt::time::Instant,
}

#[cfg(target_os = "none")]
impl Clock for BootClock {
    fn now(&self) -> u64 {
        self.epoch + self.origin.elapsed().as_secs()
    }
}

#[cfg(not(target_os = "none"))]
fn clock(_: &Options) -> Box<dyn Clock> {
    Box::new(WallClock)
}

#[cfg(target_os = "none")]
fn clock(o: &Options) -> Box<dyn Clock> {
    if o.epoch.is_none() {
        ebbrt::println!(
            "memcached: no memcached.epoch= boot argument: the clock starts at 0 \
             (relative expiry times work; absolute ones lie far ahead)"
        );
    }
    Box::new(BootClock {
        epoch: o.epoch.unwrap_or(0),
        origin: ebbrt::time::Instant::now(),
    })
}

#[cfg(not(target_os = "none"))]
fn pid() -> u64 {
    u64::from(std::process::id())
}

#[cfg(target_os = "none")]
fn pid() -> u64 {
    0
}

/// Binds this core's listener and serves it in the background.
fn listen_here(
    cache: &'static Cache,
    addr: SocketAddr,
    opts: ListenOptions,
) -> Result<SocketAddr, StartError> {
    let core = cpu::current();
    let bind_error = |error| StartError::Bind { core, addr, error };
    let listener = opts.bind(addr).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    ebbrt::spawn_local(serve(cache, listener)).detach();
    Ok(local)
}

/// Accepts connections forever, each served by a task of this core.
async fn serve(cache: &'static Cache, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => ebbrt::spawn_local(connection(cache, stream)).detach(),
            Err(e) => {
                ebbrt::console::eprint(format_args!(
                    "memcached: {}: accept failed: {e}\n",
                    cpu::current()
                ));
                ebbrt::exec::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Ends a counted connection however its task ends.
struct Counted(&'static Cache);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.disconnect();
    }
}

/// Serves one connection until the peer closes it, a request closes it
/// (`quit`, a malformed binary packet) or it fails.
async fn connection(cache: &'static Cache, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if !cache.connect() {
        let _ = stream
            .write_all(memcached::session::TOO_MANY_CONNECTIONS)
            .await;
        let _ = stream.shutdown().await;
        return;
    }
    let _counted = Counted(cache);
    let mut session = Session::new(cache);
    let mut out = Response::new();
    // A hit's value goes out as the store's own `IoBuf`, between views of
    // the reply's text: no application-level copy (hosted, `writev` hands
    // it to the kernel; natively the stack copies it into its send ring).
    while let Ok(Some(buf)) = stream.read_buf().await {
        let flow = session.feed(&buf, &mut out);
        if !out.is_empty() && stream.write_chain(out.take()).await.is_err() {
            return;
        }
        if flow == Flow::Close {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

#[ebbrt::main]
async fn main() -> Result<(), StartError> {
    let o = Options::load()?;
    let config = Config {
        item_size_max: o.item_size_max,
        max_connections: o.connections,
        threads: o.threads.unwrap_or(cpu::count() as u64),
        pid: pid(),
        port: o.port,
    };
    let limit = o.megabytes.saturating_mul(1 << 20);
    let store: Box<dyn Store> = match o.store {
        StoreKind::Rcu => Box::new(SharedRcuStore::create(limit).map_err(|e| {
            StartError::BadArgument(alloc::format!("cannot make the store: {e:?}"))
        })?),
        StoreKind::Mem => Box::new(MemStore::new(limit)),
    };
    let cache: &'static Cache = Box::leak(Box::new(Cache::new(store, clock(&o), config)));
    // Core 0 binds first, so that with port 0 every core shares the port
    // the system picked.
    // Natively the buffers are the connection's smoltcp rings, so small
    // ones are what lets many mostly idle connections fit in memory;
    // hosted they become SO_RCVBUF/SO_SNDBUF.
    let opts = match o.buffers {
        Some(b) => ListenOptions::new().rx_buffer(b).tx_buffer(b),
        None => ListenOptions::new(),
    };
    let local = listen_here(cache, SocketAddr::new(o.addr, o.port), opts)?;
    let listen = o.listen;
    let others: Vec<_> = cpu::all()
        .skip(1)
        .map(|core| {
            ebbrt::exec::spawn_on_with(core, move || async move {
                if listen == ListenCores::Stacks && !ebbrt::net::has_local_stack() {
                    return Ok(false);
                }
                listen_here(cache, local, opts).map(|_| true)
            })
        })
        .collect();
    let mut listening = 1;
    for bound in others {
        if bound.await? {
            listening += 1;
        }
    }
    if listening < cpu::count() {
        ebbrt::println!(
            "memcached: listening on {local} on {listening} cores ({} of {} own no network \
             stack: fewer NIC queue pairs than cores; memcached.listen=all adds them)",
            cpu::count() - listening,
            cpu::count()
        );
    } else {
        ebbrt::println!("memcached: listening on {local} on {listening} cores");
    }
    core::future::pending::<()>().await;
    Ok(())
}
