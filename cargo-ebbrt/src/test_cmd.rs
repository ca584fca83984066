//! `cargo ebbrt test`: the host tests of the whole workspace, then every
//! in-QEMU test kernel, ending with the line `N passed, N failed` (in-QEMU
//! totals).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::accel::{self, Accel};
use crate::cargo::{TestKernel, Workspace};
use crate::cli::{DEFAULT_CORES, TestArgs};
use crate::exit::{Outcome, RawStatus};
use crate::fuzz;
use crate::process::{self, Options, Stdout};
use crate::protocol::{self, Event, MARKER, TestResult};
use crate::qemu::{self, Boot};
use crate::session::{self, Booter, KernelReport};
use crate::symbolize::{HEADER_MARK, Symbolizer};
use crate::{Error, netcheck, note, setup};

/// Lines of a failed boot's output shown when not `--verbose`.
const TAIL_LINES: usize = 25;
/// Most lines shown to include a whole backtrace (symbolized, with its
/// inlined frames) in a failed boot's last lines.
const BACKTRACE_TAIL_MAX: usize = 400;
/// Lines shown above a backtrace (the panic's message, a fault's registers).
const ABOVE_BACKTRACE: usize = 12;

/// Runs the command; returns the status the tool exits with.
pub fn test(a: TestArgs) -> Result<i32, Error> {
    let ws = Workspace::load(&a.build)?;
    // The network checks (of the framework's echo example) run after the
    // kernels, unless a filter or a package leaves them out.
    let net_selected = !a.no_qemu
        && ws.framework
        && a.build
            .package
            .as_deref()
            .is_none_or(|p| p == netcheck::EXAMPLE)
        && a.filter
            .as_deref()
            .is_none_or(|f| netcheck::LABEL.contains(f));
    let kernels = select(
        ws.test_kernels(a.build.package.as_deref()),
        a.filter.as_deref(),
        net_selected,
    )?;
    // Set the machine up first: a missing QEMU should not wait for the host tests.
    let mut machine = None;
    if !a.no_qemu && (!kernels.is_empty() || net_selected) {
        let qemu = setup::ensure_qemu()?;
        setup::ensure_rust_src(&ws.root)?;
        machine = Some((qemu, accel::detect(None)));
    }

    let mut host_ok = true;
    if !a.no_host {
        let what = match &a.build.package {
            Some(p) => format!("cargo test -p {p} --no-fail-fast"),
            None => "cargo test --workspace --no-fail-fast".to_string(),
        };
        heading(&format!("host tests: {what}"));
        // A hung test must not hang the whole run: past the limit, cargo
        // and the test binaries below it are killed.
        let opts = Options {
            timeout: Some(a.host_timeout),
            interactive: false,
            capture_stderr: false,
            kill_tree: true,
        };
        let done = process::run(ws.host_test_command(&a.build), opts, Stdout::Inherit)
            .map_err(|e| Error::Tool(format!("cannot run cargo: {e}")))?;
        host_ok = done.status == RawStatus::Code(0) && !done.timed_out;
        let external = if a.build.package.is_none() {
            ws.external_host_test_commands()
        } else {
            Vec::new()
        };
        for (app, cmd) in external {
            heading(&format!(
                "host tests of the application `{app}` (a workspace of its own)"
            ));
            let d = process::run(cmd, opts, Stdout::Inherit)
                .map_err(|e| Error::Tool(format!("cannot run cargo: {e}")))?;
            let ok = d.status == RawStatus::Code(0) && !d.timed_out;
            println!(
                "host tests of `{app}`: {}",
                if ok { "ok" } else { "FAILED" }
            );
            host_ok &= ok;
        }
        let verdict = match done.status {
            _ if done.timed_out => format!(
                "TIMED OUT after {} s (cargo test and its test binaries were killed; \
                 --host-timeout to change)",
                a.host_timeout.as_secs()
            ),
            RawStatus::Code(0) => "ok".to_string(),
            RawStatus::Code(c) => format!("FAILED (cargo test exited with status {c})"),
            RawStatus::Signal(s) => format!("FAILED (cargo test was killed by signal {s})"),
        };
        println!("host tests: {verdict}");
    }

    let (mut passed, mut failed) = (0, 0);
    let mut skipped = None;
    if !a.no_qemu {
        if let Some((qemu, choice)) = machine {
            if !kernels.is_empty() {
                heading(&format!("in-QEMU test kernels ({})", kernels.len()));
                note(&ws.native_build_note("each test kernel", a.build.release));
                note(&format!("accelerator: {}", choice.reason));
            }
            for k in &kernels {
                let report = run_test_kernel(&ws, k, &qemu, choice.accel, &a);
                print_report(k, &report);
                passed += report.passed();
                failed += report.failed();
            }
            if net_selected {
                heading("in-QEMU network checks: the echo example on a virtio-net NIC");
                note(&format!("accelerator: {}", choice.reason));
                let report = netcheck::run(&netcheck::Setup {
                    ws: &ws,
                    qemu: &qemu,
                    accel: choice.accel,
                    timeout: a.timeout,
                    verbose: a.verbose,
                });
                println!(
                    "{}: {} passed, {} failed, {} skipped",
                    netcheck::LABEL,
                    report.passed(),
                    report.failed(),
                    report.skipped()
                );
                for r in &report.results {
                    if let netcheck::Verdict::Failed(why) = &r.verdict {
                        println!("    FAILED {}: {why}", r.name);
                    }
                }
                passed += report.passed();
                failed += report.failed();
                if report.skipped() > 0 {
                    skipped = Some((report.skipped(), report.skip_reasons().join("; ")));
                }
            }
        } else {
            println!("no in-QEMU test kernels in the workspace (test targets named `qemu*`)");
        }
    }
    // A filter names test kernels: no fuzzing then.
    let fuzz_dirs = if a.fuzz.is_zero() || a.filter.is_some() {
        Vec::new()
    } else {
        fuzz::discover(&ws, a.build.package.as_deref())
    };
    if !fuzz_dirs.is_empty() {
        heading(&format!(
            "fuzz targets, {} s each from their corpus (--fuzz to change)",
            a.fuzz.as_secs()
        ));
        if fuzz::installed(&ws.root) {
            let target = ws.fuzz_target_dir();
            for d in &fuzz_dirs {
                note(&format!(
                    "{}: building and running its fuzz targets (a workspace of their own, built \
                     into {}; minutes the first time)",
                    d.package,
                    target.display()
                ));
                for r in fuzz::run_dir(&ws.root, d, a.fuzz, &target) {
                    match &r.result {
                        Ok(()) => {
                            println!("fuzz {} ... ok", r.name);
                            passed += 1;
                        }
                        Err(why) => {
                            println!("fuzz {} ... FAILED: {why}", r.name);
                            failed += 1;
                        }
                    }
                }
            }
        } else {
            println!(
                "fuzz: FAILED: {} fuzz directories but no cargo-fuzz: `cargo install \
                 cargo-fuzz` (.ci/run does), or --fuzz 0 to leave them out",
                fuzz_dirs.len()
            );
            failed += 1;
        }
    }
    if !host_ok {
        println!("host tests FAILED (see above)");
    }
    if let Some((n, why)) = skipped {
        // Loud: a skipped check is not a passed one.
        println!("WARNING: {n} network checks were SKIPPED, not passed: {why}");
    }
    println!("{passed} passed, {failed} failed");
    let _ = std::io::stdout().flush();
    Ok(if host_ok && failed == 0 { 0 } else { 1 })
}

/// The kernels `filter` selects (all without one); a filter that selects
/// nothing (neither a kernel nor, `net_selected`, the network checks) is a
/// usage error.
fn select(
    kernels: Vec<TestKernel>,
    filter: Option<&str>,
    net_selected: bool,
) -> Result<Vec<TestKernel>, Error> {
    let Some(f) = filter else { return Ok(kernels) };
    let mut all: Vec<String> = kernels.iter().map(TestKernel::label).collect();
    all.push(netcheck::LABEL.to_string());
    let chosen: Vec<TestKernel> = kernels
        .into_iter()
        .filter(|k| k.label().contains(f))
        .collect();
    if chosen.is_empty() && !net_selected {
        let all = if all.is_empty() {
            "none".to_string()
        } else {
            all.join(", ")
        };
        return Err(Error::Usage(format!(
            "no test kernel matches `--filter {f}`; the test kernels are: {all}"
        )));
    }
    Ok(chosen)
}

fn heading(s: &str) {
    println!("\n== {s}");
    let _ = std::io::stdout().flush();
}

fn run_test_kernel(
    ws: &Workspace,
    k: &TestKernel,
    qemu: &std::path::Path,
    accel: Accel,
    a: &TestArgs,
) -> KernelReport {
    println!("\n-- {}", k.label());
    let _ = std::io::stdout().flush();
    let kernel = match ws.build_native_test_kernel(k, &a.build) {
        Ok(b) => b.exe,
        Err(e) => {
            return KernelReport {
                errors: vec![e.to_string()],
                ..KernelReport::default()
            };
        }
    };
    let mut booter = QemuBooter {
        qemu: qemu.to_path_buf(),
        kernel,
        append: k.append(),
        accel,
        timeout: a.timeout,
        verbose: a.verbose,
        source_root: Some(ws.root.clone()),
    };
    session::run_kernel(&mut booter)
}

fn print_report(k: &TestKernel, r: &KernelReport) {
    let boots = if r.boots == 1 {
        "1 boot".to_string()
    } else {
        format!("{} boots", r.boots)
    };
    println!(
        "{}: {} passed, {} failed ({boots})",
        k.label(),
        r.passed(),
        r.failed()
    );
    for (i, t) in &r.tests {
        if let TestResult::Failed(why) = &t.result {
            println!("    FAILED [{i}] {}: {why}", t.name);
        }
    }
    for e in &r.errors {
        println!("    ERROR {e}");
    }
    let _ = std::io::stdout().flush();
}

/// Where the last lines of a boot's output shown start: the last
/// [`TAIL_LINES`], or from a little above the last backtrace when one
/// began within [`BACKTRACE_TAIL_MAX`] lines of the end (shown whole).
fn tail_start(lines: &[String]) -> usize {
    let tail = lines.len().saturating_sub(TAIL_LINES);
    match lines.iter().rposition(|l| l.contains(HEADER_MARK)) {
        Some(h) if lines.len() - h <= BACKTRACE_TAIL_MAX => {
            tail.min(h.saturating_sub(ABOVE_BACKTRACE))
        }
        _ => tail,
    }
}

/// Boots a test kernel under QEMU, showing the protocol lines as they come.
pub(crate) struct QemuBooter {
    pub(crate) qemu: PathBuf,
    pub(crate) kernel: PathBuf,
    /// Boot arguments of every boot (the test runner adds its own).
    pub(crate) append: String,
    pub(crate) accel: Accel,
    pub(crate) timeout: Duration,
    pub(crate) verbose: bool,
    /// File names of a symbolized backtrace are shown relative to this.
    pub(crate) source_root: Option<PathBuf>,
}

impl Booter for QemuBooter {
    fn boot(&mut self, start: usize) -> Result<session::Boot, String> {
        let start_arg = if start == 0 {
            String::new()
        } else {
            format!("ebbrt.test.start={start}")
        };
        let append = qemu::join_append([self.append.as_str(), start_arg.as_str()]);
        let boot = Boot {
            kernel: self.kernel.clone(),
            accel: self.accel,
            cores: DEFAULT_CORES,
            mem: qemu::DEFAULT_MEM,
            append,
        };
        if self.verbose || start > 0 {
            note(&format!("booting: {}", boot.display(&self.qemu)));
        }
        let mut cmd = Command::new(&self.qemu);
        cmd.args(boot.args());
        let mut lines = Vec::new();
        let verbose = self.verbose;
        let mut symbolizer = Symbolizer::new(&self.kernel, self.source_root.as_deref());
        let mut on_line = |line: &str| {
            if verbose {
                println!("  | {line}");
            } else if protocol::parse_line(line)
                .is_some_and(|e| !matches!(e, Event::Test { result: None, .. }))
            {
                let at = line.find(MARKER).unwrap_or(0) + MARKER.len();
                println!("  {}", &line[at..]);
            }
            lines.push(line.to_string());
            // A backtrace's frames, symbolized, follow their address.
            for extra in symbolizer.annotate(line) {
                if verbose {
                    println!("  | {extra}");
                }
                lines.push(extra);
            }
        };
        let opts = Options {
            timeout: Some(self.timeout),
            interactive: false,
            capture_stderr: true,
            kill_tree: false,
        };
        let done = process::run(cmd, opts, Stdout::Lines(&mut on_line))
            .map_err(|e| format!("cannot run {}: {e}", self.qemu.display()))?;
        let outcome = crate::run_cmd::qemu_outcome(&done, opts);
        let finished = lines
            .iter()
            .any(|l| matches!(protocol::parse_line(l), Some(Event::Done { .. })));
        if !finished && !self.verbose {
            println!(
                "  the kernel {outcome}; its last lines ({}):",
                self.kernel.display()
            );
            for l in &lines[tail_start(&lines)..] {
                println!("  | {l}");
            }
        }
        if let Outcome::QemuFailed(e) = &outcome {
            return Err(format!("QEMU failed: {e}"));
        }
        Ok(session::Boot { lines, outcome })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_backtrace_is_shown_whole() {
        let mut lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        assert_eq!(tail_start(&lines), 100 - TAIL_LINES);
        lines.push(format!(
            "  {HEADER_MARK}; addr2line -e <image> -f -C ADDR):"
        ));
        lines.extend((0..60).map(|i| format!("    #{i} 0x0000000000201000")));
        assert_eq!(tail_start(&lines), 100 - ABOVE_BACKTRACE);
        lines.extend((0..BACKTRACE_TAIL_MAX).map(|i| format!("later {i}")));
        assert_eq!(tail_start(&lines), lines.len() - TAIL_LINES);
    }

    fn k(p: &str, n: &str) -> TestKernel {
        TestKernel {
            package: p.into(),
            name: n.into(),
            feature: None,
        }
    }

    #[test]
    fn filter() {
        let all = vec![
            k("ebbrt-core", "qemu_exec"),
            k("ebbrt-core", "qemu_ebb"),
            k("echo", "qemu_net"),
        ];
        assert_eq!(select(all.clone(), None, true).unwrap(), all);
        assert_eq!(
            select(all.clone(), Some("exec"), false).unwrap(),
            [k("ebbrt-core", "qemu_exec")]
        );
        assert_eq!(
            select(all.clone(), Some("ebbrt-core/"), false)
                .unwrap()
                .len(),
            2
        );
        // Only the network checks: no kernel, and no error.
        assert_eq!(select(all.clone(), Some("netcheck"), true).unwrap(), []);
        let Err(Error::Usage(m)) = select(all, Some("zzz"), false) else {
            panic!()
        };
        assert!(
            m.contains("ebbrt-core/qemu_exec, ebbrt-core/qemu_ebb, echo/qemu_net, echo/netcheck"),
            "{m}"
        );
    }
}
