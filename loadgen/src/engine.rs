//! The event loop: each thread drives its share of the connections with
//! one `epoll` instance (through mio) and one `timerfd` that wakes it at
//! the next scheduled send with nanosecond resolution.
//!
//! A request is written when its scheduled time has come and its
//! connection has fewer than `depth` requests outstanding; when the depth
//! is reached, later requests wait, and that wait counts in their latency,
//! which always runs from the scheduled time. After the schedule's horizon
//! the loop waits up to a drain time for outstanding replies; whatever is
//! still unanswered or unsent then is counted as unfinished and recorded
//! with the latency it had reached, so an overloaded server cannot shed its
//! worst requests from the histogram.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

use crate::payload::{KeySpace, Mismatch, Payload};
use crate::proto::{self, Kind, Protocol, Reply};
use crate::schedule::Request;
use crate::verify::{Final, Ledger, Verdict};

/// Closer than this to the next send, the loop polls without sleeping: a
/// timer would cost more than it saves.
const SPIN_NS: u64 = 20_000;
/// Error messages kept for the report.
const KEPT_MESSAGES: usize = 8;
const TIMER: Token = Token(usize::MAX);

/// What every thread of a run shares.
#[derive(Clone, Debug)]
pub struct Load {
    /// The server.
    pub addr: SocketAddr,
    /// The wire protocol.
    pub protocol: Protocol,
    /// Threads to spread the connections over.
    pub threads: usize,
    /// Most requests outstanding on one connection.
    pub depth: usize,
    /// The keys.
    pub keys: Arc<KeySpace>,
    /// The values.
    pub payload: Arc<Payload>,
    /// Which versions each key may hold: shared by every run of the
    /// process, so that sets of the preload and of earlier steps count.
    pub ledger: Arc<Ledger>,
    /// Whether this run is the final read-back: its gets judge each key
    /// against the ledger's final state (a miss of a written key is lost).
    pub final_check: bool,
}

/// Counts and histograms of one run (or one thread's part of it).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Nanoseconds from each request's scheduled time to its reply (on the
    /// connections that record).
    pub latency: Histogram<u64>,
    /// Nanoseconds from each request's scheduled time to its write, for
    /// the requests that were not held back by a full pipelining window:
    /// how far the generator itself fell behind (on the same connections).
    pub send_lag: Histogram<u64>,
    /// The same for the requests that became due while their
    /// connection already had `depth` requests outstanding: they waited
    /// for the server, not for the generator.
    pub window_wait: Histogram<u64>,
    /// Requests in the schedules.
    pub scheduled: u64,
    /// Requests written.
    pub sent: u64,
    /// Replies received.
    pub completed: u64,
    /// Gets written.
    pub gets: u64,
    /// Sets written.
    pub sets: u64,
    /// Gets that found their key.
    pub hits: u64,
    /// Gets that did not.
    pub misses: u64,
    /// Sets refused without an error.
    pub not_stored: u64,
    /// Error replies (`SERVER_ERROR`, binary error statuses, …).
    pub error_replies: u64,
    /// Connections lost: refused, closed, or sent bytes that are no reply.
    pub connection_errors: u64,
    /// Requests unanswered (or unsent) when the run ended.
    pub unfinished: u64,
    /// Values read back that this generator did not write for that key.
    pub mismatches: u64,
    /// Hits that verified but carried a version older than a write
    /// acknowledged before the get was sent (see [`crate::verify`]).
    pub stale: u64,
    /// In the final read-back, misses of keys with an acknowledged write.
    pub lost: u64,
    /// When the last reply arrived, nanoseconds after the start.
    pub last_reply_ns: u64,
    /// The first few error messages.
    pub messages: Vec<String>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 1 hour at 3 significant digits; larger values saturate.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("constant histogram bounds are valid")
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            send_lag: histogram(),
            window_wait: histogram(),
            scheduled: 0,
            sent: 0,
            completed: 0,
            gets: 0,
            sets: 0,
            hits: 0,
            misses: 0,
            not_stored: 0,
            error_replies: 0,
            connection_errors: 0,
            unfinished: 0,
            mismatches: 0,
            stale: 0,
            lost: 0,
            last_reply_ns: 0,
            messages: Vec::new(),
        }
    }
}

impl Stats {
    /// Adds another thread's numbers to these.
    pub fn merge(&mut self, o: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        self.latency
            .add(&o.latency)
            .expect("histograms share bounds");
        self.send_lag
            .add(&o.send_lag)
            .expect("histograms share bounds");
        self.window_wait
            .add(&o.window_wait)
            .expect("histograms share bounds");
        self.scheduled += o.scheduled;
        self.sent += o.sent;
        self.completed += o.completed;
        self.gets += o.gets;
        self.sets += o.sets;
        self.hits += o.hits;
        self.misses += o.misses;
        self.not_stored += o.not_stored;
        self.error_replies += o.error_replies;
        self.connection_errors += o.connection_errors;
        self.unfinished += o.unfinished;
        self.mismatches += o.mismatches;
        self.stale += o.stale;
        self.lost += o.lost;
        self.last_reply_ns = self.last_reply_ns.max(o.last_reply_ns);
        for m in &o.messages {
            self.note(m.clone());
        }
    }

    /// Everything that makes a run fail: error replies, lost connections,
    /// unanswered requests, mismatches and stale reads. (Lost keys are
    /// judged apart, against the server's evictions.)
    pub fn errors(&self) -> u64 {
        self.error_replies + self.connection_errors + self.unfinished + self.mismatches + self.stale
    }

    fn note(&mut self, m: String) {
        if self.messages.len() < KEPT_MESSAGES {
            self.messages.push(m);
        }
    }
}

struct Pending {
    at_ns: u64,
    key: u32,
    set: bool,
    opaque: u32,
    /// A set's version; 0 for a get.
    version: u32,
    /// A get's floor when it was sent, or a set's mark for
    /// [`Ledger::stored`].
    mark: u32,
}

struct Conn {
    stream: mio::net::TcpStream,
    schedule: Vec<Request>,
    next: usize,
    inflight: VecDeque<Pending>,
    out: Vec<u8>,
    out_at: usize,
    input: Vec<u8>,
    in_at: usize,
    opaque: u32,
    dead: bool,
    /// Whether its latencies (and send lag) go into the histograms.
    record: bool,
    /// Since when `depth` requests have been outstanding, while they are.
    full_from: Option<u64>,
    /// The last interval (from, to) in which the window was full; a
    /// request due inside it was held back by the server, not the
    /// generator. Empty (from > to) at first.
    last_full: (u64, u64),
}

/// What a connection's handlers need besides the connection.
struct Ctx<'a> {
    load: &'a Load,
    start: Instant,
    stats: Stats,
    scratch: Vec<u8>,
    chunk: Vec<u8>,
}

impl Ctx<'_> {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

impl Conn {
    fn finished(&self) -> bool {
        self.dead || (self.next == self.schedule.len() && self.inflight.is_empty())
    }

    /// When the next request may be written, if it waits only for time.
    fn next_due(&self, depth: usize) -> Option<u64> {
        let r = self.schedule.get(self.next)?;
        (!self.dead && self.inflight.len() < depth).then_some(r.at_ns)
    }

    fn issue(&mut self, now: u64, depth: usize, cx: &mut Ctx<'_>) {
        if let Some(from) = self.full_from
            && self.inflight.len() < depth
        {
            self.last_full = (from, now);
            self.full_from = None;
        }
        while let Some(r) = self.schedule.get(self.next) {
            if r.at_ns > now || self.inflight.len() >= depth {
                break;
            }
            self.next += 1;
            self.opaque = self.opaque.wrapping_add(1);
            let key = cx.load.keys.key(r.key);
            // The schedule only says get or set; a set's version comes from
            // the key's counter now, and a get's floor is what was
            // acknowledged before it is written.
            let (version, mark) = if r.is_set() {
                let (version, mark) = cx.load.ledger.issue_set(r.key);
                let len = cx.load.payload.len_for(r.key, version) as usize;
                cx.scratch.clear();
                Payload::fill(key, version, len, &mut cx.scratch);
                proto::encode_set(
                    cx.load.protocol,
                    key,
                    version,
                    &cx.scratch,
                    self.opaque,
                    &mut self.out,
                );
                cx.stats.sets += 1;
                (version, mark)
            } else {
                let floor = cx.load.ledger.floor(r.key);
                proto::encode_get(cx.load.protocol, key, self.opaque, &mut self.out);
                cx.stats.gets += 1;
                (0, floor)
            };
            cx.stats.sent += 1;
            if self.record {
                let lag = (now - r.at_ns).max(1);
                let (from, to) = self.last_full;
                if (from..=to).contains(&r.at_ns) {
                    cx.stats.window_wait.saturating_record(lag);
                } else {
                    cx.stats.send_lag.saturating_record(lag);
                }
            }
            let due = r.at_ns;
            self.inflight.push_back(Pending {
                at_ns: due,
                key: r.key,
                set: r.is_set(),
                opaque: self.opaque,
                version,
                mark,
            });
            // Full from this request's due time on: a request due after
            // it waits for a reply, whenever the generator got to it.
            if self.inflight.len() >= depth && self.full_from.is_none() {
                self.full_from = Some(due);
            }
        }
    }

    fn flush(&mut self, cx: &mut Ctx<'_>, poll: &Poll) {
        while self.out_at < self.out.len() {
            match self.stream.write(&self.out[self.out_at..]) {
                Ok(0) => return self.fail("the connection closed while writing".into(), cx, poll),
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(format!("write: {e}"), cx, poll),
            }
        }
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
    }

    fn read(&mut self, cx: &mut Ctx<'_>, poll: &Poll) {
        // A server may answer and then close (or reset): what arrived
        // before the end is decoded first.
        let mut ended = None;
        loop {
            match self.stream.read(&mut cx.chunk) {
                Ok(0) => {
                    ended = Some("the server closed the connection".to_string());
                    break;
                }
                Ok(n) => self.input.extend_from_slice(&cx.chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ended = Some(format!("read: {e}"));
                    break;
                }
            }
        }
        let now = cx.now();
        loop {
            let reply = match proto::decode(cx.load.protocol, &self.input[self.in_at..]) {
                Ok(None) => break,
                Ok(Some((reply, used))) => {
                    self.in_at += used;
                    reply
                }
                Err(e) => return self.fail(e.to_string(), cx, poll),
            };
            if let Err(e) = complete(&mut self.inflight, cx, reply, now, self.record) {
                return self.fail(e, cx, poll);
            }
        }
        if self.in_at == self.input.len() {
            self.input.clear();
            self.in_at = 0;
        } else if self.in_at > self.input.len() / 2 {
            self.input.drain(..self.in_at);
            self.in_at = 0;
        }
        if let Some(why) = ended {
            self.fail(why, cx, poll);
        }
    }

    fn fail(&mut self, why: String, cx: &mut Ctx<'_>, poll: &Poll) {
        if self.dead {
            return;
        }
        self.dead = true;
        cx.stats.connection_errors += 1;
        cx.stats.unfinished += (self.inflight.len() + self.schedule.len() - self.next) as u64;
        cx.stats.note(why);
        // Requests that were due have waited until now: recorded so, as at
        // the end of a run. Those not yet due never had a latency.
        let now = cx.now();
        let due = self
            .inflight
            .iter()
            .map(|p| p.at_ns)
            .chain(self.schedule[self.next..].iter().map(|r| r.at_ns));
        for at in due.take_while(|&at| self.record && at <= now) {
            cx.stats.latency.saturating_record((now - at).max(1));
        }
        self.inflight.clear();
        self.next = self.schedule.len();
        // Deregistering a socket that is still open cannot fail in a way
        // that matters: it is dropped with the thread.
        let _ = poll.registry().deregister(&mut self.stream);
    }
}

/// Matches a reply to its request, records it and checks it.
fn complete(
    inflight: &mut VecDeque<Pending>,
    cx: &mut Ctx<'_>,
    reply: Reply<'_>,
    now: u64,
    record: bool,
) -> Result<(), String> {
    let index = match (cx.load.protocol, reply.opaque) {
        (Protocol::Ascii, _) | (Protocol::Meta, None) => (!inflight.is_empty()).then_some(0),
        (_, Some(o)) => inflight.iter().position(|p| p.opaque == o),
        (Protocol::Binary, None) => None,
    };
    let Some(p) = index.and_then(|i| inflight.remove(i)) else {
        return Err(format!(
            "a reply ({:?}, opaque {:?}) to no outstanding request",
            reply.kind, reply.opaque
        ));
    };
    let stats = &mut cx.stats;
    stats.completed += 1;
    stats.last_reply_ns = stats.last_reply_ns.max(now);
    if record {
        stats
            .latency
            .saturating_record(now.saturating_sub(p.at_ns).max(1));
    }
    let key = cx.load.keys.key(p.key);
    match (p.set, reply.kind) {
        (false, Kind::Hit) => {
            stats.hits += 1;
            let checked = match reply.key {
                Some(k) if k != key => Err(Mismatch::WrongKey),
                _ => Payload::verify(key, reply.flags, reply.data),
            };
            let ledger = &cx.load.ledger;
            let stale = match checked {
                Err(m) => {
                    stats.mismatches += 1;
                    stats.note(format!(
                        "mismatch for key {}: {m}",
                        String::from_utf8_lossy(key)
                    ));
                    false
                }
                Ok(()) if cx.load.final_check => {
                    ledger.final_verdict(p.key, Some(reply.flags)) == Final::Stale
                }
                Ok(()) => ledger.verdict(p.key, p.mark, reply.flags) == Verdict::Stale,
            };
            if stale {
                stats.stale += 1;
                let when = if cx.load.final_check {
                    format!("expected one of {:?}", ledger.expected(p.key))
                } else if reply.flags < p.mark {
                    format!(
                        "versions below {} were superseded by a write acknowledged before the get was sent",
                        p.mark
                    )
                } else {
                    "a version this process never issued".to_string()
                };
                stats.note(format!(
                    "stale read of key {}: version {}, {when}",
                    String::from_utf8_lossy(key),
                    reply.flags
                ));
            }
        }
        (false, Kind::Miss) => {
            stats.misses += 1;
            if cx.load.final_check && cx.load.ledger.final_verdict(p.key, None) == Final::Lost {
                stats.lost += 1;
                stats.note(format!(
                    "lost key {}: a miss, but version(s) {:?} were acknowledged",
                    String::from_utf8_lossy(key),
                    cx.load.ledger.expected(p.key)
                ));
            }
        }
        (true, Kind::Stored) => cx.load.ledger.stored(p.key, p.version, p.mark),
        (true, Kind::NotStored) => {
            stats.not_stored += 1;
            cx.load.ledger.refused(p.key, p.version);
        }
        (_, Kind::Error) => {
            stats.error_replies += 1;
            if p.set {
                cx.load.ledger.refused(p.key, p.version);
            }
            let what = if p.set { "set" } else { "get" };
            stats.note(format!(
                "{what} of {}: {}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(reply.message)
            ));
        }
        (set, kind) => {
            let what = if set { "set" } else { "get" };
            return Err(format!("a {kind:?} reply to a {what}"));
        }
    }
    Ok(())
}

/// Opens `n` connections to the server, non-blocking, without Nagle.
pub fn connect(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpStream>> {
    (0..n)
        .map(|_| {
            let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect()
}

/// A connection, its schedule, and whether it records latencies.
type Share = (std::net::TcpStream, Vec<Request>, bool);

/// Runs one schedule per connection, then waits at most `drain` after the
/// last scheduled request for replies.
///
/// With `measured` empty, every connection's latencies are recorded.
/// Otherwise only those of the `measured` schedules are, on a thread of
/// their own (mutilate's low-rate measurement connections): the load
/// connections then only push the server, and neither their queueing nor
/// their threads' lateness enters the histograms.
pub fn run(
    load: &Load,
    schedules: Vec<Vec<Request>>,
    measured: Vec<Vec<Request>>,
    drain: Duration,
) -> io::Result<Stats> {
    let n_load = schedules.len();
    let streams = connect(load.addr, n_load + measured.len())?;
    let threads = load.threads.clamp(1, n_load.max(1));
    let record_all = measured.is_empty();
    let mut shares: Vec<Vec<Share>> = (0..threads + usize::from(!record_all))
        .map(|_| Vec::new())
        .collect();
    let all = schedules.into_iter().chain(measured);
    for (i, (stream, schedule)) in streams.into_iter().zip(all).enumerate() {
        if i < n_load {
            shares[i % threads].push((stream, schedule, record_all));
        } else {
            shares[threads].push((stream, schedule, true));
        }
    }
    let horizon = shares
        .iter()
        .flatten()
        .filter_map(|(_, s, _)| s.last())
        .map(|r| r.at_ns)
        .max()
        .unwrap_or(0);
    // Every thread starts its clock at the same instant, a little after
    // all of them exist.
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = horizon + drain.as_nanos() as u64;
    let results: Vec<io::Result<Stats>> = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| s.spawn(move || run_thread(load, share, start, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a load thread panicked"))
            .collect()
    });
    let mut total = Stats::default();
    for r in results {
        total.merge(&r?);
    }
    Ok(total)
}

fn run_thread(load: &Load, share: Vec<Share>, start: Instant, deadline: u64) -> io::Result<Stats> {
    // The kernel may fire a timer up to the thread's slack late (50 µs by
    // default), which would be send lag of our own making. Where it cannot
    // be changed the lag column shows the cost, so the error is ignored.
    let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let timer = rustix::time::timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    let timer_fd = timer.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&timer_fd), TIMER, Interest::READABLE)?;
    let mut cx = Ctx {
        load,
        start,
        stats: Stats::default(),
        scratch: Vec::new(),
        chunk: vec![0; 256 << 10],
    };
    let mut conns = Vec::with_capacity(share.len());
    for (i, (stream, schedule, record)) in share.into_iter().enumerate() {
        let mut stream = mio::net::TcpStream::from_std(stream);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        cx.stats.scheduled += schedule.len() as u64;
        conns.push(Conn {
            stream,
            schedule,
            next: 0,
            inflight: VecDeque::new(),
            out: Vec::new(),
            out_at: 0,
            input: Vec::new(),
            in_at: 0,
            opaque: 0,
            dead: false,
            record,
            full_from: None,
            last_full: (1, 0),
        });
    }
    if let Some(wait) = start.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    loop {
        let now = cx.now();
        let mut wake = deadline;
        let mut busy = false;
        for c in conns.iter_mut().filter(|c| !c.dead) {
            c.issue(now, load.depth, &mut cx);
            if c.out_at < c.out.len() {
                c.flush(&mut cx, &poll);
            }
            if let Some(t) = c.next_due(load.depth) {
                wake = wake.min(t);
            }
            busy |= !c.finished();
        }
        if !busy || now >= deadline {
            break;
        }
        let timeout = if wake <= now + SPIN_NS {
            Duration::ZERO
        } else {
            let wait = wake - now;
            let at = Timespec {
                tv_sec: (wait / 1_000_000_000) as i64,
                tv_nsec: (wait % 1_000_000_000) as _,
            };
            let spec = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: at,
            };
            rustix::time::timerfd_settime(&timer, TimerfdTimerFlags::empty(), &spec)?;
            // The timer wakes the poll; the timeout is only a backstop.
            Duration::from_nanos(wait) + Duration::from_millis(2)
        };
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in events.iter() {
            if ev.token() == TIMER {
                let mut expirations = [0u8; 8];
                // Nothing to read means the timer was re-armed since it fired.
                let _ = rustix::io::read(&timer, &mut expirations);
                continue;
            }
            let c = &mut conns[ev.token().0];
            if c.dead {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.read(&mut cx, &poll);
            }
            if ev.is_writable() && !c.dead {
                c.flush(&mut cx, &poll);
            }
        }
    }
    // What is left waited at least until now: record it so, and count it.
    let now = cx.now();
    let mut left = 0;
    for c in conns.iter().filter(|c| !c.dead) {
        let waiting = c
            .inflight
            .iter()
            .map(|p| p.at_ns)
            .chain(c.schedule[c.next..].iter().map(|r| r.at_ns));
        for at in waiting {
            left += 1;
            if c.record {
                cx.stats
                    .latency
                    .saturating_record(now.saturating_sub(at).max(1));
            }
        }
    }
    if left > 0 {
        cx.stats.unfinished += left;
        cx.stats
            .note(format!("{left} requests unanswered when the run ended"));
    }
    Ok(cx.stats)
}

/// Reads the server's general statistics on a connection of its own, in
/// `protocol` (`stats` for the text protocols, a binary STAT otherwise),
/// and returns the named one, or `None` if the server does not report it.
pub fn server_stat(addr: SocketAddr, protocol: Protocol, name: &str) -> io::Result<Option<u64>> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("stats: {what}"));
    match protocol {
        Protocol::Ascii | Protocol::Meta => {
            s.write_all(b"stats\r\n")?;
            loop {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(bad("the connection closed"));
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.ends_with(b"END\r\n") || buf.ends_with(b"ERROR\r\n") {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&buf);
            Ok(text.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some("STAT") && f.next() == Some(name))
                    .then(|| f.next()?.parse().ok())
                    .flatten()
            }))
        }
        Protocol::Binary => {
            let mut req = [0u8; 24];
            req[0] = 0x80;
            req[1] = 0x10;
            s.write_all(&req)?;
            let mut found = None;
            let mut at = 0;
            loop {
                while buf.len() - at < 24 {
                    let n = s.read(&mut chunk)?;
                    if n == 0 {
                        return Err(bad("the connection closed"));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let h = &buf[at..at + 24];
                if h[0] != 0x81 || h[1] != 0x10 {
                    return Err(bad("not a STAT reply"));
                }
                let key_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
                let extras = usize::from(h[4]);
                let status = u16::from_be_bytes([h[6], h[7]]);
                let body = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
                if key_len + extras > body || body > 1 << 20 {
                    return Err(bad("a malformed STAT reply"));
                }
                while buf.len() - at < 24 + body {
                    let n = s.read(&mut chunk)?;
                    if n == 0 {
                        return Err(bad("the connection closed"));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let b = &buf[at + 24..at + 24 + body];
                at += 24 + body;
                if status != 0 {
                    return Ok(None);
                }
                if key_len == 0 {
                    return Ok(found);
                }
                let (key, value) = (&b[extras..extras + key_len], &b[extras + key_len..]);
                if key == name.as_bytes() {
                    found = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                }
            }
        }
    }
}
