//! What a node is told when it boots, and how it is written on its kernel
//! command line.
//!
//! Five `key=value` words, appended to whatever else the image is given:
//!
//! | word | value |
//! |---|---|
//! | `ebbrt.node=<id>` | the node's logical [`NodeId`] (u32, from 1; the frontend is 0) |
//! | `ebbrt.idspace=<n>` | the [`IdSpace`] the node allocates global Ebb ids from |
//! | `ebbrt.frontend=<ip:port>` | where the node connects to the frontend (as seen *from the node*) |
//! | `ebbrt.epoch=<secs>` | the frontend's wall clock at allocation, Unix seconds |
//! | `ebbrt.secret=<hex>` | 32 random bytes, 64 lowercase hex digits: the node proves it was allocated |
//!
//! A node reads them with [`Bootstrap::from_boot_args`] (the kernel command
//! line natively, `EBBRT_ARGS` hosted); [`Bootstrap::parse`] is the same
//! parse of any command line. The node allocator (hosted) writes them with
//! [`Bootstrap::cmdline`].
//!
//! The command line of a QEMU process is readable by every user of the host
//! (`/proc/<pid>/cmdline`), and a cluster engine stores it in its job. The
//! secret keeps out a peer that was *not* told it (a stray connection, a
//! node of another application); it does not keep out the host's users.

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A node's logical identity within one application. The frontend is
/// [`NodeId::FRONTEND`]; the allocator numbers nodes from 1 and never reuses
/// a number. Never an IP address: under NAT (QEMU user networking, KubeVirt
/// masquerade, Nomad slirp) every node may look like the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The hosted frontend.
    pub const FRONTEND: NodeId = NodeId(0);
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The space a node allocates global Ebb ids from, so that ids made on
/// different nodes never collide. The allocator gives node `n` space `n`
/// (the frontend owns space 0); how many ids a space holds is the global id
/// map's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdSpace(pub u32);

/// The per-allocation secret: 32 random bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; Secret::LEN]);

impl Secret {
    /// Its length in bytes.
    pub const LEN: usize = 32;

    /// A secret with the given bytes (tests, and a node parsing its own).
    pub const fn from_bytes(bytes: [u8; Secret::LEN]) -> Secret {
        Secret(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; Secret::LEN] {
        &self.0
    }

    /// Lowercase hex, as on the command line.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Secret> {
        if hex.len() != 2 * Secret::LEN || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; Secret::LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Secret(bytes))
    }

    /// Compares with `other` in time independent of where they differ, so
    /// a peer cannot learn the secret byte by byte from response times.
    pub fn matches(&self, other: &[u8]) -> bool {
        if other.len() != Secret::LEN {
            return false;
        }
        self.0
            .iter()
            .zip(other)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for Secret {
    // Never printed: logs and panics must not leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Everything a node is told at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    /// The node's identity.
    pub node: NodeId,
    /// Its global-id space.
    pub id_space: IdSpace,
    /// The frontend's endpoint as the node reaches it.
    pub frontend: SocketAddr,
    /// The frontend's wall clock at allocation, Unix seconds.
    pub epoch: u64,
    /// The allocation's secret.
    pub secret: Secret,
}

/// The command-line keys, in the order they are written.
pub mod keys {
    /// [`super::Bootstrap::node`].
    pub const NODE: &str = "ebbrt.node";
    /// [`super::Bootstrap::id_space`].
    pub const ID_SPACE: &str = "ebbrt.idspace";
    /// [`super::Bootstrap::frontend`].
    pub const FRONTEND: &str = "ebbrt.frontend";
    /// [`super::Bootstrap::epoch`].
    pub const EPOCH: &str = "ebbrt.epoch";
    /// [`super::Bootstrap::secret`].
    pub const SECRET: &str = "ebbrt.secret";
}

impl Bootstrap {
    /// The kernel command-line words, space-separated.
    pub fn cmdline(&self) -> String {
        format!(
            "{}={} {}={} {}={} {}={} {}={}",
            keys::NODE,
            self.node.0,
            keys::ID_SPACE,
            self.id_space.0,
            keys::FRONTEND,
            self.frontend,
            keys::EPOCH,
            self.epoch,
            keys::SECRET,
            self.secret.to_hex()
        )
    }

    /// Reads the bootstrap back from a command line (the last occurrence of
    /// a key wins, as on Linux). `Err` names the first missing or malformed
    /// key.
    pub fn parse(cmdline: &str) -> Result<Bootstrap, String> {
        Bootstrap::from_lookup(|key| ebbrt_core::cmdline::lookup(cmdline, key))
    }

    /// Reads this node's bootstrap from its boot arguments: the kernel
    /// command line natively, `EBBRT_ARGS` hosted. `Err` names the first
    /// missing or malformed key (a node started by hand, not by the
    /// allocator, has none).
    pub fn from_boot_args() -> Result<Bootstrap, String> {
        #[cfg(target_os = "none")]
        let lookup = ebbrt_core::native::boot_arg;
        #[cfg(not(target_os = "none"))]
        let lookup = ebbrt_std::boot_arg;
        Bootstrap::from_lookup(lookup)
    }

    /// The bootstrap from a boot-argument lookup.
    fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Bootstrap, String> {
        let get = |key: &str| get(key).ok_or_else(|| format!("{key} is missing"));
        fn parsed<T: core::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("{key}={v} is malformed"))
        }
        let secret = get(keys::SECRET)?;
        Ok(Bootstrap {
            node: NodeId(parsed(keys::NODE, get(keys::NODE)?)?),
            id_space: IdSpace(parsed(keys::ID_SPACE, get(keys::ID_SPACE)?)?),
            frontend: parsed(keys::FRONTEND, get(keys::FRONTEND)?)?,
            epoch: parsed(keys::EPOCH, get(keys::EPOCH)?)?,
            secret: Secret::from_hex(secret)
                .ok_or_else(|| format!("{} is not 64 hex digits", keys::SECRET))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn sample() -> Bootstrap {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        Bootstrap {
            node: NodeId(3),
            id_space: IdSpace(3),
            frontend: "10.0.2.2:4567".parse().unwrap(),
            epoch: 1_800_000_000,
            secret: Secret::from_bytes(bytes),
        }
    }

    #[test]
    fn cmdline_round_trips() {
        let b = sample();
        let line = b.cmdline();
        assert!(line.starts_with(
            "ebbrt.node=3 ebbrt.idspace=3 ebbrt.frontend=10.0.2.2:4567 ebbrt.epoch=1800000000 ebbrt.secret=00254a6f"
        ), "{line}");
        assert_eq!(line.split(' ').count(), 5);
        assert_eq!(Bootstrap::parse(&line).unwrap(), b);
        // Among other words, and the last occurrence wins.
        let more = format!("net.ip=10.0.2.15/24 {line} ebbrt.node=9 ebbrt.log=debug");
        assert_eq!(Bootstrap::parse(&more).unwrap().node, NodeId(9));
    }

    #[test]
    fn parse_names_what_is_wrong() {
        let line = sample().cmdline();
        let without = |key: &str| {
            line.split(' ')
                .filter(|w| !w.starts_with(&format!("{key}=")))
                .collect::<Vec<_>>()
                .join(" ")
        };
        for key in [
            keys::NODE,
            keys::ID_SPACE,
            keys::FRONTEND,
            keys::EPOCH,
            keys::SECRET,
        ] {
            let e = Bootstrap::parse(&without(key)).unwrap_err();
            assert_eq!(e, format!("{key} is missing"));
        }
        let bad = format!("{line} ebbrt.frontend=nowhere");
        assert!(Bootstrap::parse(&bad).unwrap_err().contains("malformed"));
        let short = format!("{line} ebbrt.secret=abcd");
        assert!(Bootstrap::parse(&short).unwrap_err().contains("64 hex"));
    }

    #[test]
    fn secrets() {
        let a = Secret::from_bytes([7; 32]);
        let b = Secret::from_bytes([8; 32]);
        assert_eq!(Secret::from_hex(&a.to_hex()).unwrap(), a);
        assert!(a.matches(a.as_bytes()));
        assert!(!a.matches(b.as_bytes()));
        assert!(!a.matches(&a.as_bytes()[..31]));
        assert!(Secret::from_hex(&"g".repeat(64)).is_none());
        assert!(Secret::from_hex(&"é".repeat(32)).is_none());
        assert_eq!(format!("{a:?}"), "Secret(..)");
    }
}
