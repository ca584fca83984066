// Session tests: every protocol through `Session::feed`, with requests
// whole, pipelined, and split at every byte boundary. Included once per
// store by `tests.rs`, whose module provides `new_store`.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::binary::{self, op, status};
use crate::clock::{Clock, ManualClock};
use crate::store::GetOptions;
use crate::{Cache, Config, Flow, Response, Session, Sink};
use ebbrt::{IoBuf, IoBufChain};

const T0: u64 = 1_700_000_000;

/// A clock the test keeps a handle on.
struct Shared(Arc<ManualClock>);

impl Clock for Shared {
    fn now(&self) -> u64 {
        self.0.now()
    }
}

fn cache_with(limit: u64, config: Config) -> (Cache, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let cache = Cache::new(
        new_store(limit),
        Box::new(Shared(clock.clone())),
        config,
    );
    (cache, clock)
}

fn cache() -> Cache {
    cache_with(64 << 20, Config::default()).0
}

/// Feeds `chunks` one after another; the replies and whether the session
/// asked to close.
fn run(cache: &Cache, chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut s = Session::new(cache);
    let mut out = Vec::new();
    let mut closed = false;
    for c in chunks {
        if s.feed(c, &mut out) == Flow::Close {
            closed = true;
        }
    }
    (out, closed)
}

fn text(b: &[u8]) -> alloc::string::String {
    alloc::string::String::from_utf8_lossy(b).into_owned()
}

/// Checks that `script`, a list of requests and their replies, gives the
/// same replies sent whole, one request per segment, one byte per segment
/// and split in two at every byte.
fn check_script(script: &[(&[u8], &[u8])], fresh: impl Fn() -> Cache) {
    let input: Vec<u8> = script.iter().flat_map(|(q, _)| q.iter().copied()).collect();
    let want: Vec<u8> = script.iter().flat_map(|(_, a)| a.iter().copied()).collect();
    // One request at a time, so a failure names the request.
    let c = fresh();
    let mut s = Session::new(&c);
    for (q, a) in script {
        let mut out = Vec::new();
        s.feed(q, &mut out);
        assert_eq!(text(&out), text(a), "reply to {:?}", text(q));
    }
    let c = fresh();
    assert_eq!(text(&run(&c, &[&input]).0), text(&want), "pipelined");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let c = fresh();
    assert_eq!(text(&run(&c, &bytes).0), text(&want), "byte by byte");
    for cut in 1..input.len() {
        let c = fresh();
        let (a, b) = input.split_at(cut);
        assert_eq!(
            text(&run(&c, &[a, b]).0),
            text(&want),
            "split at byte {cut}"
        );
    }
}

#[test]
fn ascii_commands_answer_as_memcached_whole_pipelined_and_split() {
    let script: &[(&[u8], &[u8])] = &[
        (b"set a 5 0 3\r\nabc\r\n", b"STORED\r\n"),
        (b"get a\r\n", b"VALUE a 5 3\r\nabc\r\nEND\r\n"),
        (b"gets a\r\n", b"VALUE a 5 3 1\r\nabc\r\nEND\r\n"),
        (
            b"get a nope a\r\n",
            b"VALUE a 5 3\r\nabc\r\nVALUE a 5 3\r\nabc\r\nEND\r\n",
        ),
        (b"add a 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
        (b"add b 0 0 1\r\nx\r\n", b"STORED\r\n"),
        (b"replace nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
        (b"replace b 1 0 1\r\ny\r\n", b"STORED\r\n"),
        (b"append b 0 0 2\r\nzz\r\n", b"STORED\r\n"),
        (b"prepend b 0 0 1\r\n<\r\n", b"STORED\r\n"),
        (b"append nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
        (b"get b\r\n", b"VALUE b 1 4\r\n<yzz\r\nEND\r\n"),
        (b"cas a 0 0 1 99\r\nq\r\n", b"EXISTS\r\n"),
        (b"cas a 0 0 1 1\r\nq\r\n", b"STORED\r\n"),
        (b"cas a 0 0 1 1\r\nq\r\n", b"EXISTS\r\n"),
        (b"cas nope 0 0 1 1\r\nq\r\n", b"NOT_FOUND\r\n"),
        (b"set n 0 0 2\r\n10\r\n", b"STORED\r\n"),
        (b"incr n 5\r\n", b"15\r\n"),
        (b"decr n 100\r\n", b"0\r\n"),
        (b"incr nope 1\r\n", b"NOT_FOUND\r\n"),
        (
            b"incr a 1\r\n",
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        ),
        (
            b"incr n -1\r\n",
            b"CLIENT_ERROR invalid numeric delta argument\r\n",
        ),
        (b"touch a 100\r\n", b"TOUCHED\r\n"),
        (b"touch nope 100\r\n", b"NOT_FOUND\r\n"),
        (
            b"touch a abc\r\n",
            b"CLIENT_ERROR invalid exptime argument\r\n",
        ),
        (b"gat 100 a\r\n", b"VALUE a 0 1\r\nq\r\nEND\r\n"),
        (b"gats 100 a\r\n", b"VALUE a 0 1 6\r\nq\r\nEND\r\n"),
        (b"gat 100\r\n", b"END\r\n"),
        (b"delete a\r\n", b"DELETED\r\n"),
        (b"delete a\r\n", b"NOT_FOUND\r\n"),
        (b"delete b 0\r\n", b"DELETED\r\n"),
        (
            b"delete b 1\r\n",
            b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
        ),
        (b"delete a b c d e\r\n", b"ERROR\r\n"),
        (
            b"set q 0 0 1 noreply\r\nx\r\nadd q 0 0 1 noreply\r\ny\r\n",
            b"",
        ),
        (
            b"incr q 1 noreply\r\ndelete q noreply\r\ntouch q 1 noreply\r\n",
            b"",
        ),
        (b"get\r\n", b"ERROR\r\n"),
        (b"gets\r\n", b"ERROR\r\n"),
        (b"\r\n", b"ERROR\r\n"),
        (b"bogus command\r\n", b"ERROR\r\n"),
        (b"GET a\r\n", b"ERROR\r\n"),
        (b"stats noreply\r\n", b"ERROR\r\n"),
        (b"stats nonsense\r\n", b"ERROR\r\n"),
        (b"verbosity\r\n", b"ERROR\r\n"),
        (b"verbosity foo bar my\r\n", b"ERROR\r\n"),
        (b"verbosity noreply\r\n", b""),
        (b"verbosity 0 noreply\r\n", b""),
        (b"verbosity 1\r\n", b"OK\r\n"),
        (b"version\r\n", b"VERSION 1.6.21\r\n"),
        (b"version foo bar\r\n", b"VERSION 1.6.21\r\n"),
        (
            b"set k abc 0 1\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        ),
        (
            b"set k -1 0 1\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        ),
        (
            b"set k 0 0 -1\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        ),
        (b"set k 0 0 1 2 3 4\r\n", b"ERROR\r\n"),
        // The block is not followed by \r\n: the two bytes after the
        // declared length are eaten, and what is left is a line of its own.
        (
            b"set k 0 0 1\r\nabc\r\n",
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        (b"get k\r\n", b"END\r\n"),
        (
            b"cache_memlimit 1\r\n",
            b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
        ),
        (b"cache_memlimit 100\r\n", b"OK\r\n"),
        (b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n"),
        (
            b"flush_all abc\r\n",
            b"CLIENT_ERROR invalid exptime argument\r\n",
        ),
        (b"flush_all\r\n", b"OK\r\n"),
        (b"get n\r\n", b"END\r\n"),
        (b"flush_all noreply\r\n", b""),
        (
            b"set lf 0 0 1\nx\r\nget lf\n",
            b"STORED\r\nVALUE lf 0 1\r\nx\r\nEND\r\n",
        ),
    ];
    check_script(script, cache);
}

#[test]
fn keys_longer_than_250_bytes_are_refused() {
    let c = cache();
    let long = "k".repeat(251);
    let ok = "k".repeat(250);
    let req = alloc::format!(
        "set {ok} 0 0 1\r\nx\r\nget {long}\r\nset {long} 0 0 1\r\nx\r\nget {ok}\r\n"
    );
    let (out, _) = run(&c, &[req.as_bytes()]);
    let want = alloc::format!(
        "STORED\r\nCLIENT_ERROR bad command line format\r\n\
         CLIENT_ERROR bad command line format\r\nERROR\r\nVALUE {ok} 0 1\r\nx\r\nEND\r\n"
    );
    assert_eq!(text(&out), want);
}

#[test]
fn too_large_values_are_refused_swallowed_and_unlink_the_old_value() {
    let (c, _) = cache_with(
        64 << 20,
        Config {
            item_size_max: 1024,
            ..Config::default()
        },
    );
    let mut s = Session::new(&c);
    let mut out = Vec::new();
    s.feed(b"set k 0 0 1\r\nx\r\nset k 0 0 2000\r\n", &mut out);
    // Refused at once, before the data arrives.
    assert_eq!(
        text(&out),
        "STORED\r\nSERVER_ERROR object too large for cache\r\n"
    );
    out.clear();
    // The data, in pieces that look like commands, is swallowed.
    let data = b"get k\r\n".repeat(2002 / 7 + 1);
    let (data, tail) = data.split_at(2002);
    for piece in data.chunks(100) {
        s.feed(piece, &mut out);
    }
    assert!(
        out.is_empty(),
        "swallowed bytes were answered: {}",
        text(&out)
    );
    let mut rest = tail.to_vec();
    rest.extend_from_slice(b"\r\nget k\r\n");
    s.feed(&rest, &mut out);
    // What followed the swallowed block is parsed; the old value is gone.
    assert!(text(&out).ends_with("END\r\n"), "{}", text(&out));
    assert!(!text(&out).contains("VALUE"));
}

#[test]
fn expiry_follows_the_clock() {
    let (c, clock) = cache_with(64 << 20, Config::default());
    let abs = T0 + 100;
    let req = alloc::format!(
        "set rel 0 10 1\r\nx\r\nset abs 0 {abs} 1\r\ny\r\nset neg 0 -1 1\r\nz\r\nset never 0 0 1\r\nw\r\n"
    );
    run(&c, &[req.as_bytes()]);
    let get = b"get rel abs neg never\r\n";
    assert_eq!(
        text(&run(&c, &[get]).0),
        "VALUE rel 0 1\r\nx\r\nVALUE abs 0 1\r\ny\r\nVALUE never 0 1\r\nw\r\nEND\r\n"
    );
    clock.advance(9);
    assert!(text(&run(&c, &[b"get rel\r\n"]).0).contains("VALUE rel"));
    clock.advance(1);
    assert_eq!(text(&run(&c, &[b"get rel\r\n"]).0), "END\r\n");
    clock.set(abs - 1);
    assert!(text(&run(&c, &[b"get abs\r\n"]).0).contains("VALUE abs"));
    clock.set(abs);
    assert_eq!(text(&run(&c, &[get]).0), "VALUE never 0 1\r\nw\r\nEND\r\n");
    // A delayed flush_all kills what is stored when its time comes.
    run(&c, &[b"flush_all 5\r\n"]);
    clock.advance(4);
    assert!(text(&run(&c, &[b"get never\r\n"]).0).contains("VALUE"));
    clock.advance(1);
    assert_eq!(text(&run(&c, &[b"get never\r\n"]).0), "END\r\n");
}

#[test]
fn a_line_without_newline_closes_only_when_too_long() {
    let c = cache();
    let (out, closed) = run(&c, &[&[b'x'; 2000][..]]);
    assert!(!closed && out.is_empty());
    let (_, closed) = run(&c, &[&[b'x'; 3000][..]]);
    assert!(closed);
    // A long multiget is fine.
    let mut get = b"get".to_vec();
    for i in 0..1000 {
        get.extend_from_slice(alloc::format!(" key{i}").as_bytes());
    }
    let (out, closed) = run(&c, &[&get, b"\r\n"]);
    assert!(!closed);
    assert_eq!(text(&out), "END\r\n");
}

#[test]
fn quit_closes_and_ignores_what_follows() {
    let c = cache();
    let (out, closed) = run(&c, &[b"version\r\nquit\r\nversion\r\n"]);
    assert!(closed);
    assert_eq!(text(&out), "VERSION 1.6.21\r\n");
}

#[test]
fn connection_limit_counts_and_rejects() {
    let (c, _) = cache_with(
        1 << 20,
        Config {
            max_connections: 2,
            ..Config::default()
        },
    );
    assert!(c.connect());
    assert!(c.connect());
    assert!(!c.connect());
    c.disconnect();
    assert!(c.connect());
    let stat = |name: &str| {
        c.stats_lines()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    };
    assert_eq!(stat("curr_connections"), "2");
    assert_eq!(stat("total_connections"), "3");
    assert_eq!(stat("rejected_connections"), "1");
}

#[test]
fn stats_count_what_happened() {
    let per = 1 + 10 + crate::ITEM_OVERHEAD;
    let (c, clock) = cache_with(3 * per, Config::default());
    let mut req = Vec::new();
    for k in ["a", "b", "c", "d"] {
        req.extend_from_slice(alloc::format!("set {k} 0 0 10\r\n0123456789\r\n").as_bytes());
    }
    req.extend_from_slice(b"get a b c d\r\nstats\r\n");
    clock.advance(7);
    let (out, _) = run(&c, &[&req]);
    let out = text(&out);
    for line in [
        "STAT evictions 1\r\n",
        "STAT curr_items 3\r\n",
        "STAT total_items 4\r\n",
        "STAT cmd_set 4\r\n",
        "STAT cmd_get 4\r\n",
        "STAT get_hits 3\r\n",
        "STAT get_misses 1\r\n",
        "STAT uptime 7\r\n",
        "STAT version 1.6.21\r\n",
    ] {
        assert!(out.contains(line), "no {line:?} in {out}");
    }
    assert!(out.contains(&alloc::format!("STAT limit_maxbytes {}\r\n", 3 * per)));
    assert!(out.contains(&alloc::format!("STAT bytes {}\r\n", 3 * per)));
    assert!(out.ends_with("END\r\n"));
    let (out, _) = run(&c, &[b"stats reset\r\nstats\r\n"]);
    assert!(text(&out).starts_with("RESET\r\n"));
    assert!(text(&out).contains("STAT cmd_get 0\r\n"));
}

#[test]
fn meta_commands_answer_as_memcached_whole_pipelined_and_split() {
    let script: &[(&[u8], &[u8])] = &[
        (b"mn\r\n", b"MN\r\n"),
        (b"mg foo v\r\n", b"EN\r\n"),
        (b"mg foo v q\r\nmn\r\n", b"MN\r\n"),
        (b"mg foo k Oab\r\n", b"EN kfoo Oab\r\n"),
        (b"ms foo 2 T0 F5 c\r\nhi\r\n", b"HD c1\r\n"),
        (
            b"mg foo v k Oab c f t s h l\r\n",
            b"VA 2 kfoo Oab c1 f5 t-1 s2 h0 l0\r\nhi\r\n",
        ),
        (b"mg foo h\r\n", b"HD h1\r\n"),
        (b"mg foo T100 t\r\n", b"HD t100\r\n"),
        (b"mg new N30 v c\r\n", b"VA 0 c2 W\r\n\r\n"),
        (b"mg new N30 v c\r\n", b"VA 0 c2 Z\r\n\r\n"),
        (b"md foo I\r\n", b"HD\r\n"),
        (b"mg foo v c\r\n", b"VA 2 c3 X W\r\nhi\r\n"),
        (b"mg foo v c\r\n", b"VA 2 c3 Z X\r\nhi\r\n"),
        (
            b"ms foo 3 MZ\r\nabc\r\n",
            b"CLIENT_ERROR invalid mode for ms M token\r\n",
        ),
        (b"mg foo zz\r\n", b"CLIENT_ERROR invalid flag\r\n"),
        (b"mg foo v v\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
        (
            b"mg foo Tabc\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
        ),
        (
            b"md foo Cabc\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
        ),
        (
            b"mg foo O123456789012345678901234567890123\r\n",
            b"CLIENT_ERROR opaque token too long\r\n",
        ),
        (b"mg\r\n", b"ERROR\r\n"),
        (b"ms foo\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (
            b"ms foo 3\r\nabcde\r\n",
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        ),
        (b"ma cnt\r\n", b"NF\r\n"),
        (b"ma cnt N0 J10 v\r\n", b"VA 2\r\n10\r\n"),
        (b"ma cnt v MD D3 t\r\n", b"VA 1 t-1\r\n7\r\n"),
        (b"ma cnt q\r\nmn\r\n", b"MN\r\n"),
        (b"ma cnt c\r\n", b"HD c7\r\n"),
        (
            b"ma foo\r\n",
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        ),
        (
            b"ma cnt D-1\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
        ),
        (
            b"ms k 1 q\r\nz\r\nmg k q v\r\nmd nope q\r\nmn\r\n",
            b"VA 1\r\nz\r\nNF\r\nMN\r\n",
        ),
        (b"ms k 1 MA\r\nq\r\nmg k v\r\n", b"HD\r\nVA 2\r\nzq\r\n"),
        (b"ms k 1 MP\r\n<\r\nmg k v\r\n", b"HD\r\nVA 3\r\n<zq\r\n"),
        (b"ms nope 1 MA\r\nq\r\n", b"NS\r\n"),
        (b"ms nope 1 MA N0\r\nq\r\n", b"HD\r\n"),
        (b"ms nope 1 ME\r\nq\r\n", b"NS\r\n"),
        (b"ms nope2 1 MR\r\nq\r\n", b"NS\r\n"),
        (b"ms k 1 C1\r\nq\r\n", b"EX\r\n"),
        (b"ms k 1 C999 E500 c\r\nq\r\n", b"EX\r\n"),
        (b"mg k c\r\n", b"HD c10\r\n"),
        (b"ms k 1 C10 E500 c\r\nw\r\n", b"HD c500\r\n"),
        (b"md k C1\r\n", b"EX\r\n"),
        (b"md k C500 q\r\nmg k\r\n", b"EN\r\n"),
        (b"mg Zm9v b v k\r\n", b"VA 2 kZm9v b Z X\r\nhi\r\n"),
        (b"mg foo b\r\n", b"CLIENT_ERROR error decoding key\r\n"),
        (b"ms x 2 T-1\r\nhi\r\nmg x v\r\n", b"HD\r\nEN\r\n"),
        (b"me none\r\n", b"EN\r\n"),
        (
            b"me cnt\r\n",
            b"ME cnt exp=-1 la=0 cas=7 fetch=yes cls=1 size=53\r\n",
        ),
        (
            b"ms y 1\r\n5\r\nmd y x\r\nmg y v f\r\n",
            b"HD\r\nHD\r\nVA 0 f0\r\n\r\n",
        ),
    ];
    check_script(script, cache);
}

#[test]
fn oversized_meta_set_is_refused_and_swallowed() {
    let (c, _) = cache_with(
        64 << 20,
        Config {
            item_size_max: 1024,
            ..Config::default()
        },
    );
    let mut req = b"ms k 2000 T0\r\n".to_vec();
    req.extend_from_slice(&[b'x'; 2000]);
    req.extend_from_slice(b"\r\nmn\r\n");
    let (out, _) = run(&c, &[&req]);
    assert_eq!(
        text(&out),
        "SERVER_ERROR object too large for cache\r\nMN\r\n"
    );
}

// ---- binary ----

#[allow(clippy::too_many_arguments)]
fn packet(opcode: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32, cas: u64) -> Vec<u8> {
    let mut p = vec![binary::REQ_MAGIC, opcode];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.push(extras.len() as u8);
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&cas.to_be_bytes());
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

/// A decoded response.
#[derive(Debug, PartialEq, Eq)]
struct Res {
    opcode: u8,
    status: u16,
    opaque: u32,
    cas: u64,
    extras: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn responses(mut b: &[u8]) -> Vec<Res> {
    let mut v = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 24, "a short response: {b:?}");
        assert_eq!(b[0], binary::RES_MAGIC);
        let keylen = u16::from_be_bytes([b[2], b[3]]) as usize;
        let extlen = b[4] as usize;
        let body = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
        let r = Res {
            opcode: b[1],
            status: u16::from_be_bytes([b[6], b[7]]),
            opaque: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            cas: u64::from_be_bytes(b[16..24].try_into().unwrap()),
            extras: b[24..24 + extlen].to_vec(),
            key: b[24 + extlen..24 + extlen + keylen].to_vec(),
            value: b[24 + extlen + keylen..24 + body].to_vec(),
        };
        v.push(r);
        b = &b[24 + body..];
    }
    v
}

fn set_extras(flags: u32, exptime: u32) -> Vec<u8> {
    let mut e = flags.to_be_bytes().to_vec();
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

fn arith_extras(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    let mut e = delta.to_be_bytes().to_vec();
    e.extend_from_slice(&initial.to_be_bytes());
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

#[test]
fn binary_requests_answer_with_opaque_cas_and_quiet_rules() {
    let mut input = Vec::new();
    let mut n = 0u32;
    let mut p = |opcode, key: &[u8], extras: &[u8], value: &[u8], cas| {
        n += 1;
        input.extend(packet(opcode, key, extras, value, 0xdead_0000 + n, cas));
    };
    p(op::SET, b"k", &set_extras(7, 0), b"v1", 0); // 1: ok cas 1
    p(op::GET, b"k", &[], &[], 0); // 2: flags 7, value v1
    p(op::GETK, b"k", &[], &[], 0); // 3: with key
    p(op::GETQ, b"nope", &[], &[], 0); // 4: silent
    p(op::GETK, b"nope", &[], &[], 0); // 5: ENOENT with key
    p(op::GET, b"nope", &[], &[], 0); // 6: ENOENT, no key
    p(op::ADD, b"k", &set_extras(0, 0), b"x", 0); // 7: EEXISTS
    p(op::ADDQ, b"k", &set_extras(0, 0), b"x", 0); // 8: EEXISTS even quiet
    p(op::REPLACEQ, b"nope", &set_extras(0, 0), b"x", 0); // 9: ENOENT
    p(op::SET, b"k", &set_extras(0, 0), b"x", 99); // 10: bad CAS, EEXISTS
    p(op::SETQ, b"k", &set_extras(0, 0), b"v2", 1); // 11: right CAS, silent
    p(op::APPEND, b"k", &[], b"+", 0); // 12: ok
    p(op::PREPENDQ, b"k", &[], b"-", 0); // 13: silent
    p(op::APPEND, b"nope", &[], b"+", 0); // 14: NOT_STORED
    p(op::INCREMENT, b"c", &arith_extras(1, 10, 0), &[], 0); // 15: created 10
    p(op::INCREMENT, b"c", &arith_extras(5, 0, 0), &[], 0); // 16: 15
    p(op::DECREMENT, b"c", &arith_extras(100, 0, 0), &[], 0); // 17: 0
    p(op::INCREMENT, b"d", &arith_extras(1, 0, u32::MAX), &[], 0); // 18: ENOENT
    p(op::INCREMENT, b"k", &arith_extras(1, 0, 0), &[], 0); // 19: DELTA_BADVAL
    p(op::DELETEQ, b"c", &[], &[], 0); // 20: silent
    p(op::DELETE, b"c", &[], &[], 0); // 21: ENOENT
    p(op::TOUCH, b"k", &100u32.to_be_bytes(), &[], 0); // 22: ok, flags, no value
    p(op::GATK, b"k", &100u32.to_be_bytes(), &[], 0); // 23: with key and value
    p(op::GATQ, b"nope", &100u32.to_be_bytes(), &[], 0); // 24: silent
    p(0x42, b"", &[], b"body", 0); // 25: unknown, body skipped
    p(op::VERBOSITY, b"", &1u32.to_be_bytes(), &[], 0); // 26: ok
    p(op::VERSION, b"", &[], &[], 0); // 27: 1.6.21
    p(op::FLUSHQ, b"", &[], &[], 0); // 28: silent
    p(op::GETKQ, b"k", &[], &[], 0); // 29: miss, silent
    p(op::NOOP, b"", &[], &[], 0); // 30
    p(op::QUIT, b"", &[], &[], 0); // 31: answered, then closed
    p(op::NOOP, b"", &[], &[], 0); // 32: never read
    let c = cache();
    let (out, closed) = run(&c, &[&input]);
    assert!(closed);
    let rs = responses(&out);
    let by = |i: u32| {
        rs.iter()
            .find(|r| r.opaque == 0xdead_0000 + i)
            .unwrap_or_else(|| panic!("no response to request {i}: {rs:#?}"))
    };
    let silent = [4, 11, 13, 20, 24, 28, 29, 32];
    for i in silent {
        assert!(
            rs.iter().all(|r| r.opaque != 0xdead_0000 + i),
            "request {i} answered"
        );
    }
    assert_eq!((by(1).status, by(1).cas), (0, 1));
    assert_eq!(
        (
            by(2).extras.as_slice(),
            by(2).key.as_slice(),
            by(2).value.as_slice()
        ),
        (&7u32.to_be_bytes()[..], &b""[..], &b"v1"[..])
    );
    assert_eq!(by(3).key, b"k");
    assert_eq!(
        (by(5).status, by(5).key.as_slice()),
        (status::KEY_ENOENT, &b"nope"[..])
    );
    assert_eq!(
        (by(6).status, by(6).key.len(), by(6).cas),
        (status::KEY_ENOENT, 0, 0)
    );
    assert_eq!(by(7).status, status::KEY_EEXISTS);
    assert_eq!(by(8).status, status::KEY_EEXISTS);
    assert_eq!(by(9).status, status::KEY_ENOENT);
    assert_eq!(by(10).status, status::KEY_EEXISTS);
    assert_eq!(by(12).status, 0);
    assert_eq!(by(14).status, status::NOT_STORED);
    assert_eq!(by(15).value, 10u64.to_be_bytes());
    assert_eq!(by(16).value, 15u64.to_be_bytes());
    assert_eq!(by(17).value, 0u64.to_be_bytes());
    assert!(by(17).cas != 0);
    assert_eq!(by(18).status, status::KEY_ENOENT);
    assert_eq!(by(19).status, status::DELTA_BADVAL);
    assert_eq!(by(21).status, status::KEY_ENOENT);
    assert_eq!(
        (by(22).status, by(22).value.len(), by(22).extras.len()),
        (0, 0, 4)
    );
    assert_eq!(
        (by(23).key.as_slice(), by(23).value.as_slice()),
        (&b"k"[..], &b"-v2+"[..])
    );
    assert_eq!(by(25).status, status::UNKNOWN_COMMAND);
    assert_eq!(by(26).status, 0);
    assert_eq!(by(27).value, b"1.6.21");
    assert_eq!((by(30).status, by(30).cas), (0, 0));
    assert_eq!(by(31).opcode, op::QUIT);
    for r in &rs {
        if r.status != 0 {
            assert_eq!((r.cas, r.extras.len()), (0, 0), "error response {r:?}");
        }
    }
    // The same bytes split anywhere give the same bytes back.
    for cut in (1..input.len()).step_by(3) {
        let c = cache();
        let (a, b) = input.split_at(cut);
        assert_eq!(run(&c, &[a, b]).0, out, "split at byte {cut}");
    }
    let c = cache();
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&c, &bytes).0, out, "byte by byte");
}

#[test]
fn binary_stat_lists_packets_ending_with_an_empty_one() {
    let c = cache();
    let (out, _) = run(&c, &[&packet(op::STAT, b"", &[], &[], 5, 0)]);
    let rs = responses(&out);
    assert!(rs.len() > 10);
    assert!(
        rs.iter()
            .all(|r| r.opaque == 5 && r.status == 0 && r.cas == 0)
    );
    assert!(rs.iter().any(|r| r.key == b"curr_items"));
    let last = rs.last().unwrap();
    assert!(last.key.is_empty() && last.value.is_empty());
    let (out, _) = run(&c, &[&packet(op::STAT, b"bogus", &[], &[], 6, 0)]);
    assert_eq!(responses(&out)[0].status, status::KEY_ENOENT);
}

#[test]
fn binary_malformed_packets_close_and_oversized_values_are_swallowed() {
    // GET with extras: EINVAL, then closed.
    let c = cache();
    let mut bad = packet(op::GET, b"k", &[1, 2, 3, 4], &[], 1, 0);
    bad.extend(packet(op::NOOP, b"", &[], &[], 2, 0));
    let (out, closed) = run(&c, &[&bad]);
    assert!(closed);
    let rs = responses(&out);
    assert_eq!(rs.len(), 1);
    assert_eq!((rs[0].status, rs[0].opaque), (status::EINVAL, 1));
    // A bad magic after a good packet: closed, nothing answered for it.
    let mut input = packet(op::NOOP, b"", &[], &[], 3, 0);
    input.extend_from_slice(b"\x42garbage");
    let (out, closed) = run(&c, &[&input]);
    assert!(closed);
    assert_eq!(responses(&out).len(), 1);
    // A value over -I: E2BIG, its body swallowed, the next packet served.
    let (c, _) = cache_with(
        1 << 20,
        Config {
            item_size_max: 1024,
            ..Config::default()
        },
    );
    let mut input = packet(op::SET, b"k", &set_extras(0, 0), &[7; 4000], 4, 0);
    input.extend(packet(op::NOOP, b"", &[], &[], 5, 0));
    let pieces: Vec<&[u8]> = input.chunks(333).collect();
    let (out, closed) = run(&c, &pieces);
    assert!(!closed);
    let rs = responses(&out);
    assert_eq!(rs.len(), 2);
    assert_eq!((rs[0].status, rs[0].opaque), (status::E2BIG, 4));
    assert_eq!((rs[1].opcode, rs[1].opaque), (op::NOOP, 5));
}

#[test]
fn ascii_and_binary_connections_share_the_cache() {
    let c = cache();
    run(&c, &[b"set k 3 0 2\r\nhi\r\n"]);
    let (out, _) = run(&c, &[&packet(op::GET, b"k", &[], &[], 1, 0)]);
    let rs = responses(&out);
    assert_eq!(
        (rs[0].extras.as_slice(), rs[0].value.as_slice()),
        (&3u32.to_be_bytes()[..], &b"hi"[..])
    );
}

#[test]
fn stats_are_the_same_however_the_bytes_are_split() {
    // Found by the fuzzer: byte counters once moved per read, so `stats`
    // said different things for the same requests split differently.
    let mut input = b"set a 0 0 1\r\nx\r\nget a\r\nstats\r\n".to_vec();
    input.extend(packet(op::STAT, b"", &[], &[], 1, 0));
    // A request's bytes count once it is executed: the second `stats`
    // sees the first.
    let whole = text(&run(&cache(), &[b"stats\r\nstats\r\n"]).0);
    let second = whole.split("END\r\n").nth(1).unwrap();
    assert!(second.contains("STAT bytes_read 7\r\n"), "{second}");
    assert!(!second.contains("STAT bytes_written 0\r\n"), "{second}");
    // One session per protocol: the ASCII part, then the binary part.
    let (ascii, bin) = input.split_at(input.len() - 24);
    for part in [ascii, bin] {
        let want = run(&cache(), &[part]).0;
        for cut in 1..part.len() {
            let (a, b) = part.split_at(cut);
            assert_eq!(run(&cache(), &[a, b]).0, want, "split at byte {cut}");
        }
    }
}

/// Stored-value bytes that `hits` GET replies in `chain` copied: the bytes
/// of `hits` copies of `stored` that the chain does not carry as views of
/// the stored buffer itself.
fn copied_value_bytes(chain: &IoBufChain, stored: &IoBuf, hits: usize) -> usize {
    let start = stored.as_ptr() as usize;
    let end = start + stored.len();
    let shared: usize = chain
        .buffers()
        .filter(|b| {
            let p = b.as_ptr() as usize;
            start <= p && p + b.len() <= end
        })
        .map(|b| b.len())
        .sum();
    (hits * stored.len()).saturating_sub(shared)
}

/// Every protocol's GET hits on `c` send the stored value as the store's
/// own buffer: 0 value bytes copied per hit at the application level.
fn check_gets_copy_no_value_byte(c: &Cache) {
    let value: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut set = b"set k 5 0 3000\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    let mut s = Session::new(c);
    let mut out = Response::new();
    s.feed(&set, &mut out);
    assert_eq!(out.to_vec(), b"STORED\r\n");
    out.take();
    let peek = GetOptions {
        no_bump: true,
        ..GetOptions::default()
    };
    let stored = c.store().get(b"k", T0, peek).unwrap().value;
    assert_eq!(stored, value[..]);
    let gat = 0u32.to_be_bytes();
    let bin = |opcode| packet(opcode, b"k", &[], &[], 7, 0);
    let bin_gat = |opcode| packet(opcode, b"k", &gat, &[], 7, 0);
    let cases: Vec<(&str, Vec<u8>, usize)> = alloc::vec![
        ("get", b"get k\r\n".to_vec(), 1),
        ("get k k", b"get k nope k\r\n".to_vec(), 2),
        ("gets", b"gets k\r\n".to_vec(), 1),
        ("gat", b"gat 0 k\r\n".to_vec(), 1),
        ("gats", b"gats 0 k k\r\n".to_vec(), 2),
        ("mg v", b"mg k v f c\r\n".to_vec(), 1),
        ("binary GET", bin(op::GET), 1),
        ("binary GETQ", bin(op::GETQ), 1),
        ("binary GETK", bin(op::GETK), 1),
        ("binary GETKQ", bin(op::GETKQ), 1),
        ("binary GAT", bin_gat(op::GAT), 1),
        ("binary GATQ", bin_gat(op::GATQ), 1),
        ("binary GATK", bin_gat(op::GATK), 1),
        ("binary GATKQ", bin_gat(op::GATKQ), 1),
    ];
    for (name, req, hits) in cases {
        // A session of its own per protocol: the first byte fixes it.
        let mut s = Session::new(c);
        let mut out = Response::new();
        s.feed(&req, &mut out);
        // The same bytes as a copying sink gives.
        let mut copied = Vec::new();
        Session::new(c).feed(&req, &mut copied);
        assert_eq!(text(&out.to_vec()), text(&copied), "{name}");
        let chain = out.take();
        assert!(out.is_empty());
        assert_eq!(chain.to_vec(), copied, "{name}");
        assert_eq!(copied_value_bytes(&chain, &stored, hits), 0, "{name}");
        // The measurement sees copies where there are some.
        let flat = IoBufChain::from(IoBuf::from(copied));
        assert_eq!(
            copied_value_bytes(&flat, &stored, hits),
            hits * value.len(),
            "{name}"
        );
    }
}

#[test]
fn get_hits_send_the_stored_value_without_copying_it() {
    check_gets_copy_no_value_byte(&cache());
}
