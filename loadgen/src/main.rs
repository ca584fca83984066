//! `loadgen`: see `loadgen --help` and the crate's README.

#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebbrt_loadgen::cli::{self, Command, Config};
use ebbrt_loadgen::dist::KeyChooser;
use ebbrt_loadgen::engine::{self, Load, Stats};
use ebbrt_loadgen::payload::{KeySpace, Payload};
use ebbrt_loadgen::proto::Protocol;
use ebbrt_loadgen::report::Step;
use ebbrt_loadgen::rng::combine;
use ebbrt_loadgen::verify::Ledger;
use ebbrt_loadgen::{schedule, search, target};
use serde_json::{Value, json};

/// How long the preload may take to get its replies.
const PRELOAD_LIMIT: Duration = Duration::from_secs(120);
/// At least this many preload sets outstanding per connection.
const PRELOAD_DEPTH: usize = 32;

fn main() -> ExitCode {
    let config = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(c)) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints progress: to stdout for people, to stderr when stdout is JSON.
struct Out {
    json: bool,
}

impl Out {
    fn line(&self, s: &str) {
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
            let _ = std::io::stdout().flush();
        }
    }
}

/// Runs what `c` asks; `Ok(false)` when the load saw failures.
fn run(c: &Config) -> Result<bool, String> {
    let addr = target::resolve(&c.server)?;
    let out = Out { json: c.json };
    let keys = Arc::new(KeySpace::new(c.keys, &c.key_size, c.seed));
    let payload = Arc::new(Payload {
        sizes: c.value_size,
        max_len: c.value_max,
        seed: c.seed,
    });
    let chooser = KeyChooser::new(c.keys, c.zipf);
    let load = Load {
        addr,
        protocol: c.protocol,
        threads: c.threads,
        depth: c.depth,
        keys,
        payload,
        ledger: Arc::new(Ledger::new(c.keys)),
        final_check: false,
    };
    let popularity = c
        .zipf
        .map_or("uniform".to_string(), |s| format!("zipf {s}"));
    out.line(&format!(
        "loadgen: {} to {addr}, {} connections on {} threads, depth {}; {} keys ({}, {popularity}), values {} ≤ {} B, {:.0}% sets, {} arrivals, seed {}",
        c.protocol.name(),
        c.connections,
        c.threads.min(c.connections),
        c.depth,
        c.keys,
        c.key_size,
        c.value_size,
        c.value_max,
        c.update * 100.0,
        c.arrivals.name(),
        c.seed
    ));
    if c.measure_connections > 0 {
        out.line(&format!(
            "latency measured on {} more connections on their own thread at {:.0} requests/s (included in offered/s)",
            c.measure_connections, c.measure_qps
        ));
    }

    // The server's evictions before anything is written, to judge keys
    // lost in the final read-back.
    let evictions_before = if c.verify_final {
        evictions(addr, c.protocol)
    } else {
        None
    };
    let mut ok = true;
    let mut preload_json = Value::Null;
    if c.preload {
        let t = Instant::now();
        let schedules: Vec<_> = (0..c.connections)
            .map(|i| schedule::preload((i as u32..c.keys).step_by(c.connections)))
            .collect();
        // Closed loop, many at a time: the preload measures nothing.
        let preloader = Load {
            depth: load.depth.max(PRELOAD_DEPTH),
            ..load.clone()
        };
        let s = engine::run(&preloader, schedules, Vec::new(), PRELOAD_LIMIT)
            .map_err(|e| format!("server {addr}: {e}"))?;
        let took = t.elapsed().as_secs_f64();
        out.line(&format!(
            "preload: {} of {} keys stored in {took:.2} s, {} errors",
            s.completed - s.not_stored - s.error_replies,
            c.keys,
            s.errors()
        ));
        for m in &s.messages {
            out.line(&format!("  preload: {m}"));
        }
        ok &= s.errors() == 0;
        preload_json = json!({"keys": c.keys, "seconds": took, "completed": s.completed, "errors": s.errors(), "messages": s.messages});
    }

    let mut steps: Vec<Step> = Vec::new();
    let mut step_no = 0u64;
    let mut measure = |qps: f64| -> Result<Step, String> {
        step_no += 1;
        let rate = qps / c.connections as f64;
        let measuring = c.measure_connections > 0;
        let offered = qps + if measuring { c.measure_qps } else { 0.0 };
        let expected = offered * c.duration.as_secs_f64();
        if expected > schedule::MAX_REQUESTS as f64 {
            return Err(format!(
                "{expected:.0} requests in one run is more than the {} this tool schedules; shorten --duration",
                schedule::MAX_REQUESTS
            ));
        }
        let build = |i: usize, rate: f64| {
            let p = schedule::Params {
                rate,
                duration_ns: c.duration.as_nanos() as u64,
                update: c.update,
                seed: combine(combine(c.seed, step_no), i as u64),
                arrivals: c.arrivals,
            };
            schedule::build(&p, &chooser)
        };
        let schedules: Vec<_> = (0..c.connections).map(|i| build(i, rate)).collect();
        let measure_rate = c.measure_qps / c.measure_connections.max(1) as f64;
        let measured: Vec<_> = (0..c.measure_connections)
            .map(|i| build(c.connections + i, measure_rate))
            .collect();
        let s: Stats = engine::run(&load, schedules, measured, c.drain)
            .map_err(|e| format!("server {addr}: {e}"))?;
        Ok(Step::new(offered, c.duration.as_secs_f64(), &s))
    };

    out.line(&Step::header());
    // Steps that could not run at all: (offered/s, why).
    let mut unrun_steps: Vec<(f64, String)> = Vec::new();
    let mut search_json = Value::Null;
    if c.search {
        let sla = c.sla_p99.expect("checked: --search needs --sla-p99");
        let criteria = search::Criteria {
            sla_p99_ns: sla.as_nanos() as u64,
            min_carried: 0.95,
        };
        let plan = search::Plan {
            start_qps: c.qps,
            max_qps: c.search_max,
            tolerance: 0.05,
            max_steps: c.search_steps,
            retries: c.search_retries,
        };
        // A step that could not run (the server refused or did not answer
        // the connections) fails; the search goes on, as a server that was
        // briefly unreachable (a guest still working off an overload) may
        // answer at a lower rate. After UNRUN_LIMIT of them in a row it has
        // gone, and the search stops there with what it measured.
        let mut gone = false;
        let mut in_a_row = 0;
        // For each step of the search, its index in `steps` if it ran.
        let mut ran: Vec<Option<usize>> = Vec::new();
        let outcome = search::run(&plan, &criteria, |qps| {
            let unrun = search::Measured {
                p99_ns: u64::MAX,
                achieved_qps: 0.0,
                scheduled_qps: qps,
                errors: 1,
            };
            if gone {
                ran.push(None);
                return unrun;
            }
            match measure(qps) {
                Ok(step) => {
                    in_a_row = 0;
                    let m = search::Measured {
                        p99_ns: step.p99_ns(),
                        achieved_qps: step.achieved_qps,
                        scheduled_qps: step.scheduled_qps,
                        errors: step.stats.errors,
                    };
                    let verdict = if criteria.passes(&m) { "pass" } else { "fail" };
                    out.line(&format!("{}  {verdict}", step.row()));
                    for note in [step.lag_note(), step.window_note()].into_iter().flatten() {
                        out.line(&format!("  {note}"));
                    }
                    for msg in step.messages.iter().take(3) {
                        out.line(&format!("  {msg}"));
                    }
                    ran.push(Some(steps.len()));
                    steps.push(step);
                    m
                }
                Err(e) => {
                    in_a_row += 1;
                    gone = unrun_step(&out, &mut unrun_steps, qps, e, in_a_row);
                    ran.push(None);
                    unrun
                }
            }
        });
        // Overload leaves requests unanswered by design; what must never
        // happen at any load is a wrong value, an error reply or a lost
        // connection.
        ok &= steps.iter().all(|s| {
            s.stats.mismatches + s.stats.stale + s.stats.error_replies + s.stats.connection_errors
                == 0
        });
        let best = outcome.best.and_then(|i| ran[i]).map(|i| &steps[i]);
        match best {
            Some(b) => out.line(&format!(
                "best: {:.0} requests/s offered, {:.0}/s achieved, p99 {:.1} µs ≤ SLA {:.1} µs",
                b.offered_qps,
                b.achieved_qps,
                b.latency_us[2],
                sla.as_secs_f64() * 1e6
            )),
            None => {
                out.line(&format!(
                    "best: no offered load met p99 ≤ {:.1} µs",
                    sla.as_secs_f64() * 1e6
                ));
                ok = false;
            }
        }
        search_json = json!({
            "sla_p99_us": sla.as_secs_f64() * 1e6,
            // Verdicts of the top-level "steps", in the same order.
            "pass": outcome.steps.iter().zip(&ran).filter(|(_, r)| r.is_some())
                .map(|(step, _)| step.2).collect::<Vec<_>>(),
            "best_index": outcome.best.and_then(|i| ran[i]),
            "best": best.map(Step::json),
        });
    } else {
        let rates = if c.sweep.is_empty() {
            vec![c.qps]
        } else {
            c.sweep.clone()
        };
        let mut in_a_row = 0;
        for qps in rates {
            let step = match measure(qps) {
                Ok(step) => step,
                Err(e) => {
                    in_a_row += 1;
                    if unrun_step(&out, &mut unrun_steps, qps, e, in_a_row) {
                        break;
                    }
                    continue;
                }
            };
            in_a_row = 0;
            out.line(&step.row());
            for note in [step.lag_note(), step.window_note()].into_iter().flatten() {
                out.line(&format!("  {note}"));
            }
            for msg in &step.messages {
                out.line(&format!("  {msg}"));
            }
            if let Some(sla) = c.sla_p99 {
                let met = step.p99_ns() as u128 <= sla.as_nanos();
                out.line(&format!(
                    "p99 {:.1} µs {} the SLA of {:.1} µs",
                    step.latency_us[2],
                    if met { "meets" } else { "misses" },
                    sla.as_secs_f64() * 1e6
                ));
            }
            // A sweep, like a search, goes past what the server carries on
            // purpose: there only wrong values and broken connections fail.
            ok &= if c.sweep.is_empty() {
                step.stats.errors == 0
            } else {
                step.stats.mismatches
                    + step.stats.stale
                    + step.stats.error_replies
                    + step.stats.connection_errors
                    == 0
            };
            steps.push(step);
        }
    }

    ok &= unrun_steps.is_empty();
    let mut final_json = Value::Null;
    let mut lost = 0;
    if c.verify_final {
        match final_check(c, &load, evictions_before, &out) {
            Ok(f) => {
                ok &= f.ok;
                lost = f.stats.lost;
                final_json = f.json();
            }
            Err(e) => {
                // What was measured stays reported; the read-back did not
                // happen, which fails the run.
                out.line(&format!("final check: could not run: {e}"));
                final_json = json!({ "error": e });
                ok = false;
            }
        }
    }
    let stale: u64 = steps.iter().map(|s| s.stats.stale).sum::<u64>()
        + final_json["stale"].as_u64().unwrap_or(0);

    if c.json {
        let doc = json!({
            "config": config_json(c, &addr.to_string()),
            "preload": preload_json,
            "steps": steps.iter().map(Step::json).collect::<Vec<_>>(),
            "search": search_json,
            "final_check": final_json,
            // Steps that could not run (the server unreachable), in order.
            "unrun": unrun_steps.iter().map(|(q, e)| json!({"offered_qps": q, "error": e})).collect::<Vec<_>>(),
            // Over every step and the final read-back.
            "stale": stale,
            "lost": lost,
            "ok": ok,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON values serialize")
        );
    }
    Ok(ok)
}

/// Steps in a row that could not run after which a search or sweep ends
/// (the server has gone, as a rule).
const UNRUN_LIMIT: usize = 2;

/// Reports a step at `qps` that could not run because of `e` (the
/// `in_a_row`-th such in a row) and records it; whether the server counts
/// as gone.
fn unrun_step(
    out: &Out,
    unrun: &mut Vec<(f64, String)>,
    qps: f64,
    e: String,
    in_a_row: usize,
) -> bool {
    out.line(&format!("{qps:>10.0}  could not run: {e}"));
    unrun.push((qps, e));
    let gone = in_a_row >= UNRUN_LIMIT;
    if gone {
        out.line(&format!(
            "  {in_a_row} steps in a row could not run (the server gone, or the reason above): stopping with what was measured"
        ));
    }
    gone
}

fn config_json(c: &Config, addr: &str) -> Value {
    json!({
        "server": addr,
        "protocol": c.protocol.name(),
        "qps": c.qps,
        "duration_s": c.duration.as_secs_f64(),
        "connections": c.connections,
        "threads": c.threads,
        "depth": c.depth,
        "drain_s": c.drain.as_secs_f64(),
        "keys": c.keys,
        "zipf": c.zipf,
        "update": c.update,
        "arrivals": c.arrivals.name(),
        "key_size": c.key_size.to_string(),
        "value_size": c.value_size.to_string(),
        "value_max": c.value_max,
        "seed": c.seed,
        "preload": c.preload,
        "verify_final": c.verify_final,
        "measure_connections": c.measure_connections,
        "measure_qps": c.measure_qps,
        "sweep": c.sweep,
        "sla_p99_us": c.sla_p99.map(|d| d.as_secs_f64() * 1e6),
        "search": c.search,
        "search_retries": c.search_retries,
    })
}

/// The server's `evictions` counter, if it reports one.
fn evictions(addr: std::net::SocketAddr, protocol: Protocol) -> Option<u64> {
    engine::server_stat(addr, protocol, "evictions")
        .ok()
        .flatten()
}

/// The outcome of the final read-back.
struct FinalCheck {
    keys: u32,
    seconds: f64,
    stats: Stats,
    /// Evictions the server counted since before the preload, if known.
    evictions: Option<u64>,
    /// Whether every lost key may be an eviction.
    explained: bool,
    ok: bool,
}

impl FinalCheck {
    fn json(&self) -> Value {
        let s = &self.stats;
        json!({
            "keys": self.keys,
            "checked": s.completed,
            "hits": s.hits,
            "misses": s.misses,
            "lost": s.lost,
            "stale": s.stale,
            "mismatches": s.mismatches,
            "errors": s.errors(),
            "evictions": self.evictions,
            "lost_explained_by_evictions": self.explained,
            "seconds": self.seconds,
            "ok": self.ok,
            "messages": s.messages,
        })
    }
}

/// Reads every key back once, pipelined over the run's connections in its
/// protocol, and judges each against the ledger (see `verify`). Keys
/// missing although a write of them was acknowledged are lost; the run
/// fails unless the server's evictions since the start are at least as
/// many (an eviction of some other key could hide a real loss, so such a
/// pass is reported as explained, not proven).
fn final_check(
    c: &Config,
    load: &Load,
    evictions_before: Option<u64>,
    out: &Out,
) -> Result<FinalCheck, String> {
    let t = Instant::now();
    let schedules: Vec<_> = (0..c.connections)
        .map(|i| schedule::readback((i as u32..c.keys).step_by(c.connections)))
        .collect();
    let checker = Load {
        depth: load.depth.max(PRELOAD_DEPTH),
        final_check: true,
        ..load.clone()
    };
    let s = engine::run(&checker, schedules, Vec::new(), PRELOAD_LIMIT)
        .map_err(|e| format!("server {}: {e}", load.addr))?;
    let seconds = t.elapsed().as_secs_f64();
    let evictions = evictions_before
        .zip(evictions(load.addr, load.protocol))
        .and_then(|(before, after)| after.checked_sub(before));
    let explained = s.lost > 0 && evictions.is_some_and(|e| s.lost <= e);
    let ok = s.errors() == 0 && (s.lost == 0 || explained);
    let shown = evictions.map_or("unknown".to_string(), |e| e.to_string());
    let verdict = if !ok {
        "FAILED"
    } else if explained {
        "ok (every lost key may be an eviction)"
    } else {
        "ok"
    };
    out.line(&format!(
        "final check: {} of {} keys read back in {seconds:.2} s: {} hits, {} misses, {} lost, {} stale, {} mismatches, {} errors; server evictions {shown}: {verdict}",
        s.completed,
        c.keys,
        s.hits,
        s.misses,
        s.lost,
        s.stale,
        s.mismatches,
        s.errors()
    ));
    for m in &s.messages {
        out.line(&format!("  final check: {m}"));
    }
    Ok(FinalCheck {
        keys: c.keys,
        seconds,
        stats: s,
        evictions,
        explained,
        ok,
    })
}
