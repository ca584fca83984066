//! echo: a TCP and UDP echo server with one listener per core.
//!
//! Every core binds the same address and serves the connections that
//! arrive on its own listener (hosted, listeners set `SO_REUSEPORT`, so
//! Linux spreads connections over the cores; natively with a multiqueue
//! NIC, each core's stack gets the connections its queue receives; no
//! connection ever moves between cores). Each connection is a task that
//! reads (as [`IoBuf`](ebbrt::IoBuf)s, `read_buf`) and writes back until
//! the peer closes its half.
//!
//! UDP: on the same port, every datagram goes back to its sender as it
//! came, except the query [`STATS_QUERY`] (`ebbrt-echo:stats`), which is
//! answered with one line of the network's counters: natively
//! `ebbrt-echo:stats stacks=N rx_frames=... dropped=... truncated=...
//! poll_episodes=N poll_starved=N poll_held_back=N` (every stack's
//! counters added up, see `ebbrt_net::StackStats`, then the NIC driver's
//! interrupt-to-polling switch, `ebbrt::virtio_net::PollStats`); hosted
//! `ebbrt-echo:stats stacks=0` (Linux keeps its own). Hosted, one core
//! serves UDP (a port has one UDP socket there); natively, every core that
//! owns a stack does (with one NIC queue, that is core 0).
//!
//! Where it listens (default `0.0.0.0:7777`):
//! - the boot arguments `echo.port=P` and `echo.addr=A` (native: the kernel
//!   command line; hosted: `EBBRT_ARGS="echo.port=P"`);
//! - hosted, also the command line: `--port P` and `--addr A`, which win.
//!
//! Port 0 lets the system pick a port; the `listening on` line tells which.
//!
//! How its connections are made (boot arguments; see `ListenOptions`):
//! - `echo.buffers=BYTES`: each connection's receive and send buffers
//!   (default: the runtime's, 64 KiB natively); small buffers let many
//!   mostly idle connections fit (`echo.buffers=2048`);
//! - `echo.max_conns=N`: each core's listener holds at most N connections
//!   (natively, per stack); more are reset.
//!
//! Connections that do not fit (a limit, memory, descriptors) are refused
//! and the connections open keep being served; an accept that fails is
//! reported once per run of failures, with their count when it ends.
//! The server runs until it is killed.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use ebbrt::cpu::{self, CoreId};
use ebbrt::io::{self, ErrorKind};
use ebbrt::net::{ListenOptions, TcpListener, TcpStream, UdpSocket};

const DEFAULT_PORT: u16 = 7777;
const DEFAULT_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// The largest datagram echoed whole (larger ones are cut to this).
const MAX_DATAGRAM: usize = 64 * 1024;
/// The UDP payload that asks for the network's counters instead of an echo.
const STATS_QUERY: &[u8] = b"ebbrt-echo:stats";

/// Why the server could not start. `Debug` is what `main` prints.
enum EchoError {
    BadArgument(String),
    Bind {
        core: CoreId,
        what: &'static str,
        addr: SocketAddr,
        error: io::Error,
    },
}

impl fmt::Debug for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoError::BadArgument(msg) => f.write_str(msg),
            EchoError::Bind {
                core,
                what,
                addr,
                error,
            } => {
                write!(f, "{core} cannot {what} on {addr}: {error}")
            }
        }
    }
}

fn parse_port(value: &str, origin: &str) -> Result<u16, EchoError> {
    value.parse().map_err(|_| {
        EchoError::BadArgument(alloc::format!(
            "invalid port `{value}` ({origin}): expected 0..=65535"
        ))
    })
}

fn parse_ip(value: &str, origin: &str) -> Result<IpAddr, EchoError> {
    value.parse().map_err(|_| {
        EchoError::BadArgument(alloc::format!(
            "invalid address `{value}` ({origin}): expected an IP address"
        ))
    })
}

/// The listener's options, from the boot arguments `echo.buffers` and
/// `echo.max_conns`.
fn listen_options() -> Result<ListenOptions, EchoError> {
    use ebbrt::runtime::boot_arg;
    let number = |key: &str| -> Result<Option<usize>, EchoError> {
        boot_arg(key)
            .map(|v| {
                v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    EchoError::BadArgument(alloc::format!(
                        "invalid {key} `{v}` (boot argument): expected a positive number"
                    ))
                })
            })
            .transpose()
    };
    let mut opts = ListenOptions::new();
    if let Some(b) = number("echo.buffers")? {
        opts = opts.rx_buffer(b).tx_buffer(b);
    }
    if let Some(n) = number("echo.max_conns")? {
        opts = opts.max_connections(n);
    }
    Ok(opts)
}

/// The address to listen on, from the boot arguments and (hosted) the
/// command line.
fn listen_addr() -> Result<SocketAddr, EchoError> {
    use ebbrt::runtime::boot_arg;
    let port = match boot_arg("echo.port") {
        Some(v) => parse_port(v, "boot argument echo.port")?,
        None => DEFAULT_PORT,
    };
    let ip = match boot_arg("echo.addr") {
        Some(v) => parse_ip(v, "boot argument echo.addr")?,
        None => DEFAULT_ADDR,
    };
    #[cfg(not(target_os = "none"))]
    let (ip, port) = command_line(ip, port)?;
    Ok(SocketAddr::new(ip, port))
}

/// Hosted: `--port P` and `--addr A` override the boot arguments.
#[cfg(not(target_os = "none"))]
fn command_line(mut ip: IpAddr, mut port: u16) -> Result<(IpAddr, u16), EchoError> {
    let mut args = ebbrt::runtime::args().iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .or_else(|| args.next().map(String::as_str))
                .ok_or_else(|| EchoError::BadArgument(alloc::format!("`{flag}` needs a value")))
        };
        match flag {
            "--port" => port = parse_port(value()?, "--port")?,
            "--addr" => ip = parse_ip(value()?, "--addr")?,
            _ => {
                return Err(EchoError::BadArgument(alloc::format!(
                    "unknown argument `{arg}` (usage: echo [--port P] [--addr A])"
                )));
            }
        }
    }
    Ok((ip, port))
}

/// Binds this core's TCP listener and starts serving on it, in the
/// background.
fn listen_here(addr: SocketAddr, opts: ListenOptions) -> Result<SocketAddr, EchoError> {
    let core = cpu::current();
    let bind_error = |error| EchoError::Bind {
        core,
        what: "listen",
        addr,
        error,
    };
    let listener = opts.bind(addr).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    ebbrt::spawn_local(serve(listener)).detach();
    Ok(local)
}

/// Binds this core's UDP socket on `addr` and serves it in the background.
/// On other cores than 0, a port in use means that core 0's socket already
/// serves it (hosted, in this process; natively, in the stack this core
/// shares with core 0).
fn udp_here(addr: SocketAddr) -> Result<(), EchoError> {
    match UdpSocket::bind(addr) {
        Ok(socket) => {
            ebbrt::spawn_local(serve_udp(socket)).detach();
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AddrInUse && cpu::current() != CoreId(0) => Ok(()),
        Err(error) => Err(EchoError::Bind {
            core: cpu::current(),
            what: "bind UDP",
            addr,
            error,
        }),
    }
}

/// Accepts connections forever, each served by a task of this core. A
/// run of failed accepts (hosted, out of descriptors) prints one line when
/// it starts and one with its count when it ends, and pauses between
/// tries (the hosted listener pauses longer on its own) rather than spin.
async fn serve(listener: TcpListener) {
    let mut failures = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                if failures > 0 {
                    ebbrt::console::eprint(format_args!(
                        "echo: {}: accepting again after {failures} failed accepts\n",
                        cpu::current()
                    ));
                    failures = 0;
                }
                ebbrt::spawn_local(echo(stream)).detach()
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    ebbrt::console::eprint(format_args!(
                        "echo: {}: accept failed: {e}; retrying\n",
                        cpu::current()
                    ));
                }
                ebbrt::exec::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Writes back everything the peer sends, then closes our half.
async fn echo(stream: TcpStream) {
    // Small replies go out at once. A connection that fails (a peer that
    // resets, say) just ends.
    let _ = stream.set_nodelay(true);
    loop {
        match stream.read_buf().await {
            Ok(None) => break,
            Ok(Some(buf)) => {
                if stream.write_all(&buf).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = stream.shutdown().await;
}

/// Sends every datagram back to its sender; answers [`STATS_QUERY`].
async fn serve_udp(socket: UdpSocket) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            // Natively, a core without its own stack learns here that the
            // owner's socket already serves the port.
            Err(e) if e.kind() == ErrorKind::AddrInUse => return,
            Err(e) => {
                ebbrt::console::eprint(format_args!(
                    "echo: {}: UDP receive failed: {e}\n",
                    cpu::current()
                ));
                ebbrt::exec::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // A reply that cannot go out (no route, buffer full) is dropped,
        // as UDP allows.
        if &buf[..n] == STATS_QUERY {
            let line = stats_line().await;
            let _ = socket.send_to(line.as_bytes(), from).await;
        } else {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    }
}

/// The answer to [`STATS_QUERY`]: every stack's counters added up.
#[cfg(target_os = "none")]
async fn stats_line() -> String {
    use ebbrt::net::{NetworkManager, StackStats};
    use ebbrt::virtio_net::{PollStats, VirtioNet};
    let mut total = StackStats::default();
    let mut poll = PollStats::default();
    let mut stacks = 0;
    for core in cpu::all() {
        let (s, p) = ebbrt::exec::spawn_on_with(core, || async {
            (NetworkManager::get().stats(), VirtioNet::get().poll_stats())
        })
        .await;
        if let Some(s) = s {
            stacks += 1;
            total.add(&s);
        }
        if let Some(p) = p {
            poll.episodes += p.episodes;
            poll.starved += p.starved;
            poll.held_back += p.held_back;
        }
    }
    alloc::format!(
        "ebbrt-echo:stats stacks={stacks} {total} poll_episodes={} poll_starved={} poll_held_back={}",
        poll.episodes,
        poll.starved,
        poll.held_back
    )
}

/// The answer to [`STATS_QUERY`]: hosted, Linux keeps the counters.
#[cfg(not(target_os = "none"))]
async fn stats_line() -> String {
    "ebbrt-echo:stats stacks=0".into()
}

#[ebbrt::main]
async fn main() -> Result<(), EchoError> {
    let addr = listen_addr()?;
    let opts = listen_options()?;
    // Core 0 binds first, so that with port 0 every core shares the port
    // the system picked; UDP takes the same port.
    let local = listen_here(addr, opts)?;
    udp_here(local)?;
    let others: Vec<_> = cpu::all()
        .skip(1)
        .map(|core| {
            ebbrt::exec::spawn_on_with(core, move || async move {
                listen_here(local, opts)?;
                udp_here(local)
            })
        })
        .collect();
    for bound in others {
        bound.await?;
    }
    ebbrt::println!(
        "echo: listening on {local} (TCP and UDP) on {} cores",
        cpu::count()
    );
    // Serve until the process (or VM) is stopped.
    core::future::pending::<()>().await;
    Ok(())
}
