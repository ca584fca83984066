//! The three memcached wire protocols, as far as a get/set load needs
//! them: an encoder for each request and a decoder for each reply.
//!
//! Decoders are incremental in the simplest way that is still linear: the
//! connection keeps unparsed bytes in a buffer, [`decode`] looks at its
//! front and either returns one whole reply with the bytes it used, or
//! `None` until more arrive. A value's length is known from its header,
//! so only header lines are ever looked at twice.

mod ascii;
mod binary;
mod meta;

/// A wire protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `get <key>` / `set <key> <flags> 0 <len>`; replies in order.
    Ascii,
    /// GETK / SET packets; replies matched by `opaque`.
    Binary,
    /// `mg <key> v f k O…` / `ms <key> <len> F… O…`; replies matched by `O`.
    Meta,
}

impl Protocol {
    /// Parses `ascii`, `binary` or `meta`.
    pub fn parse(s: &str) -> Result<Protocol, String> {
        match s {
            "ascii" => Ok(Protocol::Ascii),
            "binary" => Ok(Protocol::Binary),
            "meta" => Ok(Protocol::Meta),
            _ => Err(format!("protocol `{s}`: expected ascii, binary or meta")),
        }
    }

    /// The name `parse` takes.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ascii => "ascii",
            Protocol::Binary => "binary",
            Protocol::Meta => "meta",
        }
    }
}

/// What a reply says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A get found the key (`flags`, `data` and maybe `key` are set).
    Hit,
    /// A get did not.
    Miss,
    /// A set stored its value.
    Stored,
    /// A set was refused without an error (`NOT_STORED`, `EXISTS`, …).
    NotStored,
    /// An error reply (`ERROR`, `CLIENT_ERROR`, `SERVER_ERROR`, a binary
    /// error status); `message` says which.
    Error,
}

/// One decoded reply, borrowing from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// What it says.
    pub kind: Kind,
    /// The request's opaque, where the protocol echoes one.
    pub opaque: Option<u32>,
    /// The key, where the reply carries it.
    pub key: Option<&'a [u8]>,
    /// The item's flags (hits only).
    pub flags: u32,
    /// The value (hits only).
    pub data: &'a [u8],
    /// An error's text (or, for binary, its status in hex).
    pub message: &'a [u8],
}

impl<'a> Reply<'a> {
    fn of(kind: Kind) -> Reply<'a> {
        Reply {
            kind,
            opaque: None,
            key: None,
            flags: 0,
            data: &[],
            message: &[],
        }
    }
}

/// Bytes that are not a reply of the protocol: the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {protocol} reply: {what}")]
pub struct ProtoError {
    /// Which protocol.
    pub protocol: &'static str,
    /// What was wrong, with the offending bytes where short.
    pub what: String,
}

/// A longer header line than any reply has means garbage.
const MAX_LINE: usize = 4096;
/// A larger value than memcached can store means garbage.
const MAX_VALUE: usize = 64 << 20;

/// Appends a get of `key` to `out`.
pub fn encode_get(p: Protocol, key: &[u8], opaque: u32, out: &mut Vec<u8>) {
    match p {
        Protocol::Ascii => ascii::encode_get(key, out),
        Protocol::Binary => binary::encode_get(key, opaque, out),
        Protocol::Meta => meta::encode_get(key, opaque, out),
    }
}

/// Appends a set of `key` to `value` with `flags` (no expiry) to `out`.
pub fn encode_set(
    p: Protocol,
    key: &[u8],
    flags: u32,
    value: &[u8],
    opaque: u32,
    out: &mut Vec<u8>,
) {
    match p {
        Protocol::Ascii => ascii::encode_set(key, flags, value, out),
        Protocol::Binary => binary::encode_set(key, flags, value, opaque, out),
        Protocol::Meta => meta::encode_set(key, flags, value, opaque, out),
    }
}

/// Decodes the reply at the front of `buf`: `Ok(None)` until it is whole,
/// then the reply and how many bytes it took.
pub fn decode(p: Protocol, buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ProtoError> {
    match p {
        Protocol::Ascii => ascii::decode(buf),
        Protocol::Binary => binary::decode(buf),
        Protocol::Meta => meta::decode(buf),
    }
}

/// The header line at the front of `buf` (without `\r\n`) and the length
/// with it, or `None` if it has not all arrived.
fn line<'a>(
    buf: &'a [u8],
    protocol: &'static str,
) -> Result<Option<(&'a [u8], usize)>, ProtoError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((&buf[..i], i + 2))),
        None if buf.len() > MAX_LINE => Err(ProtoError {
            protocol,
            what: format!("no line end in {MAX_LINE} bytes"),
        }),
        None => Ok(None),
    }
}

fn parse_num<T: std::str::FromStr>(tok: &[u8]) -> Option<T> {
    std::str::from_utf8(tok).ok()?.parse().ok()
}

fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned()
}

/// The error lines the text protocols share.
fn text_error(line: &[u8]) -> Option<Reply<'_>> {
    let is = |p: &[u8]| line == p || (line.starts_with(p) && line.get(p.len()) == Some(&b' '));
    (is(b"ERROR") || is(b"CLIENT_ERROR") || is(b"SERVER_ERROR")).then(|| Reply {
        message: line,
        ..Reply::of(Kind::Error)
    })
}

/// A value block of `len` bytes plus `\r\n` at the front of `rest`.
fn data_block<'a>(
    rest: &'a [u8],
    len: usize,
    protocol: &'static str,
) -> Result<Option<&'a [u8]>, ProtoError> {
    if len > MAX_VALUE {
        return Err(ProtoError {
            protocol,
            what: format!("value of {len} bytes"),
        });
    }
    if rest.len() < len + 2 {
        return Ok(None);
    }
    if &rest[len..len + 2] != b"\r\n" {
        return Err(ProtoError {
            protocol,
            what: "value not followed by \\r\\n".into(),
        });
    }
    Ok(Some(&rest[..len]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes everything in `stream` fed one byte at a time, checking
    /// that no prefix is an error and that what comes out is what decoding
    /// the whole stream at once gives.
    pub(crate) fn check_every_split(p: Protocol, stream: &[u8], want: &[Reply<'_>]) {
        let mut whole = Vec::new();
        let mut at = 0;
        while let Some((r, used)) = decode(p, &stream[at..]).unwrap() {
            whole.push(r);
            at += used;
        }
        assert_eq!(at, stream.len(), "{} left over", stream.len() - at);
        assert_eq!(whole, want);
        for cut in 0..=stream.len() {
            // Whatever split the kernel makes: first `cut` bytes, then the rest.
            let mut got = Vec::new();
            let mut start = 0;
            for end in [cut, stream.len()] {
                while let Some((r, used)) =
                    decode(p, &stream[start..end]).unwrap_or_else(|e| panic!("cut {cut}: {e}"))
                {
                    got.push(r);
                    start += used;
                }
            }
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(start, stream.len());
        }
        // And byte by byte.
        let mut got = Vec::new();
        let mut start = 0;
        for end in 0..=stream.len() {
            while let Some((r, used)) = decode(p, &stream[start..end]).unwrap() {
                got.push(r);
                start += used;
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn protocol_names_round_trip() {
        for p in [Protocol::Ascii, Protocol::Binary, Protocol::Meta] {
            assert_eq!(Protocol::parse(p.name()), Ok(p));
        }
        assert!(Protocol::parse("udp").is_err());
    }

    #[test]
    fn runaway_lines_and_values_are_errors() {
        let long = vec![b'a'; MAX_LINE + 1];
        assert!(decode(Protocol::Ascii, &long).is_err());
        assert!(decode(Protocol::Meta, &long).is_err());
        assert!(decode(Protocol::Ascii, b"VALUE k 0 99999999999\r\n").is_err());
    }
}
