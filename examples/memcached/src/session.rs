//! [`Session`]: one connection's protocol state — bytes in, replies out —
//! over the [`Cache`] every connection shares.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::sync::atomic::Ordering;

use ebbrt::IoBuf;

use crate::ascii::{self, Command, StoreVerb};
use crate::binary::{self, op, status};
use crate::clock::{Clock, expiry};
use crate::meta::{self, Flags, MetaCommand, MetaVerb};
use crate::response::Sink;
use crate::stats::{Stats, add, bump};
use crate::store::{
    ArithOutcome, ArithRequest, DeleteOptions, DeleteOutcome, GetOptions, ItemView, Mode, Store,
    StoreOutcome, StoreRequest, Win,
};

/// The server's settings (memcached's command-line options).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `-I`: the largest value, in bytes.
    pub item_size_max: usize,
    /// `-c`: the most connections served at once.
    pub max_connections: u64,
    /// `-t`: worker threads (here: cores serving connections).
    pub threads: u64,
    /// The process id reported by `stats` (0 natively: there is one
    /// application).
    pub pid: u64,
    /// The TCP port, for `stats settings`.
    pub port: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            item_size_max: 1 << 20,
            max_connections: 1024,
            threads: 1,
            pid: 0,
            port: 11211,
        }
    }
}

/// What every connection shares: the store, the clock, the settings and
/// the counters.
pub struct Cache {
    store: Box<dyn Store>,
    clock: Box<dyn Clock>,
    config: Config,
    stats: Stats,
    started: u64,
}

/// Whether the connection goes on after a [`Session::feed`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Send what was written, then close.
    Close,
}

/// What a connection that is over the limit is told before it is closed.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

impl Cache {
    /// A cache over `store` reading the time from `clock`.
    pub fn new(store: Box<dyn Store>, clock: Box<dyn Clock>, config: Config) -> Self {
        let started = clock.now();
        let stats = Stats::default();
        stats
            .max_connections
            .store(config.max_connections, Ordering::Relaxed);
        Cache {
            store,
            clock,
            config,
            stats,
            started,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Counts a new connection; `false` (and counted as rejected) when
    /// `-c` connections are already open: send [`TOO_MANY_CONNECTIONS`]
    /// and close. Pair a `true` with [`Cache::disconnect`].
    pub fn connect(&self) -> bool {
        let open = self.stats.curr_connections.fetch_add(1, Ordering::Relaxed) + 1;
        if open > self.config.max_connections {
            self.stats.curr_connections.fetch_sub(1, Ordering::Relaxed);
            bump(&self.stats.rejected_connections);
            return false;
        }
        bump(&self.stats.total_connections);
        true
    }

    /// Counts a connection's end.
    pub fn disconnect(&self) {
        self.stats.curr_connections.fetch_sub(1, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn expiry(&self, exptime: i64) -> Option<u64> {
        expiry(exptime, self.now(), self.started)
    }

    /// The general `stats` lines, name and value.
    pub fn stats_lines(&self) -> Vec<(&'static str, alloc::string::String)> {
        use alloc::string::ToString;
        let now = self.now();
        let s = self.store.stats();
        let mut v: Vec<(&'static str, alloc::string::String)> = alloc::vec![
            ("pid", self.config.pid.to_string()),
            ("uptime", now.saturating_sub(self.started).to_string()),
            ("time", now.to_string()),
            ("version", crate::VERSION.to_string()),
            ("pointer_size", (usize::BITS).to_string()),
            ("rusage_user", "0.000000".to_string()),
            ("rusage_system", "0.000000".to_string()),
        ];
        for (name, value) in self.stats.list() {
            v.push((name, value.to_string()));
        }
        v.extend([
            ("get_expired", s.get_expired.to_string()),
            ("get_flushed", s.get_flushed.to_string()),
            ("limit_maxbytes", s.limit_maxbytes.to_string()),
            ("accepting_conns", "1".to_string()),
            ("threads", self.config.threads.to_string()),
            ("bytes", s.bytes.to_string()),
            ("curr_items", s.curr_items.to_string()),
            ("total_items", s.total_items.to_string()),
            ("evictions", s.evictions.to_string()),
            ("reclaimed", s.reclaimed.to_string()),
        ]);
        v
    }

    /// `stats settings` lines.
    fn settings_lines(&self) -> Vec<(&'static str, alloc::string::String)> {
        use alloc::string::ToString;
        let s = self.store.stats();
        alloc::vec![
            ("maxbytes", s.limit_maxbytes.to_string()),
            ("maxconns", self.config.max_connections.to_string()),
            ("tcpport", self.config.port.to_string()),
            ("udpport", "0".to_string()),
            ("evictions", "on".to_string()),
            ("num_threads", self.config.threads.to_string()),
            ("cas_enabled", "yes".to_string()),
            ("item_size_max", self.config.item_size_max.to_string()),
            ("binding_protocol", "auto-negotiate".to_string()),
        ]
    }
}

/// The protocol a connection speaks, fixed by its first byte.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Proto {
    Ascii,
    Binary,
}

/// One connection: the bytes received but not yet a whole request, what
/// is left to swallow of a refused value, and the protocol.
pub struct Session<'c> {
    cache: &'c Cache,
    buf: Vec<u8>,
    swallow: usize,
    proto: Option<Proto>,
    closed: bool,
}

impl<'c> Session<'c> {
    /// A new connection's session (counting it is the caller's:
    /// [`Cache::connect`]).
    pub fn new(cache: &'c Cache) -> Self {
        Session {
            cache,
            buf: Vec::new(),
            swallow: 0,
            proto: None,
            closed: false,
        }
    }

    /// Takes the bytes the connection received, executes every whole
    /// request among them and appends the replies to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut impl Sink) -> Flow {
        if self.closed {
            return Flow::Close;
        }
        // The byte counters move per request, as each is executed, so
        // `stats` says the same however the bytes were split.
        if self.swallow > 0 {
            let n = self.swallow.min(data.len());
            self.swallow -= n;
            data = &data[n..];
            add(&self.cache.stats.bytes_read, n as u64);
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let mut flow = Flow::Continue;
        while pos < self.buf.len() {
            let proto = *self
                .proto
                .get_or_insert(if self.buf[pos] == binary::REQ_MAGIC {
                    Proto::Binary
                } else {
                    Proto::Ascii
                });
            let before = out.len();
            let taken = match proto {
                Proto::Ascii => self.ascii_step(pos, out),
                Proto::Binary => self.binary_step(pos, out),
            };
            let Some((len, swallow, f)) = taken else {
                break;
            };
            pos += len;
            // A refused value's bytes: those already here go now, the rest
            // as they arrive.
            let here = swallow.min(self.buf.len() - pos);
            pos += here;
            self.swallow = swallow - here;
            add(&self.cache.stats.bytes_read, (len + here) as u64);
            add(&self.cache.stats.bytes_written, (out.len() - before) as u64);
            if f == Flow::Close {
                flow = Flow::Close;
                self.closed = true;
                break;
            }
        }
        self.buf.drain(..pos);
        flow
    }

    /// One ASCII request from `pos`: `(bytes taken, bytes to swallow, flow)`,
    /// or `None` if it is not whole yet.
    fn ascii_step(&mut self, pos: usize, out: &mut impl Sink) -> Option<(usize, usize, Flow)> {
        let limits = ascii::Limits {
            item_size_max: self.cache.config.item_size_max,
        };
        match ascii::parse(&self.buf[pos..], &limits) {
            ascii::Step::Incomplete => None,
            ascii::Step::Close => Some((self.buf.len() - pos, 0, Flow::Close)),
            ascii::Step::Ready { cmd, len, swallow } => {
                let flow = execute_ascii(self.cache, cmd, out);
                Some((len, swallow, flow))
            }
        }
    }

    fn binary_step(&mut self, pos: usize, out: &mut impl Sink) -> Option<(usize, usize, Flow)> {
        match binary::parse(&self.buf[pos..], self.cache.config.item_size_max) {
            binary::Step::Incomplete => None,
            binary::Step::Close => Some((self.buf.len() - pos, 0, Flow::Close)),
            binary::Step::Refuse {
                header,
                status,
                swallow,
                close,
            } => {
                if status == status::E2BIG && matches!(header.opcode, op::SET | op::SETQ) {
                    // memcached drops the old value too, so no stale data
                    // outlives a failed set.
                    let key_at = pos + binary::HEADER_LEN + header.extlen as usize;
                    if let Some(key) = self.buf.get(key_at..key_at + header.keylen as usize) {
                        self.cache
                            .store
                            .delete(key, self.cache.now(), DeleteOptions::default());
                    }
                }
                bin_error(out, &header, status);
                let flow = if close { Flow::Close } else { Flow::Continue };
                Some((binary::HEADER_LEN, swallow, flow))
            }
            binary::Step::Ready { req, len } => {
                let flow = execute_binary(self.cache, &req, out);
                Some((len, 0, flow))
            }
        }
    }
}

fn line(out: &mut impl Sink, s: &[u8]) {
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

fn reply(out: &mut impl Sink, noreply: bool, s: &str) {
    if !noreply {
        line(out, s.as_bytes());
    }
}

fn stats_reply(cache: &Cache, group: Option<&[u8]>, out: &mut impl Sink) {
    let lines = match group {
        None => cache.stats_lines(),
        Some(b"settings") => cache.settings_lines(),
        Some(b"reset") => {
            cache.stats.reset();
            line(out, b"RESET");
            return;
        }
        Some(b"items" | b"slabs" | b"sizes" | b"conns") => Vec::new(),
        Some(_) => {
            line(out, b"ERROR");
            return;
        }
    };
    for (name, value) in lines {
        let _ = write!(Text(out), "STAT {name} {value}\r\n");
    }
    line(out, b"END");
}

/// `core::fmt::Write` into a sink.
struct Text<'a, S>(&'a mut S);

impl<S: Sink> core::fmt::Write for Text<'_, S> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn execute_ascii(cache: &Cache, cmd: Command<'_>, out: &mut impl Sink) -> Flow {
    let st = &cache.stats;
    let store = &*cache.store;
    let now = cache.now();
    match cmd {
        Command::Get { keys, cas, touch } => {
            let opts = GetOptions {
                touch: touch.map(|t| cache.expiry(t)),
                ..GetOptions::default()
            };
            for key in keys {
                bump(&st.cmd_get);
                if touch.is_some() {
                    bump(&st.cmd_touch);
                }
                let Some(item) = store.get(key, now, opts) else {
                    bump(&st.get_misses);
                    if touch.is_some() {
                        bump(&st.touch_misses);
                    }
                    continue;
                };
                bump(&st.get_hits);
                if touch.is_some() {
                    bump(&st.touch_hits);
                }
                out.extend_from_slice(b"VALUE ");
                out.extend_from_slice(key);
                let _ = write!(Text(out), " {} {}", item.flags, item.value.len());
                if cas {
                    let _ = write!(Text(out), " {}", item.cas);
                }
                out.extend_from_slice(b"\r\n");
                out.value(&item.value);
                out.extend_from_slice(b"\r\n");
            }
            line(out, b"END");
        }
        Command::Store {
            verb,
            key,
            flags,
            exptime,
            data,
            noreply,
        } => {
            bump(&st.cmd_set);
            let (mode, cas) = match verb {
                StoreVerb::Set => (Mode::Set, None),
                StoreVerb::Add => (Mode::Add, None),
                StoreVerb::Replace => (Mode::Replace, None),
                StoreVerb::Append => (Mode::Append, None),
                StoreVerb::Prepend => (Mode::Prepend, None),
                StoreVerb::Cas(c) => (Mode::Set, Some(c)),
            };
            let outcome = store.store(
                StoreRequest {
                    key,
                    value: IoBuf::copy_from_slice(data),
                    flags,
                    exptime: cache.expiry(exptime),
                    mode,
                    cas,
                    new_cas: None,
                    invalidate: false,
                    vivify: None,
                },
                now,
            );
            if cas.is_some() {
                match outcome {
                    StoreOutcome::Stored(_) => bump(&st.cas_hits),
                    StoreOutcome::Exists => bump(&st.cas_badval),
                    StoreOutcome::NotFound => bump(&st.cas_misses),
                    _ => {}
                }
            }
            let text = match outcome {
                StoreOutcome::Stored(_) => "STORED",
                StoreOutcome::NotStored => "NOT_STORED",
                StoreOutcome::Exists => "EXISTS",
                StoreOutcome::NotFound => "NOT_FOUND",
                StoreOutcome::OutOfMemory => "SERVER_ERROR out of memory storing object",
            };
            reply(out, noreply, text);
        }
        Command::TooLarge {
            key,
            unlink,
            noreply,
        } => {
            if unlink {
                store.delete(key, now, DeleteOptions::default());
            }
            reply(out, noreply, "SERVER_ERROR object too large for cache");
        }
        Command::Delete { key, noreply } => {
            let text = match store.delete(key, now, DeleteOptions::default()) {
                DeleteOutcome::Deleted => {
                    bump(&st.delete_hits);
                    "DELETED"
                }
                _ => {
                    bump(&st.delete_misses);
                    "NOT_FOUND"
                }
            };
            reply(out, noreply, text);
        }
        Command::Arith {
            incr,
            key,
            delta,
            noreply,
        } => {
            let req = ArithRequest {
                incr,
                delta,
                create: None,
                cas: None,
                new_cas: None,
                touch: None,
            };
            let (hits, misses) = if incr {
                (&st.incr_hits, &st.incr_misses)
            } else {
                (&st.decr_hits, &st.decr_misses)
            };
            match store.arith(key, now, req) {
                ArithOutcome::Value { value, .. } => {
                    bump(hits);
                    if !noreply {
                        let _ = write!(Text(out), "{value}\r\n");
                    }
                }
                ArithOutcome::NonNumeric => reply(
                    out,
                    noreply,
                    "CLIENT_ERROR cannot increment or decrement non-numeric value",
                ),
                _ => {
                    bump(misses);
                    reply(out, noreply, "NOT_FOUND");
                }
            }
        }
        Command::Touch {
            key,
            exptime,
            noreply,
        } => {
            bump(&st.cmd_touch);
            if store.touch(key, now, cache.expiry(exptime)) {
                bump(&st.touch_hits);
                reply(out, noreply, "TOUCHED");
            } else {
                bump(&st.touch_misses);
                reply(out, noreply, "NOT_FOUND");
            }
        }
        Command::FlushAll { delay, noreply } => {
            bump(&st.cmd_flush);
            flush(cache, delay);
            reply(out, noreply, "OK");
        }
        Command::Stats { group } => stats_reply(cache, group, out),
        Command::Version => {
            let _ = write!(Text(out), "VERSION {}\r\n", crate::VERSION);
        }
        Command::Verbosity { noreply } => reply(out, noreply, "OK"),
        Command::CacheMemlimit { megabytes, noreply } => {
            if megabytes < 8 {
                reply(
                    out,
                    noreply,
                    "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m",
                );
            } else {
                store.set_limit(megabytes.saturating_mul(1 << 20));
                reply(out, noreply, "OK");
            }
        }
        Command::Quit => return Flow::Close,
        Command::Meta(m) => {
            bump(&st.cmd_meta);
            execute_meta(cache, m, out);
        }
        Command::Error { msg, noreply } => reply(out, noreply, msg),
    }
    Flow::Continue
}

/// `flush_all` with memcached's delay: 0 or negative at once, otherwise
/// relative (or absolute, past 30 days) like an exptime.
fn flush(cache: &Cache, delay: i64) {
    let now = cache.now();
    let at = if delay <= 0 {
        now
    } else {
        cache.expiry(delay).unwrap_or(now)
    };
    cache.store.flush(now, at);
}

// ---- meta ----

/// Appends the return flags `flags` asks for, in its order.
fn meta_flags(
    out: &mut impl Sink,
    flags: &Flags<'_>,
    key: &[u8],
    item: Option<&ItemView>,
    now: u64,
) {
    for &(c, tok) in &flags.list {
        match (c, item) {
            (b'O', _) => {
                out.extend_from_slice(b" O");
                out.extend_from_slice(tok);
            }
            (b'k', _) => {
                out.extend_from_slice(b" k");
                if flags.has(b'b') {
                    meta::base64_encode(key, out.text());
                    // A binary key comes back encoded, and says so.
                    out.extend_from_slice(b" b");
                } else {
                    out.extend_from_slice(key);
                }
            }
            (b'c', Some(i)) => {
                let _ = write!(Text(out), " c{}", i.cas);
            }
            (b'f', Some(i)) => {
                let _ = write!(Text(out), " f{}", i.flags);
            }
            (b's', Some(i)) => {
                let _ = write!(Text(out), " s{}", i.value.len());
            }
            (b't', Some(i)) => match i.exptime {
                None => out.extend_from_slice(b" t-1"),
                Some(t) => {
                    let _ = write!(Text(out), " t{}", t.saturating_sub(now));
                }
            },
            (b'h', Some(i)) => {
                let _ = write!(Text(out), " h{}", u8::from(i.fetched));
            }
            (b'l', Some(i)) => {
                let _ = write!(Text(out), " l{}", now.saturating_sub(i.last_access));
            }
            _ => {}
        }
    }
    if let Some(i) = item {
        match i.win {
            Win::Won => {
                if i.stale {
                    out.extend_from_slice(b" X");
                }
                out.extend_from_slice(b" W");
            }
            Win::Lost => {
                out.extend_from_slice(b" Z");
                if i.stale {
                    out.extend_from_slice(b" X");
                }
            }
            Win::None if i.stale => out.extend_from_slice(b" X"),
            Win::None => {}
        }
    }
}

/// A status line with the flags that go with it (`O`, `k`, `b` only when
/// there is no item).
fn meta_status(
    out: &mut impl Sink,
    code: &[u8],
    flags: &Flags<'_>,
    key: &[u8],
    item: Option<&ItemView>,
    now: u64,
) {
    out.extend_from_slice(code);
    meta_flags(out, flags, key, item, now);
    out.extend_from_slice(b"\r\n");
}

fn meta_ttl(cache: &Cache, flags: &Flags<'_>, f: u8) -> Option<Option<u64>> {
    flags.number(f).map(|t| cache.expiry(t))
}

fn meta_cas(flags: &Flags<'_>, f: u8) -> Option<u64> {
    flags.unsigned(f)
}

fn execute_meta(cache: &Cache, m: MetaCommand<'_>, out: &mut impl Sink) {
    let (verb, key, flags, data) = match m {
        MetaCommand::Noop => return line(out, b"MN"),
        MetaCommand::TooLarge => return line(out, b"SERVER_ERROR object too large for cache"),
        MetaCommand::Keyed {
            verb,
            key,
            flags,
            data,
        } => (verb, key, flags, data),
    };
    let (st, store, now) = (&cache.stats, &*cache.store, cache.now());
    let quiet = flags.has(b'q');
    match verb {
        MetaVerb::Get => {
            bump(&st.cmd_get);
            let opts = GetOptions {
                touch: meta_ttl(cache, &flags, b'T'),
                vivify: meta_ttl(cache, &flags, b'N'),
                recache_below: meta_cas(&flags, b'R'),
                no_bump: flags.has(b'u'),
            };
            if opts.touch.is_some() {
                bump(&st.cmd_touch);
            }
            match store.get(&key, now, opts) {
                None => {
                    bump(&st.get_misses);
                    if !quiet {
                        meta_status(out, b"EN", &flags, &key, None, now);
                    }
                }
                Some(item) => {
                    bump(&st.get_hits);
                    if flags.has(b'v') {
                        let _ = write!(Text(out), "VA {}", item.value.len());
                        meta_flags(out, &flags, &key, Some(&item), now);
                        out.extend_from_slice(b"\r\n");
                        out.value(&item.value);
                        out.extend_from_slice(b"\r\n");
                    } else {
                        meta_status(out, b"HD", &flags, &key, Some(&item), now);
                    }
                }
            }
        }
        MetaVerb::Set => {
            bump(&st.cmd_set);
            let mode = match flags.token(b'M') {
                Some(b"E" | b"e") => Mode::Add,
                Some(b"A" | b"a") => Mode::Append,
                Some(b"P" | b"p") => Mode::Prepend,
                Some(b"R" | b"r") => Mode::Replace,
                _ => Mode::Set,
            };
            let flag_value = flags
                .unsigned(b'F')
                .and_then(|f| u32::try_from(f).ok())
                .unwrap_or(0);
            let outcome = store.store(
                StoreRequest {
                    key: &key,
                    value: IoBuf::copy_from_slice(data),
                    flags: flag_value,
                    exptime: meta_ttl(cache, &flags, b'T').unwrap_or(None),
                    mode,
                    cas: meta_cas(&flags, b'C'),
                    new_cas: meta_cas(&flags, b'E'),
                    invalidate: flags.has(b'I'),
                    vivify: meta_ttl(cache, &flags, b'N'),
                },
                now,
            );
            let (code, stored): (&[u8], _) = match outcome {
                StoreOutcome::Stored(cas) => (b"HD", Some(cas)),
                StoreOutcome::NotStored => (b"NS", None),
                StoreOutcome::Exists => (b"EX", None),
                StoreOutcome::NotFound => (b"NF", None),
                StoreOutcome::OutOfMemory => {
                    return line(out, b"SERVER_ERROR out of memory storing object");
                }
            };
            if quiet && stored.is_some() {
                return;
            }
            let item = stored.map(|cas| ItemView {
                value: IoBuf::default(),
                flags: flag_value,
                exptime: None,
                cas,
                last_access: now,
                fetched: false,
                stale: false,
                win: Win::None,
            });
            // Only the flags that make sense after a store come back.
            let back = Flags {
                list: flags
                    .list
                    .iter()
                    .copied()
                    .filter(|(c, _)| matches!(c, b'O' | b'k' | b'b' | b'c'))
                    .collect(),
            };
            meta_status(out, code, &back, &key, item.as_ref(), now);
        }
        MetaVerb::Delete => {
            let opts = DeleteOptions {
                cas: meta_cas(&flags, b'C'),
                invalidate: flags
                    .has(b'I')
                    .then(|| meta_ttl(cache, &flags, b'T').unwrap_or(None)),
                clear_value: flags.has(b'x'),
                new_cas: meta_cas(&flags, b'E'),
            };
            let code: &[u8] = match store.delete(&key, now, opts) {
                DeleteOutcome::Deleted => {
                    bump(&st.delete_hits);
                    if quiet {
                        return;
                    }
                    b"HD"
                }
                DeleteOutcome::NotFound => {
                    bump(&st.delete_misses);
                    b"NF"
                }
                DeleteOutcome::Exists => b"EX",
            };
            meta_status(out, code, &flags, &key, None, now);
        }
        MetaVerb::Arith => meta_arith(cache, &key, &flags, out),
        MetaVerb::Debug => {
            let opts = GetOptions {
                no_bump: true,
                ..GetOptions::default()
            };
            match store.get(&key, now, opts) {
                None => line(out, b"EN"),
                Some(i) => {
                    out.extend_from_slice(b"ME ");
                    out.extend_from_slice(&key);
                    let exp = i.exptime.map_or(-1, |t| t.saturating_sub(now) as i64);
                    let fetch = if i.fetched { "yes" } else { "no" };
                    let size = key.len() + i.value.len() + crate::ITEM_OVERHEAD as usize;
                    let _ = write!(
                        Text(out),
                        " exp={exp} la={} cas={} fetch={fetch} cls=1 size={size}\r\n",
                        now.saturating_sub(i.last_access),
                        i.cas
                    );
                }
            }
        }
    }
}

fn meta_arith(cache: &Cache, key: &[u8], flags: &Flags<'_>, out: &mut impl Sink) {
    let (st, now) = (&cache.stats, cache.now());
    let incr = !matches!(flags.token(b'M'), Some(b"D" | b"d" | b"-"));
    let delta = meta_cas(flags, b'D').unwrap_or(1);
    let initial = meta_cas(flags, b'J').unwrap_or(0);
    let req = ArithRequest {
        incr,
        delta,
        create: meta_ttl(cache, flags, b'N').map(|t| (initial, t)),
        cas: meta_cas(flags, b'C'),
        new_cas: meta_cas(flags, b'E'),
        touch: meta_ttl(cache, flags, b'T'),
    };
    let (hits, misses) = if incr {
        (&st.incr_hits, &st.incr_misses)
    } else {
        (&st.decr_hits, &st.decr_misses)
    };
    match cache.store.arith(key, now, req) {
        ArithOutcome::Value {
            value,
            cas,
            created,
        } => {
            bump(hits);
            let view = cache.store.get(
                key,
                now,
                GetOptions {
                    no_bump: true,
                    ..GetOptions::default()
                },
            );
            let item = ItemView {
                value: IoBuf::default(),
                flags: 0,
                exptime: view.and_then(|v| v.exptime),
                cas,
                last_access: now,
                fetched: false,
                stale: false,
                win: Win::None,
            };
            let back = Flags {
                list: flags
                    .list
                    .iter()
                    .copied()
                    .filter(|(c, _)| matches!(c, b'O' | b'k' | b'b' | b'c' | b't'))
                    .collect(),
            };
            if flags.has(b'v') {
                let text = alloc::format!("{value}");
                let _ = write!(Text(out), "VA {}", text.len());
                meta_flags(out, &back, key, Some(&item), now);
                out.extend_from_slice(b"\r\n");
                line(out, text.as_bytes());
            } else if !flags.has(b'q') || created {
                // memcached's `q` hides only the update's HD, not the
                // creation's.
                meta_status(out, b"HD", &back, key, Some(&item), now);
            }
        }
        ArithOutcome::NotFound => {
            bump(misses);
            meta_status(out, b"NF", flags, key, None, now);
        }
        ArithOutcome::Exists => meta_status(out, b"EX", flags, key, None, now),
        ArithOutcome::NonNumeric => line(
            out,
            b"CLIENT_ERROR cannot increment or decrement non-numeric value",
        ),
    }
}

// ---- binary ----

fn bin_message(status: u16) -> &'static [u8] {
    match status {
        status::KEY_ENOENT => b"Not found",
        status::KEY_EEXISTS => b"Data exists for key.",
        status::E2BIG => b"Too large.",
        status::EINVAL => b"Invalid arguments",
        status::NOT_STORED => b"Not stored.",
        status::DELTA_BADVAL => b"Non-numeric server-side value for incr or decr",
        status::ENOMEM => b"Out of memory",
        _ => b"Unknown command",
    }
}

/// An error response: no extras, no key, CAS 0, memcached's message as
/// the body.
fn bin_error(out: &mut impl Sink, h: &binary::Header, status: u16) {
    let msg = bin_message(status);
    binary::write_header(out.text(), h.opcode, status, 0, 0, msg.len(), h.opaque, 0);
    out.extend_from_slice(msg);
}

/// A success response with `extras`, `key` and `value`.
fn bin_ok(
    out: &mut impl Sink,
    h: &binary::Header,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) {
    bin_ok_head(out, h, cas, extras, key, value.len());
    out.extend_from_slice(value);
}

/// A success response whose value is a stored one, sent as it is kept.
fn bin_ok_value(
    out: &mut impl Sink,
    h: &binary::Header,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &IoBuf,
) {
    bin_ok_head(out, h, cas, extras, key, value.len());
    out.value(value);
}

/// A success response's header, extras and key, for a value of
/// `value_len` bytes.
fn bin_ok_head(
    out: &mut impl Sink,
    h: &binary::Header,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value_len: usize,
) {
    let body = extras.len() + key.len() + value_len;
    binary::write_header(
        out.text(),
        h.opcode,
        status::SUCCESS,
        key.len(),
        extras.len(),
        body,
        h.opaque,
        cas,
    );
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    (u64::from(be32(b)) << 32) | u64::from(be32(&b[4..]))
}

/// A binary exptime: a 32-bit unsigned count, with the ASCII rules.
fn bin_expiry(cache: &Cache, raw: u32) -> Option<u64> {
    cache.expiry(i64::from(raw))
}

fn execute_binary(cache: &Cache, req: &binary::Request<'_>, out: &mut impl Sink) -> Flow {
    let h = &req.header;
    let (st, store, now) = (&cache.stats, &*cache.store, cache.now());
    let cas_in = (h.cas != 0).then_some(h.cas);
    match h.opcode {
        op::GET
        | op::GETQ
        | op::GETK
        | op::GETKQ
        | op::GAT
        | op::GATQ
        | op::GATK
        | op::GATKQ
        | op::TOUCH => {
            let touch = matches!(
                h.opcode,
                op::GAT | op::GATQ | op::GATK | op::GATKQ | op::TOUCH
            );
            let quiet = matches!(h.opcode, op::GETQ | op::GETKQ | op::GATQ | op::GATKQ);
            let with_key = matches!(h.opcode, op::GETK | op::GETKQ | op::GATK | op::GATKQ);
            let opts = GetOptions {
                touch: touch.then(|| bin_expiry(cache, be32(req.extras))),
                ..GetOptions::default()
            };
            if touch {
                bump(&st.cmd_touch);
            }
            if h.opcode != op::TOUCH {
                bump(&st.cmd_get);
            }
            match store.get(req.key, now, opts) {
                Some(item) => {
                    if touch {
                        bump(&st.touch_hits);
                    }
                    if h.opcode != op::TOUCH {
                        bump(&st.get_hits);
                    }
                    let key: &[u8] = if with_key { req.key } else { b"" };
                    let value = if h.opcode == op::TOUCH {
                        IoBuf::new()
                    } else {
                        item.value
                    };
                    bin_ok_value(out, h, item.cas, &item.flags.to_be_bytes(), key, &value);
                }
                None => {
                    if touch {
                        bump(&st.touch_misses);
                    }
                    if h.opcode != op::TOUCH {
                        bump(&st.get_misses);
                    }
                    if quiet {
                    } else if with_key {
                        let k = req.key;
                        binary::write_header(
                            out.text(),
                            h.opcode,
                            status::KEY_ENOENT,
                            k.len(),
                            0,
                            k.len(),
                            h.opaque,
                            0,
                        );
                        out.extend_from_slice(k);
                    } else {
                        bin_error(out, h, status::KEY_ENOENT);
                    }
                }
            }
        }
        op::SET
        | op::SETQ
        | op::ADD
        | op::ADDQ
        | op::REPLACE
        | op::REPLACEQ
        | op::APPEND
        | op::APPENDQ
        | op::PREPEND
        | op::PREPENDQ => {
            bump(&st.cmd_set);
            let quiet = matches!(
                h.opcode,
                op::SETQ | op::ADDQ | op::REPLACEQ | op::APPENDQ | op::PREPENDQ
            );
            let mode = match h.opcode {
                op::SET | op::SETQ => Mode::Set,
                op::ADD | op::ADDQ => Mode::Add,
                op::REPLACE | op::REPLACEQ => Mode::Replace,
                op::APPEND | op::APPENDQ => Mode::Append,
                _ => Mode::Prepend,
            };
            let (flags, exptime) = if req.extras.len() == 8 {
                (be32(req.extras), bin_expiry(cache, be32(&req.extras[4..])))
            } else {
                (0, None)
            };
            let outcome = store.store(
                StoreRequest {
                    key: req.key,
                    value: IoBuf::copy_from_slice(req.value),
                    flags,
                    exptime,
                    mode,
                    cas: cas_in,
                    new_cas: None,
                    invalidate: false,
                    vivify: None,
                },
                now,
            );
            let status = match outcome {
                StoreOutcome::Stored(cas) => {
                    if cas_in.is_some() {
                        bump(&st.cas_hits);
                    }
                    if !quiet {
                        bin_ok(out, h, cas, b"", b"", b"");
                    }
                    return Flow::Continue;
                }
                StoreOutcome::Exists => {
                    bump(&st.cas_badval);
                    status::KEY_EEXISTS
                }
                StoreOutcome::NotFound => {
                    bump(&st.cas_misses);
                    status::KEY_ENOENT
                }
                StoreOutcome::OutOfMemory => status::ENOMEM,
                StoreOutcome::NotStored => match mode {
                    Mode::Add => status::KEY_EEXISTS,
                    Mode::Replace => status::KEY_ENOENT,
                    _ => status::NOT_STORED,
                },
            };
            bin_error(out, h, status);
        }
        op::DELETE | op::DELETEQ => {
            let opts = DeleteOptions {
                cas: cas_in,
                ..DeleteOptions::default()
            };
            match store.delete(req.key, now, opts) {
                DeleteOutcome::Deleted => {
                    bump(&st.delete_hits);
                    if h.opcode == op::DELETE {
                        bin_ok(out, h, 0, b"", b"", b"");
                    }
                }
                DeleteOutcome::NotFound => {
                    bump(&st.delete_misses);
                    bin_error(out, h, status::KEY_ENOENT);
                }
                DeleteOutcome::Exists => bin_error(out, h, status::KEY_EEXISTS),
            }
        }
        op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => {
            let incr = matches!(h.opcode, op::INCREMENT | op::INCREMENTQ);
            let quiet = matches!(h.opcode, op::INCREMENTQ | op::DECREMENTQ);
            let e = req.extras;
            let raw_exp = be32(&e[16..]);
            let create = (raw_exp != u32::MAX).then(|| (be64(&e[8..]), bin_expiry(cache, raw_exp)));
            let areq = ArithRequest {
                incr,
                delta: be64(e),
                create,
                cas: cas_in,
                new_cas: None,
                touch: None,
            };
            let (hits, misses) = if incr {
                (&st.incr_hits, &st.incr_misses)
            } else {
                (&st.decr_hits, &st.decr_misses)
            };
            match store.arith(req.key, now, areq) {
                ArithOutcome::Value {
                    value,
                    cas,
                    created,
                } => {
                    if created {
                        bump(misses);
                    } else {
                        bump(hits);
                    }
                    if !quiet {
                        bin_ok(out, h, cas, b"", b"", &value.to_be_bytes());
                    }
                }
                ArithOutcome::NotFound => {
                    bump(misses);
                    bin_error(out, h, status::KEY_ENOENT);
                }
                ArithOutcome::NonNumeric => bin_error(out, h, status::DELTA_BADVAL),
                ArithOutcome::Exists => bin_error(out, h, status::KEY_EEXISTS),
            }
        }
        op::QUIT => {
            bin_ok(out, h, 0, b"", b"", b"");
            return Flow::Close;
        }
        op::QUITQ => return Flow::Close,
        op::FLUSH | op::FLUSHQ => {
            bump(&st.cmd_flush);
            let delay = if req.extras.len() == 4 {
                i64::from(be32(req.extras))
            } else {
                0
            };
            flush(cache, delay);
            if h.opcode == op::FLUSH {
                bin_ok(out, h, 0, b"", b"", b"");
            }
        }
        op::NOOP | op::VERBOSITY => bin_ok(out, h, 0, b"", b"", b""),
        op::VERSION => bin_ok(out, h, 0, b"", b"", crate::VERSION.as_bytes()),
        op::STAT => {
            let lines = match req.key {
                b"" => cache.stats_lines(),
                b"settings" => cache.settings_lines(),
                b"reset" => {
                    cache.stats.reset();
                    Vec::new()
                }
                b"items" | b"slabs" | b"sizes" | b"conns" => Vec::new(),
                _ => {
                    bin_error(out, h, status::KEY_ENOENT);
                    return Flow::Continue;
                }
            };
            for (name, value) in lines {
                bin_ok(out, h, 0, b"", name.as_bytes(), value.as_bytes());
            }
            bin_ok(out, h, 0, b"", b"", b"");
        }
        _ => bin_error(out, h, status::UNKNOWN_COMMAND),
    }
    Flow::Continue
}
