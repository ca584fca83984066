//! The handshake that opens a connection, and its proof of the secret.
//!
//! ```text
//! connector                                   acceptor
//!   Hello{node, proto, build, nonce_c}   ──▶
//!                                        ◀──  Challenge{node, proto, build, nonce_a,
//!                                                       mac_a = HMAC(secret, "acceptor" ‖ transcript)}
//!   checks mac_a
//!   Proof{mac_c = HMAC(secret, "connector" ‖ transcript)} ──▶
//!                                             checks mac_c
//!                                        ◀──  Welcome{accepted}
//! transcript = nonce_c ‖ nonce_a ‖ node_c ‖ node_a ‖ proto (little-endian)
//! ```
//!
//! Each side proves that it holds the allocation's secret over nonces that
//! the other chose, so a recorded handshake is worth nothing on a new
//! connection, and neither MAC can stand in for the other (the labels
//! differ). A side that fails to prove it gets an `Unauthorized` error
//! frame and the connection is closed. The secret itself never travels.
//! `Welcome{accepted: false}` resolves a simultaneous connect: the
//! connector must use the connection the acceptor opened instead.
//!
//! Nonces must never repeat; they need not be secret. They are an HMAC
//! under the secret of the node id, a per-process counter, the clock and
//! an address of this process, so they differ between connections, runs
//! and nodes.

use core::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::NodeId;
use crate::message;

/// The handshake protocol version.
pub const PROTO_VERSION: u16 = 1;

/// A nonce or a MAC.
pub type Bytes32 = [u8; 32];

/// The connector's greeting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The connector's node.
    pub node: NodeId,
    /// [`PROTO_VERSION`] of the connector.
    pub proto: u16,
    /// The connector's build (informational).
    pub build_id: u64,
    /// The connector's nonce.
    pub nonce: Bytes32,
}
message!(Hello, "ebbrt_messenger::Hello", 1);

/// The acceptor's answer: its identity and its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The acceptor's node.
    pub node: NodeId,
    /// [`PROTO_VERSION`] of the acceptor.
    pub proto: u16,
    /// The acceptor's build (informational).
    pub build_id: u64,
    /// The acceptor's nonce.
    pub nonce: Bytes32,
    /// The acceptor's MAC over the transcript.
    pub mac: Bytes32,
}
message!(Challenge, "ebbrt_messenger::Challenge", 1);

/// The connector's proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The connector's MAC over the transcript.
    pub mac: Bytes32,
}
message!(Proof, "ebbrt_messenger::Proof", 1);

/// The acceptor's verdict after a valid proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// `false`: a connection the acceptor opened to the connector wins
    /// (simultaneous connect); this one is closed.
    pub accepted: bool,
}
message!(Welcome, "ebbrt_messenger::Welcome", 1);

/// Which side a MAC proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The side that opened the connection.
    Connector,
    /// The side that accepted it.
    Acceptor,
}

/// What both MACs cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The connector's nonce.
    pub nonce_c: Bytes32,
    /// The acceptor's nonce.
    pub nonce_a: Bytes32,
    /// The connector's node.
    pub node_c: NodeId,
    /// The acceptor's node.
    pub node_a: NodeId,
    /// The protocol version.
    pub proto: u16,
}

fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length")
}

impl Transcript {
    fn mac(&self, secret: &[u8], side: Side) -> Hmac<Sha256> {
        let mut m = keyed(secret);
        m.update(match side {
            Side::Connector => b"ebbrt-messenger/connector",
            Side::Acceptor => b"ebbrt-messenger/acceptor\0",
        });
        m.update(&self.nonce_c);
        m.update(&self.nonce_a);
        m.update(&u64::from(self.node_c.0).to_le_bytes());
        m.update(&u64::from(self.node_a.0).to_le_bytes());
        m.update(&self.proto.to_le_bytes());
        m
    }

    /// `side`'s proof over this transcript.
    pub fn prove(&self, secret: &[u8], side: Side) -> Bytes32 {
        self.mac(secret, side).finalize().into_bytes().into()
    }

    /// Whether `mac` is `side`'s proof (compared in constant time).
    pub fn verify(&self, secret: &[u8], side: Side, mac: &Bytes32) -> bool {
        self.mac(secret, side).verify_slice(mac).is_ok()
    }
}

static NONCES: AtomicU64 = AtomicU64::new(0);

/// A fresh nonce for `node` (see the module documentation).
pub fn nonce(secret: &[u8], node: NodeId) -> Bytes32 {
    let mut m = keyed(secret);
    m.update(b"ebbrt-messenger/nonce");
    m.update(&u64::from(node.0).to_le_bytes());
    m.update(&NONCES.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    m.update(&ebbrt_core::time::Instant::now().as_nanos().to_le_bytes());
    m.update(&(&NONCES as *const AtomicU64 as usize).to_le_bytes());
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Transcript {
        Transcript {
            nonce_c: [1; 32],
            nonce_a: [2; 32],
            node_c: NodeId(7),
            node_a: NodeId(9),
            proto: PROTO_VERSION,
        }
    }

    #[test]
    fn a_proof_verifies_only_with_the_same_secret_side_and_transcript() {
        let mac = t().prove(b"secret", Side::Connector);
        assert!(t().verify(b"secret", Side::Connector, &mac));
        assert!(!t().verify(b"other", Side::Connector, &mac));
        assert!(!t().verify(b"secret", Side::Acceptor, &mac));
        let mut other = t();
        other.nonce_a[0] ^= 1;
        assert!(!other.verify(b"secret", Side::Connector, &mac));
        let mut other = t();
        other.node_c = NodeId(8);
        assert!(!other.verify(b"secret", Side::Connector, &mac));
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        let mut m = keyed(b"Jefe");
        m.update(b"what do ya want for nothing?");
        let out: Bytes32 = m.finalize().into_bytes().into();
        let hex: alloc::string::String = out.iter().map(|b| alloc::format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
