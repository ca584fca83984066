//! Benchmarks of the Ebb model and the executor on the hosted runtime, with
//! their baselines (docs/benchmarks.md, "Ebb model and executor, hosted").
//!
//! - `ebb_call/bump/*`: the same `#[inline(never)]` method reached four
//!   ways: a `&'static` (direct), an `EbbRef` (per-core Ebb; fixed and
//!   run-time id), a `thread_local!`, and an uncontended `Arc<Mutex<_>>`.
//!   `ebb_call/read/*`: direct and `EbbRef` again, with a method whose
//!   calls do not depend on one another.
//! - `spawn_local/*`: spawn `TASKS` trivial tasks on this core and wait for
//!   them all (awaited `JoinHandle`s, or detached and counted), against
//!   tokio's current-thread runtime with a `LocalSet`.
//! - `cross_core/*`: core 0 spawns on core 1 and awaits the result, against
//!   a tokio multi-thread runtime (a task spawned from outside the runtime
//!   and awaited).
//!
//! Criterion runs each benchmark on its own, one after the other; on a
//! shared machine the load drifts between them. So the bench then prints
//! three tables measured *interleaved* (round after round, every variant
//! once per round, in rotating order) with medians over rounds and the
//! median of per-round ratios: Ebb calls, local spawns, and cross-core
//! round trips one at a time (p50, mean, p99).
//!
//! Code placement moves calls this short by up to ±30% either way (which
//! variant's loop straddles a fetch block or shares a branch-predictor
//! line with another branch, changes from build to build). For a
//! comparison of the code itself, build with loops aligned to 64 bytes:
//! `RUSTFLAGS="-C llvm-args=-align-loops=64"` (docs/benchmarks.md).
//!
//! The bench's main thread becomes core 0 of a 2-core hosted instance
//! (`ebbrt_std::enter_instance`), pinned to the first CPU; core 1 runs its
//! loop on its own thread, pinned to the second. Run with
//! `cargo bench -p ebbrt --bench ebb_exec` (criterion flags after `--`; a
//! filter also selects the tables: `ebb_call`, `spawn_local`, `cross_core`).

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ebbrt::cpu::CoreId;
use ebbrt::ebb::ids;
use ebbrt::{EbbRef, PerCore, exec};

/// Per-core state reached by every variant of the call benchmarks.
#[derive(Default)]
struct Counter {
    n: Cell<u64>,
}

impl Counter {
    /// The call under test: out of line, so every variant pays one call and
    /// differs only in how it reaches `self`.
    #[inline(never)]
    fn bump(&self, by: u64) -> u64 {
        let n = self.n.get().wrapping_add(by);
        self.n.set(n);
        n
    }

    /// A call with no memory dependency from one to the next: the loop is
    /// bound by the calls themselves, not by the counter's store-to-load
    /// chain, so extra instructions on the path would show.
    #[inline(never)]
    fn read(&self, plus: u64) -> u64 {
        self.n.get().wrapping_add(plus)
    }
}

/// A per-core Ebb at a fixed id: its `EbbRef` is a compile-time constant.
#[ebbrt::ebb(per_core, id = ids::app(0))]
#[derive(Default)]
struct FixedCounter(Counter);

/// A per-core Ebb whose id is allocated at run time.
#[ebbrt::ebb(per_core)]
#[derive(Default)]
struct DynCounter(Counter);

static FIXED: EbbRef<FixedCounter> = EbbRef::fixed();

thread_local! {
    static TLS: Counter = const { Counter { n: Cell::new(0) } };
}

/// Tasks spawned per iteration of the spawn benchmarks.
const TASKS: usize = 1000;

/// What the call benchmarks reach, built once on core 0.
#[derive(Clone)]
struct Targets {
    direct: &'static Counter,
    dynamic: EbbRef<DynCounter>,
    mutex: Arc<Mutex<Counter>>,
}

impl Targets {
    fn new() -> Targets {
        let t = Targets {
            direct: Box::leak(Box::default()),
            dynamic: DynCounter::create(()).expect("allocate an id"),
            mutex: Arc::new(Mutex::new(Counter::default())),
        };
        // Take the misses now: every measurement is of the fast path.
        FIXED.0.bump(0);
        t.dynamic.0.bump(0);
        t
    }
}

/// The variants of the call benchmarks, by name. Each is a closure of its
/// own, inlined into the timing loop that runs it (criterion's, or
/// `burst`'s); read them with `objdump -d` on the bench binary. `direct` is
/// captured by value, so the baseline may keep the pointer in a register:
/// the cheapest a call through a `&'static` can be.
macro_rules! call_variants {
    ($t:expr, $run:ident) => {{
        let t: Targets = $t;
        let (direct, dynamic, mutex) = (t.direct, t.dynamic, t.mutex.clone());
        $run!("bump/direct", move || direct.bump(black_box(1)));
        $run!("bump/ebb_ref", || FIXED.0.bump(black_box(1)));
        $run!("bump/ebb_ref_dyn_id", move || {
            black_box(dynamic).0.bump(black_box(1))
        });
        $run!("bump/thread_local", || TLS.with(|c| c.bump(black_box(1))));
        $run!("bump/arc_mutex", move || {
            mutex.lock().expect("never poisoned").bump(black_box(1))
        });
        $run!("read/direct", move || direct.read(black_box(1)));
        $run!("read/ebb_ref", || FIXED.0.read(black_box(1)));
    }};
}

fn ebb_calls(c: &mut Criterion, t: Targets) {
    let mut g = c.benchmark_group("ebb_call");
    g.throughput(Throughput::Elements(1));
    macro_rules! run {
        ($name:expr, $f:expr) => {{
            let f = $f;
            // `|| f()`, not `&f`: through a reference the closure was not
            // inlined into criterion's loop, which then paid two calls.
            #[allow(clippy::redundant_closure)]
            g.bench_function($name, |b| b.iter(|| f()));
        }};
    }
    call_variants!(t, run);
    g.finish();
}

/// Spawns `TASKS` tasks and awaits each `JoinHandle`, `iters` times;
/// returns the time taken. Generic over the spawn function so that ours and
/// tokio's run the very same code.
async fn spawn_awaited<H, S>(iters: u64, spawn: S) -> Duration
where
    S: Fn(usize) -> H,
    H: Future,
{
    let mut handles = Vec::with_capacity(TASKS);
    let t0 = Instant::now();
    for _ in 0..iters {
        handles.extend((0..TASKS).map(&spawn));
        for h in handles.drain(..) {
            black_box(h.await);
        }
    }
    t0.elapsed()
}

/// Spawns `TASKS` detached tasks that count themselves, and yields until
/// they all ran, `iters` times.
async fn spawn_detached<S, Y, YF>(iters: u64, spawn: S, yield_now: Y) -> Duration
where
    S: Fn(Rc<Cell<usize>>),
    Y: Fn() -> YF,
    YF: Future<Output = ()>,
{
    let done = Rc::new(Cell::new(0));
    let t0 = Instant::now();
    for _ in 0..iters {
        done.set(0);
        for _ in 0..TASKS {
            spawn(done.clone());
        }
        while done.get() < TASKS {
            yield_now().await;
        }
    }
    t0.elapsed()
}

/// The local-spawn variants: (name, run `iters` iterations, return the
/// time). Ours run under `exec::block_on` on core 0; tokio's on the same
/// thread under `LocalSet::block_on`, with and without tokio's I/O and
/// time drivers (ours always has them: the loop polls epoll between
/// batches of tasks).
type SpawnVariant<'a> = (&'static str, Box<dyn Fn(u64) -> Duration + 'a>);

fn spawn_variants<'a>(rts: &'a [(&'static str, tokio::runtime::Runtime)]) -> Vec<SpawnVariant<'a>> {
    let mut v: Vec<SpawnVariant<'_>> = vec![
        (
            "ebbrt/awaited",
            Box::new(|iters| {
                exec::block_on(spawn_awaited(iters, |i| {
                    ebbrt::spawn_local(async move { black_box(i) })
                }))
            }),
        ),
        (
            "ebbrt/detached",
            Box::new(|iters| {
                exec::block_on(spawn_detached(
                    iters,
                    |done| {
                        ebbrt::spawn_local(async move { done.set(done.get() + 1) }).detach();
                    },
                    exec::yield_now,
                ))
            }),
        ),
    ];
    for (name, rt) in rts {
        let awaited = Box::new(move |iters| {
            tokio::task::LocalSet::new().block_on(
                rt,
                spawn_awaited(iters, |i| {
                    tokio::task::spawn_local(async move { black_box(i) })
                }),
            )
        });
        let detached = Box::new(move |iters| {
            tokio::task::LocalSet::new().block_on(
                rt,
                spawn_detached(
                    iters,
                    |done| {
                        drop(tokio::task::spawn_local(
                            async move { done.set(done.get() + 1) },
                        ));
                    },
                    tokio::task::yield_now,
                ),
            )
        });
        let (a, d) = match *name {
            "tokio" => ("tokio/awaited", "tokio/detached"),
            _ => ("tokio_io_time/awaited", "tokio_io_time/detached"),
        };
        v.push((a, awaited));
        v.push((d, detached));
    }
    v
}

/// tokio current-thread runtimes: without drivers, and with all of them.
fn tokio_local_runtimes() -> Vec<(&'static str, tokio::runtime::Runtime)> {
    let bare = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let full = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    vec![("tokio", bare), ("tokio_io_time", full)]
}

fn local_spawns(c: &mut Criterion, variants: &[SpawnVariant<'_>]) {
    let mut g = c.benchmark_group("spawn_local");
    g.throughput(Throughput::Elements(TASKS as u64));
    for (name, run) in variants {
        let (who, how) = name.split_once('/').expect("who/how");
        g.bench_function(BenchmarkId::new(who, how), |b| b.iter_custom(run));
    }
    g.finish();
}

/// A tokio multi-thread runtime with one worker, pinned to `cpu`: the
/// counterpart of our core 1.
fn tokio_worker_on(cpu: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || pin_to(cpu))
        .build()
        .expect("a tokio runtime")
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed `cpu_set_t` is a valid empty set and `cpu` (0 or 1)
    // is inside it; pid 0 is the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        eprintln!(
            "cannot pin a tokio worker to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// `rounds` round trips core 0 → core 1 → core 0; the time of each.
fn ebbrt_round_trips(rounds: u64) -> Vec<Duration> {
    exec::block_on(async move {
        let mut out = Vec::with_capacity(rounds as usize);
        for i in 0..rounds {
            let t0 = Instant::now();
            black_box(ebbrt::spawn_on(CoreId(1), async move { black_box(i) }).await);
            out.push(t0.elapsed());
        }
        out
    })
}

/// `rounds` round trips main thread → tokio worker → main thread.
fn tokio_round_trips(rt: &tokio::runtime::Runtime, rounds: u64) -> Vec<Duration> {
    rt.block_on(async move {
        let mut out = Vec::with_capacity(rounds as usize);
        for i in 0..rounds {
            let t0 = Instant::now();
            black_box(tokio::spawn(async move { black_box(i) }).await.unwrap());
            out.push(t0.elapsed());
        }
        out
    })
}

fn cross_core(c: &mut Criterion, tokio_rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("cross_core");
    g.bench_function("ebbrt_spawn_on_round_trip", |b| {
        b.iter_custom(|iters| ebbrt_round_trips(iters).into_iter().sum())
    });
    g.bench_function("tokio_spawn_round_trip", |b| {
        b.iter_custom(|iters| tokio_round_trips(tokio_rt, iters).into_iter().sum())
    });
    g.finish();
}

// ------------------------------------------------------- interleaved tables

/// Runs `f` `n` times in a loop of its own; the time per call in ns.
#[inline(never)]
fn burst(n: u64, mut f: impl FnMut() -> u64) -> f64 {
    let t0 = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A variant of an interleaved table: its name, and a closure that
/// measures it once.
type Sampler<'a> = (&'static str, Box<dyn FnMut() -> f64 + 'a>);

/// Measures every variant once per round, in rotating order, and prints
/// per variant: the median and the minimum over rounds, and the median of
/// its per-round ratio to the first variant.
fn interleaved(title: &str, unit: &str, rounds: usize, variants: &mut [Sampler<'_>]) {
    let k = variants.len();
    let mut samples = vec![Vec::with_capacity(rounds); k];
    for r in 0..rounds {
        for j in 0..k {
            let i = (r + j) % k;
            samples[i].push((variants[i].1)());
        }
    }
    let ratios: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..rounds).map(|r| samples[i][r] / samples[0][r]).collect())
        .collect();
    println!("\n{title} ({rounds} rounds, interleaved)");
    println!(
        "{:<28} {:>12} {:>12} {:>12}",
        "variant",
        format!("median {unit}"),
        format!("min {unit}"),
        format!("ratio vs {}", variants[0].0)
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let min = samples[i].iter().copied().fold(f64::INFINITY, f64::min);
        let med = median(&mut samples[i].clone());
        let ratio = median(&mut ratios[i].clone());
        println!("{name:<28} {med:>12.3} {min:>12.3} {ratio:>12.3}");
    }
}

fn call_table(t: Targets) {
    const CALLS: u64 = 20_000;
    let mut variants: Vec<Sampler<'_>> = Vec::new();
    macro_rules! run {
        ($name:expr, $f:expr) => {{
            let mut f = $f;
            variants.push(($name, Box::new(move || burst(CALLS, &mut f))));
        }};
    }
    call_variants!(t, run);
    interleaved("Ebb call, per call", "ns", 1000, &mut variants);
}

fn spawn_table(variants: &[SpawnVariant<'_>]) {
    let mut samplers: Vec<Sampler<'_>> = variants
        .iter()
        .map(|(name, run)| -> Sampler<'_> {
            (
                name,
                Box::new(move || run(1).as_nanos() as f64 / TASKS as f64),
            )
        })
        .collect();
    interleaved(
        &format!("Local spawn-and-complete, per task ({TASKS} tasks a round)"),
        "ns",
        300,
        &mut samplers,
    );
}

fn latency_table(tokio_rt: &tokio::runtime::Runtime) {
    const ROUNDS: u64 = 20_000;
    fn summary(name: &str, mut ns: Vec<u128>) {
        ns.sort_unstable();
        let mean = ns.iter().sum::<u128>() as f64 / ns.len() as f64;
        let pct = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize] as f64 / 1e3;
        println!(
            "{name:<28} {:>9.2} {:>9.2} {:>9.2}",
            pct(0.5),
            mean / 1e3,
            pct(0.99)
        );
    }
    // Interleaved in blocks of 100 round trips.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS / 100 {
        ours.extend(ebbrt_round_trips(100).iter().map(Duration::as_nanos));
        theirs.extend(
            tokio_round_trips(tokio_rt, 100)
                .iter()
                .map(Duration::as_nanos),
        );
    }
    println!("\nCross-core round trip core 0 -> core 1 -> core 0 ({ROUNDS} each, interleaved)");
    println!(
        "{:<28} {:>9} {:>9} {:>9}",
        "variant", "p50 µs", "mean µs", "p99 µs"
    );
    summary("ebbrt spawn_on + await", ours);
    summary("tokio spawn + await", theirs);
}

// ------------------------------------------------------------------- main

fn main() {
    ebbrt::runtime::enter_instance(2).expect("start a 2-core hosted instance");
    let targets = Targets::new();
    let local_rts = tokio_local_runtimes();
    let spawns = spawn_variants(&local_rts);
    let worker_rt = tokio_worker_on(1);

    let mut c = Criterion::default().configure_from_args();
    ebb_calls(&mut c, targets.clone());
    local_spawns(&mut c, &spawns);
    cross_core(&mut c, &worker_rt);
    c.final_summary();

    if table_wanted("ebb_call") {
        call_table(targets);
    }
    if table_wanted("spawn_local") {
        spawn_table(&spawns);
    }
    if table_wanted("cross_core") {
        latency_table(&worker_rt);
    }
}

/// Whether this run prints the interleaved table of `group`: under
/// `cargo bench` (which passes `--bench`; not under `cargo test`, nor with
/// `--profile-time`), unless a criterion filter that leaves `group` out was
/// given.
fn table_wanted(group: &str) -> bool {
    // Criterion's flags that take a value.
    const VALUED: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--profile-time",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--color",
        "--plotting-backend",
        "--output-format",
        "--format",
        "-c",
        "-s",
        "-b",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--profile-time") {
        return false;
    }
    let mut filter = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if VALUED.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            filter = Some(a.as_str());
        }
    }
    filter.is_none_or(|f| group.contains(f) || f.contains(group))
}
