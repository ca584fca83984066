//! `cargo ebbrt run`: build an example and boot it under QEMU, or run it as
//! a Linux process with `--hosted`.

use crate::cargo::{Package, Workspace};
use crate::cli::RunArgs;
use crate::exit::{self, Outcome};
use crate::process::{self, Finished, Options, Stdout};
use crate::qemu::{self, Boot};
use crate::{Error, accel, note, setup};

/// Runs the command; returns the status the tool exits with.
pub fn run(a: RunArgs) -> Result<i32, Error> {
    let ws = Workspace::load()?;
    let pkg = ws.example(&a.example)?;
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
    let qemu_bin = setup::ensure_qemu()?;
    setup::ensure_rust_src(&ws.root)?;
    let kernel = ws.build_native_example(pkg, a.release, &a.features)?;
    let choice = accel::detect(a.accel);
    note(&format!("accelerator: {}", choice.reason));
    // Lives until QEMU exits: a tap's namespace is deleted when it drops.
    let net = crate::net::attach(&a.net).map_err(Error::Tool)?;
    note(&format!("network: {}", net.summary));
    for how in &net.reach {
        note(how);
    }
    // The user's boot arguments come last, so they override the network's.
    let user_append = qemu::join_append([net.append.as_str(), a.append.as_deref().unwrap_or("")]);
    let boot = Boot {
        kernel,
        accel: choice.accel,
        cores: a.cores,
        mem: a.mem.unwrap_or(qemu::DEFAULT_MEM),
        append: native_command_line(&user_append, &a.app_args)?,
    };
    let mut cmd = net.command(&qemu_bin);
    cmd.args(boot.args());
    cmd.args(&net.qemu_args);
    note(&format!("booting: {}", qemu::command_line(&cmd)));
    let opts = Options {
        timeout: a.timeout,
        interactive: true,
        capture_stderr: true,
        kill_tree: false,
    };
    let done = process::run(cmd, opts, Stdout::Inherit)
        .map_err(|e| Error::Tool(format!("cannot run {}: {e}", qemu_bin.display())))?;
    Ok(qemu_outcome(&done, opts))
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
    let exe = ws.build_hosted_example(pkg, a.release, &a.features)?;
    let cmd = ws.hosted_run_command(
        &exe,
        a.cores,
        a.append.as_deref().unwrap_or(""),
        &a.app_args,
    );
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
