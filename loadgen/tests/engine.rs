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
}

fn read_request(s: &mut TcpStream) -> BinRequest {
    let mut h = [0u8; 24];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[0], 0x80);
    let key_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let extras = usize::from(h[4]);
    let body = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let mut b = vec![0; body];
    s.read_exact(&mut b).unwrap();
    BinRequest {
        opcode: h[1],
        opaque: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        key: b[extras..extras + key_len].to_vec(),
    }
}

fn response(r: &BinRequest, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x81, r.opcode];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(extras.len() as u8);
    v.extend_from_slice(&[0, 0, 0]);
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
