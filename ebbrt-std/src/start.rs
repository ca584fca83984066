//! The start sequence of a hosted instance (the shape every runtime shares):
//! declare the cores, install the platform, check the component registry,
//! start one thread per core (pinned to a CPU when CPUs are left over), run
//! the application's main future on core 0, and exit with its code once it
//! completes.

use std::any::Any;
use std::future::Future;
use std::panic::PanicHookInfo;
use std::sync::mpsc;
use std::time::Duration;

use ebbrt_core::cpu::{self, CoreId, CoreSetupError};
use ebbrt_core::exec::{self, AppResult};
use ebbrt_core::platform;
use ebbrt_core::registry::{self, StartCheckError};

use crate::platform::HostedPlatform;
use crate::{affinity, config, logger, reactor};

/// Exit status for an unusable configuration (a bad `--cores`, say).
const EXIT_CONFIG: i32 = 2;
/// Exit status when the runtime itself cannot start.
const EXIT_START: i32 = 1;
/// Exit status after a panic, as for a Rust program that panics.
const EXIT_PANIC: i32 = 101;
/// How long core 0 waits for the other cores to leave their loops before
/// the process exits anyway (a core may be stuck in a long event).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The core count is invalid, or another count was declared before.
    #[error("cannot declare the cores: {0}")]
    Cores(CoreSetupError),
    /// A core's `mio::Poll` or waker could not be created.
    #[error("cannot create a core's event loop: {0}")]
    Poll(std::io::Error),
    /// This process already runs an instance.
    #[error("another EbbRT runtime is already running in this process")]
    AlreadyInstalled,
    /// The linked components do not fit together: two claim one fixed id,
    /// or the console has no single implementation.
    #[error("{0}")]
    Components(StartCheckError),
    /// The thread of a core could not be started.
    #[error("cannot start the thread of {0}: {1}")]
    Thread(CoreId, std::io::Error),
}

/// Steps 1 of the start sequence: declares `cores`, installs the platform
/// and checks the registry. Returns one `mio::Poll` per core.
pub(crate) fn boot(cores: usize) -> Result<Vec<mio::Poll>, StartError> {
    cpu::set_count(cores).map_err(StartError::Cores)?;
    let (platform, polls) = HostedPlatform::new(cores).map_err(StartError::Poll)?;
    if !platform::install(Box::leak(Box::new(platform))) {
        return Err(StartError::AlreadyInstalled);
    }
    registry::check_start().map_err(StartError::Components)?;
    Ok(polls)
}

/// Step 2, on the thread that becomes `core`: pins it, installs its
/// reactor, and enters the core.
pub(crate) fn enter_core(core: CoreId, poll: mio::Poll, cpu_to_pin: Option<usize>) {
    if let Some(cpu) = cpu_to_pin
        && let Err(e) = affinity::pin_current_thread(cpu)
    {
        log::warn!("cannot pin {core} to CPU {cpu}: {e}; it runs unpinned");
    }
    if let Err(e) = reactor::install(poll) {
        panic!("cannot set up the reactor of {core}: {e}");
    }
    // SAFETY: `core` is entered by exactly this thread, started for it (or
    // the main thread for core 0), which remains that core until it exits.
    unsafe { cpu::enter(core) };
}

/// Starts a hosted EbbRT instance running the application's main future,
/// and exits the process with its exit code. This is what `#[ebbrt::main]`
/// expands to.
///
/// `make` runs on core 0 (the process's main thread) and builds the main
/// future there, so the future need not be `Send`. Every other core gets a
/// thread of its own; when the process may use more CPUs than it has
/// cores, each core's thread is pinned to one of them; with as many cores
/// as CPUs or more, the threads are left to Linux's scheduler, which can
/// move a core off a CPU that another busy thread of the machine needs
/// (`ebbrt.pin=1` or `0` in `EBBRT_ARGS` decides instead). The
/// core count comes from `--cores N`/`--cores=N`, `EBBRT_CORES`, or
/// `ebbrt.cores` in `EBBRT_ARGS` (see the crate docs); [`crate::args`]
/// returns the arguments left for the application.
///
/// When the main future completes, the process exits with its code (see
/// [`AppResult`]); an `Err` is printed to stderr as `Error: ...` and exits
/// with 1. A bad configuration exits with 2. A panic on any core prints the
/// panic (and, inside a test kernel, the running test's `FAILED` line) and
/// exits with 101 at once, even under `catch_unwind`: the other cores may
/// be waiting for the panicking one, and the instance must not hang.
pub fn start_main<M, F, R>(make: M) -> !
where
    M: FnOnce() -> F + Send + 'static,
    F: Future<Output = R> + 'static,
    R: AppResult + 'static,
{
    // `cargo ebbrt docs`: print the component records, do not start.
    crate::catalog::dump_if_asked();
    let cfg = match config::from_process() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ebbrt: error: {e}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    logger::init(cfg.log);
    let cores = cfg.cores;
    let done_rx = start(cores, cfg.pin).unwrap_or_else(|e| {
        eprintln!("ebbrt: error: {e}");
        std::process::exit(EXIT_START);
    });
    exec::spawn_main(make(), report);
    let code = exec::run();

    let until = std::time::Instant::now() + SHUTDOWN_GRACE;
    for _ in 1..cores {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            log::warn!(
                "a core did not leave its event loop within {SHUTDOWN_GRACE:?}; exiting anyway"
            );
            break;
        }
    }
    // `exit` flushes stdout.
    std::process::exit(code)
}

/// The start sequence [`start_main`] and [`enter_instance`] share: boots
/// an instance of `cores` cores, installs the panic hook, starts cores 1..
/// on threads of their own and enters the calling thread as core 0 (which
/// runs no loop yet). Returns the channel on which each of cores 1..
/// reports leaving its loop.
fn start(cores: usize, pin: config::Pin) -> Result<mpsc::Receiver<()>, StartError> {
    let mut polls = boot(cores)?.into_iter();
    let poll0 = polls.next().expect("an instance has at least one core");
    install_panic_hook();
    let (cpu0, done_rx) = start_other_cores(polls, pin)?;
    enter_core(CoreId(0), poll0, cpu0);
    Ok(done_rx)
}

/// Starts the threads of cores 1.. (`polls` holds their `mio::Poll`s, in
/// order), each running its event loop, pinned as `pin` says; returns
/// the CPU to pin core 0 to, and a channel on which each core thread
/// reports leaving its loop.
fn start_other_cores(
    polls: impl Iterator<Item = mio::Poll>,
    pin: config::Pin,
) -> Result<(Option<usize>, mpsc::Receiver<()>), StartError> {
    let cores = cpu::count();
    let mut cpus = affinity::allowed_cpus().unwrap_or_else(|e| {
        log::warn!("cannot read the CPUs this process may use ({e}); cores run unpinned");
        Vec::new()
    });
    if !cpus.is_empty() && !pin.applies(cores, cpus.len()) {
        log::debug!(
            "{cores} cores on {} CPUs: the core threads run unpinned ({pin:?}; ebbrt.pin=1 pins them)",
            cpus.len()
        );
        cpus.clear();
    }
    if cores > cpus.len() && !cpus.is_empty() {
        log::info!(
            "{cores} cores on {} CPUs: several cores share a CPU",
            cpus.len()
        );
    }
    let cpu_for = |core: usize| (!cpus.is_empty()).then(|| cpus[core % cpus.len()]);
    log::debug!("starting {cores} cores on CPUs {cpus:?}");

    let (done_tx, done_rx) = mpsc::channel::<()>();
    for (i, poll) in polls.enumerate().map(|(i, p)| (i + 1, p)) {
        let core = CoreId(i as u32);
        let cpu = cpu_for(i);
        let done = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("ebbrt-core-{i}"))
            .spawn(move || {
                enter_core(core, poll, cpu);
                exec::run();
                let _ = done.send(());
            })
            .map_err(|e| StartError::Thread(core, e))?;
    }
    Ok((cpu_for(0), done_rx))
}

/// Makes the calling thread core 0 of a new hosted instance of `cores`
/// cores, for a harness that keeps its own `main` (a benchmark, a tool)
/// instead of handing it to [`start_main`].
///
/// Cores 1.. run their event loops on threads of their own, as under
/// [`start_main`]; every core's thread, the calling one included, is pinned
/// to a CPU or not as under [`start_main`] (`ebbrt.pin`). Core 0 runs no
/// loop of its own: the caller drives it with
/// [`ebbrt_core::exec::block_on`], as often as it likes, and may use Ebbs
/// and spawn tasks on it between calls. The instance lives until the process
/// exits. As under [`start_main`], a panic on any core prints it and exits
/// the process with status 101. The `log` records of the runtime go to
/// whatever logger the caller installed, if any.
///
/// ```no_run
/// use ebbrt_core::{cpu::CoreId, exec};
///
/// ebbrt_std::enter_instance(2).expect("start the instance");
/// let there = exec::block_on(exec::spawn_on(CoreId(1), async { ebbrt_core::cpu::current() }));
/// assert_eq!(there, CoreId(1));
/// ```
///
/// # Errors
/// An invalid core count, a runtime already started in this process (only
/// one instance per process), or a core that could not be set up.
pub fn enter_instance(cores: usize) -> Result<(), StartError> {
    let pin = config::pin_from_process().unwrap_or_else(|e| {
        log::warn!("{e}; using the default");
        config::Pin::Auto
    });
    // Nobody waits for cores 1.. to leave their loops: the instance lives
    // until the process exits.
    start(cores, pin).map(drop)
}

/// Reports the outcome of the application's main future.
fn report(code: i32, error: Option<String>) {
    if let Some(e) = error {
        eprintln!("{e}");
    }
    log::debug!("main returned; exiting with {code}");
}

fn payload_str(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

/// A panic anywhere ends the instance: the other cores may be waiting for
/// the panicking one, so going on could hang. Report it to the test runner
/// when a test is running, print it, exit with 101.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info: &PanicHookInfo<'_>| {
        let msg = payload_str(info.payload());
        let loc = info
            .location()
            .map_or_else(|| String::from("<unknown location>"), |l| l.to_string());
        let who = match cpu::try_current() {
            Some(c) => format!("core {}", c.0),
            None => format!(
                "thread '{}' (not an EbbRT core)",
                std::thread::current().name().unwrap_or("<unnamed>")
            ),
        };
        // Inside a test kernel, the runner's protocol line names the test.
        ebbrt_core::test_support::report_panic(format_args!("{loc}: {msg}"));
        eprintln!("ebbrt: {who} panicked at {loc}:\n{msg}");
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("backtrace:\n{bt}");
        } else {
            eprintln!("note: run with `RUST_BACKTRACE=1` to display a backtrace");
        }
        std::process::exit(EXIT_PANIC);
    }));
}
