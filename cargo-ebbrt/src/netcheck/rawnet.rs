//! Talking to the guest from inside the network namespace of its tap: a
//! thread that joins the namespace (`setns`, which moves only the calling
//! thread), and a packet socket on the tap for frames built by hand.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::frames::Mac;

/// Runs `f` on a thread inside the network namespace `name` (made with
/// `ip netns add`); sockets it opens live there. A panic in `f` comes back
/// as an error.
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let path = format!("/run/netns/{name}");
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || -> Result<T, String> {
            let ns = File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
            // SAFETY: setns(2) with a descriptor of a network namespace
            // file, open for the call; it changes this thread's network
            // namespace only (the thread ends with `f`).
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if r != 0 {
                return Err(format!(
                    "cannot enter network namespace {name}: {}",
                    io::Error::last_os_error()
                ));
            }
            Ok(f())
        });
        match thread.join() {
            Ok(r) => r,
            Err(panic) => Err(format!(
                "the check panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            )),
        }
    })
}

/// A raw packet socket bound to one interface: sends whole Ethernet
/// frames and receives the frames that come in on it.
pub struct PacketSocket {
    fd: OwnedFd,
    /// The interface's Ethernet address.
    pub mac: Mac,
}

/// `PACKET_OUTGOING`: a frame this host sent (seen on the socket too).
const PACKET_OUTGOING: u8 = 4;

fn sockaddr_ll(ifindex: i32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sa.sll_ifindex = ifindex;
    sa
}

impl PacketSocket {
    /// Opens a packet socket on interface `ifname` (of this thread's
    /// network namespace). Needs `CAP_NET_RAW`.
    pub fn open(ifname: &str) -> Result<PacketSocket, String> {
        let name = CString::new(ifname).map_err(|_| format!("bad interface name {ifname:?}"))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(format!(
                "no interface {ifname}: {}",
                io::Error::last_os_error()
            ));
        }
        let proto = i32::from((libc::ETH_P_ALL as u16).to_be());
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        if raw < 0 {
            return Err(format!(
                "cannot open a packet socket: {}",
                io::Error::last_os_error()
            ));
        }
        // SAFETY: `raw` is a descriptor socket(2) just returned, owned by
        // nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sa = sockaddr_ll(ifindex as i32);
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `sa` is a valid sockaddr_ll of `len` bytes.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                len,
            )
        };
        if r != 0 {
            return Err(format!(
                "cannot bind a packet socket to {ifname}: {}",
                io::Error::last_os_error()
            ));
        }
        let mut bound = sockaddr_ll(0);
        let mut blen = len;
        // SAFETY: `bound` is writable and `blen` holds its size.
        let r = unsafe {
            libc::getsockname(
                fd.as_raw_fd(),
                &mut bound as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut blen,
            )
        };
        if r != 0 || bound.sll_halen != 6 {
            return Err(format!("cannot read the Ethernet address of {ifname}"));
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&bound.sll_addr[..6]);
        Ok(PacketSocket { fd, mac })
    }

    /// Sends one frame as is.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: the pointer and length describe `frame`.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Waits until `deadline` for an incoming frame `pick` accepts (frames
    /// this host sent are skipped); returns what `pick` made of it.
    pub fn recv_until<T>(
        &self,
        deadline: Instant,
        mut pick: impl FnMut(&[u8]) -> Option<T>,
    ) -> io::Result<Option<T>> {
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                continue;
            }
            let mut from = sockaddr_ll(0);
            let mut flen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` is writable for its length; `from` and `flen`
            // describe a writable sockaddr_ll.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut flen,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(e);
            }
            if from.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            if let Some(t) = pick(&buf[..n as usize]) {
                return Ok(Some(t));
            }
        }
    }
}

/// Sends `frame` up to `tries` times, `wait` apart, until `pick` accepts a
/// frame that came back.
pub fn ask<T>(
    sock: &PacketSocket,
    frame: &[u8],
    tries: u32,
    wait: Duration,
    mut pick: impl FnMut(&[u8]) -> Option<T>,
) -> Result<Option<T>, String> {
    for _ in 0..tries {
        sock.send(frame)
            .map_err(|e| format!("cannot send a frame: {e}"))?;
        let got = sock
            .recv_until(Instant::now() + wait, &mut pick)
            .map_err(|e| format!("cannot receive frames: {e}"))?;
        if got.is_some() {
            return Ok(got);
        }
    }
    Ok(None)
}
