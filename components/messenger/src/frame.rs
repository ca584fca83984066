//! The frame: a fixed 36-byte little-endian header, a postcard payload and
//! raw bulk bytes.
//!
//! ```text
//! offset size field
//!      0    4 magic "EBRT"
//!      4    1 version (VERSION)
//!      5    1 kind (FrameKind)
//!      6    2 reserved, zero
//!      8    4 destination EbbId
//!     12    8 type tag (tag::type_tag of "name/vN")
//!     20    8 correlation id (0: none)
//!     28    4 payload length
//!     32    4 bulk length
//!     36      payload (postcard), then bulk bytes
//! ```
//!
//! Every field has a fixed width and byte order, the reserved bytes are
//! written as zero and checked, so a frame means the same on every node.

use alloc::vec::Vec;
use core::fmt;

use ebbrt_core::EbbId;
use serde::{Deserialize, Serialize};

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"EBRT";
/// The version of the frame format this crate speaks.
pub const VERSION: u8 = 1;
/// The size of the header.
pub const HEADER_LEN: usize = 36;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A one-way message: no reply is expected.
    Message = 0,
    /// A request: the receiver answers with a `Reply` or an `Error` with
    /// the same correlation id.
    Request = 1,
    /// The reply to the request with the same correlation id.
    Reply = 2,
    /// An error: the answer to the request with the same correlation id,
    /// or (correlation id 0) a complaint about the connection.
    Error = 3,
}

impl FrameKind {
    /// The kind with wire value `v`.
    pub const fn from_u8(v: u8) -> Option<FrameKind> {
        match v {
            0 => Some(FrameKind::Message),
            1 => Some(FrameKind::Request),
            2 => Some(FrameKind::Reply),
            3 => Some(FrameKind::Error),
            _ => None,
        }
    }
}

/// A frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the frame is.
    pub kind: FrameKind,
    /// The Ebb the frame is for (on the receiving node).
    pub dst: EbbId,
    /// The payload's type tag.
    pub tag: u64,
    /// Matches a reply or error to its request; 0 for none.
    pub corr: u64,
    /// Length of the postcard payload.
    pub payload_len: u32,
    /// Length of the bulk bytes after the payload.
    pub bulk_len: u32,
}

impl Header {
    /// The header as it goes on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.kind as u8;
        // b[6..8]: reserved, zero.
        b[8..12].copy_from_slice(&self.dst.raw().to_le_bytes());
        b[12..20].copy_from_slice(&self.tag.to_le_bytes());
        b[20..28].copy_from_slice(&self.corr.to_le_bytes());
        b[28..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..36].copy_from_slice(&self.bulk_len.to_le_bytes());
        b
    }

    /// Parses a header (limits are the decoder's business).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, ErrorKind> {
        if b[0..4] != MAGIC {
            return Err(ErrorKind::Malformed);
        }
        if b[4] != VERSION {
            return Err(ErrorKind::BadVersion);
        }
        let kind = FrameKind::from_u8(b[5]).ok_or(ErrorKind::Malformed)?;
        if b[6] != 0 || b[7] != 0 {
            return Err(ErrorKind::Malformed);
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        let dst = u32_at(8);
        // An id past the translation table cannot name an Ebb anywhere.
        if dst as usize >= ebbrt_core::ebb::TABLE_SIZE {
            return Err(ErrorKind::Malformed);
        }
        Ok(Header {
            kind,
            dst: EbbId::new(dst),
            tag: u64_at(12),
            corr: u64_at(20),
            payload_len: u32_at(28),
            bulk_len: u32_at(32),
        })
    }
}

/// Why a frame was refused, with a stable code on the wire (the payload of
/// an error frame, [`ErrorBody`]). Codes are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No handler for the frame's type tag at its destination, or a
    /// control frame with an unknown tag.
    UnknownTag,
    /// A payload or bulk length over the receiver's limit.
    TooLarge,
    /// A bad magic, kind or reserved field, or a payload that does not
    /// decode as its tag's type.
    Malformed,
    /// The stream ended inside a frame, or a payload ended early.
    Truncated,
    /// The peer did not prove it holds the allocation's secret.
    Unauthorized,
    /// No Ebb at the frame's destination handles messages.
    NoSuchEbb,
    /// The handler did not answer within the receiver's time limit.
    Deadline,
    /// The frame's version is not one the receiver speaks.
    BadVersion,
    /// The handler failed (its own error).
    HandlerFailed,
    /// A code this build does not know (a newer peer's).
    Other(u16),
}

impl ErrorKind {
    /// Every kind this build knows, for counters and tests.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::UnknownTag,
        ErrorKind::TooLarge,
        ErrorKind::Malformed,
        ErrorKind::Truncated,
        ErrorKind::Unauthorized,
        ErrorKind::NoSuchEbb,
        ErrorKind::Deadline,
        ErrorKind::BadVersion,
        ErrorKind::HandlerFailed,
    ];

    /// The stable wire code.
    pub const fn code(self) -> u16 {
        match self {
            ErrorKind::UnknownTag => 1,
            ErrorKind::TooLarge => 2,
            ErrorKind::Malformed => 3,
            ErrorKind::Truncated => 4,
            ErrorKind::Unauthorized => 5,
            ErrorKind::NoSuchEbb => 6,
            ErrorKind::Deadline => 7,
            ErrorKind::BadVersion => 8,
            ErrorKind::HandlerFailed => 9,
            ErrorKind::Other(c) => c,
        }
    }

    /// The kind with wire code `code`.
    pub const fn from_code(code: u16) -> ErrorKind {
        match code {
            1 => ErrorKind::UnknownTag,
            2 => ErrorKind::TooLarge,
            3 => ErrorKind::Malformed,
            4 => ErrorKind::Truncated,
            5 => ErrorKind::Unauthorized,
            6 => ErrorKind::NoSuchEbb,
            7 => ErrorKind::Deadline,
            8 => ErrorKind::BadVersion,
            9 => ErrorKind::HandlerFailed,
            c => ErrorKind::Other(c),
        }
    }

    /// The index of a known kind in [`Self::ALL`] (counters).
    pub(crate) fn index(self) -> Option<usize> {
        ErrorKind::ALL.iter().position(|k| *k == self)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnknownTag => f.write_str("unknown type tag"),
            ErrorKind::TooLarge => f.write_str("frame too large"),
            ErrorKind::Malformed => f.write_str("malformed frame"),
            ErrorKind::Truncated => f.write_str("truncated frame"),
            ErrorKind::Unauthorized => f.write_str("unauthorized"),
            ErrorKind::NoSuchEbb => f.write_str("no such Ebb"),
            ErrorKind::Deadline => f.write_str("deadline elapsed"),
            ErrorKind::BadVersion => f.write_str("unsupported frame version"),
            ErrorKind::HandlerFailed => f.write_str("handler failed"),
            ErrorKind::Other(c) => write!(f, "error code {c}"),
        }
    }
}

/// The payload of an error frame (postcard, tag [`ERROR_TAG`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// [`ErrorKind::code`].
    pub code: u16,
    /// The type tag of the frame that caused it (0 if unknown).
    pub tag: u64,
}

/// The type tag of an error frame's payload.
pub const ERROR_TAG: u64 = crate::tag::type_tag("ebbrt_messenger::ErrorBody", 1);

/// The header and payload of a frame as one buffer (the bulk bytes, if
/// any, follow separately so that they are never copied).
///
/// # Panics
/// If the payload or the bulk length does not fit in 32 bits.
pub fn encode_head(
    kind: FrameKind,
    dst: EbbId,
    tag: u64,
    corr: u64,
    payload: &[u8],
    bulk_len: usize,
) -> Vec<u8> {
    let h = Header {
        kind,
        dst,
        tag,
        corr,
        payload_len: u32::try_from(payload.len()).expect("payload over 4 GiB"),
        bulk_len: u32::try_from(bulk_len).expect("bulk over 4 GiB"),
    };
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&h.encode());
    v.extend_from_slice(payload);
    v
}

/// An error frame answering `corr` (0: the connection) about `tag`.
pub fn encode_error(dst: EbbId, corr: u64, kind: ErrorKind, tag: u64) -> Vec<u8> {
    let body = ErrorBody {
        code: kind.code(),
        tag,
    };
    let payload = postcard::to_allocvec(&body).expect("an ErrorBody always encodes");
    encode_head(FrameKind::Error, dst, ERROR_TAG, corr, &payload, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_is_little_endian() {
        let h = Header {
            kind: FrameKind::Request,
            dst: EbbId::new(0x0a0b),
            tag: 0x1122_3344_5566_7788,
            corr: 9,
            payload_len: 5,
            bulk_len: 0x100,
        };
        let b = h.encode();
        assert_eq!(&b[0..8], b"EBRT\x01\x01\x00\x00");
        assert_eq!(&b[8..12], &[0x0b, 0x0a, 0, 0]);
        assert_eq!(b[12], 0x88);
        assert_eq!(&b[32..36], &[0, 1, 0, 0]);
        assert_eq!(Header::parse(&b), Ok(h));
    }

    #[test]
    fn bad_headers_are_refused_by_kind() {
        let h = Header {
            kind: FrameKind::Message,
            dst: EbbId::new(1),
            tag: 1,
            corr: 0,
            payload_len: 0,
            bulk_len: 0,
        }
        .encode();
        let mut b = h;
        b[0] = b'X';
        assert_eq!(Header::parse(&b), Err(ErrorKind::Malformed));
        let mut b = h;
        b[4] = 2;
        assert_eq!(Header::parse(&b), Err(ErrorKind::BadVersion));
        let mut b = h;
        b[5] = 4;
        assert_eq!(Header::parse(&b), Err(ErrorKind::Malformed));
        let mut b = h;
        b[9] = 0x10; // destination 4096: past the table
        assert_eq!(Header::parse(&b), Err(ErrorKind::Malformed));
        let mut b = h;
        b[7] = 1;
        assert_eq!(Header::parse(&b), Err(ErrorKind::Malformed));
    }

    #[test]
    fn error_codes_are_stable_and_round_trip() {
        let codes: Vec<u16> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.code()), k);
        }
        assert_eq!(ErrorKind::from_code(77), ErrorKind::Other(77));
        assert_eq!(ErrorKind::Other(77).code(), 77);
    }
}
