//! The binary protocol's parser: a 24-byte header and a body of extras,
//! key and value. Incremental like [`crate::ascii`]: [`parse`] waits for a
//! whole packet, except that a value over the item size limit is refused
//! from its header alone (its body swallowed as it arrives).
//!
//! memcached's rules, followed here: an unknown opcode is answered
//! `UNKNOWN_COMMAND` and its body skipped; a packet whose lengths do not
//! fit its opcode is answered `EINVAL` and the connection closed; a
//! request magic other than 0x80 closes the connection.

/// The request magic.
pub const REQ_MAGIC: u8 = 0x80;
/// The response magic.
pub const RES_MAGIC: u8 = 0x81;
/// The header length.
pub const HEADER_LEN: usize = 24;

/// Opcodes memcached 1.6 answers.
#[allow(missing_docs)]
pub mod op {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// Response statuses.
#[allow(missing_docs)]
pub mod status {
    pub const SUCCESS: u16 = 0x00;
    pub const KEY_ENOENT: u16 = 0x01;
    pub const KEY_EEXISTS: u16 = 0x02;
    pub const E2BIG: u16 = 0x03;
    pub const EINVAL: u16 = 0x04;
    pub const NOT_STORED: u16 = 0x05;
    pub const DELTA_BADVAL: u16 = 0x06;
    pub const UNKNOWN_COMMAND: u16 = 0x81;
    pub const ENOMEM: u16 = 0x82;
}

/// A request header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The opcode.
    pub opcode: u8,
    /// Key length.
    pub keylen: u16,
    /// Extras length.
    pub extlen: u8,
    /// Data type (0).
    pub datatype: u8,
    /// vbucket id (ignored).
    pub vbucket: u16,
    /// Extras, key and value length.
    pub bodylen: u32,
    /// Echoed in every response.
    pub opaque: u32,
    /// CAS to compare, 0 for none.
    pub cas: u64,
}

impl Header {
    /// Reads a header from 24 bytes (the magic is checked by [`parse`]).
    pub fn read(b: &[u8; HEADER_LEN]) -> Header {
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            opcode: b[1],
            keylen: u16_at(2),
            extlen: b[4],
            datatype: b[5],
            vbucket: u16_at(6),
            bodylen: u32_at(8),
            opaque: u32_at(12),
            cas: (u64::from(u32_at(16)) << 32) | u64::from(u32_at(20)),
        }
    }
}

/// A whole request: its header and the parts of its body.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The header.
    pub header: Header,
    /// Extras.
    pub extras: &'a [u8],
    /// Key.
    pub key: &'a [u8],
    /// Value.
    pub value: &'a [u8],
}

/// What [`parse`] found at the front of the input.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Not a whole packet yet.
    Incomplete,
    /// A request to execute, `len` bytes long.
    Ready {
        /// The request.
        req: Request<'a>,
        /// Bytes it took.
        len: usize,
    },
    /// Answer `status` (echoing the header's opcode and opaque), take the
    /// header, then drop `swallow` more bytes; `close` afterwards when the
    /// packet was malformed.
    Refuse {
        /// The request's header.
        header: Header,
        /// The status to answer.
        status: u16,
        /// Bytes of body to drop after the header.
        swallow: usize,
        /// Close the connection after answering.
        close: bool,
    },
    /// Not a request (bad magic): close.
    Close,
}

/// Whether the lengths in `h` fit its opcode (memcached's checks).
fn well_formed(h: &Header) -> bool {
    let (k, e, b) = (h.keylen as u32, h.extlen as u32, h.bodylen);
    if k as usize > crate::ascii::KEY_MAX || k + e > b {
        return false;
    }
    match h.opcode {
        op::NOOP | op::QUIT | op::QUITQ | op::VERSION => k == 0 && e == 0 && b == 0,
        op::FLUSH | op::FLUSHQ => k == 0 && b == e && (e == 0 || e == 4),
        op::SET | op::SETQ | op::ADD | op::ADDQ | op::REPLACE | op::REPLACEQ => e == 8 && k > 0,
        op::APPEND | op::APPENDQ | op::PREPEND | op::PREPENDQ => e == 0 && k > 0,
        op::GET | op::GETQ | op::GETK | op::GETKQ | op::DELETE | op::DELETEQ => {
            e == 0 && k > 0 && b == k
        }
        op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => {
            e == 20 && k > 0 && b == k + 20
        }
        op::STAT => e == 0 && b == k,
        op::VERBOSITY => e == 4 && k == 0 && b == 4,
        op::TOUCH | op::GAT | op::GATQ | op::GATK | op::GATKQ => e == 4 && k > 0 && b == k + 4,
        _ => true,
    }
}

/// Whether memcached answers `opcode`.
pub fn known(opcode: u8) -> bool {
    matches!(opcode, 0x00..=0x1e | op::GATK | op::GATKQ)
}

/// Parses one packet from the front of `input`; `item_size_max` bounds
/// values.
pub fn parse(input: &[u8], item_size_max: usize) -> Step<'_> {
    let Some(first) = input.first() else {
        return Step::Incomplete;
    };
    if *first != REQ_MAGIC {
        return Step::Close;
    }
    let Some(head) = input.first_chunk::<HEADER_LEN>() else {
        return Step::Incomplete;
    };
    let header = Header::read(head);
    let body = header.bodylen as usize;
    if !known(header.opcode) {
        return Step::Refuse {
            header,
            status: status::UNKNOWN_COMMAND,
            swallow: body,
            close: false,
        };
    }
    if !well_formed(&header) {
        return Step::Refuse {
            header,
            status: status::EINVAL,
            swallow: 0,
            close: true,
        };
    }
    let vlen = body - header.keylen as usize - header.extlen as usize;
    if vlen > item_size_max {
        return Step::Refuse {
            header,
            status: status::E2BIG,
            swallow: body,
            close: false,
        };
    }
    let Some(body) = input.get(HEADER_LEN..HEADER_LEN + body) else {
        return Step::Incomplete;
    };
    let (extras, rest) = body.split_at(header.extlen as usize);
    let (key, value) = rest.split_at(header.keylen as usize);
    Step::Ready {
        req: Request {
            header,
            extras,
            key,
            value,
        },
        len: HEADER_LEN + body.len(),
    }
}

/// Appends a response header.
#[allow(clippy::too_many_arguments)]
pub fn write_header(
    out: &mut alloc::vec::Vec<u8>,
    opcode: u8,
    status: u16,
    keylen: usize,
    extlen: usize,
    bodylen: usize,
    opaque: u32,
    cas: u64,
) {
    out.push(RES_MAGIC);
    out.push(opcode);
    out.extend_from_slice(&(keylen as u16).to_be_bytes());
    out.push(extlen as u8);
    out.push(0);
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&(bodylen as u32).to_be_bytes());
    out.extend_from_slice(&opaque.to_be_bytes());
    out.extend_from_slice(&cas.to_be_bytes());
}
