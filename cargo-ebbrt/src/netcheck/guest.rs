//! A native image booted under QEMU for the network checks: it runs while
//! the checks talk to it, under a time limit, and is stopped (and its tap's
//! namespace deleted) when they are done, whatever happened.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::accel::Accel;
use crate::exit::{self, RawStatus};
use crate::net::{self, Attached, NetOpts};
use crate::process;
use crate::qemu::{self, Boot};

/// How often the keeper looks at QEMU.
const POLL: Duration = Duration::from_millis(50);

/// A running guest. Dropping it stops QEMU (SIGTERM, then SIGKILL) and
/// then deletes its network namespace, if it has one.
pub struct Guest {
    lines: Arc<Mutex<Vec<String>>>,
    line_rx: Receiver<String>,
    stop_tx: Option<Sender<()>>,
    keeper: Option<JoinHandle<()>>,
    /// How QEMU ended, once it has.
    ended: Arc<Mutex<Option<String>>>,
    /// The full QEMU command, for reports.
    pub command: String,
    // Declared last: dropped after QEMU is gone.
    net: Attached,
}

/// What to boot and how.
pub struct GuestSpec<'a> {
    /// `qemu-system-x86_64`.
    pub qemu: &'a Path,
    /// The ELF image.
    pub kernel: &'a Path,
    /// The accelerator.
    pub accel: Accel,
    /// The guest's network.
    pub net: NetOpts,
    /// Boot arguments after the network's.
    pub append: &'a str,
    /// QEMU is stopped after this long, whatever the checks are doing.
    pub limit: Duration,
    /// Echo the guest's console as it comes.
    pub verbose: bool,
}

impl Guest {
    /// Sets the network up and starts QEMU.
    pub fn boot(spec: GuestSpec<'_>) -> Result<Guest, String> {
        let net = net::attach(&spec.net)?;
        let boot = Boot {
            kernel: spec.kernel.to_path_buf(),
            accel: spec.accel,
            cores: crate::cli::DEFAULT_CORES,
            mem: qemu::DEFAULT_MEM,
            append: qemu::join_append([net.append.as_str(), spec.append]),
        };
        let mut cmd: Command = net.command(spec.qemu);
        cmd.args(boot.args()).args(&net.qemu_args);
        let command = qemu::command_line(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", spec.qemu.display()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (line_tx, line_rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        let stdout_reader = {
            let lines = lines.clone();
            let verbose = spec.verbose;
            std::thread::spawn(move || {
                process::for_each_line(out, |l| {
                    if verbose {
                        println!("  | {l}");
                    }
                    lines
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(l.to_string());
                    let _ = line_tx.send(l.to_string());
                })
            })
        };
        let err = child.stderr.take().expect("stderr is piped");
        let stderr_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            process::for_each_line(err, |l| v.push(l.to_string()));
            v
        });
        let ended = Arc::new(Mutex::new(None));
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let deadline = Instant::now() + spec.limit;
        let limit = spec.limit;
        let keeper = {
            let ended = ended.clone();
            // The keeper owns QEMU: only it waits for and signals the child,
            // so the pid it signals is never one already reaped.
            std::thread::spawn(move || {
                let (status, how) = loop {
                    match stop_rx.recv_timeout(POLL) {
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            break (process::stop(&mut child), Some("stopped"));
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    match child.try_wait() {
                        Ok(Some(s)) => break (Ok(s), None),
                        Ok(None) => {}
                        Err(e) => break (Err(e), None),
                    }
                    if Instant::now() >= deadline {
                        break (process::stop(&mut child), Some("timed out"));
                    }
                };
                let _ = stdout_reader.join();
                let stderr = stderr_reader.join().unwrap_or_default();
                let text = match (status, how) {
                    (_, Some("stopped")) => "was stopped by the tool".to_string(),
                    (_, Some(_)) => format!("TIMED OUT after {} s and was killed", limit.as_secs()),
                    (Err(e), None) => format!("could not be waited for: {e}"),
                    (Ok(s), None) => {
                        let outcome = exit::from_qemu_stderr(RawStatus::from(s), &stderr);
                        let mut t = outcome.to_string();
                        if let Some(last) = stderr.last() {
                            t.push_str(&format!(" (QEMU: {last})"));
                        }
                        t
                    }
                };
                *ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
            })
        };
        Ok(Guest {
            lines,
            line_rx,
            stop_tx: Some(stop_tx),
            keeper: Some(keeper),
            ended,
            command,
            net,
        })
    }

    /// How QEMU ended, if it has.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The network namespace of a tap guest.
    pub fn netns(&self) -> Option<&str> {
        self.net.netns().map(|n| n.name())
    }

    /// Waits up to `timeout` for a console line containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.line_rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the guest printed no `{needle}` within {} s",
                        timeout.as_secs()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // QEMU closed its console: it ended; the keeper says how.
                    let until = Instant::now() + Duration::from_secs(10);
                    while self.ended().is_none() && Instant::now() < until {
                        std::thread::sleep(POLL);
                    }
                    let how = self.ended().unwrap_or_else(|| "ended".into());
                    return Err(format!("the guest {how} before printing `{needle}`"));
                }
            }
        }
    }

    /// The last `n` console lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        l[l.len().saturating_sub(n)..].to_vec()
    }

    /// Console lines that show the guest in trouble (a panic, an error log).
    pub fn trouble(&self) -> Vec<String> {
        let l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        l.iter()
            .filter(|l| l.contains("panicked") || l.contains("ERROR"))
            .cloned()
            .collect()
    }

    /// Stops QEMU; `Err` with how it ended if it had ended by itself.
    pub fn finish(mut self) -> Result<(), String> {
        let early = self.ended();
        self.shut_down();
        match early {
            Some(how) => Err(format!("the guest {how} before the checks were done")),
            None => Ok(()),
        }
    }

    fn shut_down(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.shut_down();
    }
}
