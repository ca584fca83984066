//! The meta commands' requests (`mg`, `ms`, `md`, `ma`, `mn`, `me`): the
//! key (base64 with `b`) and the flags, each a letter with an optional
//! token glued to it (`T30`, `Oopaque`). The line framing is
//! [`crate::ascii`]'s.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::ascii::{self, Command, Limits, Step};

/// Which meta command.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MetaVerb {
    /// `mg`: get.
    Get,
    /// `ms`: set.
    Set,
    /// `md`: delete.
    Delete,
    /// `ma`: arithmetic.
    Arith,
    /// `me`: debug.
    Debug,
}

/// A meta request's flags, in the order given (return flags come back in
/// that order).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Flags<'a> {
    /// Each flag's letter and token (empty when it has none).
    pub list: Vec<(u8, &'a [u8])>,
}

impl<'a> Flags<'a> {
    /// Whether flag `f` was given.
    pub fn has(&self, f: u8) -> bool {
        self.list.iter().any(|&(c, _)| c == f)
    }
    /// The token of flag `f`, if it was given.
    pub fn token(&self, f: u8) -> Option<&'a [u8]> {
        self.list.iter().find(|&&(c, _)| c == f).map(|&(_, t)| t)
    }
    /// The signed numeric token of flag `f` (a TTL), if it was given
    /// (checked at parse time, so a present flag always has one).
    pub fn number(&self, f: u8) -> Option<i64> {
        self.token(f).and_then(ascii::parse_i32)
    }
    /// The unsigned numeric token of flag `f` (a CAS, flags, a delta).
    pub fn unsigned(&self, f: u8) -> Option<u64> {
        self.token(f).and_then(ascii::parse_u64)
    }
}

/// A parsed meta request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaCommand<'a> {
    /// `mn`: answer `MN`.
    Noop,
    /// A request about a key.
    Keyed {
        /// Which command.
        verb: MetaVerb,
        /// The key (decoded when `b` was given).
        key: Cow<'a, [u8]>,
        /// The flags.
        flags: Flags<'a>,
        /// `ms`: the data block, without its `\r\n`.
        data: &'a [u8],
    },
    /// `ms` with a value over the item size limit: answered
    /// `SERVER_ERROR object too large for cache`, its data swallowed.
    TooLarge,
}

/// The flags each command accepts; those in `TOKENS` take a token.
fn allowed(verb: MetaVerb) -> &'static [u8] {
    match verb {
        MetaVerb::Get => b"bcfhklOqstuvENRT",
        MetaVerb::Set => b"bcCEFIkOqsTMN",
        MetaVerb::Delete => b"bCEIkOqTx",
        MetaVerb::Arith => b"bCENJDTMOqtcvk",
        MetaVerb::Debug => b"b",
    }
}

/// Flags whose token is a number: TTLs may be negative, the others not.
const SIGNED: &[u8] = b"NRT";
const UNSIGNED: &[u8] = b"CEFJD";
/// The longest opaque token.
pub const OPAQUE_MAX: usize = 32;

fn fail<'a>(msg: &'static str, len: usize, swallow: usize) -> Step<'a> {
    Step::Ready {
        cmd: Command::Error {
            msg,
            noreply: false,
        },
        len,
        swallow,
    }
}

/// Parses a meta request whose line (`len` bytes with its newline) is
/// split into `toks`.
pub fn parse<'a>(input: &'a [u8], len: usize, toks: &[&'a [u8]], limits: &Limits) -> Step<'a> {
    let verb = match toks[0] {
        b"mn" => {
            return Step::Ready {
                cmd: Command::Meta(MetaCommand::Noop),
                len,
                swallow: 0,
            };
        }
        b"mg" => MetaVerb::Get,
        b"ms" => MetaVerb::Set,
        b"md" => MetaVerb::Delete,
        b"ma" => MetaVerb::Arith,
        _ => MetaVerb::Debug,
    };
    let Some(&raw_key) = toks.get(1) else {
        return fail("ERROR", len, 0);
    };
    let mut rest = &toks[2..];
    let mut datalen = None;
    if verb == MetaVerb::Set {
        let Some(n) = rest.first().and_then(|t| ascii::parse_i32(t)) else {
            return fail("CLIENT_ERROR bad command line format", len, 0);
        };
        let Ok(n) = usize::try_from(n) else {
            return fail("CLIENT_ERROR bad command line format", len, 0);
        };
        datalen = Some(n);
        rest = &rest[1..];
    }
    // Once `ms` has its length, memcached swallows the data of a request
    // it refuses.
    let swallow = datalen.map_or(0, |n| n + 2);
    let mut flags = Flags::default();
    for t in rest {
        let (c, tok) = (t[0], &t[1..]);
        if !allowed(verb).contains(&c) {
            return fail("CLIENT_ERROR invalid flag", len, swallow);
        }
        if flags.has(c) {
            return fail("CLIENT_ERROR duplicate flag", len, swallow);
        }
        let bad_number = (SIGNED.contains(&c) && ascii::parse_i32(tok).is_none())
            || (UNSIGNED.contains(&c) && ascii::parse_u64(tok).is_none());
        if bad_number {
            // memcached words this differently per command.
            let msg = match (verb, c) {
                (MetaVerb::Arith | MetaVerb::Delete, _) => "CLIENT_ERROR invalid or duplicate flag",
                (MetaVerb::Set, b'F') => "CLIENT_ERROR bad command line format",
                _ => "CLIENT_ERROR bad token in command line format",
            };
            return fail(msg, len, swallow);
        }
        if c == b'O' && tok.len() > OPAQUE_MAX {
            return fail("CLIENT_ERROR opaque token too long", len, swallow);
        }
        if c == b'M' {
            let ok = match verb {
                MetaVerb::Set => matches!(
                    tok,
                    b"E" | b"e" | b"A" | b"a" | b"P" | b"p" | b"R" | b"r" | b"S" | b"s"
                ),
                _ => matches!(tok, b"I" | b"i" | b"+" | b"D" | b"d" | b"-"),
            };
            if !ok {
                let msg = if verb == MetaVerb::Set {
                    "CLIENT_ERROR invalid mode for ms M token"
                } else {
                    "CLIENT_ERROR invalid mode for ma M token"
                };
                return fail(msg, len, swallow);
            }
        }
        flags.list.push((c, tok));
    }
    let key: Cow<'a, [u8]> = if flags.has(b'b') {
        match base64_decode(raw_key) {
            Some(k) => Cow::Owned(k),
            None => return fail("CLIENT_ERROR error decoding key", len, swallow),
        }
    } else {
        Cow::Borrowed(raw_key)
    };
    if key.is_empty() || key.len() > ascii::KEY_MAX || raw_key.len() > ascii::KEY_MAX * 2 {
        return fail("CLIENT_ERROR bad command line format", len, swallow);
    }
    let mut data: &[u8] = &[];
    let mut total = len;
    if let Some(n) = datalen {
        if n > limits.item_size_max {
            return Step::Ready {
                cmd: Command::Meta(MetaCommand::TooLarge),
                len,
                swallow: n + 2,
            };
        }
        let Some(block) = input.get(len..len + n + 2) else {
            return Step::Incomplete;
        };
        if !block.ends_with(b"\r\n") {
            return fail("CLIENT_ERROR bad data chunk", len + n + 2, 0);
        }
        data = &block[..n];
        total = len + n + 2;
    }
    Step::Ready {
        cmd: Command::Meta(MetaCommand::Keyed {
            verb,
            key,
            flags,
            data,
        }),
        len: total,
        swallow: 0,
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as the meta protocol's `b` flag uses.
pub fn base64_encode(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// Decodes standard padded base64; `None` if it is not.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (qi, q) in text.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && qi + 1 != quads) {
            return None;
        }
        let mut n: u32 = 0;
        for &c in &q[..4 - pad] {
            let v = B64.iter().position(|&x| x == c)? as u32;
            n = (n << 6) | v;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"\x00\xff\x10binary",
        ] {
            let mut enc = Vec::new();
            base64_encode(data, &mut enc);
            if data.is_empty() {
                assert!(enc.is_empty());
            } else {
                assert_eq!(base64_decode(&enc).as_deref(), Some(data));
            }
        }
        assert_eq!(base64_decode(b"Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(base64_decode(b"Zm8="), Some(b"fo".to_vec()));
        assert_eq!(base64_decode(b"Zm9"), None);
        assert_eq!(base64_decode(b"Zm=v"), None);
        assert_eq!(base64_decode(b"Z!9v"), None);
    }
}
