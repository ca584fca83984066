//! Command-line options.

use std::time::Duration;

use crate::dist::SizeDist;
use crate::proto::Protocol;
use crate::schedule::Arrivals;

/// `loadgen --help`.
pub const USAGE: &str = "\
loadgen: an open-loop memcached load generator (Poisson arrivals, latency from the scheduled send time)

usage: loadgen [OPTIONS]

target and protocol
  --server HOST:PORT     the server (default 127.0.0.1:11211); only loopback, private
                         (10/8, 172.16/12, 192.168/16, fc00::/7) and link-local addresses
  --protocol P           ascii | binary | meta (default ascii)

load
  --qps N                offered requests per second, over all connections (default 10000)
  --duration T           how long requests are scheduled, e.g. 10s, 500ms (default 5s)
  --connections N        connections (default 4)
  --threads N            threads driving them (default 1)
  --depth N              most requests outstanding per connection (default 8)
  --drain T              how long to wait for replies after the schedule ends (default 1s)
  --measure-connections N  measure latency only on N extra connections of their own thread,
                         at --measure-qps, as mutilate's -C/-Q do (default 0: measure on all)
  --measure-qps N        their total rate (default 1000), on top of --qps

workload (mutilate's Facebook ETC by default)
  --keys N               key population (default 10000)
  --zipf S               zipf key popularity with exponent S (default uniform)
  --update R             fraction of requests that are sets (default 0.1)
  --arrivals A           poisson (exponential gaps) | fb_ia (ETC's burstier gaps, same mean)
                         (default poisson)
  --key-size D           fb_key | fixed:N | gev:LOC,SCALE,SHAPE (default fb_key)
  --value-size D         fb_value | fb_value_mix (mutilate's table of small values, then
                         fb_value) | fixed:N | pareto:LOC,SCALE,SHAPE (default fb_value)
  --value-max BYTES      largest value (default 1000000, under memcached's 1 MiB items)
  --seed N               fixes keys, values and the schedule (default 1)
  --no-preload           skip setting every key before the measurement

verification
  Always: every hit's bytes are checked against its key and version (else a mismatch), and
  a hit older than a set acknowledged before the get was sent is stale (sets that overlap
  may land in either order, so neither is stale).
  --verify-final         after the run (after the last step of a sweep or search), read every
                         key once, pipelined, and check it holds its newest acknowledged version
                         (else stale); a miss of a written key is lost, which fails the run
                         unless the server's `evictions` grew by at least as many (the default)
  --no-verify-final      skip that read-back

sweep and SLA search
  --sweep Q1,Q2,...      one run per offered QPS, in order (for latency-against-load curves)
  --sla-p99 T            the p99 bound, e.g. 500us, 5ms
  --search               find the highest offered QPS whose p99 meets --sla-p99, starting at
                         --qps and doubling, then bisecting; each step lasts --duration
  --search-max N         never offer more than N QPS (default 10000000)
  --search-steps N       at most N steps (default 16)
  --search-retries N     run a failed step again, up to N times, and count the rate as passing
                         if any attempt passed (every attempt is a step; default 0)

output
  --json                 machine-readable output on stdout (progress goes to stderr)
  -h, --help             this text

Exit status: 0 when every request was answered without error and every value read back
verified; 1 when any was not (errors, unanswered requests, mismatches, stale reads, keys
lost in the final read-back beyond what the server's `evictions` counter can explain;
in a search or a sweep, requests left unanswered by overload do not count, and a search
with no passing step is a failure); 2 for bad options or a refused or unreachable server.
";

/// Everything a run is told.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `HOST:PORT`.
    pub server: String,
    /// The wire protocol.
    pub protocol: Protocol,
    /// Offered requests per second (the first step's, when searching).
    pub qps: f64,
    /// Scheduled time of one run or one search step.
    pub duration: Duration,
    /// Connections.
    pub connections: usize,
    /// Threads.
    pub threads: usize,
    /// Most requests outstanding on one connection.
    pub depth: usize,
    /// Wait for replies after the schedule.
    pub drain: Duration,
    /// Key population.
    pub keys: u32,
    /// Zipf exponent, or uniform.
    pub zipf: Option<f64>,
    /// Fraction of sets.
    pub update: f64,
    /// Gaps between requests.
    pub arrivals: Arrivals,
    /// Key sizes.
    pub key_size: SizeDist,
    /// Value sizes.
    pub value_size: SizeDist,
    /// Largest value.
    pub value_max: u32,
    /// The seed.
    pub seed: u64,
    /// Set every key first.
    pub preload: bool,
    /// Read every key back at the end and check its version.
    pub verify_final: bool,
    /// Measurement connections (0: every connection measures).
    pub measure_connections: usize,
    /// Their total rate.
    pub measure_qps: f64,
    /// Offered rates to run one after another.
    pub sweep: Vec<f64>,
    /// The p99 SLA.
    pub sla_p99: Option<Duration>,
    /// Search for the highest QPS meeting the SLA.
    pub search: bool,
    /// The search's ceiling.
    pub search_max: f64,
    /// The search's step budget.
    pub search_steps: usize,
    /// Attempts after a failed search step.
    pub search_retries: usize,
    /// JSON output.
    pub json: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: "127.0.0.1:11211".into(),
            protocol: Protocol::Ascii,
            qps: 10_000.0,
            duration: Duration::from_secs(5),
            connections: 4,
            threads: 1,
            depth: 8,
            drain: Duration::from_secs(1),
            keys: 10_000,
            zipf: None,
            update: 0.1,
            arrivals: Arrivals::Poisson,
            key_size: SizeDist::parse("fb_key").expect("builtin"),
            value_size: SizeDist::parse("fb_value").expect("builtin"),
            value_max: 1_000_000,
            seed: 1,
            preload: true,
            verify_final: true,
            measure_connections: 0,
            measure_qps: 1000.0,
            sweep: Vec::new(),
            sla_p99: None,
            search: false,
            search_max: 10_000_000.0,
            search_steps: 16,
            search_retries: 0,
            json: false,
        }
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Print [`USAGE`].
    Help,
    /// Generate load.
    Run(Box<Config>),
}

/// Parses a duration: a number with `ns`, `us`, `µs`, `ms`, `s` or no unit
/// (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 500us, 5ms, 2s)"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "" => 1.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ns, us, ms, s)")),
    };
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("`{s}` is out of range"))
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: `{v}` is not a valid number"))
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut c = Config::default();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (flag, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--server" => c.server = value()?,
            "--protocol" => c.protocol = Protocol::parse(&value()?)?,
            "--qps" => c.qps = num(&flag, &value()?)?,
            "--duration" => c.duration = parse_duration(&value()?)?,
            "--connections" => c.connections = num(&flag, &value()?)?,
            "--threads" => c.threads = num(&flag, &value()?)?,
            "--depth" => c.depth = num(&flag, &value()?)?,
            "--drain" => c.drain = parse_duration(&value()?)?,
            "--keys" => c.keys = num(&flag, &value()?)?,
            "--zipf" => c.zipf = Some(num(&flag, &value()?)?),
            "--update" => c.update = num(&flag, &value()?)?,
            "--arrivals" => c.arrivals = Arrivals::parse(&value()?)?,
            "--key-size" => c.key_size = SizeDist::parse(&value()?)?,
            "--value-size" => c.value_size = SizeDist::parse(&value()?)?,
            "--value-max" => c.value_max = num(&flag, &value()?)?,
            "--seed" => c.seed = num(&flag, &value()?)?,
            "--no-preload" => c.preload = false,
            "--verify-final" => c.verify_final = true,
            "--no-verify-final" => c.verify_final = false,
            "--measure-connections" => c.measure_connections = num(&flag, &value()?)?,
            "--measure-qps" => c.measure_qps = num(&flag, &value()?)?,
            "--sweep" => {
                let v = value()?;
                c.sweep = v
                    .split(',')
                    .map(|q| num(&flag, q.trim()))
                    .collect::<Result<_, _>>()?;
            }
            "--sla-p99" => c.sla_p99 = Some(parse_duration(&value()?)?),
            "--search" => c.search = true,
            "--search-max" => c.search_max = num(&flag, &value()?)?,
            "--search-steps" => c.search_steps = num(&flag, &value()?)?,
            "--search-retries" => c.search_retries = num(&flag, &value()?)?,
            "--json" => c.json = true,
            other => return Err(format!("unknown option `{other}` (see --help)")),
        }
        if inline.is_some()
            && matches!(
                flag.as_str(),
                "--no-preload"
                    | "--verify-final"
                    | "--no-verify-final"
                    | "--search"
                    | "--json"
                    | "-h"
                    | "--help"
            )
        {
            return Err(format!("{flag} takes no value"));
        }
    }
    check(&c)?;
    Ok(Command::Run(Box::new(c)))
}

fn check(c: &Config) -> Result<(), String> {
    let positive = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(format!("{what} must be positive"))
        }
    };
    positive("--qps", c.qps.is_finite() && c.qps > 0.0)?;
    positive("--duration", !c.duration.is_zero())?;
    positive("--connections", c.connections > 0)?;
    positive("--threads", c.threads > 0)?;
    positive("--depth", c.depth > 0)?;
    positive("--keys", c.keys > 0)?;
    positive("--search-max", c.search_max > 0.0)?;
    positive("--search-steps", c.search_steps > 0)?;
    if !(0.0..=1.0).contains(&c.update) {
        return Err("--update must be between 0 and 1".into());
    }
    if let Some(s) = c.zipf
        && !(s.is_finite() && s > 0.0)
    {
        return Err("--zipf must be a positive exponent".into());
    }
    positive(
        "--measure-qps",
        c.measure_qps.is_finite() && c.measure_qps > 0.0,
    )?;
    if c.sweep.iter().any(|q| !(q.is_finite() && *q > 0.0)) {
        return Err("--sweep rates must be positive".into());
    }
    if c.search && !c.sweep.is_empty() {
        return Err("--search and --sweep exclude each other".into());
    }
    if c.search && c.sla_p99.is_none() {
        return Err("--search needs --sla-p99".into());
    }
    if c.update == 0.0 && !c.preload {
        // Nothing would ever be written, so nothing could be verified.
        eprintln!("loadgen: note: --update 0 with --no-preload reads only what is already stored");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(c) => Ok(*c),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5ms"), Ok(Duration::from_millis(5)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("500µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("100ns"), Ok(Duration::from_nanos(100)));
        for bad in ["", "ms", "5 ms", "5h", "-1s", "1e999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_options() {
        assert_eq!(run(&[]).unwrap(), Config::default());
        let c = run(&[
            "--protocol",
            "meta",
            "--qps=2500",
            "--connections",
            "16",
            "--threads",
            "2",
            "--zipf",
            "0.99",
            "--sla-p99",
            "5ms",
            "--search",
            "--json",
            "--no-preload",
            "--value-size",
            "fixed:64",
        ])
        .unwrap();
        assert_eq!(c.protocol, Protocol::Meta);
        assert_eq!(c.qps, 2500.0);
        assert_eq!((c.connections, c.threads), (16, 2));
        assert_eq!(c.zipf, Some(0.99));
        assert_eq!(c.sla_p99, Some(Duration::from_millis(5)));
        assert!(c.search && c.json && !c.preload);
        assert_eq!(c.value_size, SizeDist::Fixed(64));
        let c = run(&[
            "--sweep",
            "1000, 2000,4e3",
            "--measure-connections",
            "2",
            "--measure-qps",
            "500",
        ])
        .unwrap();
        assert_eq!(c.sweep, [1000.0, 2000.0, 4000.0]);
        assert_eq!((c.measure_connections, c.measure_qps), (2, 500.0));
        assert_eq!(parse(["-h".to_string()]), Ok(Command::Help));
        assert!(Config::default().verify_final);
        assert!(!run(&["--no-verify-final"]).unwrap().verify_final);
        assert!(
            run(&["--no-verify-final", "--verify-final"])
                .unwrap()
                .verify_final
        );
    }

    #[test]
    fn bad_options_say_why() {
        let cases: &[(&[&str], &str)] = &[
            (&["--qps"], "needs a value"),
            (&["--qps", "fast"], "not a valid number"),
            (&["--qps", "0"], "must be positive"),
            (&["--connections", "0"], "must be positive"),
            (&["--update", "1.5"], "between 0 and 1"),
            (&["--search"], "needs --sla-p99"),
            (&["--protocol", "udp"], "expected ascii"),
            (&["--frobnicate"], "unknown option"),
            (&["--json=yes"], "takes no value"),
            (&["--verify-final=no"], "takes no value"),
            (&["--zipf", "-1"], "positive exponent"),
            (&["--sweep", "1000,0"], "must be positive"),
            (&["--sweep", "1000,,2"], "not a valid number"),
            (
                &["--sweep", "1000", "--search", "--sla-p99", "1ms"],
                "exclude each other",
            ),
            (&["--measure-qps", "0"], "must be positive"),
        ];
        for (args, want) in cases {
            let e = run(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }
}
