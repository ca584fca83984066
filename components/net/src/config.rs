//! The network configuration, from boot arguments.
//!
//! Keys (native: the kernel command line; see `boot_arg`):
//! - `net.ip=A.B.C.D/N`: a static address and prefix length (without it,
//!   the stack asks DHCP);
//! - `net.gw=A.B.C.D`: the default gateway (static configuration only);
//! - `net.queues=N`: use at most N queue pairs (one stack per queue pair,
//!   on cores `0..N`); `net.queues=1` forces the single-stack mode;
//! - `net.tcp_max=N`: the most TCP sockets one stack holds (its socket
//!   table, reserved at start; see [`NetConfig::max_tcp_sockets`]);
//! - `net.tcp_memory=BYTES` (a `K`, `M` or `G` suffix allowed): the bytes
//!   of TCP socket buffers all stacks together may hold (see
//!   [`NetConfig::tcp_memory`]).

use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;

/// An IPv4 address with its prefix length.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, `0..=32`.
    pub prefix: u8,
}

/// How the stack gets its address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AddrConfig {
    /// A fixed address and an optional default gateway.
    Static {
        /// The address and prefix.
        net: Ipv4Net,
        /// The default gateway.
        gateway: Option<Ipv4Addr>,
    },
    /// DHCP (by the stack of queue 0).
    Dhcp,
}

/// The configuration of the network manager.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Addressing.
    pub addr: AddrConfig,
    /// The most queue pairs to use (`None`: one per core, as many as the
    /// device offers).
    pub max_queues: Option<usize>,
    /// Bytes of receive buffer per TCP connection (its largest window).
    pub tcp_rx_buffer: usize,
    /// Bytes of send buffer per TCP connection.
    pub tcp_tx_buffer: usize,
    /// The most TCP sockets one stack holds at once: connections (also
    /// those closing), listening sockets and handshakes in progress. The
    /// stack reserves its socket table for this many when it starts
    /// (about 464 bytes each), so that it never grows it (an allocation
    /// that could fail) under load; connections beyond it are refused.
    pub max_tcp_sockets: usize,
    /// The bytes of TCP socket buffers that all stacks together may hold
    /// (the manager gives each stack an equal share; a stack built on its
    /// own takes it whole). A connection whose buffers do not fit is
    /// refused, and so is one whose buffers the allocator cannot give, so
    /// that the memory left serves the connections already open. `None`:
    /// only what the allocator gives bounds them. Natively, without
    /// `net.tcp_memory`, the manager takes 5/8 of RAM.
    pub tcp_memory: Option<usize>,
}

/// The default of [`NetConfig::max_tcp_sockets`]: about 3.8 MiB of socket
/// table per stack.
pub const DEFAULT_MAX_TCP_SOCKETS: usize = 8192;

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            addr: AddrConfig::Dhcp,
            max_queues: None,
            tcp_rx_buffer: 64 * 1024,
            tcp_tx_buffer: 64 * 1024,
            max_tcp_sockets: DEFAULT_MAX_TCP_SOCKETS,
            tcp_memory: None,
        }
    }
}

/// A boot argument of the network configuration that does not parse, and
/// what the configuration does instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// What was expected.
    pub expected: &'static str,
    /// What is used instead.
    pub instead: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boot argument {}: expected {}; {}",
            self.key, self.expected, self.instead
        )
    }
}

impl core::error::Error for ConfigError {}

impl NetConfig {
    /// The configuration from boot arguments, read with `arg` (the
    /// runtime's `boot_arg`), and the arguments that did not parse. Each
    /// bad argument falls back on its own (a bad `net.queues` keeps a good
    /// static address): a bad `net.ip` means DHCP, a bad `net.gw` a static
    /// address without a gateway, a bad `net.queues` one queue pair per
    /// core, a bad `net.tcp_max` or `net.tcp_memory` the default.
    pub fn from_args<'a>(arg: impl Fn(&str) -> Option<&'a str>) -> (NetConfig, Vec<ConfigError>) {
        let mut c = NetConfig::default();
        let mut errors = Vec::new();
        if let Some(ip) = arg("net.ip") {
            match parse_net(ip) {
                Some(net) => {
                    let gateway = arg("net.gw").and_then(|g| match g.trim().parse() {
                        Ok(gw) => Some(gw),
                        Err(_) => {
                            errors.push(ConfigError {
                                key: "net.gw",
                                expected: "an IPv4 address, such as 10.0.2.2",
                                instead: "no default gateway",
                            });
                            None
                        }
                    });
                    c.addr = AddrConfig::Static { net, gateway };
                }
                None => errors.push(ConfigError {
                    key: "net.ip",
                    expected: "an IPv4 address with a prefix length, such as 10.0.2.15/24",
                    instead: "using DHCP",
                }),
            }
        }
        if let Some(q) = arg("net.queues") {
            match q.trim().parse::<usize>().ok().filter(|n| *n > 0) {
                Some(n) => c.max_queues = Some(n),
                None => errors.push(ConfigError {
                    key: "net.queues",
                    expected: "a number of queue pairs, at least 1",
                    instead: "one queue pair per core, as many as the device offers",
                }),
            }
        }
        if let Some(n) = arg("net.tcp_max") {
            match n.trim().parse::<usize>().ok().filter(|n| *n > 0) {
                Some(n) => c.max_tcp_sockets = n,
                None => errors.push(ConfigError {
                    key: "net.tcp_max",
                    expected: "a number of TCP sockets per stack, at least 1",
                    instead: "the default, 8192",
                }),
            }
        }
        if let Some(m) = arg("net.tcp_memory") {
            match parse_bytes(m) {
                Some(b) => c.tcp_memory = Some(b),
                None => errors.push(ConfigError {
                    key: "net.tcp_memory",
                    expected: "a number of bytes, with an optional K, M or G suffix",
                    instead: "the default",
                }),
            }
        }
        (c, errors)
    }
}

/// `N`, `NK`, `NM` or `NG` (binary multiples).
fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    digits.parse::<usize>().ok()?.checked_mul(1 << shift)
}

fn parse_net(s: &str) -> Option<Ipv4Net> {
    let (a, p) = s.trim().split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    let prefix: u8 = p.parse().ok()?;
    (prefix <= 32).then_some(Ipv4Net { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn args<'a>(list: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |k| list.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    }

    #[test]
    fn static_address_and_gateway() {
        let (c, errors) =
            NetConfig::from_args(args(&[("net.ip", "10.0.2.15/24"), ("net.gw", "10.0.2.2")]));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            c.addr,
            AddrConfig::Static {
                net: Ipv4Net {
                    addr: Ipv4Addr::new(10, 0, 2, 15),
                    prefix: 24
                },
                gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            }
        );
    }

    #[test]
    fn dhcp_by_default_and_bad_values_fall_back_one_by_one() {
        let (c, e) = NetConfig::from_args(args(&[]));
        assert_eq!((c.addr, e), (AddrConfig::Dhcp, Vec::new()));
        let keys = |list: &[(&str, &str)]| {
            let (c, e) = NetConfig::from_args(args(list));
            (c, e.iter().map(|e| e.key).collect::<Vec<_>>())
        };
        let (c, bad) = keys(&[("net.ip", "10.0.2.15")]);
        assert_eq!((c.addr, bad), (AddrConfig::Dhcp, vec!["net.ip"]));
        let (c, bad) = keys(&[("net.ip", "10.0.2.15/33"), ("net.gw", "10.0.2.2")]);
        assert_eq!((c.addr, bad), (AddrConfig::Dhcp, vec!["net.ip"]));
        let (c, bad) = keys(&[("net.ip", "1.2.3.4/8"), ("net.gw", "x")]);
        let net = Ipv4Net {
            addr: Ipv4Addr::new(1, 2, 3, 4),
            prefix: 8,
        };
        let no_gw = AddrConfig::Static { net, gateway: None };
        assert_eq!((c.addr, bad), (no_gw, vec!["net.gw"]));
        // A bad queue count keeps a good address.
        let (c, bad) = keys(&[("net.ip", "1.2.3.4/8"), ("net.queues", "0")]);
        assert_eq!(
            (c.addr, c.max_queues, bad),
            (no_gw, None, vec!["net.queues"])
        );
        let (c, bad) = keys(&[("net.queues", "2")]);
        assert_eq!((c.max_queues, bad), (Some(2), vec![]));
        let (c, bad) = keys(&[("net.tcp_max", "20000"), ("net.tcp_memory", "96M")]);
        assert_eq!(
            (c.max_tcp_sockets, c.tcp_memory, bad),
            (20000, Some(96 << 20), vec![])
        );
        let (c, bad) = keys(&[("net.tcp_max", "0"), ("net.tcp_memory", "lots")]);
        assert_eq!(
            (c.max_tcp_sockets, c.tcp_memory, bad),
            (
                DEFAULT_MAX_TCP_SOCKETS,
                None,
                vec!["net.tcp_max", "net.tcp_memory"]
            )
        );
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("2k"), Some(2048));
        assert_eq!(parse_bytes("1G"), Some(1 << 30));
        assert_eq!(parse_bytes("M"), None);
        let (_, e) = NetConfig::from_args(args(&[("net.queues", "many")]));
        assert_eq!(
            e[0].to_string(),
            "boot argument net.queues: expected a number of queue pairs, at least 1; \
             one queue pair per core, as many as the device offers"
        );
    }
}
