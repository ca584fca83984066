//! smoltcp's errors as `ebbrt_core::io` errors, and address conversions.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use ebbrt_core::io::{Error, ErrorKind};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

pub(crate) const NOT_CONNECTED: Error =
    Error::new(ErrorKind::NotConnected, "the connection is closed");
pub(crate) const IPV6: Error =
    Error::new(ErrorKind::Unsupported, "the native stack speaks IPv4 only");

pub(crate) fn endpoint(addr: SocketAddr) -> Result<IpEndpoint, Error> {
    match addr {
        SocketAddr::V4(a) => Ok(IpEndpoint::from(a)),
        SocketAddr::V6(_) => Err(IPV6),
    }
}

/// Unlike smoltcp's `From<SocketAddrV4> for IpListenEndpoint` (which keeps
/// `0.0.0.0` as an address), an unspecified address listens on any.
pub(crate) fn listen_endpoint(addr: SocketAddr) -> Result<IpListenEndpoint, Error> {
    match addr {
        SocketAddr::V4(a) => Ok(IpListenEndpoint {
            addr: (!a.ip().is_unspecified()).then_some(IpAddress::Ipv4(*a.ip())),
            port: a.port(),
        }),
        SocketAddr::V6(_) => Err(IPV6),
    }
}

/// The address a listener reports: `0.0.0.0` when it listens on any.
pub(crate) fn listen_addr(ep: IpListenEndpoint) -> SocketAddr {
    let ip = match ep.addr {
        Some(IpAddress::Ipv4(a)) => a,
        None => Ipv4Addr::UNSPECIFIED,
    };
    SocketAddr::new(IpAddr::V4(ip), ep.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{SocketAddrV4, SocketAddrV6};

    #[test]
    fn address_conversions() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let ep = endpoint(SocketAddr::V4(a)).unwrap();
        assert_eq!(ep, IpEndpoint::new(IpAddress::Ipv4(*a.ip()), 80));
        assert_eq!(SocketAddr::from(ep), SocketAddr::V4(a));
        let v6 = SocketAddr::V6(SocketAddrV6::new(core::net::Ipv6Addr::LOCALHOST, 80, 0, 0));
        assert!(endpoint(v6).is_err());
        assert!(listen_endpoint(v6).is_err());
        // An unspecified address listens on any, and is reported as 0.0.0.0.
        let any = SocketAddr::from(([0, 0, 0, 0], 7));
        let l = listen_endpoint(any).unwrap();
        assert_eq!((l.addr, l.port), (None, 7));
        assert_eq!(listen_addr(l), any);
        let l = listen_endpoint(SocketAddr::V4(a)).unwrap();
        assert_eq!(l.addr, Some(IpAddress::Ipv4(*a.ip())));
        assert_eq!(listen_addr(l), SocketAddr::V4(a));
    }
}
