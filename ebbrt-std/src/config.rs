//! Start-up configuration of a hosted instance: the core count, the log
//! filter, the boot arguments (`EBBRT_ARGS`) and the arguments left for the
//! application.

use std::ffi::OsString;
use std::sync::OnceLock;

use ebbrt_core::cmdline::lookup;
use ebbrt_core::cpu::MAX_CORES;

use crate::logger::Filter;

/// Everything [`crate::start_main`] reads before the first core starts.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) cores: usize,
    pub(crate) log: Filter,
    /// Whether each core's thread is pinned to a CPU (`ebbrt.pin`).
    pub(crate) pin: Pin,
}

/// A configuration value that cannot be used. Reported on stderr, and the
/// process exits with status 2.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("`--cores` needs a value, e.g. `--cores 4` or `--cores=4`")]
    MissingCores,
    #[error(
        "invalid core count `{value}` (from {origin}): expected a whole number in 1..={MAX_CORES}"
    )]
    BadCores { value: String, origin: &'static str },
    #[error("invalid log filter `{value}` (from {origin}): {why}")]
    BadLog {
        value: String,
        origin: &'static str,
        why: String,
    },
    #[error(
        "invalid `ebbrt.pin={0}` in EBBRT_ARGS: expected auto (the default: pin when there are more CPUs than cores), 1 (pin each core's thread to a CPU) or 0 (let Linux place them)"
    )]
    BadPin(String),
    #[error("the environment variable {0} is not valid UTF-8")]
    NotUnicode(&'static str),
    #[error("command-line argument {0:?} is not valid UTF-8")]
    ArgNotUnicode(OsString),
}

/// The boot arguments: the value of `EBBRT_ARGS`, read once.
fn boot_line() -> &'static str {
    static LINE: OnceLock<String> = OnceLock::new();
    // An unusable EBBRT_ARGS is reported by `start_main`; here it just
    // holds no arguments.
    LINE.get_or_init(|| std::env::var("EBBRT_ARGS").unwrap_or_default())
}

/// The value of boot argument `key`: hosted, from the environment variable
/// `EBBRT_ARGS` (`key=value` words separated by ASCII whitespace, the same
/// syntax as the native kernel command line: [`ebbrt_core::cmdline`]). A
/// bare `key` yields `Some("")`; the last word naming a key wins.
pub fn boot_arg(key: &str) -> Option<&'static str> {
    lookup(boot_line(), key)
}

static APP_ARGS: OnceLock<Vec<String>> = OnceLock::new();

/// The command-line arguments left for the application: those after the
/// program name, without the runtime's own flags (`--cores N`,
/// `--cores=N`). Runtime flags are recognised only before a `--`; the first
/// `--` is removed and everything after it is the application's, verbatim.
pub fn args() -> &'static [String] {
    APP_ARGS.get_or_init(|| {
        let argv: Vec<String> = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        split_args(argv).map(|(_, app)| app).unwrap_or_default()
    })
}

/// Splits the arguments after the program name into the `--cores` value
/// (the last one given) and the application's arguments.
fn split_args(argv: Vec<String>) -> Result<(Option<String>, Vec<String>), ConfigError> {
    let mut cores = None;
    let mut app = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            app.extend(it);
            break;
        }
        if a == "--cores" {
            cores = Some(it.next().ok_or(ConfigError::MissingCores)?);
        } else if let Some(v) = a.strip_prefix("--cores=") {
            cores = Some(v.to_owned());
        } else {
            app.push(a);
        }
    }
    Ok((cores, app))
}

/// Whether core threads are pinned to CPUs (`ebbrt.pin` in the boot
/// arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pin {
    /// `ebbrt.pin=1`: each core's thread on one CPU, always.
    Always,
    /// `ebbrt.pin=0`: where Linux's scheduler puts them.
    Never,
    /// `ebbrt.pin=auto`, the default: pinned when the process may use more
    /// CPUs than it has cores. With as many cores as CPUs (or more), every
    /// other thread of the machine — a client on loopback, say — shares a
    /// CPU with a core, and a pinned core cannot move off a CPU that
    /// thread is using while another is free: measured on 2 CPUs, 2 pinned
    /// cores carried about 0.7× the load of 2 unpinned ones at the same
    /// tail (docs/benchmarks.md, "memcached (issue 11)").
    Auto,
}

impl Pin {
    /// Whether `cores` cores on `cpus` usable CPUs are pinned.
    pub(crate) fn applies(self, cores: usize, cpus: usize) -> bool {
        match self {
            Pin::Always => true,
            Pin::Never => false,
            Pin::Auto => cores < cpus,
        }
    }
}

/// The pinning the boot arguments `boot` ask for.
pub(crate) fn parse_pin(boot: &str) -> Result<Pin, ConfigError> {
    match lookup(boot, "ebbrt.pin") {
        None | Some("auto") => Ok(Pin::Auto),
        Some("1") => Ok(Pin::Always),
        Some("0") => Ok(Pin::Never),
        Some(v) => Err(ConfigError::BadPin(v.to_owned())),
    }
}

/// [`parse_pin`] of this process's boot arguments.
pub(crate) fn pin_from_process() -> Result<Pin, ConfigError> {
    parse_pin(boot_line())
}

fn parse_cores(value: &str, origin: &'static str) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CORES).contains(&n) => Ok(n),
        _ => Err(ConfigError::BadCores {
            value: value.to_owned(),
            origin,
        }),
    }
}

/// The inputs of the configuration, gathered so that parsing is a pure
/// function (and testable).
pub(crate) struct Sources<'a> {
    pub(crate) argv: Vec<String>,
    pub(crate) env_cores: Option<String>,
    pub(crate) env_log: Option<String>,
    /// The boot arguments (`EBBRT_ARGS`).
    pub(crate) boot: &'a str,
    pub(crate) default_cores: usize,
}

pub(crate) fn parse(src: Sources<'_>) -> Result<Config, ConfigError> {
    // The application's arguments are `args()`'s, split from argv again
    // when first asked for.
    let (flag, _) = split_args(src.argv)?;
    let cores = if let Some(v) = flag {
        parse_cores(&v, "--cores")?
    } else if let Some(v) = src.env_cores {
        parse_cores(&v, "EBBRT_CORES")?
    } else if let Some(v) = lookup(src.boot, "ebbrt.cores") {
        parse_cores(v, "ebbrt.cores in EBBRT_ARGS")?
    } else {
        src.default_cores.clamp(1, MAX_CORES)
    };
    let (log_value, origin) = match (&src.env_log, lookup(src.boot, "ebbrt.log")) {
        (Some(v), _) => (v.as_str(), "EBBRT_LOG"),
        (None, Some(v)) => (v, "ebbrt.log in EBBRT_ARGS"),
        (None, None) => ("info", "the default"),
    };
    let log = Filter::parse(log_value).map_err(|why| ConfigError::BadLog {
        value: log_value.to_owned(),
        origin,
        why,
    })?;
    let pin = parse_pin(src.boot)?;
    Ok(Config { cores, log, pin })
}

fn env_var(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode(name)),
    }
}

/// Reads the configuration of this process.
pub(crate) fn from_process() -> Result<Config, ConfigError> {
    let argv = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().map_err(ConfigError::ArgNotUnicode))
        .collect::<Result<Vec<_>, _>>()?;
    env_var("EBBRT_ARGS")?;
    let default_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    parse(Sources {
        argv,
        env_cores: env_var("EBBRT_CORES")?,
        env_log: env_var("EBBRT_LOG")?,
        boot: boot_line(),
        default_cores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The application's arguments, as [`args`] splits them from argv.
    fn app_args(argv: &[&str]) -> Vec<String> {
        split_args(strings(argv)).unwrap().1
    }

    fn parse_with(
        argv: &[&str],
        env_cores: Option<&str>,
        boot: &str,
    ) -> Result<Config, ConfigError> {
        parse(Sources {
            argv: strings(argv),
            env_cores: env_cores.map(str::to_owned),
            env_log: None,
            boot,
            default_cores: 7,
        })
    }

    #[test]
    fn boot_args_parse_like_a_kernel_command_line() {
        let b = "  echo.port=9000 quiet ebbrt.log=debug echo.port=9001 empty= ";
        assert_eq!(lookup(b, "echo.port"), Some("9001"), "the last word wins");
        assert_eq!(lookup(b, "quiet"), Some(""));
        assert_eq!(lookup(b, "empty"), Some(""));
        assert_eq!(lookup(b, "ebbrt.log"), Some("debug"));
        assert_eq!(lookup(b, "missing"), None);
        assert_eq!(lookup("", "x"), None);
        // Values keep everything after the first `=`.
        assert_eq!(lookup("a=b=c", "a"), Some("b=c"));
    }

    #[test]
    fn cores_flag_wins_and_is_removed_from_app_args() {
        let argv = ["--cores", "3", "serve", "--cores=2", "x"];
        let c = parse_with(&argv, Some("5"), "ebbrt.cores=6").unwrap();
        assert_eq!(c.cores, 2, "the last flag wins");
        assert_eq!(app_args(&argv), strings(&["serve", "x"]));
        let c = parse_with(&["--cores=4"], None, "").unwrap();
        assert_eq!((c.cores, app_args(&["--cores=4"]).len()), (4, 0));
    }

    #[test]
    fn cores_fall_back_to_env_then_boot_args_then_default() {
        assert_eq!(
            parse_with(&[], Some(" 5 "), "ebbrt.cores=6").unwrap().cores,
            5
        );
        assert_eq!(parse_with(&[], None, "ebbrt.cores=6").unwrap().cores, 6);
        assert_eq!(parse_with(&["app"], None, "").unwrap().cores, 7);
    }

    #[test]
    fn double_dash_ends_runtime_flags() {
        let argv = ["a", "--", "--cores", "9", "--"];
        let c = parse_with(&argv, None, "").unwrap();
        assert_eq!(c.cores, 7);
        assert_eq!(app_args(&argv), strings(&["a", "--cores", "9", "--"]));
    }

    #[test]
    fn bad_core_counts_are_clear_errors() {
        for bad in [
            "0",
            "-1",
            "two",
            "",
            "1.5",
            "257",
            "99999999999999999999999",
        ] {
            let e = parse_with(&["--cores", bad], None, "").unwrap_err();
            assert_eq!(
                e,
                ConfigError::BadCores {
                    value: bad.to_owned(),
                    origin: "--cores"
                }
            );
            let msg = e.to_string();
            assert!(
                msg.contains("invalid core count") && msg.contains("1..=256"),
                "{msg}"
            );
        }
        let e = parse_with(&[], Some("lots"), "").unwrap_err();
        assert!(e.to_string().contains("EBBRT_CORES"), "{e}");
        let e = parse_with(&[], None, "ebbrt.cores=0").unwrap_err();
        assert!(e.to_string().contains("EBBRT_ARGS"), "{e}");
        assert_eq!(
            parse_with(&["--cores"], None, "").unwrap_err(),
            ConfigError::MissingCores
        );
        assert!(ConfigError::MissingCores.to_string().contains("--cores 4"));
        // A bad value that is overridden by a higher-priority one is ignored.
        assert_eq!(
            parse_with(&["--cores=1"], Some("bad"), "").unwrap().cores,
            1
        );
    }

    #[test]
    fn log_filter_comes_from_env_then_boot_args() {
        let boot = "ebbrt.log=nonsense";
        let e = parse(Sources {
            argv: vec![],
            env_cores: None,
            env_log: None,
            boot,
            default_cores: 1,
        })
        .unwrap_err();
        assert!(e.to_string().contains("ebbrt.log in EBBRT_ARGS"), "{e}");
        let ok = parse(Sources {
            argv: vec![],
            env_cores: None,
            env_log: Some("warn".into()),
            boot,
            default_cores: 1,
        })
        .unwrap();
        assert_eq!(ok.log.max_level(), log::LevelFilter::Warn);
    }

    #[test]
    fn pinning_is_auto_unless_the_boot_args_say_otherwise() {
        let pin = |boot| parse_with(&[], None, boot).unwrap().pin;
        assert_eq!(pin(""), Pin::Auto);
        assert_eq!(pin("ebbrt.pin=auto"), Pin::Auto);
        assert_eq!(pin("ebbrt.pin=1"), Pin::Always);
        assert_eq!(pin("x=1 ebbrt.pin=0"), Pin::Never);
        // Auto pins only when CPUs are left over for the rest of the machine.
        assert!(Pin::Auto.applies(1, 2));
        assert!(!Pin::Auto.applies(2, 2));
        assert!(!Pin::Auto.applies(4, 2));
        assert!(Pin::Always.applies(2, 2));
        assert!(!Pin::Never.applies(1, 8));
        for bad in ["ebbrt.pin=no", "ebbrt.pin", "ebbrt.pin=2"] {
            let e = parse_with(&[], None, bad).unwrap_err();
            assert!(matches!(e, ConfigError::BadPin(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("expected auto"), "{e}");
        }
    }
}
