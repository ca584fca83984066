//! The meta protocol: `mg`/`ms` with the opaque `O` flag echoed back.

use super::{Kind, ProtoError, Reply, data_block, line, parse_num, shown, text_error};

const P: &str = "meta";

pub(super) fn encode_get(key: &[u8], opaque: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"mg ");
    out.extend_from_slice(key);
    out.extend_from_slice(format!(" v f k O{opaque}\r\n").as_bytes());
}

pub(super) fn encode_set(key: &[u8], flags: u32, value: &[u8], opaque: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"ms ");
    out.extend_from_slice(key);
    out.extend_from_slice(format!(" {} F{flags} O{opaque}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn decode(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ProtoError> {
    let Some((head, used)) = line(buf, P)? else {
        return Ok(None);
    };
    if let Some(r) = text_error(head) {
        return Ok(Some((r, used)));
    }
    let bad = |what: &str| ProtoError {
        protocol: P,
        what: format!("{what}: `{}`", shown(head)),
    };
    let mut toks = head.split(|&b| b == b' ');
    let code = toks.next().unwrap_or_default();
    let (kind, len) = match code {
        b"VA" => {
            let len = toks
                .next()
                .and_then(parse_num::<usize>)
                .ok_or_else(|| bad("bad length"))?;
            (Kind::Hit, Some(len))
        }
        b"EN" => (Kind::Miss, None),
        b"HD" => (Kind::Stored, None),
        b"NS" | b"EX" | b"NF" => (Kind::NotStored, None),
        _ => return Err(bad("unexpected reply")),
    };
    let mut reply = Reply::of(kind);
    for tok in toks {
        let (flag, arg) = tok.split_first().ok_or_else(|| bad("empty flag"))?;
        match flag {
            b'f' => reply.flags = parse_num(arg).ok_or_else(|| bad("bad f flag"))?,
            b'k' => reply.key = Some(arg),
            b'O' => reply.opaque = Some(parse_num(arg).ok_or_else(|| bad("bad O flag"))?),
            _ => {}
        }
    }
    let Some(len) = len else {
        return Ok(Some((reply, used)));
    };
    let Some(data) = data_block(&buf[used..], len, P)? else {
        return Ok(None);
    };
    reply.data = data;
    Ok(Some((reply, used + len + 2)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::check_every_split;
    use super::super::{Protocol, decode, encode_get, encode_set};
    use super::*;

    #[test]
    fn encodes() {
        let mut out = Vec::new();
        encode_get(Protocol::Meta, b"k01", 9, &mut out);
        encode_set(Protocol::Meta, b"k01", 42, b"abc", 10, &mut out);
        assert_eq!(out, b"mg k01 v f k O9\r\nms k01 3 F42 O10\r\nabc\r\n");
    }

    #[test]
    fn decodes_every_reply_split_anywhere() {
        let stream = b"VA 5 f42 kk01 O1\r\nhe\r\no\r\nEN\r\nEN kk02 O2\r\nHD O3\r\nNS O4\r\nCLIENT_ERROR bad data chunk\r\nVA 0 O6 f7 t-1\r\n\r\n";
        let want = [
            Reply {
                opaque: Some(1),
                key: Some(b"k01"),
                flags: 42,
                data: b"he\r\no",
                ..Reply::of(Kind::Hit)
            },
            Reply::of(Kind::Miss),
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
                message: b"CLIENT_ERROR bad data chunk",
                ..Reply::of(Kind::Error)
            },
            Reply {
                opaque: Some(6),
                flags: 7,
                ..Reply::of(Kind::Hit)
            },
        ];
        check_every_split(Protocol::Meta, stream, &want);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b"VALUE k 0 1\r\n"[..],
            b"VA x\r\n",
            b"HD Oxyz\r\n",
            b"VA 1 fnope\r\nx\r\n",
            b"VA 1\r\nxy\r\n",
            b"HD  O1\r\n",
        ] {
            assert!(
                decode(Protocol::Meta, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
