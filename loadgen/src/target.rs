//! Where traffic may go: loopback, or a private network such as a tap in a
//! network namespace. Nothing else.
//!
//! Allowed: IPv4 loopback 127.0.0.0/8, the private ranges 10.0.0.0/8,
//! 172.16.0.0/12 and 192.168.0.0/16 (RFC 1918), link-local 169.254.0.0/16;
//! IPv6 loopback ::1, unique-local fc00::/7 and link-local fe80::/10.
//! Everything else, the unspecified address included, is refused, so a
//! typo cannot turn a benchmark into a flood of someone else's server.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Whether `ip` is loopback, private or link-local.
pub fn allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return allowed(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves `target` (`HOST:PORT`) and refuses it unless every address it
/// names is allowed; returns the first.
pub fn resolve(target: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| format!("server `{target}`: {e} (expected HOST:PORT, e.g. 127.0.0.1:11211)"))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| format!("server `{target}` resolves to no address"))?;
    if let Some(bad) = addrs.iter().find(|a| !allowed(a.ip())) {
        return Err(format!(
            "refusing server `{target}` ({}): this tool sends load only to loopback (127.0.0.0/8, ::1), \
             private networks (10/8, 172.16/12, 192.168/16, fc00::/7) and link-local addresses (a tap in a \
             network namespace)",
            bad.ip()
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_private_pass_public_does_not() {
        for ok in [
            "127.0.0.1:11211",
            "127.5.6.7:1",
            "[::1]:11211",
            "10.0.2.15:11211",
            "192.168.7.2:80",
            "172.20.0.1:1",
            "169.254.1.1:1",
            "[fd00::1]:1",
            "[fe80::1]:1",
            "[::ffff:127.0.0.1]:1",
            "localhost:11211",
        ] {
            assert!(resolve(ok).is_ok(), "{ok}: {:?}", resolve(ok));
        }
        for bad in [
            "8.8.8.8:53",
            "1.1.1.1:11211",
            "172.32.0.1:1",
            "192.169.0.1:1",
            "0.0.0.0:11211",
            "[2001:db8::1]:1",
            "[::]:1",
            "[::ffff:8.8.8.8]:1",
        ] {
            let e = resolve(bad).unwrap_err();
            assert!(e.contains("refusing"), "{bad}: {e}");
        }
        assert!(resolve("no-port").is_err());
    }
}
