//! smoltcp's errors as `ebbrt_core::io` errors, and address conversions.

use core::net::{IpAddr, SocketAddr, SocketAddrV4};

use ebbrt_core::io::{Error, ErrorKind};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

pub(crate) const NOT_CONNECTED: Error =
    Error::new(ErrorKind::NotConnected, "the connection is closed");
pub(crate) const IPV6: Error =
    Error::new(ErrorKind::Unsupported, "the native stack speaks IPv4 only");

pub(crate) fn endpoint(addr: SocketAddr) -> Result<IpEndpoint, Error> {
    match addr {
        SocketAddr::V4(a) => Ok(IpEndpoint::new(IpAddress::Ipv4(*a.ip()), a.port())),
        SocketAddr::V6(_) => Err(IPV6),
    }
}

pub(crate) fn listen_endpoint(addr: SocketAddr) -> Result<IpListenEndpoint, Error> {
    match addr {
        SocketAddr::V4(a) => Ok(IpListenEndpoint {
            addr: (!a.ip().is_unspecified()).then_some(IpAddress::Ipv4(*a.ip())),
            port: a.port(),
        }),
        SocketAddr::V6(_) => Err(IPV6),
    }
}

pub(crate) fn socket_addr(ep: IpEndpoint) -> SocketAddr {
    match ep.addr {
        IpAddress::Ipv4(a) => SocketAddr::V4(SocketAddrV4::new(a, ep.port)),
    }
}

pub(crate) fn listen_addr(
    ep: IpListenEndpoint,
    fallback: Option<core::net::Ipv4Addr>,
) -> SocketAddr {
    let ip = match ep.addr {
        Some(IpAddress::Ipv4(a)) => a,
        None => fallback.unwrap_or(core::net::Ipv4Addr::UNSPECIFIED),
    };
    SocketAddr::new(IpAddr::V4(ip), ep.port)
}
