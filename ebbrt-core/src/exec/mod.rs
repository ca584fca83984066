//! The per-core executor: a non-preemptive event loop polling futures.
//!
//! Every core runs [`run`]: it drains work sent by other cores, polls ready
//! tasks to their next `await`, fires due timers, runs idle pollers, and,
//! when nothing is left, asks the platform to idle until an event. An event
//! (a task poll) is never preempted by another.
//!
//! - [`spawn_local`]: a task on this core; needs no `Send` and never moves.
//! - [`spawn_on`]: a `Send` task on another core (an IPI native, the event
//!   loop's waker hosted); [`spawn_on_with`] builds a `!Send` future there.
//! - [`on_each_core`]: run something on every core and gather the results.
//! - [`sleep`], [`sleep_until`], [`timeout`]: timers of this core.
//! - [`add_idle_poller`]: work polled whenever the loop would otherwise idle
//!   (drivers switching from interrupts to polling under load).
//! - [`QUIESCENT`], [`BEFORE_IDLE`]: link-time hooks called once per pass of
//!   the loop (between tasks: a quiescent state) and before it goes idle.
//! - [`block_on`]: runs this core's loop until one future completes, for a
//!   harness that owns a core's thread (a benchmark, a tool).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use async_task::{Builder, Runnable};

use crate::EbbRef;
use crate::cpu::{self, CoreId, MAX_CORES};
use crate::ebb::ids;
use crate::percore;
use crate::platform::{self, Platform};
use crate::time::Instant;

mod idle;
mod timer;

pub use idle::{IdlePoller, add_idle_poller};
pub use timer::{Elapsed, Sleep, Timeout, sleep, sleep_until, timeout};

/// Tasks run per batch before the loop checks the platform for events.
const BATCH: usize = 128;

type Task = Runnable<CoreId>;

/// The event manager: each core's event loop — its ready queue, timers and
/// idle pollers — is its representative on that core.
///
/// A per-core Ebb at the well-known id [`ids::EVENT_MANAGER`] whose
/// representatives live in each core's per-core block (static storage: the
/// loop runs before the heap can be trusted). Tasks are spawned on it with
/// [`spawn_local`] and [`spawn_on`], timers armed with [`sleep`] and
/// [`timeout`], idle pollers added with [`add_idle_poller`]; when a core has
/// nothing to run it asks the [`IdlePolicy`] what to do.
#[crate::ebb(per_core, id = ids::EVENT_MANAGER, static_rep = local)]
pub struct EventManager {
    ready: RefCell<VecDeque<Task>>,
    timers: timer::Timers,
    idle: idle::IdlePollers,
    /// The loop is running ([`run`] or [`block_on`]): it must not be entered
    /// again from inside.
    running: Cell<bool>,
}

/// The name the per-core block knows the event manager's state by.
pub(crate) type LocalExec = EventManager;

/// The event manager Ebb.
pub static EVENT_MANAGER: EbbRef<EventManager> = EbbRef::fixed();

impl EventManager {
    /// Tasks ready to run on this core now.
    pub fn ready_tasks(&self) -> usize {
        self.ready.borrow().len()
    }

    /// Idle pollers registered on this core.
    pub fn idle_pollers(&self) -> usize {
        self.idle.len()
    }

    pub(crate) const fn new() -> Self {
        EventManager {
            ready: RefCell::new(VecDeque::new()),
            timers: timer::Timers::new(),
            idle: idle::IdlePollers::new(),
            running: Cell::new(false),
        }
    }
}

/// Work sent to a core by other cores.
#[repr(align(64))]
struct Remote {
    queue: spin::Mutex<Vec<Task>>,
    pending: AtomicBool,
}

static REMOTES: [Remote; MAX_CORES] = [const {
    Remote {
        queue: spin::Mutex::new(Vec::new()),
        pending: AtomicBool::new(false),
    }
}; MAX_CORES];

fn local() -> &'static EventManager {
    &percore::local().exec
}

/// Where a woken task goes: its owner's ready queue, directly when woken on
/// the owner, through the owner's remote queue and a wake otherwise.
fn schedule(task: Task) {
    let owner = *task.metadata();
    if percore::core_id() == Some(owner) {
        local().ready.borrow_mut().push_back(task);
    } else {
        let remote = &REMOTES[owner.index()];
        remote.queue.lock().push(task);
        if !remote.pending.swap(true, Ordering::AcqRel) {
            platform::get().wake(owner);
        }
    }
}

/// A handle to a spawned task: a future of its output. Dropping it detaches
/// the task (it keeps running), as with a thread's join handle.
#[must_use = "dropping a JoinHandle detaches the task; call .detach() to say so"]
pub struct JoinHandle<T> {
    task: Option<async_task::Task<T, CoreId>>,
}

impl<T> JoinHandle<T> {
    /// Lets the task run to completion on its own.
    pub fn detach(mut self) {
        if let Some(t) = self.task.take() {
            t.detach();
        }
    }

    /// Cancels the task: it is dropped (on its own core) before its next
    /// poll. Resolves to the output if the task had already finished.
    pub async fn cancel(mut self) -> Option<T> {
        match self.task.take() {
            Some(t) => t.cancel().await,
            None => None,
        }
    }

    /// The core the task runs on.
    pub fn core(&self) -> Option<CoreId> {
        self.task.as_ref().map(|t| *t.metadata())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.task.as_mut() {
            Some(t) => Pin::new(t).poll(cx),
            None => panic!("JoinHandle polled after it was detached"),
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("core", &self.core())
            .finish()
    }
}

/// Spawns `future` on the current core. It needs no `Send`: it is polled
/// only here, and never migrates.
///
/// # Panics
/// Outside an EbbRT core.
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let core = cpu::current();
    // SAFETY: `schedule` routes the runnable only to `core`'s queues, which
    // only `core` runs, so the `!Send` future is polled and dropped on the
    // thread that created it (`async_task` cancels by rescheduling, not by
    // dropping the future on the cancelling thread).
    let (runnable, task) = unsafe {
        Builder::new()
            .metadata(core)
            .spawn_unchecked(move |_| future, schedule)
    };
    runnable.schedule();
    JoinHandle { task: Some(task) }
}

/// Spawns `future` on `core` (which may be the current one).
///
/// # Panics
/// If `core` is not a core of the running instance.
#[track_caller]
pub fn spawn_on<F>(core: CoreId, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    check_core(core);
    let (runnable, task) = Builder::new()
        .metadata(core)
        .spawn(move |_| future, schedule);
    runnable.schedule();
    JoinHandle { task: Some(task) }
}

/// Spawns on `core` the future that `make` builds there. Only `make` must be
/// `Send`: the future itself may hold `!Send` state, such as a reference to
/// that core's representative of an Ebb.
#[track_caller]
pub fn spawn_on_with<M, F>(core: CoreId, make: M) -> JoinHandle<F::Output>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    check_core(core);
    let fut = BuildThere::Make(Some(make));
    // SAFETY: the task is scheduled only on `core`; `BuildThere` creates the
    // `!Send` future at its first poll, there, and it is polled and dropped
    // only there (see `spawn_local`).
    let (runnable, task) = unsafe {
        Builder::new()
            .metadata(core)
            .spawn_unchecked(move |_| fut, schedule)
    };
    runnable.schedule();
    JoinHandle { task: Some(task) }
}

#[track_caller]
fn check_core(core: CoreId) {
    assert!(
        core.index() < cpu::count(),
        "{core} does not exist: this instance has {} cores",
        cpu::count()
    );
}

/// A future built on its target core at first poll.
enum BuildThere<M, F> {
    Make(Option<M>),
    Run(F),
}

impl<M: FnOnce() -> F, F: Future> Future for BuildThere<M, F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: we never move `F` out of the pinned enum once it exists;
        // the `Make` arm is only replaced before `F` is constructed.
        let this = unsafe { self.get_unchecked_mut() };
        if let BuildThere::Make(m) = this {
            let make = m.take().expect("BuildThere polled after panic");
            *this = BuildThere::Run(make());
        }
        match this {
            // SAFETY: `this` is pinned, and so is the future inside it.
            BuildThere::Run(f) => unsafe { Pin::new_unchecked(f) }.poll(cx),
            BuildThere::Make(_) => unreachable!(),
        }
    }
}

/// Runs `f(core)` on every core, each future built on its own core, and
/// resolves to the outputs in core order.
pub fn on_each_core<F, Fut>(f: F) -> impl Future<Output = Vec<Fut::Output>>
where
    F: Fn(CoreId) -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    on_cores(cpu::all(), f)
}

/// Runs `f(core)` on each of `cores` (spawned now), each future built on
/// its own core, and resolves to the outputs in the order of `cores`.
pub(crate) fn on_cores<F, Fut>(
    cores: impl Iterator<Item = CoreId>,
    f: F,
) -> impl Future<Output = Vec<Fut::Output>>
where
    F: Fn(CoreId) -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let f = alloc::sync::Arc::new(f);
    let handles: Vec<_> = cores
        .map(|core| {
            let f = f.clone();
            spawn_on_with(core, move || f(core))
        })
        .collect();
    async move {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await);
        }
        out
    }
}

/// Yields once to the event loop: other ready tasks run before this one
/// resumes.
pub async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

// Exit: bit 32 says "requested", the low 32 bits carry the code.
static EXIT: AtomicU64 = AtomicU64::new(0);
const EXIT_REQUESTED: u64 = 1 << 32;

/// Asks every core's loop to stop; [`run`] returns `code` on each.
pub fn shutdown(code: i32) {
    let prev = EXIT.compare_exchange(
        0,
        EXIT_REQUESTED | code as u32 as u64,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    if prev.is_ok() {
        let p = platform::get();
        for core in cpu::all() {
            p.wake(core);
        }
    }
}

/// The exit code requested by [`shutdown`], if any.
pub fn exit_requested() -> Option<i32> {
    let v = EXIT.load(Ordering::Acquire);
    (v & EXIT_REQUESTED != 0).then_some(v as u32 as i32)
}

/// What an application's main function may return.
pub trait AppResult {
    /// The process/VM exit code, and an error message to print if any.
    fn into_outcome(self) -> (i32, Option<String>);
}

impl AppResult for () {
    fn into_outcome(self) -> (i32, Option<String>) {
        (0, None)
    }
}

impl AppResult for i32 {
    fn into_outcome(self) -> (i32, Option<String>) {
        (self, None)
    }
}

impl<T: AppResult, E: fmt::Debug> AppResult for Result<T, E> {
    fn into_outcome(self) -> (i32, Option<String>) {
        match self {
            Ok(t) => t.into_outcome(),
            Err(e) => (1, Some(alloc::format!("Error: {e:?}"))),
        }
    }
}

/// Spawns the application's main future on this core; when it completes,
/// `report` receives its outcome and the instance shuts down with its code.
pub fn spawn_main<F, R>(main: F, report: fn(i32, Option<String>))
where
    F: Future<Output = R> + 'static,
    R: AppResult + 'static,
{
    spawn_local(async move {
        let (code, err) = main.await.into_outcome();
        report(code, err);
        shutdown(code);
    })
    .detach();
}

/// Statistics of this core's loop, for tests and diagnostics.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopStats {
    /// Tasks waiting to run.
    pub ready: usize,
    /// Armed timers.
    pub timers: usize,
    /// Registered idle pollers.
    pub idle_pollers: usize,
}

/// This core's loop statistics.
pub fn stats() -> LoopStats {
    let l = local();
    LoopStats {
        ready: l.ready.borrow().len(),
        timers: l.timers.len(),
        idle_pollers: l.idle.len(),
    }
}

/// Functions every core's loop calls just before it goes idle: the place to
/// hand back what batching kept local, such as an allocator's batched
/// remote frees. Registered at link time (no heap needed), each must be
/// cheap when it has nothing to do; tasks they wake run before the core
/// sleeps.
///
/// ```ignore
/// #[linkme::distributed_slice(ebbrt_core::exec::BEFORE_IDLE)]
/// #[linkme(crate = ebbrt_core::__private::linkme)]
/// static FLUSH: fn() = flush_batched_frees;
/// ```
#[linkme::distributed_slice]
pub static BEFORE_IDLE: [fn()];

/// The [`BEFORE_IDLE`] hooks. Miri cannot read the link sections `linkme`
/// gathers them in, so under Miri there are none.
fn before_idle_hooks() -> &'static [fn()] {
    #[cfg(not(miri))]
    let hooks: &'static [fn()] = &BEFORE_IDLE;
    #[cfg(miri)]
    let hooks: &'static [fn()] = &[];
    hooks
}

/// Functions every core's loop calls once per pass, before it drains remote
/// work and runs ready tasks: a point where no task of this core is being
/// polled, i.e. a *quiescent state* of the core in the sense of RCU (read-
/// copy-update). A read-side critical section is therefore any stretch of
/// code that does not return to the loop: one poll of a task, up to its next
/// `await`. (A pass runs up to 128 ready tasks, so a task that only yields
/// may be polled several times between two calls.) The RCU component (`components/rcu`) registers here to observe
/// its grace periods, and pairs it with a [`BEFORE_IDLE`] hook to mark a
/// core that goes idle as quiescent for as long as it sleeps.
///
/// Registered at link time like [`BEFORE_IDLE`]: with no hook linked the
/// loop iterates an empty slice (two loads and a compare per pass). A hook
/// must be cheap when it has nothing to do; tasks it wakes or spawns on
/// this core run in the same pass.
///
/// ```ignore
/// #[linkme::distributed_slice(ebbrt_core::exec::QUIESCENT)]
/// #[linkme(crate = ebbrt_core::__private::linkme)]
/// static PASS: fn() = note_quiescent_state;
/// ```
#[linkme::distributed_slice]
pub static QUIESCENT: [fn()];

/// The [`QUIESCENT`] hooks (none under Miri, as for [`BEFORE_IDLE`]).
#[inline(always)]
fn quiescent_hooks() -> &'static [fn()] {
    #[cfg(not(miri))]
    let hooks: &'static [fn()] = &QUIESCENT;
    #[cfg(miri)]
    let hooks: &'static [fn()] = &[];
    hooks
}

fn drain_remote(core: CoreId) {
    let remote = &REMOTES[core.index()];
    if remote.pending.swap(false, Ordering::AcqRel) {
        let batch = core::mem::take(&mut *remote.queue.lock());
        local().ready.borrow_mut().extend(batch);
    }
}

/// Runs up to `BATCH` ready tasks; the caller checks what remains.
fn run_ready() {
    let l = local();
    for _ in 0..BATCH {
        let Some(task) = l.ready.borrow_mut().pop_front() else {
            return;
        };
        task.run();
    }
}

/// Marks this core's loop as running while alive; refuses to enter it twice.
struct Running(&'static LocalExec);

impl Running {
    #[track_caller]
    fn enter(what: &str) -> Running {
        let l = local();
        if l.running.replace(true) {
            already_running(what);
        }
        Running(l)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.set(false);
    }
}

#[cold]
#[track_caller]
fn already_running(what: &str) -> ! {
    panic!(
        "{what} called while this core's event loop is already running \
         (from inside a task?): a task must `.await` instead of blocking its core"
    )
}

/// Runs the current core's event loop until `done()` says so (checked
/// before each pass and before idling) or [`shutdown`] is requested, which
/// it returns the code of.
#[inline(always)]
fn run_until(core: CoreId, done: impl Fn() -> bool) -> Option<i32> {
    let p = platform::get();
    let l = local();
    loop {
        if done() {
            return None;
        }
        if let Some(code) = exit_requested() {
            return Some(code);
        }
        for hook in quiescent_hooks() {
            hook();
        }
        drain_remote(core);
        run_ready();
        // Only `run_ready` takes from the ready queue; firing timers can only
        // add to it.
        let next_timer = l.timers.fire_due(p);
        if !l.ready.borrow().is_empty() {
            p.poll();
            continue;
        }
        if l.idle.run() || !l.idle.is_empty() {
            // Polling mode: a driver asked to be polled, so never sleep.
            p.poll();
            continue;
        }
        for hook in before_idle_hooks() {
            hook();
        }
        if !l.ready.borrow().is_empty()
            || REMOTES[core.index()].pending.load(Ordering::Acquire)
            || done()
        {
            continue;
        }
        // (Interface bindings live in link sections Miri cannot read.)
        #[cfg(not(miri))]
        match crate::ebb::bound::<dyn IdlePolicy>() {
            Ok(policy) => policy.idle(p, next_timer),
            Err(_) => p.idle(next_timer),
        }
        #[cfg(miri)]
        p.idle(next_timer);
    }
}

/// What a core's event loop does when it has nothing to run: the contract
/// of the idle-policy components (`ebbrt` facade features `idle-halt`, the
/// default, and `idle-poll`). Without one in the image the loop halts
/// (`Platform::idle`).
///
/// An implementation returns soon after `deadline` (the next timer), a
/// wake ([`Platform::wake`]) or a platform event, having dispatched the
/// events it found; it may return earlier (the loop simply calls it
/// again). It runs on the idle core, between passes of its loop.
#[crate::interface(id = ids::IDLE_POLICY)]
pub trait IdlePolicy: Sync {
    /// Waits (or not) for work: `platform` is the running platform,
    /// `deadline` the core's next timer.
    fn idle(&self, platform: &'static dyn Platform, deadline: Option<Instant>);
}

/// Runs the current core's event loop until [`shutdown`]; returns the exit
/// code. The runtime calls this on every core after [`cpu::enter`].
///
/// # Panics
/// Outside an EbbRT core, or when this core's loop is already running.
#[track_caller]
pub fn run() -> i32 {
    let core = cpu::current();
    let _running = Running::enter("exec::run");
    match run_until(core, || false) {
        Some(code) => code,
        None => unreachable!("the loop stops only on shutdown"),
    }
}

/// Runs the current core's event loop until `future` completes, and returns
/// its output.
///
/// This is for a harness that owns a core's thread and drives it from
/// outside any task — a benchmark, a tool — on a core that does not run
/// [`run`] (the hosted runtime's `enter_instance` makes the calling thread
/// such a core). `future` is spawned as a local task, so it runs exactly as
/// any task does, among the core's other tasks, timers and events; the loop
/// keeps going only until `future` is done, so `block_on` may be called
/// again and again.
///
/// # Panics
/// Outside an EbbRT core; when this core's loop is already running (from
/// inside a task, or nested in [`run`] or `block_on`: a task `.await`s,
/// it never blocks its core); when [`shutdown`] is requested before
/// `future` completes.
#[track_caller]
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let core = cpu::current();
    let _running = Running::enter("exec::block_on");
    let mut handle = spawn_local(future);
    let task = handle
        .task
        .as_ref()
        .expect("a fresh JoinHandle owns its task");
    if let Some(code) = run_until(core, || task.is_finished()) {
        panic!("exec::block_on: the instance shut down (code {code}) before the future completed");
    }
    match Pin::new(&mut handle).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a finished task has its output ready"),
    }
}

#[cfg(test)]
mod tests;
