//! The ASCII protocol's parser (classic commands, and the line framing of
//! the meta commands, whose flags [`crate::meta`] reads): one request at a
//! time from the front of the bytes received so far.
//!
//! Incremental by re-reading: [`parse`] says [`Step::Incomplete`] until the
//! whole request (its line and, for storage commands, its data block) is
//! there, and the caller calls again with more bytes. Nothing is consumed
//! until a request is whole, so a request split anywhere parses the same.
//! Every malformed request is a [`Command::Error`] carrying memcached's
//! answer; the only request that ends the connection is a line that grows
//! past [`MAX_LINE`] without a newline (memcached closes there too).

use alloc::vec::Vec;

use crate::meta::{self, MetaCommand};

/// The longest key, in bytes.
pub const KEY_MAX: usize = 250;
/// A line longer than this without its newline closes the connection,
/// unless it is a `get`/`gets`, which may name many keys (memcached
/// allows 2048 bytes, then only multigets).
pub const MAX_LINE: usize = 2048;
/// The longest multiget line accepted.
pub const MAX_GET_LINE: usize = 1 << 20;

/// How a storage command combines its value with the stored one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StoreVerb {
    /// `set`
    Set,
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `append`
    Append,
    /// `prepend`
    Prepend,
    /// `cas` with the client's unique
    Cas(u64),
}

/// A parsed ASCII request; byte strings borrow the received bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `get`/`gets`/`gat`/`gats`: the keys, whether CAS uniques are
    /// wanted, and for gat/gats the new expiry time.
    Get {
        /// The keys, in order.
        keys: Vec<&'a [u8]>,
        /// `gets`/`gats`.
        cas: bool,
        /// gat/gats: the new exptime.
        touch: Option<i64>,
    },
    /// set/add/replace/append/prepend/cas with its data block.
    Store {
        /// Which command.
        verb: StoreVerb,
        /// The key.
        key: &'a [u8],
        /// The client's flags.
        flags: u32,
        /// The client's exptime.
        exptime: i64,
        /// The data block, without its `\r\n`.
        data: &'a [u8],
        /// `noreply`.
        noreply: bool,
    },
    /// A storage command whose value is larger than the item size limit:
    /// answered `SERVER_ERROR object too large for cache`, its data
    /// swallowed, and for `set` the stored item removed.
    TooLarge {
        /// The key.
        key: &'a [u8],
        /// It was a `set` (memcached then removes the old item).
        unlink: bool,
        /// `noreply`.
        noreply: bool,
    },
    /// `delete <key>`.
    Delete {
        /// The key.
        key: &'a [u8],
        /// `noreply`.
        noreply: bool,
    },
    /// `incr`/`decr <key> <delta>`.
    Arith {
        /// `incr`.
        incr: bool,
        /// The key.
        key: &'a [u8],
        /// The delta.
        delta: u64,
        /// `noreply`.
        noreply: bool,
    },
    /// `touch <key> <exptime>`.
    Touch {
        /// The key.
        key: &'a [u8],
        /// The new exptime.
        exptime: i64,
        /// `noreply`.
        noreply: bool,
    },
    /// `flush_all [delay]`.
    FlushAll {
        /// Seconds (or an absolute time) until the flush; 0 at once.
        delay: i64,
        /// `noreply`.
        noreply: bool,
    },
    /// `stats [group]`.
    Stats {
        /// The group (`settings`, `items`, `slabs`, `reset`, ...).
        group: Option<&'a [u8]>,
    },
    /// `version`.
    Version,
    /// `verbosity <level>`.
    Verbosity {
        /// `noreply`.
        noreply: bool,
    },
    /// `cache_memlimit <megabytes>`.
    CacheMemlimit {
        /// The new limit in megabytes.
        megabytes: u64,
        /// `noreply`.
        noreply: bool,
    },
    /// `quit`: close the connection.
    Quit,
    /// A meta command (`mg`, `ms`, `md`, `ma`, `mn`, `me`).
    Meta(MetaCommand<'a>),
    /// A malformed request: answer `msg` (unless `noreply`).
    Error {
        /// memcached's answer, without `\r\n`.
        msg: &'static str,
        /// The request said `noreply` (which also silences its errors).
        noreply: bool,
    },
}

/// What [`parse`] found at the front of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Not a whole request yet: call again with more bytes.
    Incomplete,
    /// A request of `len` bytes; then `swallow` more bytes (a refused
    /// value, possibly not received yet) are to be dropped unread.
    Ready {
        /// The request.
        cmd: Command<'a>,
        /// Bytes it took from the input.
        len: usize,
        /// Bytes after it to drop.
        swallow: usize,
    },
    /// The peer sent a line too long to be a request: close.
    Close,
}

/// Limits the parser enforces.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest value (`-I`), in bytes.
    pub item_size_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            item_size_max: 1 << 20,
        }
    }
}

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";

fn error<'a>(msg: &'static str, noreply: bool) -> Command<'a> {
    Command::Error { msg, noreply }
}

/// Splits a line on spaces, as memcached does (runs of spaces are one
/// separator).
pub fn tokens(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .collect()
}

/// An unsigned decimal of at most `max`; no sign, nothing after.
pub fn parse_u64(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in t {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

/// A signed decimal that fits in 32 bits, as memcached's `safe_strtol`.
pub fn parse_i32(t: &[u8]) -> Option<i64> {
    let (neg, digits) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, t),
    };
    let n = i64::try_from(parse_u64(digits)?).ok()?;
    let n = if neg { -n } else { n };
    i32::try_from(n).ok().map(i64::from)
}

/// The flags field: 32 bits unsigned.
fn parse_u32(t: &[u8]) -> Option<u32> {
    parse_u64(t).and_then(|n| u32::try_from(n).ok())
}

/// Whether the last token is `noreply`.
fn noreply_of(toks: &[&[u8]]) -> bool {
    toks.last().is_some_and(|t| *t == b"noreply")
}

/// Parses one request from the front of `input`.
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Step<'a> {
    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
        return too_long(input, input.len());
    };
    if nl > MAX_LINE && too_long(input, nl) == Step::Close {
        return Step::Close;
    }
    let mut line = &input[..nl];
    if let Some(l) = line.strip_suffix(b"\r") {
        line = l;
    }
    let toks = tokens(line);
    let len = nl + 1;
    let ready = |cmd| Step::Ready {
        cmd,
        len,
        swallow: 0,
    };
    let Some(&verb) = toks.first() else {
        return ready(error("ERROR", false));
    };
    let n = toks.len();
    match verb {
        b"get" | b"gets" if n >= 2 => ready(get(&toks[1..], verb == b"gets", None)),
        b"gat" | b"gats" if n >= 2 => match parse_i32(toks[1]) {
            Some(t) => ready(get(&toks[2..], verb == b"gats", Some(t))),
            None => ready(error("CLIENT_ERROR invalid exptime argument", false)),
        },
        b"set" | b"add" | b"replace" | b"append" | b"prepend" if n == 5 || n == 6 => {
            storage(input, len, &toks, limits)
        }
        b"cas" if n == 6 || n == 7 => storage(input, len, &toks, limits),
        b"delete" if (2..=4).contains(&n) => ready(delete(&toks)),
        b"incr" | b"decr" if n == 3 || n == 4 => ready(arith(&toks)),
        b"touch" if n == 3 || n == 4 => ready(touch(&toks)),
        b"flush_all" if n <= 3 => ready(flush_all(&toks)),
        b"stats" => ready(Command::Stats {
            group: toks.get(1).copied(),
        }),
        b"version" => ready(Command::Version),
        b"quit" => ready(Command::Quit),
        b"verbosity" if n == 2 || n == 3 => {
            let noreply = noreply_of(&toks);
            match parse_u64(toks[1]) {
                Some(_) => ready(Command::Verbosity { noreply }),
                None => ready(error(BAD_FORMAT, noreply)),
            }
        }
        b"cache_memlimit" if n == 2 || n == 3 => {
            let noreply = noreply_of(&toks);
            match parse_u64(toks[1]) {
                Some(megabytes) => ready(Command::CacheMemlimit { megabytes, noreply }),
                None => ready(error(BAD_FORMAT, noreply)),
            }
        }
        b"shutdown" => ready(error("ERROR: shutdown not enabled", false)),
        b"mn" | b"mg" | b"ms" | b"md" | b"ma" | b"me" => meta::parse(input, len, &toks, limits),
        _ => ready(error("ERROR", false)),
    }
}

/// No newline within the first `upto` bytes: wait for more, unless the
/// line is already longer than any request may be.
fn too_long(input: &[u8], upto: usize) -> Step<'_> {
    if upto <= MAX_LINE {
        return Step::Incomplete;
    }
    let start = input.iter().position(|&b| b != b' ').unwrap_or(input.len());
    let rest = &input[start..];
    let multiget = start <= 100 && (rest.starts_with(b"get ") || rest.starts_with(b"gets "));
    if multiget && upto <= MAX_GET_LINE {
        Step::Incomplete
    } else {
        Step::Close
    }
}

fn get<'a>(keys: &[&'a [u8]], cas: bool, touch: Option<i64>) -> Command<'a> {
    if keys.iter().any(|k| k.len() > KEY_MAX) {
        return error(BAD_FORMAT, false);
    }
    Command::Get {
        keys: keys.to_vec(),
        cas,
        touch,
    }
}

/// `<verb> <key> <flags> <exptime> <bytes> [cas] [noreply]\r\n<data>\r\n`.
fn storage<'a>(input: &'a [u8], len: usize, toks: &[&'a [u8]], limits: &Limits) -> Step<'a> {
    let verb = match toks[0] {
        b"set" => StoreVerb::Set,
        b"add" => StoreVerb::Add,
        b"replace" => StoreVerb::Replace,
        b"append" => StoreVerb::Append,
        b"prepend" => StoreVerb::Prepend,
        _ => StoreVerb::Cas(0),
    };
    let fields = if matches!(verb, StoreVerb::Cas(_)) {
        6
    } else {
        5
    };
    let noreply = toks.len() > fields && noreply_of(toks);
    let line_only = |cmd| Step::Ready {
        cmd,
        len,
        swallow: 0,
    };
    let key = toks[1];
    if key.len() > KEY_MAX {
        return line_only(error(BAD_FORMAT, noreply));
    }
    let (Some(flags), Some(exptime), Some(bytes)) =
        (parse_u32(toks[2]), parse_i32(toks[3]), parse_i32(toks[4]))
    else {
        return line_only(error(BAD_FORMAT, noreply));
    };
    let verb = match verb {
        StoreVerb::Cas(_) => match parse_u64(toks[5]) {
            Some(c) => StoreVerb::Cas(c),
            None => return line_only(error(BAD_FORMAT, noreply)),
        },
        v => v,
    };
    let Ok(bytes) = usize::try_from(bytes) else {
        return line_only(error(BAD_FORMAT, noreply));
    };
    if bytes > limits.item_size_max {
        return Step::Ready {
            cmd: Command::TooLarge {
                key,
                unlink: verb == StoreVerb::Set,
                noreply,
            },
            len,
            swallow: bytes + 2,
        };
    }
    let Some(block) = input.get(len..len + bytes + 2) else {
        return Step::Incomplete;
    };
    let cmd = if block.ends_with(b"\r\n") {
        Command::Store {
            verb,
            key,
            flags,
            exptime,
            data: &block[..bytes],
            noreply,
        }
    } else {
        Command::Error {
            msg: "CLIENT_ERROR bad data chunk",
            noreply,
        }
    };
    Step::Ready {
        cmd,
        len: len + bytes + 2,
        swallow: 0,
    }
}

/// `delete <key> [0] [noreply]`.
fn delete<'a>(toks: &[&'a [u8]]) -> Command<'a> {
    let noreply = noreply_of(toks);
    let key = toks[1];
    if toks.len() > 2 {
        let hold_zero = toks[2] == b"0";
        let valid = (toks.len() == 3 && (hold_zero || noreply))
            || (toks.len() == 4 && hold_zero && noreply);
        if !valid {
            return error(
                "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                noreply,
            );
        }
    }
    if key.len() > KEY_MAX {
        return error(BAD_FORMAT, noreply);
    }
    Command::Delete { key, noreply }
}

fn arith<'a>(toks: &[&'a [u8]]) -> Command<'a> {
    let noreply = noreply_of(toks);
    let key = toks[1];
    if key.len() > KEY_MAX {
        return error(BAD_FORMAT, noreply);
    }
    match parse_u64(toks[2]) {
        Some(delta) => Command::Arith {
            incr: toks[0] == b"incr",
            key,
            delta,
            noreply,
        },
        None => error("CLIENT_ERROR invalid numeric delta argument", noreply),
    }
}

fn touch<'a>(toks: &[&'a [u8]]) -> Command<'a> {
    let noreply = noreply_of(toks);
    let key = toks[1];
    if key.len() > KEY_MAX {
        return error(BAD_FORMAT, noreply);
    }
    match parse_i32(toks[2]) {
        Some(exptime) => Command::Touch {
            key,
            exptime,
            noreply,
        },
        None => error("CLIENT_ERROR invalid exptime argument", noreply),
    }
}

fn flush_all<'a>(toks: &[&'a [u8]]) -> Command<'a> {
    let noreply = noreply_of(toks);
    let args = toks.len() - 1 - usize::from(noreply);
    if args == 0 {
        return Command::FlushAll { delay: 0, noreply };
    }
    match parse_i32(toks[1]) {
        Some(delay) if args == 1 => Command::FlushAll { delay, noreply },
        _ => error("CLIENT_ERROR invalid exptime argument", noreply),
    }
}
