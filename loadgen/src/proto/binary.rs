//! The binary protocol: 24-byte headers, replies matched by `opaque`.

use super::{Kind, MAX_VALUE, ProtoError, Reply};

const P: &str = "binary";
const REQUEST: u8 = 0x80;
const RESPONSE: u8 = 0x81;
const SET: u8 = 0x01;
const GETK: u8 = 0x0c;
const HEADER: usize = 24;

const STATUS_OK: u16 = 0x0000;
const STATUS_NOT_FOUND: u16 = 0x0001;
const STATUS_EXISTS: u16 = 0x0002;
const STATUS_NOT_STORED: u16 = 0x0005;

fn header(out: &mut Vec<u8>, opcode: u8, key: usize, extras: u8, body: usize, opaque: u32) {
    out.push(REQUEST);
    out.push(opcode);
    out.extend_from_slice(&(key as u16).to_be_bytes());
    out.push(extras);
    out.push(0); // data type
    out.extend_from_slice(&0u16.to_be_bytes()); // vbucket
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&opaque.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes()); // cas
}

pub(super) fn encode_get(key: &[u8], opaque: u32, out: &mut Vec<u8>) {
    header(out, GETK, key.len(), 0, key.len(), opaque);
    out.extend_from_slice(key);
}

pub(super) fn encode_set(key: &[u8], flags: u32, value: &[u8], opaque: u32, out: &mut Vec<u8>) {
    header(out, SET, key.len(), 8, 8 + key.len() + value.len(), opaque);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // exptime
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub(super) fn decode(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ProtoError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let bad = |what: String| ProtoError { protocol: P, what };
    if buf[0] != RESPONSE {
        return Err(bad(format!("magic {:#04x}", buf[0])));
    }
    let (opcode, key_len, extras) = (buf[1], usize::from(be16(&buf[2..])), usize::from(buf[4]));
    let (status, body) = (be16(&buf[6..]), be32(&buf[8..]) as usize);
    let opaque = be32(&buf[12..]);
    if body > MAX_VALUE || key_len + extras > body {
        return Err(bad(format!(
            "body of {body} bytes with key {key_len} and extras {extras}"
        )));
    }
    if buf.len() < HEADER + body {
        return Ok(None);
    }
    let body_bytes = &buf[HEADER..HEADER + body];
    let key = &body_bytes[extras..extras + key_len];
    let value = &body_bytes[extras + key_len..];
    let base = Reply {
        opaque: Some(opaque),
        ..Reply::of(Kind::Error)
    };
    let reply = match (opcode, status) {
        (GETK, STATUS_OK) => {
            if extras != 4 {
                return Err(bad(format!("GETK hit with {extras} bytes of extras")));
            }
            Reply {
                kind: Kind::Hit,
                key: Some(key),
                flags: be32(body_bytes),
                data: value,
                ..base
            }
        }
        (GETK, STATUS_NOT_FOUND) => Reply {
            kind: Kind::Miss,
            key: (key_len > 0).then_some(key),
            ..base
        },
        (SET, STATUS_OK) => Reply {
            kind: Kind::Stored,
            ..base
        },
        (SET, STATUS_EXISTS | STATUS_NOT_FOUND | STATUS_NOT_STORED) => Reply {
            kind: Kind::NotStored,
            ..base
        },
        (GETK | SET, _) => Reply {
            message: value,
            ..base
        },
        _ => {
            return Err(bad(format!(
                "reply to opcode {opcode:#04x}, which was never sent"
            )));
        }
    };
    Ok(Some((reply, HEADER + body)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::check_every_split;
    use super::super::{Protocol, decode, encode_get, encode_set};
    use super::*;

    fn reply(
        opcode: u8,
        status: u16,
        opaque: u32,
        extras: &[u8],
        key: &[u8],
        value: &[u8],
    ) -> Vec<u8> {
        let mut v = vec![RESPONSE, opcode];
        v.extend_from_slice(&(key.len() as u16).to_be_bytes());
        v.push(extras.len() as u8);
        v.push(0);
        v.extend_from_slice(&status.to_be_bytes());
        v.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
        v.extend_from_slice(&opaque.to_be_bytes());
        v.extend_from_slice(&1u64.to_be_bytes());
        v.extend_from_slice(extras);
        v.extend_from_slice(key);
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn encodes() {
        let mut out = Vec::new();
        encode_get(Protocol::Binary, b"key", 0xdead_beef, &mut out);
        assert_eq!(
            out,
            [
                0x80, 0x0c, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0,
                0, 0, b'k', b'e', b'y'
            ]
        );
        out.clear();
        encode_set(Protocol::Binary, b"k", 0x0102_0304, b"vv", 7, &mut out);
        assert_eq!(&out[..2], &[0x80, 0x01]);
        assert_eq!(be16(&out[2..]), 1);
        assert_eq!(out[4], 8);
        assert_eq!(be32(&out[8..]), 8 + 1 + 2);
        assert_eq!(be32(&out[12..]), 7);
        assert_eq!(&out[24..], &[1, 2, 3, 4, 0, 0, 0, 0, b'k', b'v', b'v']);
    }

    #[test]
    fn decodes_every_reply_split_anywhere() {
        let mut stream = reply(GETK, STATUS_OK, 1, &42u32.to_be_bytes(), b"k01", b"hello");
        stream.extend(reply(GETK, STATUS_NOT_FOUND, 2, &[], b"k02", b"Not found"));
        stream.extend(reply(SET, STATUS_OK, 3, &[], b"", b""));
        stream.extend(reply(SET, STATUS_NOT_STORED, 4, &[], b"", b"Not stored"));
        stream.extend(reply(SET, 0x0003, 5, &[], b"", b"Too large."));
        stream.extend(reply(GETK, STATUS_OK, 6, &7u32.to_be_bytes(), b"k3", b""));
        let want = [
            Reply {
                opaque: Some(1),
                key: Some(b"k01"),
                flags: 42,
                data: b"hello",
                ..Reply::of(Kind::Hit)
            },
            Reply {
                opaque: Some(2),
                key: Some(b"k02"),
                ..Reply::of(Kind::Miss)
            },
            Reply {
                opaque: Some(3),
                ..Reply::of(Kind::Stored)
            },
            Reply {
                opaque: Some(4),
                ..Reply::of(Kind::NotStored)
            },
            Reply {
                opaque: Some(5),
                message: b"Too large.",
                ..Reply::of(Kind::Error)
            },
            Reply {
                opaque: Some(6),
                key: Some(b"k3"),
                flags: 7,
                data: b"",
                ..Reply::of(Kind::Hit)
            },
        ];
        check_every_split(Protocol::Binary, &stream, &want);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut wrong_magic = reply(SET, 0, 1, &[], b"", b"");
        wrong_magic[0] = 0x80;
        let unsent_opcode = reply(0x0a, 0, 1, &[], b"", b"");
        let bad_extras = reply(GETK, 0, 1, &[1, 2], b"k", b"v");
        let mut key_past_body = reply(SET, 0, 1, &[], b"", b"");
        key_past_body[3] = 9;
        for bad in [wrong_magic, unsent_opcode, bad_extras, key_past_body] {
            assert!(decode(Protocol::Binary, &bad).is_err(), "{bad:?}");
        }
    }
}
