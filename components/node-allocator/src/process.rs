//! The QEMU processes this allocator started: spawned from one long-lived
//! thread (so that `PR_SET_PDEATHSIG` fires when the process dies, not when
//! some short-lived allocating thread does), watched by a monitor thread
//! each, and stopped by pid — SIGTERM, a grace period, SIGKILL — only
//! while unreaped, so a pid is never signalled after it could be reused.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::handle::{Node, NodeError};
use crate::sys;

/// Between SIGTERM and SIGKILL: QEMU stops at once on SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(25);
/// Console lines kept in an error.
pub(crate) const TAIL_LINES: usize = 20;

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` from the process-lifetime spawner thread.
fn spawn(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("ebbrt-node-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the node spawner thread");
        Mutex::new(tx)
    });
    sys::die_with_parent(&mut cmd);
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .map_err(|_| io::Error::other("the node spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the node spawner thread is gone"))?
}

/// One running QEMU.
pub(crate) struct Process {
    pid: u32,
    /// `None` once reaped.
    child: Mutex<Option<Child>>,
    node: Arc<Node>,
    console_log: PathBuf,
    stopping: AtomicBool,
}

impl Process {
    /// Starts `cmd` (its stdio already set) and a thread that records its
    /// end on `node`.
    pub(crate) fn start(
        cmd: Command,
        node: Arc<Node>,
        console_log: PathBuf,
    ) -> io::Result<Arc<Process>> {
        let child = spawn(cmd)?;
        let p = Arc::new(Process {
            pid: child.id(),
            child: Mutex::new(Some(child)),
            node,
            console_log,
            stopping: AtomicBool::new(false),
        });
        let monitor = Arc::clone(&p);
        thread::Builder::new()
            .name(format!("ebbrt-node-{}", p.node.id()))
            .spawn(move || {
                while !monitor.poll() {
                    thread::sleep(POLL);
                }
            })?;
        Ok(p)
    }

    /// QEMU's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reaps QEMU if it has ended and records how; true once reaped.
    fn poll(&self) -> bool {
        let mut child = self.lock();
        let Some(c) = child.as_mut() else {
            return true;
        };
        match c.try_wait() {
            Ok(None) => false,
            Ok(Some(status)) => {
                *child = None;
                drop(child);
                self.record(status);
                true
            }
            Err(e) => {
                // Cannot happen for our own child; treat it as gone.
                *child = None;
                drop(child);
                self.node.mark_ended(NodeError::Killed {
                    node: self.node.id(),
                    signal: None,
                    by_allocator: self.stopping.load(Ordering::SeqCst),
                    last_console_lines: vec![format!("(cannot wait for QEMU: {e})")],
                });
                true
            }
        }
    }

    fn record(&self, status: ExitStatus) {
        let node = self.node.id();
        let last_console_lines = tail(&self.console_log, TAIL_LINES);
        let by_allocator = self.stopping.load(Ordering::SeqCst);
        let e = match (status.code(), by_allocator) {
            (Some(code), false) => NodeError::Exited {
                node,
                code,
                app_status: (code & 1 == 1).then_some(code >> 1),
                last_console_lines,
            },
            _ => NodeError::Killed {
                node,
                signal: status.signal(),
                by_allocator,
                last_console_lines,
            },
        };
        self.node.mark_ended(e);
    }

    /// Sends QEMU SIGTERM if it is still unreaped, and marks the end that
    /// follows as the allocator's doing.
    pub(crate) fn terminate(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let child = self.lock();
        if child.is_some() {
            // Unreaped (we hold the lock the monitor reaps under).
            sys::signal_child(self.pid, libc::SIGTERM);
        }
    }

    /// Stops QEMU: SIGTERM, then SIGKILL if it is still there after the
    /// grace period. Returns once it is reaped and its end recorded.
    pub(crate) fn stop(&self) {
        self.terminate();
        let until = Instant::now() + TERM_GRACE;
        while Instant::now() < until {
            if self.poll() {
                return;
            }
            thread::sleep(POLL);
        }
        let mut child = self.lock();
        if let Some(mut c) = child.take() {
            sys::signal_child(self.pid, libc::SIGKILL);
            let status = c.wait();
            drop(child);
            match status {
                Ok(s) => self.record(s),
                Err(_) => self.record(ExitStatus::from_raw(libc::SIGKILL)),
            }
        }
    }
}

/// The last `n` lines of the file at `path` (at most its last 64 KiB).
pub(crate) fn tail(path: &std::path::Path, n: usize) -> Vec<String> {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let _ = f.read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::{Bootstrap, IdSpace, NodeId, Secret};
    use std::path::Path;
    use std::process::Stdio;

    fn node(id: u32) -> Arc<Node> {
        Node::new(Bootstrap {
            node: NodeId(id),
            id_space: IdSpace(id),
            frontend: "127.0.0.1:9".parse().unwrap(),
            epoch: 0,
            secret: Secret::from_bytes([0; 32]),
        })
    }

    fn sh(script: &str, log: &std::path::Path) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script])
            .stdin(Stdio::null())
            .stdout(File::create(log).unwrap());
        c
    }

    fn log_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ebbrt-node-proc-{}-{name}.log", std::process::id()))
    }

    #[test]
    fn an_exit_is_recorded_with_the_console_tail() {
        let log = log_path("exit");
        let n = node(1);
        let _p = Process::start(
            sh("echo one; echo two; exit 7", &log),
            Arc::clone(&n),
            log.clone(),
        )
        .unwrap();
        let e = n
            .wait_ended(Duration::from_secs(120))
            .expect("the shell did not end");
        assert_eq!(
            e,
            NodeError::Exited {
                node: NodeId(1),
                code: 7,
                app_status: Some(3),
                last_console_lines: vec!["one".into(), "two".into()],
            }
        );
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn stop_ends_a_process_that_ignores_sigterm() {
        let log = log_path("stop");
        let n = node(2);
        // Ignores SIGTERM, so only the SIGKILL after the grace period ends it.
        let p = Process::start(
            sh("trap '' TERM; echo up; while :; do sleep 1; done", &log),
            Arc::clone(&n),
            log.clone(),
        )
        .unwrap();
        let pid = p.pid();
        // Only once it says `up` has the shell set its trap.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("up")
        {
            assert!(Instant::now() < deadline, "the shell did not start");
            thread::sleep(POLL);
        }
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        p.stop();
        match n.wait_ended(Duration::ZERO) {
            Some(NodeError::Killed {
                signal: Some(9),
                by_allocator: true,
                ..
            }) => {}
            other => panic!("expected a kill by the allocator, got {other:?}"),
        }
        // Reaped: no zombie, no process.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        let _ = std::fs::remove_file(log);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let log = log_path("tail");
        std::fs::write(&log, "a\n\nb\nc\n").unwrap();
        assert_eq!(tail(&log, 2), ["b", "c"]);
        assert_eq!(tail(&log, 10), ["a", "b", "c"]);
        assert!(tail(Path::new("/nonexistent/x"), 3).is_empty());
        let _ = std::fs::remove_file(log);
    }
}
