//! The `log` logger of the hosted runtime: one line per record on stderr,
//! naming the time since start and the core.
//!
//! The filter is a comma-separated list of `level` (the default) and
//! `target=level` directives, the longest matching target prefix winning:
//! `info`, `warn,ebbrt_std::net=trace`. Levels: `off`, `error`, `warn`,
//! `info`, `debug`, `trace`.

use std::io::Write;
use std::str::FromStr;

use log::{LevelFilter, Log, Metadata, Record};

/// Which records are logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    default: LevelFilter,
    /// Target prefixes, longest first.
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    pub(crate) fn parse(spec: &str) -> Result<Filter, String> {
        let mut default = LevelFilter::Info;
        let mut targets = Vec::new();
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                None => default = level(directive)?,
                Some((target, lvl)) => {
                    let target = target.trim();
                    if target.is_empty() {
                        return Err(format!("`{directive}` names no target before `=`"));
                    }
                    targets.push((target.to_owned(), level(lvl.trim())?));
                }
            }
        }
        targets.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Ok(Filter { default, targets })
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .find(|(prefix, _)| {
                target
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
            .map_or(self.default, |(_, l)| *l)
    }

    /// The most verbose level any directive allows.
    pub(crate) fn max_level(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, Ord::max)
    }
}

fn level(s: &str) -> Result<LevelFilter, String> {
    LevelFilter::from_str(s).map_err(|_| {
        format!("unknown level `{s}` (expected off, error, warn, info, debug or trace)")
    })
}

struct Logger {
    filter: Filter,
    start: std::time::Instant,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.filter.level_for(m.target())
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let t = self.start.elapsed();
        let core = match ebbrt_core::cpu::try_current() {
            Some(c) => format!("core {}", c.0),
            None => String::from("host"),
        };
        // One write of the whole line, so cores never interleave within it.
        let line = format!(
            "[{:>4}.{:06} {:<5} {core} {}] {}\n",
            t.as_secs(),
            t.subsec_micros(),
            r.level(),
            r.target(),
            r.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger. If the application installed its own logger
/// first, that one stays.
pub(crate) fn init(filter: Filter) {
    let max = filter.max_level();
    let logger = Box::new(Logger {
        filter,
        start: std::time::Instant::now(),
    });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_pick_the_longest_target_prefix() {
        let f = Filter::parse("warn, ebbrt_std=debug ,ebbrt_std::net=trace,ebbrt_std::netx=off")
            .unwrap();
        assert_eq!(f.level_for("app"), LevelFilter::Warn);
        assert_eq!(f.level_for("ebbrt_std"), LevelFilter::Debug);
        assert_eq!(f.level_for("ebbrt_std::start"), LevelFilter::Debug);
        assert_eq!(f.level_for("ebbrt_std::net::tcp"), LevelFilter::Trace);
        assert_eq!(f.level_for("ebbrt_std::netx"), LevelFilter::Off);
        // A prefix only matches whole path segments.
        assert_eq!(f.level_for("ebbrt_stdlib"), LevelFilter::Warn);
        assert_eq!(f.max_level(), LevelFilter::Trace);
    }

    #[test]
    fn default_is_info_and_levels_are_case_insensitive() {
        assert_eq!(Filter::parse("").unwrap().max_level(), LevelFilter::Info);
        assert_eq!(
            Filter::parse("DEBUG").unwrap().max_level(),
            LevelFilter::Debug
        );
        assert_eq!(
            Filter::parse("off").unwrap().level_for("x"),
            LevelFilter::Off
        );
    }

    #[test]
    fn bad_filters_say_why() {
        let e = Filter::parse("loud").unwrap_err();
        assert!(e.contains("unknown level `loud`"), "{e}");
        let e = Filter::parse("=debug").unwrap_err();
        assert!(e.contains("names no target"), "{e}");
        assert!(Filter::parse("a=verbose").is_err());
    }
}
