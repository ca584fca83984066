//! The classic text protocol: replies come back in request order.

use super::{Kind, ProtoError, Reply, data_block, line, parse_num, shown, text_error};

const P: &str = "ascii";

pub(super) fn encode_get(key: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"get ");
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn encode_set(key: &[u8], flags: u32, value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"set ");
    out.extend_from_slice(key);
    out.extend_from_slice(format!(" {flags} 0 {}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn decode(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ProtoError> {
    let Some((head, used)) = line(buf, P)? else {
        return Ok(None);
    };
    let bad = |what: &str| ProtoError {
        protocol: P,
        what: format!("{what}: `{}`", shown(head)),
    };
    let simple = |kind| Ok(Some((Reply::of(kind), used)));
    match head {
        b"END" => return simple(Kind::Miss),
        b"STORED" => return simple(Kind::Stored),
        b"NOT_STORED" | b"EXISTS" | b"NOT_FOUND" => return simple(Kind::NotStored),
        _ => {}
    }
    if let Some(r) = text_error(head) {
        return Ok(Some((r, used)));
    }
    let toks: Vec<&[u8]> = head.split(|&b| b == b' ').collect();
    if toks[0] != b"VALUE" || !(4..=5).contains(&toks.len()) {
        return Err(bad("unexpected reply"));
    }
    let flags = parse_num::<u32>(toks[2]).ok_or_else(|| bad("bad flags"))?;
    let len = parse_num::<usize>(toks[3]).ok_or_else(|| bad("bad length"))?;
    let Some(data) = data_block(&buf[used..], len, P)? else {
        return Ok(None);
    };
    // One key was asked for, so END follows its one VALUE.
    let rest = &buf[used + len + 2..];
    let end = b"END\r\n";
    if rest.len() < end.len() {
        return if end.starts_with(rest) {
            Ok(None)
        } else {
            Err(bad("VALUE not followed by END"))
        };
    }
    if &rest[..end.len()] != end {
        return Err(bad("VALUE not followed by END"));
    }
    let reply = Reply {
        key: Some(toks[1]),
        flags,
        data,
        ..Reply::of(Kind::Hit)
    };
    Ok(Some((reply, used + len + 2 + end.len())))
}

#[cfg(test)]
mod tests {
    use super::super::tests::check_every_split;
    use super::super::{Protocol, decode, encode_get, encode_set};
    use super::*;

    #[test]
    fn encodes() {
        let mut out = Vec::new();
        encode_get(Protocol::Ascii, b"k01", 9, &mut out);
        encode_set(Protocol::Ascii, b"k01", 42, b"abc", 9, &mut out);
        assert_eq!(out, b"get k01\r\nset k01 42 0 3\r\nabc\r\n");
    }

    #[test]
    fn decodes_every_reply_split_anywhere() {
        let stream = b"VALUE k01 42 5\r\nhe\r\no\r\nEND\r\nEND\r\nSTORED\r\nNOT_STORED\r\nSERVER_ERROR out of memory\r\nERROR\r\nVALUE k2 7 0 99\r\n\r\nEND\r\n";
        let want = [
            Reply {
                key: Some(b"k01"),
                flags: 42,
                data: b"he\r\no",
                ..Reply::of(Kind::Hit)
            },
            Reply::of(Kind::Miss),
            Reply::of(Kind::Stored),
            Reply::of(Kind::NotStored),
            Reply {
                message: b"SERVER_ERROR out of memory",
                ..Reply::of(Kind::Error)
            },
            Reply {
                message: b"ERROR",
                ..Reply::of(Kind::Error)
            },
            Reply {
                key: Some(b"k2"),
                flags: 7,
                data: b"",
                ..Reply::of(Kind::Hit)
            },
        ];
        check_every_split(Protocol::Ascii, stream, &want);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b"HELLO\r\n"[..],
            b"VALUE k x 3\r\nabc\r\nEND\r\n",
            b"VALUE k 0 3\r\nabcd\r\nEND\r\n",
            b"VALUE k 0 3\r\nabc\r\nVALUE",
            b"VALUE k 0 3\r\nabc\r\nEX",
            b"ERRORS\r\n",
        ] {
            assert!(
                decode(Protocol::Ascii, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
