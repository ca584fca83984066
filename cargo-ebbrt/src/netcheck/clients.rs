//! The TCP and UDP clients of the checks, over ordinary sockets (in the
//! caller's network namespace): a bulk echo compared byte for byte and by
//! CRC-32, many short connections in a row, many at once, more connections
//! than the guest admits, UDP round trips, and the echo example's counters
//! query.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// How long one socket operation may block before the check fails.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The query the echo example answers with its counters.
pub const STATS_QUERY: &[u8] = b"ebbrt-echo:stats";

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
#[derive(Clone)]
pub struct Crc32 {
    table: [u32; 256],
    value: u32,
}

impl Crc32 {
    /// A CRC of nothing yet.
    pub fn new() -> Crc32 {
        let mut table = [0u32; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *t = c;
        }
        Crc32 {
            table,
            value: 0xffff_ffff,
        }
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.value;
        for &b in data {
            c = self.table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        self.value = c;
    }

    /// The CRC of everything added.
    pub fn value(&self) -> u32 {
        !self.value
    }
}

/// The bytes of the bulk stream: 64 KiB chunks cut from a random block,
/// each starting with its own index, so that lost, repeated or reordered
/// chunks show as well as flipped bits.
pub struct Stream {
    block: Vec<u8>,
}

/// The size of one chunk of [`Stream`].
pub const CHUNK: usize = 64 * 1024;

impl Stream {
    /// A stream over a random block made from `seed`.
    pub fn new(seed: u64) -> Stream {
        let mut x = seed | 1;
        // An odd number of chunks plus a bit, so chunks shift against it.
        let mut block = vec![0u8; 17 * CHUNK + 4093];
        for b in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_le_bytes();
            b.copy_from_slice(&bytes[..b.len()]);
        }
        Stream { block }
    }

    /// Writes chunk `k` into `out` (`CHUNK` bytes).
    pub fn chunk(&self, k: u64, out: &mut [u8]) {
        let start = (k as usize * 4099) % (self.block.len() - CHUNK);
        out.copy_from_slice(&self.block[start..start + CHUNK]);
        out[..8].copy_from_slice(&k.to_le_bytes());
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|_| s.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("cannot set socket timeouts: {e}"))?;
    Ok(s)
}

/// Streams `total` bytes (a whole number of chunks) through the echo at
/// `addr`, writing and reading at once, and compares what comes back byte
/// for byte. Returns a summary (with the CRC-32 of the bytes sent).
pub fn bulk_echo(addr: SocketAddr, total: u64) -> Result<String, String> {
    let chunks = total.div_ceil(CHUNK as u64);
    let total = chunks * CHUNK as u64;
    let s = connect(addr)?;
    let stream = std::sync::Arc::new(Stream::new(0x5eed_0ebb));
    let start = Instant::now();
    let writer = {
        let mut w = s
            .try_clone()
            .map_err(|e| format!("cannot clone the socket: {e}"))?;
        let stream = stream.clone();
        std::thread::spawn(move || -> Result<u32, String> {
            let mut crc = Crc32::new();
            let mut buf = vec![0u8; CHUNK];
            for k in 0..chunks {
                stream.chunk(k, &mut buf);
                crc.update(&buf);
                w.write_all(&buf)
                    .map_err(|e| format!("writing at byte {}: {e}", k * CHUNK as u64))?;
            }
            w.shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown after writing: {e}"))?;
            Ok(crc.value())
        })
    };
    let mut got = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut want_k = u64::MAX;
    let mut error = None;
    loop {
        let n = match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                error = Some(format!("reading the echo at byte {got}: {e}"));
                break;
            }
        };
        // Compare against the stream, chunk by chunk.
        let mut at = 0;
        while at < n && error.is_none() {
            let pos = got + at as u64;
            let (k, off) = (pos / CHUNK as u64, (pos % CHUNK as u64) as usize);
            if k >= chunks {
                error = Some(format!("the echo is longer than the {total} bytes sent"));
                break;
            }
            if k != want_k {
                stream.chunk(k, &mut want);
                want_k = k;
            }
            let len = (CHUNK - off).min(n - at);
            if buf[at..at + len] != want[off..off + len] {
                let i = (0..len)
                    .find(|&i| buf[at + i] != want[off + i])
                    .unwrap_or(0);
                error = Some(format!(
                    "the echo differs from the stream at byte {}",
                    pos + i as u64
                ));
            }
            at += len;
        }
        got += n as u64;
        if error.is_some() {
            break;
        }
    }
    let elapsed = start.elapsed();
    // Unblocks the writer if the echo stopped taking bytes.
    let _ = s.shutdown(Shutdown::Both);
    let sent_crc = writer
        .join()
        .map_err(|_| "the writer thread panicked".to_string())?;
    if let Some(e) = error {
        return Err(e);
    }
    let sent_crc = sent_crc?;
    if got != total {
        return Err(format!("{got} bytes came back of the {total} sent"));
    }
    // Every byte matched the stream and all of them came back, so the
    // echo's CRC-32 is the writer's.
    let secs = elapsed.as_secs_f64();
    Ok(format!(
        "{} MiB each way in {secs:.1} s ({:.1} MB/s each way), byte for byte, CRC-32 {sent_crc:08x}",
        total >> 20,
        total as f64 / secs / 1e6,
    ))
}

/// One short connection: 4 bytes there and back, then both halves closed.
fn short_connection(addr: SocketAddr, i: u32) -> Result<(), String> {
    let mut s = connect(addr)?;
    s.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    s.write_all(&i.to_be_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut back = [0u8; 4];
    s.read_exact(&mut back).map_err(|e| format!("read: {e}"))?;
    if back != i.to_be_bytes() {
        return Err(format!("echoed {back:?}, not {:?}", i.to_be_bytes()));
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    match s.read(&mut back) {
        Ok(0) => Ok(()),
        Ok(_) => Err("bytes after the echo".into()),
        Err(e) => Err(format!("waiting for the server to close: {e}")),
    }
}

/// `n` connections one after another, each echoing 4 bytes and closing.
pub fn sequential(addr: SocketAddr, n: u32) -> Result<String, String> {
    let start = Instant::now();
    for i in 0..n {
        short_connection(addr, i).map_err(|e| format!("connection {i} of {n}: {e}"))?;
    }
    let t = start.elapsed();
    Ok(format!(
        "{n} connections in {:.1} s ({:.1} ms each)",
        t.as_secs_f64(),
        t.as_secs_f64() * 1e3 / f64::from(n)
    ))
}

/// `n` connections open at once, each echoing its own 64 bytes.
///
/// `burst`: all `n` connect at the same moment (one thread each), so that
/// their handshakes reach the server together. Otherwise they are opened
/// one after another, each proven established by a 1-byte echo before the
/// next (QEMU user networking accepts forwarded connections from a listen
/// queue of one, so a burst there measures its SYN retries, not the
/// guest), and then all are used at once.
pub fn concurrent(addr: SocketAddr, n: u32, burst: bool) -> Result<String, String> {
    let start = Instant::now();
    let mut socks = Vec::new();
    if burst {
        let results: Vec<Result<TcpStream, String>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..n).map(|_| scope.spawn(move || connect(addr))).collect();
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err("a connecting thread panicked".into()))
                })
                .collect()
        });
        for (i, r) in results.into_iter().enumerate() {
            socks.push(r.map_err(|e| format!("connection {i} of a burst of {n}: {e}"))?);
        }
    } else {
        for i in 0..n {
            let mut s =
                connect(addr).map_err(|e| format!("connection {i} ({} open): {e}", socks.len()))?;
            let mut one = [0xeeu8];
            s.write_all(&one)
                .and_then(|_| s.read_exact(&mut one))
                .map_err(|e| format!("connection {i}: first byte: {e}"))?;
            if one != [0xee] {
                return Err(format!("connection {i}: the first byte came back wrong"));
            }
            socks.push(s);
        }
    }
    let msg = |i: u32| -> Vec<u8> { i.to_be_bytes().repeat(16) };
    for (i, s) in socks.iter_mut().enumerate() {
        s.write_all(&msg(i as u32))
            .map_err(|e| format!("connection {i}: write: {e}"))?;
    }
    for (i, s) in socks.iter_mut().enumerate() {
        let mut back = vec![0u8; 64];
        s.read_exact(&mut back)
            .map_err(|e| format!("connection {i}: read: {e}"))?;
        if back != msg(i as u32) {
            return Err(format!("connection {i} got another connection's bytes"));
        }
    }
    for (i, s) in socks.iter_mut().enumerate() {
        s.shutdown(Shutdown::Write)
            .map_err(|e| format!("connection {i}: shutdown: {e}"))?;
        let mut rest = [0u8; 1];
        match s.read(&mut rest) {
            Ok(0) => {}
            Ok(_) => return Err(format!("connection {i}: bytes after the echo")),
            Err(e) => return Err(format!("connection {i}: waiting for the close: {e}")),
        }
    }
    let how = if burst {
        "connected in one burst"
    } else {
        "opened one by one"
    };
    Ok(format!(
        "{n} connections open at once ({how}), all echoed, in {:.1} s",
        start.elapsed().as_secs_f64()
    ))
}

/// Sends `msg` to `to` until the same bytes come back (up to `tries`
/// sends, `wait` apart); answers that repeat an earlier message are
/// ignored. `Ok(sends)` or why not.
fn udp_ask(
    sock: &UdpSocket,
    to: SocketAddr,
    msg: &[u8],
    earlier: impl Fn(&[u8]) -> bool,
    tries: u32,
    wait: Duration,
) -> Result<u32, String> {
    let mut buf = vec![0u8; 70_000];
    for send in 1..=tries {
        sock.send_to(msg, to).map_err(|e| format!("send: {e}"))?;
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| format!("timeout: {e}"))?;
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == to && &buf[..n] == msg => return Ok(send),
                Ok((n, from)) if from == to && earlier(&buf[..n]) => continue,
                Ok((n, from)) => {
                    return Err(format!(
                        "an unexpected {n}-byte answer from {from} to a {}-byte datagram",
                        msg.len()
                    ));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(format!("receive: {e}")),
            }
        }
    }
    Err(format!(
        "no echo of a {}-byte datagram after {tries} sends",
        msg.len()
    ))
}

fn datagram(i: u32, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|j| (j as u32 * 7 + i) as u8).collect();
    if len >= 4 {
        m[..4].copy_from_slice(&i.to_be_bytes());
    }
    m
}

/// What a flood of connections found: the connections the server
/// admitted (each has echoed a byte, all still open) and how many it
/// refused (reset at the handshake, or right after it).
pub struct Flood {
    /// The admitted connections, in the order they were opened.
    pub open: Vec<TcpStream>,
    /// Connections refused.
    pub refused: usize,
}

/// Opens `n` connections to the echo at `addr` one after another, keeping
/// every one the server admits open; a connection that is neither echoed
/// nor refused (a time-out, another error) fails the flood.
pub fn flood(addr: SocketAddr, n: usize) -> Result<Flood, String> {
    use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, UnexpectedEof};
    let mut f = Flood {
        open: Vec::new(),
        refused: 0,
    };
    for i in 0..n {
        let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(s) => s,
            Err(e) if e.kind() == ConnectionRefused => {
                f.refused += 1;
                continue;
            }
            Err(e) => return Err(format!("connection {i} ({} open): {e}", f.open.len())),
        };
        s.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|_| s.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| format!("cannot set socket timeouts: {e}"))?;
        let mut one = [i as u8];
        match (&s).write_all(&one).and_then(|_| (&s).read_exact(&mut one)) {
            Ok(()) if one == [i as u8] => f.open.push(s),
            Ok(()) => return Err(format!("connection {i}: the byte came back wrong")),
            Err(e) if matches!(e.kind(), ConnectionReset | UnexpectedEof) => f.refused += 1,
            Err(e) => return Err(format!("connection {i} ({} open): {e}", f.open.len())),
        }
    }
    Ok(f)
}

/// Sends `msg` on `s` and checks it comes back.
pub fn echo_on(s: &mut TcpStream, msg: &[u8]) -> Result<(), String> {
    s.write_all(msg).map_err(|e| format!("write: {e}"))?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).map_err(|e| format!("read: {e}"))?;
    if back != msg {
        return Err("the echo came back wrong".into());
    }
    Ok(())
}

/// `n` UDP round trips of sizes from 0 to 1472 bytes (the largest that
/// needs no IP fragments); each may be sent up to three times.
pub fn udp_round_trips(addr: SocketAddr, n: u32) -> Result<String, String> {
    let sock = UdpSocket::bind(if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
    const SIZES: [usize; 7] = [0, 1, 4, 64, 512, 1000, 1472];
    let start = Instant::now();
    let mut resent = 0;
    for i in 0..n {
        let len = SIZES[i as usize % SIZES.len()];
        let msg = datagram(i, len);
        let earlier = |b: &[u8]| {
            (0..i).any(|j| {
                let l = SIZES[j as usize % SIZES.len()];
                b.len() == l && b == datagram(j, l)
            })
        };
        let sends = udp_ask(&sock, addr, &msg, earlier, 3, Duration::from_secs(1))
            .map_err(|e| format!("datagram {i}: {e}"))?;
        resent += sends - 1;
    }
    Ok(format!(
        "{n} datagrams of 0 to 1472 bytes echoed in {:.1} s ({resent} sent again after a loss)",
        start.elapsed().as_secs_f64()
    ))
}

/// The echo example's counters: `key=value` words of its answer to
/// [`STATS_QUERY`].
pub fn stats(addr: SocketAddr) -> Result<BTreeMap<String, u64>, String> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("cannot bind: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("timeout: {e}"))?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..3 {
        sock.send_to(STATS_QUERY, addr)
            .map_err(|e| format!("cannot send the counters query: {e}"))?;
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        return parse_stats(&text);
    }
    Err("no answer to the counters query".into())
}

/// Parses `ebbrt-echo:stats k=v k=v ...`.
pub fn parse_stats(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut words = text.split_whitespace();
    if words.next() != Some("ebbrt-echo:stats") {
        return Err(format!("not an answer to the counters query: {text:?}"));
    }
    words
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("bad word {w:?} in {text:?}"))?;
            let v = v
                .parse()
                .map_err(|_| format!("bad number in {w:?} of {text:?}"))?;
            Ok((k.to_string(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.value(), 0xcbf4_3926);
        let mut parts = Crc32::new();
        parts.update(b"1234");
        parts.update(b"56789");
        assert_eq!(parts.value(), c.value());
    }

    #[test]
    fn stream_chunks_are_numbered_and_differ() {
        let s = Stream::new(1);
        let (mut a, mut b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        s.chunk(3, &mut a);
        s.chunk(3 + 17, &mut b);
        assert_eq!(a[..8], 3u64.to_le_bytes());
        assert_ne!(a[8..], b[8..]);
    }

    #[test]
    fn stats_answers_parse() {
        let m = parse_stats("ebbrt-echo:stats stacks=2 dropped=7").unwrap();
        assert_eq!(m["stacks"], 2);
        assert_eq!(m["dropped"], 7);
        assert!(parse_stats("hello stacks=2").is_err());
        assert!(parse_stats("ebbrt-echo:stats stacks").is_err());
        assert!(parse_stats("ebbrt-echo:stats stacks=x").is_err());
    }

    /// A loopback echo server (threads) for the clients' own tests.
    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let u = UdpSocket::bind(addr).unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while let Ok((n, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], from);
            }
        });
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                    let _ = s.shutdown(Shutdown::Write);
                });
            }
        });
        addr
    }

    #[test]
    fn the_clients_pass_against_a_correct_echo() {
        let addr = echo_server();
        bulk_echo(addr, 4 << 20).unwrap();
        sequential(addr, 50).unwrap();
        concurrent(addr, 30, false).unwrap();
        concurrent(addr, 30, true).unwrap();
        udp_round_trips(addr, 30).unwrap();
    }

    #[test]
    fn the_bulk_check_catches_a_corrupting_echo() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let mut at = 0usize;
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                // Flip one bit, far into the stream.
                if (at..at + n).contains(&300_001) {
                    buf[300_001 - at] ^= 4;
                }
                at += n;
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = s.shutdown(Shutdown::Write);
        });
        let e = bulk_echo(addr, 1 << 20).unwrap_err();
        assert_eq!(e, "the echo differs from the stream at byte 300001");
    }

    #[test]
    fn a_silent_udp_peer_fails_after_three_sends() {
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = udp_round_trips(quiet.local_addr().unwrap(), 1).unwrap_err();
        assert!(e.contains("after 3 sends"), "{e}");
    }
}
