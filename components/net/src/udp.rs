//! UDP sockets (the same API as `ebbrt_std::net`).

use alloc::rc::Rc;
use core::fmt;
use core::future::poll_fn;
use core::net::SocketAddr;

use ebbrt_core::EbbRef;
use ebbrt_core::io;
use ebbrt_core::iobuf::IoBuf;

use crate::manager::{Home, NO_DEVICE, NetworkManager};
use crate::remote::RemoteStack;
use crate::stack::Stack;

/// A UDP socket, owned by the core that bound it.
pub struct UdpSocket {
    imp: Imp,
    local: SocketAddr,
}

enum Imp {
    Local { stack: Rc<Stack>, id: u64 },
    Remote { remote: RemoteStack, id: u64 },
}

impl UdpSocket {
    /// Binds a socket to `addr` (port 0: the stack picks one) on the
    /// current core. On a core without a stack of its own (one queue, not
    /// core 0) the socket lives in the owner's stack and the port must be
    /// given.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        Self::bind_with(NetworkManager::get(), addr)
    }

    /// Binds through the network manager `mgr`.
    pub fn bind_with(mgr: EbbRef<NetworkManager>, addr: SocketAddr) -> io::Result<UdpSocket> {
        match mgr.home() {
            Home::Local(stack) => Self::bind_on(&stack, addr),
            Home::Remote { mgr, owner } => {
                crate::error::listen_endpoint(addr)?;
                if addr.port() == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a core without its own stack must bind UDP sockets to a given port",
                    ));
                }
                let remote = RemoteStack::new(mgr, owner);
                let id = crate::remote::remote_id();
                remote.run_detached(move |s| s.udp_bind_remote(id, addr));
                Ok(UdpSocket {
                    imp: Imp::Remote { remote, id },
                    local: addr,
                })
            }
            Home::None => Err(NO_DEVICE),
        }
    }

    /// Binds on `stack` (which must live on this core).
    pub fn bind_on(stack: &Rc<Stack>, addr: SocketAddr) -> io::Result<UdpSocket> {
        let (id, local) = stack.udp_bind(addr)?;
        Ok(UdpSocket {
            imp: Imp::Local {
                stack: stack.clone(),
                id,
            },
            local,
        })
    }

    /// Sends `buf` as one datagram to `to`, waiting while the send buffer
    /// is full.
    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        match &self.imp {
            Imp::Local { stack, id } => poll_fn(|cx| stack.poll_send_to(*id, buf, to, cx)).await,
            Imp::Remote { remote, id } => {
                let (id, data) = (*id, buf.to_vec());
                remote
                    .run(move |s| async move { poll_fn(|cx| s.poll_send_to(id, &data, to, cx)).await })
                    .await
            }
        }
    }

    /// Waits for a datagram; copies it into `buf` (truncating it if it is
    /// longer) and returns its length in `buf` and its sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match &self.imp {
            Imp::Local { stack, id } => poll_fn(|cx| stack.poll_recv_from(*id, buf, cx)).await,
            Imp::Remote { .. } => {
                let (data, from) = self.recv_buf().await?;
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok((n, from))
            }
        }
    }

    /// Waits for a datagram; returns it whole, in a buffer of its size
    /// (natively copied once, out of the socket's packet ring; hosted, read
    /// straight into the buffer), and its sender.
    pub async fn recv_buf(&self) -> io::Result<(IoBuf, SocketAddr)> {
        match &self.imp {
            Imp::Local { stack, id } => poll_fn(|cx| stack.poll_recv_buf(*id, cx)).await,
            Imp::Remote { remote, id } => {
                let id = *id;
                remote
                    .run(move |s| async move { poll_fn(|cx| s.poll_recv_buf(id, cx)).await })
                    .await
            }
        }
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        match &self.imp {
            Imp::Local { stack, id } => stack.udp_close(*id),
            Imp::Remote { remote, id } => {
                let id = *id;
                remote.run_detached(move |s| s.udp_close(id));
            }
        }
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local)
            .finish()
    }
}
