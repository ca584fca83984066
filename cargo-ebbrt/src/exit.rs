//! How a finished QEMU (or hosted) process maps back to the application's
//! exit status, and the tool's own exit statuses.
//!
//! A native application exits by writing its code V to the `isa-debug-exit`
//! port; QEMU then exits with `(V << 1) | 1`, so an odd status S means the
//! application's code `(S - 1) / 2`. QEMU's own exit statuses collide with
//! that scheme: status 0 is what a triple fault (or a guest reset) gives
//! under `-no-reboot`, and also what QEMU gives when a signal stops it;
//! status 1 is both "the application exited with 0" and "QEMU refused to
//! start". The tool tells them apart by QEMU's stderr (see [`QemuStderr`]).

use std::fmt;
use std::time::Duration;

/// Command-line misuse (unknown flag, unknown example, ...).
pub const EXIT_USAGE: i32 = 2;
/// The tool failed before or around the application (build failure, QEMU
/// missing or refusing to start, ...).
pub const EXIT_TOOL: i32 = 1;
/// The run hit `--timeout` (as `timeout(1)` does).
pub const EXIT_TIMEOUT: i32 = 124;
/// The guest crashed: triple fault or reset (QEMU status 0), or an exit
/// status `isa-debug-exit` cannot produce.
pub const EXIT_CRASH: i32 = 125;
/// Added to a signal number when QEMU or a hosted process died of a signal.
pub const EXIT_SIGNAL_BASE: i32 = 128;

/// How a process ended, as `std::process::ExitStatus` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawStatus {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl From<std::process::ExitStatus> for RawStatus {
    fn from(s: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(c), _) => RawStatus::Code(c),
            (None, Some(sig)) => RawStatus::Signal(sig),
            // Stopped/continued are not terminations; wait() does not report them.
            (None, None) => RawStatus::Code(EXIT_TOOL),
        }
    }
}

/// What QEMU said on stderr that changes the meaning of its exit status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuStderr {
    /// `qemu-system-x86_64: terminating on signal N ...`
    pub terminated_by_signal: Option<i32>,
    /// The first error line (`qemu-system-x86_64: ...` that is not a warning).
    pub error: Option<String>,
}

impl QemuStderr {
    /// Looks at one line QEMU wrote to stderr.
    pub fn scan(&mut self, line: &str) {
        let line = line.trim_end();
        let Some(rest) = line
            .strip_prefix("qemu-system-x86_64: ")
            .or_else(|| line.strip_prefix("qemu: "))
        else {
            return;
        };
        if let Some(sig) = rest.strip_prefix("terminating on signal ") {
            let digits: String = sig.chars().take_while(char::is_ascii_digit).collect();
            self.terminated_by_signal = digits.parse().ok();
        } else if !rest.starts_with("warning:") && self.error.is_none() {
            self.error = Some(rest.to_string());
        }
    }
}

/// How a run of the application ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The application exited with this code.
    Exited(i32),
    /// The guest crashed — the text says how.
    Crashed(String),
    /// QEMU or the hosted process was stopped by signal N.
    Signalled(i32),
    /// QEMU failed by itself (bad option, unreadable kernel, ...).
    QemuFailed(String),
    /// The run was stopped after this long.
    TimedOut(Duration),
}

/// Maps QEMU's exit status back to the application's.
pub fn from_qemu(status: RawStatus, stderr: &QemuStderr) -> Outcome {
    match status {
        RawStatus::Signal(sig) => Outcome::Signalled(sig),
        RawStatus::Code(0) => match stderr.terminated_by_signal {
            Some(sig) => Outcome::Signalled(sig),
            None => Outcome::Crashed(
                "the guest triple-faulted or reset (QEMU exit status 0 under -no-reboot): \
                 the kernel crashed before it could report an exit code"
                    .into(),
            ),
        },
        RawStatus::Code(1) if stderr.error.is_some() => {
            Outcome::QemuFailed(stderr.error.clone().unwrap_or_default())
        }
        RawStatus::Code(s) if s % 2 == 1 => Outcome::Exited((s - 1) / 2),
        RawStatus::Code(s) => match &stderr.error {
            Some(e) => Outcome::QemuFailed(format!("{e} (QEMU exit status {s})")),
            None => Outcome::Crashed(format!(
                "QEMU exited with status {s}, which isa-debug-exit cannot produce \
                 (it gives odd statuses)"
            )),
        },
    }
}

/// Maps QEMU's exit status back to the application's, reading what QEMU
/// wrote to stderr (`lines`) into a [`QemuStderr`] first.
pub fn from_qemu_stderr(status: RawStatus, lines: &[String]) -> Outcome {
    let mut stderr = QemuStderr::default();
    for line in lines {
        stderr.scan(line);
    }
    from_qemu(status, &stderr)
}

/// Maps a hosted process's exit status.
pub fn from_hosted(status: RawStatus) -> Outcome {
    match status {
        RawStatus::Code(c) => Outcome::Exited(c),
        RawStatus::Signal(sig) => Outcome::Signalled(sig),
    }
}

impl Outcome {
    /// The status `cargo ebbrt` exits with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(c) => *c,
            Outcome::Crashed(_) => EXIT_CRASH,
            Outcome::Signalled(sig) => EXIT_SIGNAL_BASE + sig,
            Outcome::QemuFailed(_) => EXIT_TOOL,
            Outcome::TimedOut(_) => EXIT_TIMEOUT,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(c) => write!(f, "exited with status {c}"),
            Outcome::Crashed(why) => write!(f, "CRASHED: {why}"),
            // An interrupt or termination is the user's doing; any other signal is a crash.
            Outcome::Signalled(sig @ (2 | 15)) => {
                write!(f, "stopped by signal {sig} ({})", signal_name(*sig))
            }
            Outcome::Signalled(sig) => {
                write!(f, "CRASHED: killed by signal {sig} ({})", signal_name(*sig))
            }
            Outcome::QemuFailed(e) => write!(f, "QEMU failed: {e}"),
            Outcome::TimedOut(d) => write!(f, "TIMED OUT after {} s and was killed", d.as_secs()),
        }
    }
}

/// The usual name of a Linux signal number.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> QemuStderr {
        QemuStderr::default()
    }

    #[test]
    fn odd_statuses_are_application_codes() {
        assert_eq!(from_qemu(RawStatus::Code(1), &clean()), Outcome::Exited(0));
        assert_eq!(from_qemu(RawStatus::Code(3), &clean()), Outcome::Exited(1));
        assert_eq!(from_qemu(RawStatus::Code(7), &clean()), Outcome::Exited(3));
        assert_eq!(
            from_qemu(RawStatus::Code(255), &clean()),
            Outcome::Exited(127)
        );
        assert_eq!(from_qemu(RawStatus::Code(7), &clean()).exit_code(), 3);
    }

    #[test]
    fn status_zero_is_a_crash_never_success() {
        let o = from_qemu(RawStatus::Code(0), &clean());
        assert!(
            matches!(o, Outcome::Crashed(ref m) if m.contains("triple-fault")),
            "{o:?}"
        );
        assert_ne!(o.exit_code(), 0);
        assert_eq!(o.exit_code(), EXIT_CRASH);
    }

    #[test]
    fn signals() {
        let o = from_qemu(RawStatus::Signal(9), &clean());
        assert_eq!(o, Outcome::Signalled(9));
        assert_eq!(o.exit_code(), 137);
        let mut err = clean();
        err.scan("qemu-system-x86_64: terminating on signal 2 from pid 1234 (bash)");
        assert_eq!(from_qemu(RawStatus::Code(0), &err), Outcome::Signalled(2));
        assert_eq!(from_qemu(RawStatus::Code(0), &err).exit_code(), 130);
    }

    #[test]
    fn qemu_errors_are_not_application_success() {
        let mut err = clean();
        err.scan("qemu-system-x86_64: warning: host doesn't support requested feature");
        assert_eq!(err.error, None);
        assert_eq!(from_qemu(RawStatus::Code(1), &err), Outcome::Exited(0));
        err.scan("qemu-system-x86_64: -kernel /nope: No such file or directory");
        err.scan("qemu-system-x86_64: second error");
        let o = from_qemu(RawStatus::Code(1), &err);
        assert_eq!(
            o,
            Outcome::QemuFailed("-kernel /nope: No such file or directory".into())
        );
        assert_eq!(o.exit_code(), EXIT_TOOL);
        assert!(matches!(
            from_qemu(RawStatus::Code(4), &clean()),
            Outcome::Crashed(_)
        ));
        assert!(matches!(
            from_qemu(RawStatus::Code(4), &err),
            Outcome::QemuFailed(_)
        ));
        // Guest output never reaches stderr, but other lines must not count.
        let mut other = clean();
        other.scan("panicked at src/main.rs:1:1");
        assert_eq!(other, clean());
    }

    #[test]
    fn hosted_statuses() {
        assert_eq!(from_hosted(RawStatus::Code(0)), Outcome::Exited(0));
        assert_eq!(from_hosted(RawStatus::Code(42)).exit_code(), 42);
        let segv = from_hosted(RawStatus::Signal(11));
        assert_eq!(segv.to_string(), "CRASHED: killed by signal 11 (SIGSEGV)");
        assert_eq!(segv.exit_code(), 139);
        assert_eq!(from_hosted(RawStatus::Signal(2)).exit_code(), 130);
    }

    #[test]
    fn timeout_code() {
        assert_eq!(
            Outcome::TimedOut(Duration::from_secs(3)).exit_code(),
            EXIT_TIMEOUT
        );
    }
}
