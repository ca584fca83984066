//! Running a child (QEMU, a hosted application) under a time limit.
//!
//! Only the tool's own children are ever signalled, by their pid. QEMU's
//! stderr is always piped through the tool (echoed line by line) so its
//! messages can be read back ([`crate::exit::QemuStderr`]); stdout is either
//! the terminal or, for test kernels, read line by line.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::exit::RawStatus;

/// Where a child's stdout goes.
pub enum Stdout<'a> {
    /// To the terminal, untouched.
    Inherit,
    /// Read line by line (lossily decoded, without the line end) and handed
    /// to the callback as it arrives.
    Lines(&'a mut dyn FnMut(&str)),
    /// To the terminal as it comes (a partial line too, so prompts show),
    /// with each complete line (lossily decoded, without the line end) also
    /// handed to the callback on the reading thread; the lines it returns
    /// are written right after that line.
    Relay(Annotate),
}

/// The callback of [`Stdout::Relay`].
pub type Annotate = Box<dyn FnMut(&str) -> Vec<String> + Send>;

/// How to run a child.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Stop it after this long.
    pub timeout: Option<Duration>,
    /// The child owns the terminal: stdin is inherited and the tool ignores
    /// SIGINT while the child runs (the child gets the terminal's Ctrl-C and
    /// the tool reports how it ended). Otherwise stdin is closed.
    pub interactive: bool,
    /// Pipe stderr through the tool (echoed as it comes, and kept in
    /// [`Finished::stderr`]); otherwise it is the tool's own stderr.
    pub capture_stderr: bool,
    /// At the timeout, kill the child's descendants too, at once (for
    /// `cargo test`, whose test binaries would outlive it); otherwise the
    /// child alone gets SIGTERM, then SIGKILL after a grace period.
    pub kill_tree: bool,
}

/// How a child ended.
#[derive(Debug)]
pub struct Finished {
    /// Its status (when it was killed for the timeout: the kill's).
    pub status: RawStatus,
    /// It was still running at the deadline and was killed.
    pub timed_out: bool,
    /// Every line it wrote to stderr, when captured.
    pub stderr: Vec<String>,
}

/// Grace period between SIGTERM and SIGKILL at a timeout: enough for QEMU to
/// restore the terminal settings it changed.
const TERM_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// Runs `cmd` to completion or until the timeout, whichever is first.
pub fn run(mut cmd: Command, opts: Options, stdout: Stdout<'_>) -> io::Result<Finished> {
    cmd.stdin(if opts.interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    });
    cmd.stderr(if opts.capture_stderr {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let (mut on_line, relay) = match stdout {
        Stdout::Inherit => (None, None),
        Stdout::Lines(f) => (Some(f), None),
        Stdout::Relay(a) => (None, Some(a)),
    };
    cmd.stdout(if on_line.is_none() && relay.is_none() {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    let mut child = cmd.spawn()?;
    // Set after spawning, so the child does not inherit SIG_IGN.
    let _sigint = opts.interactive.then(IgnoreSigint::new);

    // Set once the tool stops the child: what it says about being
    // terminated is kept but not shown (the tool reports the timeout).
    let stopping = Arc::new(AtomicBool::new(false));
    let stderr_reader = child.stderr.take().map(|err_pipe| {
        let stopping = Arc::clone(&stopping);
        thread::spawn(move || {
            let mut lines = Vec::new();
            for_each_line(err_pipe, |line| {
                if !stopping.load(Ordering::Relaxed) {
                    let mut e = io::stderr().lock();
                    // The terminal may be gone; the child's stderr still gets drained.
                    let _ = writeln!(e, "{line}");
                }
                lines.push(line.to_string());
            });
            lines
        })
    });
    let (tx, rx) = mpsc::channel::<String>();
    let stdout_reader = child.stdout.take().map(|out| match relay {
        Some(annotate) => thread::spawn(move || relay_to(out, &mut io::stdout(), annotate)),
        None => thread::spawn(move || {
            for_each_line(out, |line| {
                let _ = tx.send(line.to_string());
            })
        }),
    });

    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let mut deliver = |line: String| {
        if let Some(f) = &mut on_line {
            f(&line);
        }
    };
    let mut timed_out = false;
    let status = loop {
        match rx.recv_timeout(POLL) {
            Ok(line) => {
                deliver(line);
                continue;
            }
            // No line reader (stdout relayed straight to the terminal, or
            // not captured): the channel is closed at once, and without
            // this sleep the loop would spin on `try_wait`, a host CPU
            // taken from QEMU for the whole run.
            Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(POLL),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            stopping.store(true, Ordering::Relaxed);
            if opts.kill_tree {
                kill_tree(child.id());
                break child.wait()?;
            }
            break stop(&mut child)?;
        }
    };
    if let Some(reader) = stdout_reader {
        // The reader ends at EOF, which follows the child's exit.
        let _ = reader.join();
    }
    for line in rx.try_iter() {
        deliver(line);
    }
    let stderr = stderr_reader
        .map(|r| r.join().unwrap_or_default())
        .unwrap_or_default();
    Ok(Finished {
        status: status.into(),
        timed_out,
        stderr,
    })
}

/// SIGTERM, a grace period, then SIGKILL: our own child, by pid.
pub fn stop(child: &mut Child) -> io::Result<std::process::ExitStatus> {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with our own child's pid, which cannot have been
        // reused: the child has not been reaped (try_wait returned None).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + TERM_GRACE;
        while Instant::now() < until {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            thread::sleep(POLL);
        }
    }
    child.kill()?;
    child.wait()
}

/// Kills `root` (our child, not yet reaped) and every process below it.
///
/// Each process is stopped (SIGSTOP) before its children are read from
/// `/proc/<pid>/task/<tid>/children`, so none can spawn more or reap (and so
/// free the pid of) one already found; then all get SIGKILL.
fn kill_tree(root: u32) {
    let signal = |pid: u32, sig| {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) on a process of the tree below our unreaped
            // child; every parent in it is stopped, so no pid found here
            // can have been reaped and reused.
            unsafe { libc::kill(pid, sig) };
        }
    };
    let mut tree = vec![root];
    signal(root, libc::SIGSTOP);
    let mut i = 0;
    while i < tree.len() {
        for c in children(tree[i]) {
            if !tree.contains(&c) {
                signal(c, libc::SIGSTOP);
                tree.push(c);
            }
        }
        i += 1;
    }
    for pid in tree {
        signal(pid, libc::SIGKILL);
    }
}

/// The children of `pid`, from `/proc` (none when it cannot be read).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Calls `f` with each line of `r` (lossy UTF-8, line end and `\r` removed).
pub fn for_each_line(r: impl Read, mut f: impl FnMut(&str)) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                f(&String::from_utf8_lossy(&buf));
            }
        }
    }
}

/// Longest partial line kept for [`relay_to`]'s callback; a longer line is
/// still relayed, but not handed to it.
const RELAY_LINE_MAX: usize = 64 * 1024;

/// Copies `r` to `sink` as it arrives, flushing after each read; after each
/// complete line, writes the lines `annotate` returns for it (ended like
/// that line). Write errors are ignored (the terminal may be gone) so that
/// `r` is still drained.
fn relay_to(mut r: impl Read, sink: &mut dyn Write, mut annotate: Annotate) {
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (piece, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..=i], true),
                None => (rest, false),
            };
            rest = &rest[piece.len()..];
            let _ = sink.write_all(piece);
            if too_long || line.len() + piece.len() > RELAY_LINE_MAX {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(piece);
            }
            if !ended {
                continue;
            }
            let end: &[u8] = if line.ends_with(b"\r\n") {
                b"\r\n"
            } else {
                b"\n"
            };
            if !too_long {
                let text = String::from_utf8_lossy(&line[..line.len() - end.len()]);
                for extra in annotate(&text) {
                    let _ = sink.write_all(extra.as_bytes());
                    let _ = sink.write_all(end);
                }
            }
            line.clear();
            too_long = false;
        }
        let _ = sink.flush();
    }
}

/// Ignores SIGINT in the tool until dropped.
struct IgnoreSigint(libc::sighandler_t);

impl IgnoreSigint {
    fn new() -> Self {
        // SAFETY: signal(2) with SIG_IGN installs no handler code; the
        // previous disposition is restored on drop.
        IgnoreSigint(unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) })
    }
}

impl Drop for IgnoreSigint {
    fn drop(&mut self) {
        // SAFETY: restores the disposition signal(2) returned in `new`.
        unsafe { libc::signal(libc::SIGINT, self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    fn limit(ms: u64) -> Options {
        Options {
            timeout: Some(Duration::from_millis(ms)),
            interactive: false,
            capture_stderr: true,
            kill_tree: false,
        }
    }

    #[test]
    fn lines_status_and_stderr() {
        let mut seen = Vec::new();
        let mut f = |l: &str| seen.push(l.to_string());
        let done = run(
            sh("printf 'a\\r\\nb\\n\\377c'; echo oops >&2; exit 3"),
            limit(20_000),
            Stdout::Lines(&mut f),
        )
        .unwrap();
        assert_eq!(done.status, RawStatus::Code(3));
        assert!(!done.timed_out);
        assert_eq!(done.stderr, vec!["oops"]);
        assert_eq!(seen, vec!["a", "b", "\u{fffd}c"]);
    }

    #[test]
    fn timeout_kills_the_child() {
        let start = Instant::now();
        let mut seen = Vec::new();
        let mut f = |l: &str| seen.push(l.to_string());
        let done = run(
            sh("echo started; exec sleep 30"),
            limit(300),
            Stdout::Lines(&mut f),
        )
        .unwrap();
        assert!(done.timed_out);
        assert_eq!(done.status, RawStatus::Signal(libc::SIGTERM));
        assert_eq!(seen, vec!["started"]);
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn sigterm_ignored_means_sigkill() {
        let mut f = |_: &str| {};
        let script = "trap '' TERM; echo ready; while :; do sleep 0.05; done";
        let done = run(sh(script), limit(300), Stdout::Lines(&mut f)).unwrap();
        assert!(done.timed_out);
        assert_eq!(done.status, RawStatus::Signal(libc::SIGKILL));
    }

    #[test]
    fn relay_copies_everything_and_adds_after_lines() {
        let input: &[u8] = b"plain\nmark one\r\npartial \xffmark";
        let mut seen = Vec::new();
        let (tx, rx) = mpsc::channel();
        let annotate: Annotate = Box::new(move |l: &str| {
            let _ = tx.send(l.to_string());
            if l.starts_with("mark") {
                vec![format!("  [{l}]"), "  second".to_string()]
            } else {
                Vec::new()
            }
        });
        relay_to(input, &mut seen, annotate);
        assert_eq!(
            String::from_utf8_lossy(&seen),
            "plain\nmark one\r\n  [mark one]\r\n  second\r\npartial \u{fffd}mark"
        );
        // The partial last line is relayed but not handed over.
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["plain", "mark one"]);
    }

    /// Whether `pid` is gone or a zombie (dead, not yet reaped).
    fn dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn kill_tree_kills_the_grandchildren() {
        let mut pids = Vec::new();
        let mut f = |l: &str| pids.push(l.to_string());
        let script =
            "sleep 100 >/dev/null 2>&1 & echo $!; sleep 100 >/dev/null 2>&1 & echo $!; wait";
        let opts = Options {
            kill_tree: true,
            ..limit(500)
        };
        let done = run(sh(script), opts, Stdout::Lines(&mut f)).unwrap();
        assert!(done.timed_out);
        assert_eq!(done.status, RawStatus::Signal(libc::SIGKILL));
        assert_eq!(pids.len(), 2, "{pids:?}");
        let until = Instant::now() + Duration::from_secs(5);
        while !pids.iter().all(|p| dead(p)) && Instant::now() < until {
            thread::sleep(POLL);
        }
        assert!(
            pids.iter().all(|p| dead(p)),
            "grandchildren {pids:?} survived"
        );
    }
}
