//! The network namespace of [`crate::Network::Tap`]: one per allocator,
//! a bridge in it carrying the frontend's address, and one tap per node
//! enslaved to the bridge.
//!
//! ```text
//!  host (root namespace)           namespace ebbrt-nodes-<pid>-<k>
//!  ---------------------           ------------------------------------
//!  frontend process  --- socket -->  br0 10.80.0.1/24 (frontend listener)
//!   (listener opened inside           |-- tap1 <-> QEMU node 1 10.80.0.2
//!    the namespace by a thread        |-- tap2 <-> QEMU node 2 10.80.0.3
//!    that entered it)                 `-- ...
//! ```
//!
//! Nothing links the namespace to the host's own network (no veth, no
//! routes), so node traffic stays inside it. The frontend reaches it only
//! through sockets opened inside ([`crate::NodeAllocator::listen`]); nodes
//! reach each other over the bridge at their own addresses. Creating it
//! needs root (`CAP_NET_ADMIN` and `CAP_SYS_ADMIN`).

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::AllocError;
use crate::bootstrap::NodeId;
use crate::sys;

/// The frontend's address on the bridge.
pub const FRONTEND_ADDR: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 1);
/// The bridge's name inside the namespace.
pub const BRIDGE: &str = "br0";
/// The highest node id a namespace has an address for (10.80.0.2 ..= .254).
pub const MAX_NODE: u32 = 253;

/// Node `node`'s address on the bridge.
pub fn node_addr(node: NodeId) -> Option<Ipv4Addr> {
    (1..=MAX_NODE)
        .contains(&node.0)
        .then(|| Ipv4Addr::new(10, 80, 0, 1 + node.0 as u8))
}

/// Node `node`'s tap device.
pub fn tap_name(node: NodeId) -> String {
    format!("tap{}", node.0)
}

/// A locally administered, unicast MAC per node: QEMU gives every NIC
/// 52:54:00:12:34:56 unless told otherwise, and nodes on one bridge must
/// differ.
pub fn node_mac(node: NodeId) -> String {
    let [_, a, b, c] = node.0.to_be_bytes();
    format!("52:54:eb:{a:02x}:{b:02x}:{c:02x}")
}

fn ip(args: &[&str]) -> Result<(), AllocError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| AllocError::Network(format!("cannot run `ip` (iproute2): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AllocError::Network(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The allocator's namespace; [`Namespace::remove`] (or drop) deletes its
/// taps and itself.
pub(crate) struct Namespace {
    name: String,
    taps: Vec<String>,
    removed: bool,
}

impl Namespace {
    /// Creates `ebbrt-nodes-<pid>-<k>` with its bridge up.
    pub(crate) fn create() -> Result<Namespace, AllocError> {
        if !sys::is_root() {
            return Err(AllocError::NotRoot);
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ebbrt-nodes-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        let ns = Namespace {
            name,
            taps: Vec::new(),
            removed: false,
        };
        let n = ns.name.as_str();
        let addr = format!("{FRONTEND_ADDR}/24");
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&["-n", n, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", n, "addr", "add", &addr, "dev", BRIDGE])?;
        ip(&["-n", n, "link", "set", BRIDGE, "up"])?;
        Ok(ns)
    }

    /// Its name (`ip netns exec <name> ...`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Adds node `node`'s tap to the bridge; returns its name.
    pub(crate) fn add_tap(&mut self, node: NodeId) -> Result<String, AllocError> {
        let tap = tap_name(node);
        let n = self.name.as_str();
        ip(&["-n", n, "tuntap", "add", "dev", &tap, "mode", "tap"])?;
        self.taps.push(tap.clone());
        ip(&["-n", n, "link", "set", &tap, "master", BRIDGE])?;
        ip(&["-n", n, "link", "set", &tap, "up"])?;
        Ok(tap)
    }

    /// Opens the namespace, to enter it ([`sys::in_netns`]).
    pub(crate) fn open(&self) -> std::io::Result<File> {
        File::open(format!("/var/run/netns/{}", self.name))
    }

    /// Deletes the taps, then the namespace. Call after the QEMUs that held
    /// the taps have ended. Returns what could not be removed.
    pub(crate) fn remove(&mut self) -> Vec<String> {
        if self.removed {
            return Vec::new();
        }
        self.removed = true;
        let mut failed = Vec::new();
        for tap in self.taps.drain(..) {
            if let Err(e) = ip(&["-n", &self.name, "link", "del", &tap]) {
                failed.push(e.to_string());
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            failed.push(e.to_string());
        }
        failed
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The namespaces that exist now (`ip netns list`), for tests and checks.
pub fn list_namespaces() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_names_and_macs() {
        assert_eq!(node_addr(NodeId(1)), Some(Ipv4Addr::new(10, 80, 0, 2)));
        assert_eq!(node_addr(NodeId(253)), Some(Ipv4Addr::new(10, 80, 0, 254)));
        assert_eq!(node_addr(NodeId(0)), None);
        assert_eq!(node_addr(NodeId(254)), None);
        assert_eq!(tap_name(NodeId(7)), "tap7");
        assert_eq!(node_mac(NodeId(1)), "52:54:eb:00:00:01");
        assert_eq!(node_mac(NodeId(0x010203)), "52:54:eb:01:02:03");
        assert_ne!(node_mac(NodeId(1)), node_mac(NodeId(2)));
    }
}
