//! echo: a TCP echo server with one listener per core.
//!
//! Every core binds the same address and serves the connections that
//! arrive on its own listener (hosted, listeners set `SO_REUSEPORT`, so
//! Linux spreads connections over the cores; no connection ever moves
//! between cores). Each connection is a task that reads and writes back
//! until the peer closes its half.
//!
//! Where it listens (default `0.0.0.0:7777`):
//! - the boot arguments `echo.port=P` and `echo.addr=A` (native: the kernel
//!   command line; hosted: `EBBRT_ARGS="echo.port=P"`);
//! - hosted, also the command line: `--port P` and `--addr A`, which win.
//!
//! Port 0 lets the system pick a port; the `listening on` line tells which.
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
use ebbrt::io;
use ebbrt::net::{TcpListener, TcpStream};

const DEFAULT_PORT: u16 = 7777;
const DEFAULT_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Bytes read (and written back) at a time, per connection.
const BUF_SIZE: usize = 64 * 1024;

/// Why the server could not start. `Debug` is what `main` prints.
enum EchoError {
    BadArgument(String),
    Bind {
        core: CoreId,
        addr: SocketAddr,
        error: io::Error,
    },
}

impl fmt::Debug for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoError::BadArgument(msg) => f.write_str(msg),
            EchoError::Bind { core, addr, error } => {
                write!(f, "{core} cannot listen on {addr}: {error}")
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

/// The address to listen on, from the boot arguments and (hosted) the
/// command line.
fn listen_addr() -> Result<SocketAddr, EchoError> {
    use ebbrt::runtime::boot_arg;
    let mut port = match boot_arg("echo.port") {
        Some(v) => parse_port(v, "boot argument echo.port")?,
        None => DEFAULT_PORT,
    };
    let mut ip = match boot_arg("echo.addr") {
        Some(v) => parse_ip(v, "boot argument echo.addr")?,
        None => DEFAULT_ADDR,
    };
    #[cfg(not(target_os = "none"))]
    {
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
    }
    Ok(SocketAddr::new(ip, port))
}

/// Binds this core's listener and starts serving on it, in the background.
fn listen_here(addr: SocketAddr) -> Result<SocketAddr, EchoError> {
    let core = cpu::current();
    let bind_error = |error| EchoError::Bind { core, addr, error };
    let listener = TcpListener::bind(addr).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    ebbrt::spawn_local(serve(listener)).detach();
    Ok(local)
}

/// Accepts connections forever, each served by a task of this core.
async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => ebbrt::spawn_local(echo(stream)).detach(),
            Err(e) => {
                // Out of descriptors, say: back off rather than spin.
                ebbrt::runtime::console::eprint(format_args!(
                    "echo: {}: accept failed: {e}\n",
                    cpu::current()
                ));
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
    let mut buf: Vec<u8> = vec![0; BUF_SIZE];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = stream.shutdown().await;
}

#[ebbrt::main]
async fn main() -> Result<(), EchoError> {
    let addr = listen_addr()?;
    // Core 0 binds first, so that with port 0 every core shares the port
    // the system picked.
    let local = listen_here(addr)?;
    let others: Vec<_> = cpu::all()
        .skip(1)
        .map(|core| ebbrt::exec::spawn_on_with(core, move || async move { listen_here(local) }))
        .collect();
    for bound in others {
        bound.await?;
    }
    ebbrt::println!("echo: listening on {local} on {} cores", cpu::count());
    // Serve until the process (or VM) is stopped.
    core::future::pending::<()>().await;
    Ok(())
}
