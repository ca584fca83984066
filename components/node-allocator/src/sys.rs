//! The few system calls std does not offer: signalling a child by pid,
//! tying a child's life to this process, the effective user, and opening
//! a socket inside a network namespace. Every `unsafe` block of the crate
//! is here.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Sends `signal` to `pid`. Callers pass only the pid of a child this
/// process started and has not reaped (so the pid cannot have been reused).
pub(crate) fn signal_child(pid: u32, signal: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; that the pid
        // is our own unreaped child is the caller's invariant (see above).
        unsafe { libc::kill(pid, signal) };
    }
}

/// Whether this process runs as root (creating namespaces and taps needs
/// it).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Makes the child get SIGKILL when the thread that spawned it ends, so a
/// frontend killed with SIGKILL (which no handler sees) leaves no QEMU
/// behind. Spawn from a thread that lives as long as the process
/// ([`crate::process`] does).
pub(crate) fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    let tie = move || {
        // SAFETY: prctl with PR_SET_PDEATHSIG and a valid signal number.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have died before the prctl: then we were
        // reparented and must not start at all.
        // SAFETY: getppid(2) cannot fail.
        if unsafe { libc::getppid() } != parent {
            // An OS code, not a message: no allocation after fork.
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: `tie` runs in the child between fork and exec and calls only
    // prctl(2) and getppid(2), both async-signal-safe; its errors are OS codes,
    // so it allocates nothing, and it touches no lock.
    unsafe { cmd.pre_exec(tie) };
}

/// Runs `f` on a new thread that has entered the network namespace `ns`
/// (an open `/var/run/netns/<name>`), so sockets `f` creates belong to that
/// namespace; they stay there when used from any other thread. This
/// process's other threads are not moved.
pub(crate) fn in_netns<T: Send + 'static>(
    ns: File,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    std::thread::spawn(move || {
        // SAFETY: setns(2) on an fd we own, which names a network
        // namespace; it changes only this (short-lived) thread's namespace.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}
