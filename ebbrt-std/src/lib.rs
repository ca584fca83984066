//! # ebbrt-std
//!
//! The hosted EbbRT runtime: an EbbRT instance as an ordinary Linux process,
//! with one thread per core (pinned to a CPU when CPUs are left over: see
//! `ebbrt.pin` below), each running the platform-independent
//! event loop of `ebbrt-core` over its own `mio::Poll`.
//!
//! What this crate owns:
//! - [`start_main`]: the start sequence of a hosted instance (configuration,
//!   core threads, the application's main future, the exit code), and
//!   [`args`], the command-line arguments left for the application;
//!   [`enter_instance`], the same instance for a harness that keeps its own
//!   `main` (the calling thread becomes core 0).
//! - The hosted `Platform`: the monotonic clock, cross-core wakes through
//!   each core's `mio::Waker`, idling in `epoll` until an event or a timer
//!   deadline (a `timerfd`, so timers are not rounded to milliseconds).
//! - The per-core reactor: socket readiness becomes task wake-ups.
//! - [`net`]: the async TCP/UDP API that the native network stack also
//!   implements, over Linux sockets.
//! - [`catalog`]: with `EBBRT_CATALOG` set, [`start_main`] prints the
//!   program's component records instead of starting (`cargo ebbrt docs`
//!   renders an application's catalog from them).
//! - [`boot_arg`] and a `log` logger (to stderr). The console is a
//!   component (`ebbrt-console-stdout`), reached through
//!   `ebbrt_core::console`.
//!
//! What it must not do: implement anything the Ebb model or the executor
//! already provide (those live in `ebbrt-core` and run unchanged here), or
//! let an application tell it apart from the native runtime beyond what
//! the shared interfaces say. Unsafe code stays in the three small system
//! call wrappers (`affinity`, `futex`, `timer`).
//!
//! Configuration (read once by [`start_main`]):
//! - the core count: `--cores N` / `--cores=N` on the command line, else the
//!   `EBBRT_CORES` environment variable, else `ebbrt.cores` in `EBBRT_ARGS`,
//!   else the number of CPUs the process may run on;
//! - boot arguments: `EBBRT_ARGS="key=value key2=value2"`, the hosted
//!   equivalent of the native kernel command line ([`boot_arg`]);
//! - the log filter: `EBBRT_LOG` (e.g. `debug` or `warn,ebbrt_std=trace`),
//!   else `ebbrt.log` in `EBBRT_ARGS`, else `info`;
//! - pinning: `ebbrt.pin` in `EBBRT_ARGS`: `auto` (the default) pins each
//!   core's thread to one CPU when the process may use more CPUs than it
//!   has cores, and otherwise leaves them to Linux's scheduler (with a
//!   core on every CPU, a pinned core cannot move off a CPU that another
//!   busy thread needs); `1` always pins, `0` never does.
//!
//! A bad value prints a clear message and exits with status 2.
#![warn(missing_docs)]

mod affinity;
pub mod catalog;
mod config;
mod futex;
mod io_error;
mod logger;
pub mod net;
mod platform;
mod reactor;
mod start;
mod timer;

#[cfg(test)]
mod testing;

// The console the unit tests' instances need.
#[cfg(test)]
use ebbrt_console_stdout as _;

pub use config::{args, boot_arg};
pub use start::{StartError, enter_instance, start_main};
