//! `cargo ebbrt run`: build an example and boot it under QEMU, or run it as
//! a Linux process with `--hosted`.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use crate::cargo::{Package, Workspace};
use crate::cli::RunArgs;
use crate::exit::{self, Outcome};
use crate::process::{self, Finished, Options, Stdout};
use crate::qemu::{self, Boot, MemSize};
use crate::symbolize::Symbolizer;
use crate::{Error, accel, note, setup};

/// The package of the virtio-net driver: an image built with it gets a NIC.
const NIC_DRIVER: &str = "ebbrt-virtio-net";
/// The node allocator: a hosted application built with it boots native
/// nodes, and `run --hosted` builds its native image for them.
const NODE_ALLOCATOR: &str = "ebbrt-node-allocator";
/// Where `run --hosted` tells such an application its native image is.
pub const NODE_IMAGE_ENV: &str = "EBBRT_NODE_IMAGE";

/// Runs the command; returns the status the tool exits with.
pub fn run(a: RunArgs) -> Result<i32, Error> {
    let ws = Workspace::load(&a.build)?;
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Tool(format!("cannot read the current directory: {e}")))?;
    let pkg = ws.application(a.build.package.as_deref(), &cwd)?;
    let outcome = if a.hosted {
        run_hosted(&ws, pkg, &a)?
    } else {
        run_native(&ws, pkg, &a)?
    };
    let how = match (&outcome, a.hosted) {
        (_, true) => "(hosted)",
        // The signal hit QEMU, not the guest.
        (Outcome::Signalled(_), false) => "(native): QEMU",
        _ => "(native)",
    };
    note(&format!("{} {how} {outcome}", pkg.name));
    Ok(outcome.exit_code())
}

fn run_native(ws: &Workspace, pkg: &Package, a: &RunArgs) -> Result<Outcome, Error> {
    let mem = a.mem.unwrap_or(qemu::DEFAULT_MEM);
    check_mem_fits(mem, host_mem_total_mib())?;
    let qemu_bin = setup::ensure_qemu()?;
    setup::ensure_rust_src(&ws.root)?;
    note(&ws.native_build_note(&format!("`{}`", pkg.name), a.build.release));
    let built = ws.build_native_example(pkg, &a.build)?;
    let kernel = built.exe.clone();
    let choice = accel::detect(a.accel);
    note(&format!("accelerator: {}", choice.reason));
    // A NIC only for an application that links the network stack, unless a
    // flag asks for one.
    let mut net_opts = a.net.clone();
    if !a.net_asked && !built.has_package(NIC_DRIVER) {
        net_opts.mode = crate::net::NetMode::None;
    }
    // Lives until QEMU exits: a tap's namespace is deleted when it drops.
    let net = crate::net::attach(&net_opts).map_err(Error::Tool)?;
    if net_opts.mode != crate::net::NetMode::None || a.net_asked {
        note(&format!("network: {}", net.summary));
    }
    for how in &net.reach {
        note(how);
    }
    // The user's boot arguments come last, so they override the network's.
    let user_append = qemu::join_append([net.append.as_str(), a.append.as_deref().unwrap_or("")]);
    let boot = Boot {
        kernel,
        accel: choice.accel,
        cores: a.cores,
        mem,
        append: native_command_line(&user_append, &a.app_args)?,
    };
    let symbolizer = Symbolizer::new(&boot.kernel, Some(&ws.root));
    let mut cmd = net.command(&qemu_bin);
    cmd.args(boot.args());
    cmd.args(&net.qemu_args);
    if a.gdb {
        let port = free_loopback_port()
            .map_err(|e| Error::Tool(format!("no free TCP port on 127.0.0.1 for gdb: {e}")))?;
        cmd.args(gdb_args(port));
        note(&format!("booting: {}", qemu::command_line(&cmd)));
        note(&format!(
            "QEMU holds the CPUs at the reset vector, waiting for gdb on \
             127.0.0.1:{port}; attach with the image's symbols (`continue` boots it):"
        ));
        note(&format!(
            "  {}",
            qemu::command_line(&gdb_command(&boot.kernel, port))
        ));
    } else {
        note(&format!("booting: {}", qemu::command_line(&cmd)));
    }
    let opts = Options {
        timeout: a.timeout,
        interactive: true,
        capture_stderr: true,
        kill_tree: false,
    };
    // The console is relayed as it comes, a native backtrace symbolized.
    let mut symbolizer = symbolizer;
    let annotate = Box::new(move |line: &str| symbolizer.annotate(line));
    let done = process::run(cmd, opts, Stdout::Relay(annotate))
        .map_err(|e| Error::Tool(format!("cannot run {}: {e}", qemu_bin.display())))?;
    Ok(qemu_outcome(&done, opts))
}

/// QEMU's arguments for `--gdb`: its gdbstub on `127.0.0.1:port`, and the
/// CPUs stopped until the debugger says `continue`.
fn gdb_args(port: u16) -> [String; 3] {
    ["-gdb".into(), format!("tcp:127.0.0.1:{port}"), "-S".into()]
}

/// The command that attaches gdb, with the image's symbols, to `--gdb`'s stub.
fn gdb_command(kernel: &Path, port: u16) -> Command {
    let mut cmd = Command::new("gdb");
    cmd.arg(kernel)
        .arg("-ex")
        .arg(format!("target remote 127.0.0.1:{port}"));
    cmd
}

/// A TCP port of 127.0.0.1 free now (the kernel's choice), for QEMU's gdbstub.
fn free_loopback_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The host's memory in MiB (`MemTotal` of /proc/meminfo), when known.
fn host_mem_total_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total_mib(&info)
}

fn parse_mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib / 1024)
}

/// A guest larger than the machine cannot run: refused before the build,
/// saying how much memory the machine has.
fn check_mem_fits(mem: MemSize, host_mib: Option<u64>) -> Result<(), Error> {
    match host_mib {
        Some(host) if mem.mib() > host => Err(Error::Usage(format!(
            "--mem {mem} is more than this machine's memory ({}, MemTotal in /proc/meminfo)",
            show_mib(host)
        ))),
        _ => Ok(()),
    }
}

/// `mib` for a person: in G with one decimal from 1G on, else in M.
fn show_mib(mib: u64) -> String {
    if mib >= 1024 {
        format!("{:.1}G", mib as f64 / 1024.0)
    } else {
        format!("{mib}M")
    }
}

/// The outcome of a finished QEMU.
pub fn qemu_outcome(done: &Finished, opts: Options) -> Outcome {
    match opts.timeout {
        Some(t) if done.timed_out => Outcome::TimedOut(t),
        _ => exit::from_qemu_stderr(done.status, &done.stderr),
    }
}

/// The kernel command line: the boot arguments, then ` -- ` and the
/// application's arguments (Linux's convention for arguments to init).
fn native_command_line(append: &str, app_args: &[String]) -> Result<String, Error> {
    if app_args.is_empty() {
        return Ok(append.to_string());
    }
    if let Some(bad) = app_args
        .iter()
        .find(|a| a.is_empty() || a.contains(char::is_whitespace))
    {
        return Err(Error::Usage(format!(
            "application argument {bad:?} cannot be passed on a kernel command line \
             (no spaces, not empty)"
        )));
    }
    Ok(qemu::join_append([append, "--", &app_args.join(" ")]))
}

fn run_hosted(ws: &Workspace, pkg: &Package, a: &RunArgs) -> Result<Outcome, Error> {
    // Build first, so that a --timeout covers the run and not the build.
    note(&format!(
        "building `{}` for this machine (hosted)",
        pkg.name
    ));
    let built = ws.build_hosted_example(pkg, &a.build)?;
    let exe = built.exe.clone();
    // A frontend that boots native nodes of its own (it links the node
    // allocator) gets its native image built too, named in the environment.
    let node_image = if built.has_package(NODE_ALLOCATOR) {
        setup::ensure_qemu()?;
        setup::ensure_rust_src(&ws.root)?;
        note(&ws.native_build_note(&format!("the nodes of `{}`", pkg.name), a.build.release));
        let image = ws.build_native_example(pkg, &a.build)?.exe;
        note(&format!("{NODE_IMAGE_ENV}={}", image.display()));
        Some(image)
    } else {
        None
    };
    let mut cmd = ws.hosted_run_command(
        &exe,
        a.cores,
        a.append.as_deref().unwrap_or(""),
        &a.app_args,
    );
    if let Some(image) = &node_image {
        cmd.env(NODE_IMAGE_ENV, image);
    }
    let opts = Options {
        timeout: a.timeout,
        interactive: true,
        capture_stderr: false,
        kill_tree: false,
    };
    let done = process::run(cmd, opts, Stdout::Inherit)
        .map_err(|e| Error::Tool(format!("cannot run {}: {e}", exe.display())))?;
    Ok(match opts.timeout {
        Some(t) if done.timed_out => Outcome::TimedOut(t),
        _ => exit::from_hosted(done.status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::RawStatus;
    use std::time::Duration;

    #[test]
    fn command_line_with_app_args() {
        assert_eq!(native_command_line("a=1", &[]).unwrap(), "a=1");
        assert_eq!(
            native_command_line("", &["x".into(), "-y".into()]).unwrap(),
            "-- x -y"
        );
        assert_eq!(
            native_command_line("a=1", &["x".into()]).unwrap(),
            "a=1 -- x"
        );
        assert!(matches!(
            native_command_line("", &["two words".into()]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            native_command_line("", &[String::new()]),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn gdb_arguments_and_attach_command() {
        assert_eq!(gdb_args(4321), ["-gdb", "tcp:127.0.0.1:4321", "-S"]);
        assert_eq!(
            qemu::command_line(&gdb_command(Path::new("/t/my kernel"), 4321)),
            "gdb '/t/my kernel' -ex 'target remote 127.0.0.1:4321'"
        );
        assert_ne!(free_loopback_port().unwrap(), 0);
    }

    #[test]
    fn memory_larger_than_the_machine_is_refused() {
        let info = "MemTotal:        8029616 kB\nMemFree:         1000000 kB\n";
        assert_eq!(parse_mem_total_mib(info), Some(7841));
        assert_eq!(parse_mem_total_mib("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total_mib("MemTotal: lots kB\n"), None);
        let mem = |s| MemSize::parse(s).unwrap();
        let e = check_mem_fits(mem("100G"), Some(7841)).unwrap_err();
        let Error::Usage(msg) = e else {
            panic!("not a usage error: {e:?}")
        };
        assert_eq!(
            msg,
            "--mem 100G is more than this machine's memory (7.7G, MemTotal in /proc/meminfo)"
        );
        check_mem_fits(mem("7841M"), Some(7841)).unwrap();
        check_mem_fits(mem("100G"), None).unwrap();
        assert_eq!(show_mib(512), "512M");
    }

    #[test]
    fn outcome_of_a_finished_qemu() {
        let opts = Options {
            timeout: Some(Duration::from_secs(5)),
            interactive: false,
            capture_stderr: true,
            kill_tree: false,
        };
        let fin = |status, timed_out, stderr: &[&str]| Finished {
            status,
            timed_out,
            stderr: stderr.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            qemu_outcome(&fin(RawStatus::Code(1), false, &[]), opts),
            Outcome::Exited(0)
        );
        assert_eq!(
            qemu_outcome(&fin(RawStatus::Signal(15), true, &[]), opts),
            Outcome::TimedOut(Duration::from_secs(5))
        );
        let err = ["qemu-system-x86_64: -kernel x: No such file"];
        assert!(matches!(
            qemu_outcome(&fin(RawStatus::Code(1), false, &err), opts),
            Outcome::QemuFailed(_)
        ));
    }
}
