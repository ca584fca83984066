//! The event loop against small fake servers on loopback, for what a real
//! memcached never does: replies out of order, wrong values, a closed
//! connection, silence.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ebbrt_loadgen::dist::SizeDist;
use ebbrt_loadgen::engine::{self, Load, Stats};
use ebbrt_loadgen::payload::{KeySpace, Payload};
use ebbrt_loadgen::proto::Protocol;
use ebbrt_loadgen::schedule::Request;
use ebbrt_loadgen::verify::Ledger;

const KEYS: u32 = 5;

fn keys() -> Arc<KeySpace> {
    Arc::new(KeySpace::new(KEYS, &SizeDist::Fixed(6), 1))
}

fn load(addr: SocketAddr, depth: usize) -> Load {
    Load {
        addr,
        protocol: Protocol::Binary,
        threads: 1,
        depth,
        keys: keys(),
        payload: Arc::new(Payload {
            sizes: SizeDist::Fixed(24),
            max_len: 1000,
            seed: 1,
        }),
        ledger: Arc::new(Ledger::new(KEYS)),
        final_check: false,
    }
}

/// Ten requests due at once: a get and a set of each key.
fn schedule() -> Vec<Request> {
    (0..KEYS)
        .flat_map(|k| {
            [
                Request {
                    at_ns: 0,
                    key: k,
                    version: 0,
                },
                Request {
                    at_ns: 0,
                    key: k,
                    version: 9,
                },
            ]
        })
        .collect()
}

struct BinRequest {
    opcode: u8,
    opaque: u32,
    key: Vec<u8>,
    /// A set's flags (its version).
    flags: u32,
    value: Vec<u8>,
}

fn read_request(s: &mut TcpStream) -> BinRequest {
    try_read_request(s).expect("a whole request")
}

/// The next request, or `None` at the end of the stream.
fn try_read_request(s: &mut TcpStream) -> Option<BinRequest> {
    let mut h = [0u8; 24];
    s.read_exact(&mut h).ok()?;
    assert_eq!(h[0], 0x80);
    let key_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let extras = usize::from(h[4]);
    let body = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let mut b = vec![0; body];
    s.read_exact(&mut b).ok()?;
    Some(BinRequest {
        opcode: h[1],
        opaque: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        key: b[extras..extras + key_len].to_vec(),
        flags: if extras >= 4 {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            0
        },
        value: b[extras + key_len..].to_vec(),
    })
}

fn response(r: &BinRequest, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    response_with(r, 0, extras, key, value)
}

fn response_with(r: &BinRequest, status: u16, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x81, r.opcode];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(extras.len() as u8);
    v.push(0);
    v.extend_from_slice(&status.to_be_bytes());
    v.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    v.extend_from_slice(&r.opaque.to_be_bytes());
    v.extend_from_slice(&7u64.to_be_bytes());
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

/// A one-connection server running `serve` on what it accepts.
fn fake(serve: impl FnOnce(TcpStream) + Send + 'static) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (
        addr,
        std::thread::spawn(move || serve(l.accept().unwrap().0)),
    )
}

/// Reads all ten requests, then answers them last first; gets hit with
/// the generator's own value of version 3, except that `corrupt` gets a
/// changed byte.
fn reversed(corrupt: Option<u32>) -> impl FnOnce(TcpStream) + Send + 'static {
    move |mut s| {
        let ks = keys();
        let reqs: Vec<BinRequest> = (0..2 * KEYS).map(|_| read_request(&mut s)).collect();
        let mut out = Vec::new();
        for r in reqs.iter().rev() {
            if r.opcode == 0x01 {
                out.extend(response(r, &[], &[], &[]));
                continue;
            }
            let mut value = Vec::new();
            Payload::fill(&r.key, 3, 30, &mut value);
            if corrupt.is_some_and(|k| ks.key(k) == r.key.as_slice()) {
                value[20] ^= 1;
            }
            out.extend(response(r, &3u32.to_be_bytes(), &r.key, &value));
        }
        s.write_all(&out).unwrap();
        // Hold the connection until the generator is done with it.
        while s.read(&mut [0u8; 512]).is_ok_and(|n| n > 0) {}
    }
}

fn run(addr: SocketAddr, depth: usize, drain: Duration) -> Stats {
    engine::run(&load(addr, depth), vec![schedule()], Vec::new(), drain).unwrap()
}

#[test]
fn binary_replies_out_of_order_are_matched_by_opaque_and_verified() {
    let (addr, server) = fake(reversed(None));
    let s = run(addr, 10, Duration::from_secs(30));
    server.join().unwrap();
    assert_eq!(
        (s.sent, s.completed, s.gets, s.sets, s.hits),
        (10, 10, 5, 5, 5)
    );
    assert_eq!(s.errors(), 0, "{:?}", s.messages);
    assert_eq!(s.latency.len(), 10);
}

#[test]
fn a_corrupted_value_is_one_mismatch() {
    let (addr, server) = fake(reversed(Some(2)));
    let s = run(addr, 10, Duration::from_secs(30));
    server.join().unwrap();
    assert_eq!(s.completed, 10);
    assert_eq!(s.mismatches, 1);
    assert!(
        s.messages[0].contains("mismatch for key k00002"),
        "{:?}",
        s.messages
    );
}

#[test]
fn the_depth_limit_holds_requests_back() {
    // With depth 4 only four requests can be read before any reply: the
    // fake server, which waits for ten, never gets them, and the rest
    // stay unsent until the drain ends.
    let (addr, server) = fake(|mut s| {
        // Four requests: two gets (24 + 6 bytes) and two sets (24 + 8 + 6 + 24).
        let four = 2 * 30 + 2 * 62;
        let mut got = vec![0u8; four];
        s.read_exact(&mut got).unwrap();
        // Nothing more comes while they are unanswered…
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut more = [0u8; 1];
        let first = s.read(&mut more);
        assert!(
            !matches!(first, Ok(n) if n > 0),
            "a fifth request was written"
        );
        // …and the connection is held until the generator drops it (it may
        // already have, if this thread was slow to get here).
        if first.is_err() {
            s.set_read_timeout(None).unwrap();
            assert_eq!(s.read(&mut more).unwrap(), 0, "a fifth request was written");
        }
    });
    let s = run(addr, 4, Duration::from_millis(600));
    server.join().unwrap();
    assert_eq!(
        (s.sent, s.completed, s.unfinished, s.connection_errors),
        (4, 0, 10, 0)
    );
    // Every unfinished request is in the histogram, at the latency it reached.
    assert_eq!(s.latency.len(), 10);
    assert_eq!(s.errors(), 10);
}

#[test]
fn requests_held_by_a_full_window_are_the_servers_wait_not_send_lag() {
    // Depth 1 and a server that answers each request 20 ms after reading
    // it: of the ten requests due at once, the first is written at once
    // and the other nine wait for the window, one reply each.
    let (addr, server) = fake(|mut s| {
        while let Some(r) = try_read_request(&mut s) {
            std::thread::sleep(Duration::from_millis(20));
            let reply = if r.opcode == 0x01 {
                response(&r, &[], &[], &[])
            } else {
                response_with(&r, 1, &[], &[], b"Not found")
            };
            s.write_all(&reply).unwrap();
        }
    });
    let s = run(addr, 1, Duration::from_secs(30));
    server.join().unwrap();
    assert_eq!((s.sent, s.completed, s.errors()), (10, 10, 0));
    assert_eq!((s.send_lag.len(), s.window_wait.len()), (1, 9));
    // The last one waited for nine replies: at least 180 ms.
    assert!(
        s.window_wait.max() >= 180_000_000,
        "{}",
        s.window_wait.max()
    );
}

#[test]
fn a_closed_connection_is_an_error_and_its_requests_unfinished() {
    let (addr, server) = fake(drop);
    let s = run(addr, 10, Duration::from_secs(30));
    server.join().unwrap();
    assert_eq!(s.connection_errors, 1);
    assert_eq!(s.unfinished, 10);
    assert_eq!(s.completed, 0);
    // All ten were due at once, so all ten are in the histogram.
    assert_eq!(s.latency.len(), 10);
}

#[test]
fn bytes_that_are_no_reply_end_the_connection() {
    let (addr, server) = fake(|mut s| {
        read_request(&mut s);
        s.write_all(b"HELLO THERE, THIS IS NOT BINARY").unwrap();
        // Read until the generator closes, so no reset races the garbage.
        while s.read(&mut [0u8; 512]).is_ok_and(|n| n > 0) {}
    });
    let s = run(addr, 10, Duration::from_secs(30));
    server.join().unwrap();
    assert_eq!(s.connection_errors, 1);
    assert!(
        s.messages[0].contains("malformed binary reply"),
        "{:?}",
        s.messages
    );
}

#[test]
fn only_measurement_connections_record_latency() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let serving: Vec<_> = (0..2)
            .map(|_| {
                let s = l.accept().unwrap().0;
                std::thread::spawn(move || reversed(None)(s))
            })
            .collect();
        serving.into_iter().for_each(|h| h.join().unwrap());
    });
    let s = engine::run(
        &load(addr, 10),
        vec![schedule()],
        vec![schedule()],
        Duration::from_secs(30),
    )
    .unwrap();
    server.join().unwrap();
    assert_eq!((s.sent, s.completed, s.hits), (20, 20, 10));
    assert_eq!(s.errors(), 0, "{:?}", s.messages);
    // Ten replies were measured, on the measurement connection.
    assert_eq!(s.latency.len(), 10);
    assert_eq!(s.send_lag.len(), 10);
}

/// How the fake memcached below departs from memcached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// None: it stores what it is told and returns the newest value.
    Honest,
    /// A get returns the value a key had before its latest set (once it
    /// has had two), although that set was acknowledged.
    Stale,
    /// Sets of the key with this index are acknowledged and dropped.
    Drop(u32),
    /// The same, but each dropped set is counted as an eviction in its
    /// `stats`, as a full cache would.
    Evict(u32),
}

/// A stored value: (flags, bytes).
type Value = (u32, Vec<u8>);

#[derive(Default)]
struct Store {
    /// Key to its newest and previous values.
    items: std::collections::HashMap<Vec<u8>, (Value, Option<Value>)>,
    evictions: u64,
}

/// A small memcached speaking the binary protocol (GETK, SET, STAT) on
/// every connection it accepts, sharing one store, with `fault`.
fn fake_memcached(fault: Fault) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let store = Arc::new(std::sync::Mutex::new(Store::default()));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let store = store.clone();
            std::thread::spawn(move || serve_memcached(s.unwrap(), &store, fault));
        }
    });
    addr
}

fn index_of(key: &[u8]) -> Option<u32> {
    std::str::from_utf8(key.get(1..)?).ok()?.parse().ok()
}

fn serve_memcached(mut s: TcpStream, store: &std::sync::Mutex<Store>, fault: Fault) {
    while let Some(r) = try_read_request(&mut s) {
        let mut st = store.lock().unwrap();
        let out = match r.opcode {
            0x01 => {
                match fault {
                    Fault::Drop(k) | Fault::Evict(k) if index_of(&r.key) == Some(k) => {
                        st.items.remove(&r.key);
                        if matches!(fault, Fault::Evict(_)) {
                            st.evictions += 1;
                        }
                    }
                    _ => {
                        let new = (r.flags, r.value.clone());
                        let previous = st.items.remove(&r.key).map(|(newest, _)| newest);
                        st.items.insert(r.key.clone(), (new, previous));
                    }
                }
                response(&r, &[], &[], &[])
            }
            0x0c => match st.items.get(&r.key) {
                Some((newest, previous)) => {
                    let (flags, value) = match (fault, previous) {
                        (Fault::Stale, Some(old)) => old,
                        _ => newest,
                    };
                    response(&r, &flags.to_be_bytes(), &r.key, value)
                }
                None => response_with(&r, 1, &[], &r.key, b"Not found"),
            },
            0x10 => {
                let mut v = response(&r, &[], b"evictions", st.evictions.to_string().as_bytes());
                v.extend(response(&r, &[], &[], &[]));
                v
            }
            other => panic!("the fake memcached got opcode {other:#04x}"),
        };
        drop(st);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// Each key: set, set, get, one at a time (depth 1), so the get is sent
/// only after both sets were acknowledged.
fn serial_writes_then_reads() -> Vec<Request> {
    (0..KEYS)
        .flat_map(|key| {
            [1, 1, 0].map(|version| Request {
                at_ns: 0,
                key,
                version,
            })
        })
        .collect()
}

/// Runs `serial_writes_then_reads` against the fake, then the final
/// read-back: the run's and the read-back's stats.
fn run_and_read_back(fault: Fault) -> (Stats, Stats) {
    let load = load(fake_memcached(fault), 1);
    let d = Duration::from_secs(30);
    let run = engine::run(&load, vec![serial_writes_then_reads()], Vec::new(), d).unwrap();
    let check = Load {
        final_check: true,
        depth: 8,
        ..load
    };
    let all = (0..KEYS)
        .map(|key| Request {
            at_ns: 0,
            key,
            version: 0,
        })
        .collect();
    let back = engine::run(&check, vec![all], Vec::new(), d).unwrap();
    (run, back)
}

#[test]
fn an_honest_server_reads_back_every_acknowledged_write() {
    let (run, back) = run_and_read_back(Fault::Honest);
    assert_eq!((run.sets, run.gets, run.hits), (10, 5, 5));
    assert_eq!((run.stale, run.errors()), (0, 0), "{:?}", run.messages);
    assert_eq!((back.hits, back.lost, back.stale), (5, 0, 0));
    assert_eq!(back.errors(), 0, "{:?}", back.messages);
}

#[test]
fn an_older_version_after_an_acknowledged_set_is_stale() {
    let (run, back) = run_and_read_back(Fault::Stale);
    // Every get came after both sets of its key were acknowledged, and
    // got the first one's value: whole and verified, but stale.
    assert_eq!((run.hits, run.mismatches, run.stale), (5, 0, 5));
    assert_eq!(run.errors(), 5);
    assert!(
        run.messages[0]
            .contains("stale read of key k00000: version 1, versions below 2 were superseded"),
        "{:?}",
        run.messages
    );
    assert_eq!((back.hits, back.stale, back.lost), (5, 5, 0));
    assert!(
        back.messages[0].contains("expected one of [2]"),
        "{:?}",
        back.messages
    );
}

#[test]
fn an_acknowledged_write_that_vanished_is_lost() {
    let (run, back) = run_and_read_back(Fault::Drop(3));
    // During the run a miss could be an eviction: counted, not failed.
    assert_eq!((run.misses, run.stale, run.errors()), (1, 0, 0));
    assert_eq!(
        (back.hits, back.misses, back.lost, back.stale),
        (4, 1, 1, 0)
    );
    assert!(
        back.messages[0].contains("lost key k00003"),
        "{:?}",
        back.messages
    );
}

/// Runs the `loadgen` binary against `addr` with `args` (binary protocol,
/// JSON): its exit code and document.
fn loadgen(addr: SocketAddr, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--server",
            &addr.to_string(),
            "--protocol",
            "binary",
            "--json",
        ])
        .args(["--duration", "0.5s", "--qps", "400", "--drain", "20s"])
        .args(args)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), doc)
}

#[test]
fn the_binary_passes_against_an_honest_server() {
    let addr = fake_memcached(Fault::Honest);
    let (code, doc) = loadgen(
        addr,
        &[
            "--keys",
            "50",
            "--update",
            "0.5",
            "--connections",
            "4",
            "--threads",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["steps"][0]["stale"], 0, "{doc:#}");
    let f = &doc["final_check"];
    assert_eq!(
        (f["keys"].as_u64(), f["checked"].as_u64()),
        (Some(50), Some(50)),
        "{f:#}"
    );
    assert_eq!(
        (f["hits"].as_u64(), f["lost"].as_u64()),
        (Some(50), Some(0)),
        "{f:#}"
    );
    assert_eq!(
        (f["stale"].as_u64(), f["evictions"].as_u64()),
        (Some(0), Some(0)),
        "{f:#}"
    );
    assert_eq!(
        (&doc["stale"], &doc["lost"], &doc["ok"]),
        (&0.into(), &0.into(), &true.into())
    );
}

#[test]
fn the_binary_fails_on_stale_reads() {
    // One key, one connection, one request at a time: a get after a set
    // of the run is sent after its acknowledgement and sees the value the
    // preload wrote.
    let addr = fake_memcached(Fault::Stale);
    let one = ["--keys", "1", "--connections", "1", "--depth", "1"];
    let (code, doc) = loadgen(addr, &[&one[..], &["--update", "0.5"]].concat());
    assert_eq!(code, Some(1), "{doc:#}");
    assert!(doc["steps"][0]["stale"].as_u64().unwrap() > 0, "{doc:#}");
    assert_eq!(doc["steps"][0]["mismatches"], 0, "{doc:#}");
    assert_eq!(doc["final_check"]["stale"], 1, "{doc:#}");
    assert_eq!(doc["ok"], false);
    // Only sets in the run: the final read-back alone catches it…
    let addr = fake_memcached(Fault::Stale);
    let (code, doc) = loadgen(addr, &[&one[..], &["--update", "1"]].concat());
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(doc["steps"][0]["stale"], 0, "{doc:#}");
    assert_eq!(doc["final_check"]["stale"], 1, "{doc:#}");
    // …and without it the run passes.
    let addr = fake_memcached(Fault::Stale);
    let (code, doc) = loadgen(
        addr,
        &[&one[..], &["--update", "1", "--no-verify-final"]].concat(),
    );
    assert_eq!(code, Some(0), "{doc:#}");
    assert!(doc["final_check"].is_null());
}

#[test]
fn the_binary_fails_on_a_lost_key_unless_an_eviction_explains_it() {
    let args = ["--keys", "10", "--update", "0", "--connections", "2"];
    let (code, doc) = loadgen(fake_memcached(Fault::Drop(3)), &args);
    assert_eq!(code, Some(1), "{doc:#}");
    let f = &doc["final_check"];
    assert_eq!(
        (f["hits"].as_u64(), f["lost"].as_u64()),
        (Some(9), Some(1)),
        "{f:#}"
    );
    assert_eq!(
        (&f["evictions"], &f["ok"]),
        (&0.into(), &false.into()),
        "{f:#}"
    );
    assert_eq!(doc["lost"], 1);
    // The same loss with one eviction counted: reported, not failed.
    let (code, doc) = loadgen(fake_memcached(Fault::Evict(3)), &args);
    assert_eq!(code, Some(0), "{doc:#}");
    let f = &doc["final_check"];
    assert_eq!(
        (f["lost"].as_u64(), f["evictions"].as_u64()),
        (Some(1), Some(1)),
        "{f:#}"
    );
    assert_eq!(f["lost_explained_by_evictions"], true, "{f:#}");
}
