//! The network configuration, from boot arguments.
//!
//! Keys (native: the kernel command line; see `boot_arg`):
//! - `net.ip=A.B.C.D/N`: a static address and prefix length (without it,
//!   the stack asks DHCP);
//! - `net.gw=A.B.C.D`: the default gateway (static configuration only);
//! - `net.queues=N`: use at most N queue pairs (one stack per queue pair,
//!   on cores `0..N`); `net.queues=1` forces the single-stack mode.

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
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            addr: AddrConfig::Dhcp,
            max_queues: None,
            tcp_rx_buffer: 64 * 1024,
            tcp_tx_buffer: 64 * 1024,
        }
    }
}

/// A boot argument of the network configuration that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// What was expected.
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "boot argument {}: expected {}", self.key, self.expected)
    }
}

impl core::error::Error for ConfigError {}

impl NetConfig {
    /// The configuration from boot arguments, read with `arg` (the
    /// runtime's `boot_arg`).
    pub fn from_args<'a>(arg: impl Fn(&str) -> Option<&'a str>) -> Result<NetConfig, ConfigError> {
        let mut c = NetConfig::default();
        if let Some(ip) = arg("net.ip") {
            let net = parse_net(ip).ok_or(ConfigError {
                key: "net.ip",
                expected: "an IPv4 address with a prefix length, such as 10.0.2.15/24",
            })?;
            let gateway = match arg("net.gw") {
                None => None,
                Some(g) => Some(g.trim().parse().map_err(|_| ConfigError {
                    key: "net.gw",
                    expected: "an IPv4 address, such as 10.0.2.2",
                })?),
            };
            c.addr = AddrConfig::Static { net, gateway };
        }
        if let Some(q) = arg("net.queues") {
            let n: usize = q
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(ConfigError {
                    key: "net.queues",
                    expected: "a number of queue pairs, at least 1",
                })?;
            c.max_queues = Some(n);
        }
        Ok(c)
    }
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

    fn args<'a>(list: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |k| list.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    }

    #[test]
    fn static_address_and_gateway() {
        let c = NetConfig::from_args(args(&[("net.ip", "10.0.2.15/24"), ("net.gw", "10.0.2.2")]))
            .unwrap();
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
    fn dhcp_by_default_and_bad_values_are_errors() {
        assert_eq!(
            NetConfig::from_args(args(&[])).unwrap().addr,
            AddrConfig::Dhcp
        );
        assert_eq!(
            NetConfig::from_args(args(&[("net.ip", "10.0.2.15")]))
                .unwrap_err()
                .key,
            "net.ip"
        );
        assert_eq!(
            NetConfig::from_args(args(&[("net.ip", "10.0.2.15/33")]))
                .unwrap_err()
                .key,
            "net.ip"
        );
        assert_eq!(
            NetConfig::from_args(args(&[("net.ip", "1.2.3.4/8"), ("net.gw", "x")]))
                .unwrap_err()
                .key,
            "net.gw"
        );
        assert_eq!(
            NetConfig::from_args(args(&[("net.queues", "0")]))
                .unwrap_err()
                .key,
            "net.queues"
        );
        assert_eq!(
            NetConfig::from_args(args(&[("net.queues", "2")]))
                .unwrap()
                .max_queues,
            Some(2)
        );
    }
}
