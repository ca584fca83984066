//! Benchmarks of the Ebb model and the executor on the hosted runtime, with
//! their baselines (docs/benchmarks.md, "Ebb model and executor, hosted").
//!
//! - `ebb_call/*`: the same `#[inline(never)]` method reached four ways: a
//!   `&'static` (direct), an `EbbRef` (per-core Ebb; fixed and run-time id),
//!   a `thread_local!`, and an uncontended `Arc<Mutex<_>>`.
//! - `spawn_local/*`: spawn `TASKS` trivial tasks on this core and wait for
//!   them all (awaited `JoinHandle`s, or detached and counted), against
//!   tokio's current-thread runtime with a `LocalSet`.
//! - `cross_core/*`: core 0 spawns on core 1 and awaits the result, against
//!   a tokio multi-thread runtime (a task spawned from outside the runtime
//!   and awaited); plus a latency distribution (p50, mean, p99), printed.
//!
//! The bench's main thread becomes core 0 of a 2-core hosted instance
//! (`ebbrt_std::enter_instance`), pinned to the first CPU; core 1 runs its
//! loop on its own thread, pinned to the second. Run with
//! `cargo bench -p ebbrt --bench ebb_exec` (criterion flags after `--`).

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

/// Per-core state bumped by every variant of the call benchmark.
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

fn ebb_calls(c: &mut Criterion) {
    let direct: &'static Counter = Box::leak(Box::default());
    let dynamic = DynCounter::create(()).expect("allocate an id");
    let mutex = Arc::new(Mutex::new(Counter::default()));
    // Take the misses now: each benchmark measures the fast path.
    FIXED.0.bump(0);
    dynamic.0.bump(0);

    let mut g = c.benchmark_group("ebb_call");
    g.throughput(Throughput::Elements(1));
    // Each closure is inlined into criterion's timing loop (read it with
    // `objdump -d` on the bench binary: `Bencher>::iter::<u64,
    // ebb_exec::ebb_calls::{closure#N}::{closure#0}>`). `direct` is captured
    // by value, so the baseline may keep the pointer in a register: the
    // cheapest a call through a `&'static` can be.
    g.bench_function("direct", move |b| b.iter(|| direct.bump(black_box(1))));
    g.bench_function("ebb_ref", |b| b.iter(|| FIXED.0.bump(black_box(1))));
    g.bench_function("ebb_ref_dyn_id", move |b| {
        b.iter(|| black_box(dynamic).0.bump(black_box(1)))
    });
    g.bench_function("thread_local", |b| {
        b.iter(|| TLS.with(|c| c.bump(black_box(1))))
    });
    g.bench_function("arc_mutex", |b| {
        b.iter(|| mutex.lock().expect("never poisoned").bump(black_box(1)))
    });
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

fn local_spawns(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_local");
    g.throughput(Throughput::Elements(TASKS as u64));

    g.bench_function(BenchmarkId::new("ebbrt", "awaited"), |b| {
        b.iter_custom(|iters| {
            exec::block_on(spawn_awaited(iters, |i| {
                ebbrt::spawn_local(async move { black_box(i) })
            }))
        })
    });
    g.bench_function(BenchmarkId::new("ebbrt", "detached"), |b| {
        b.iter_custom(|iters| {
            exec::block_on(spawn_detached(
                iters,
                |done| {
                    ebbrt::spawn_local(async move { done.set(done.get() + 1) }).detach();
                },
                exec::yield_now,
            ))
        })
    });

    // tokio's current-thread runtime, with and without its I/O and time
    // drivers (ours always has them: the loop polls epoll between batches).
    for (name, drivers) in [("tokio", false), ("tokio_io_time", true)] {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        if drivers {
            builder.enable_all();
        }
        let rt = builder.build().expect("a tokio runtime");
        g.bench_function(BenchmarkId::new(name, "awaited"), |b| {
            b.iter_custom(|iters| {
                let local = tokio::task::LocalSet::new();
                local.block_on(
                    &rt,
                    spawn_awaited(iters, |i| {
                        tokio::task::spawn_local(async move { black_box(i) })
                    }),
                )
            })
        });
        g.bench_function(BenchmarkId::new(name, "detached"), |b| {
            b.iter_custom(|iters| {
                let local = tokio::task::LocalSet::new();
                local.block_on(
                    &rt,
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
            })
        });
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
    // SAFETY: a zeroed `cpu_set_t` is a valid empty set; `cpu` is below its
    // size (checked by CPU_SET's caller: CPUs of this machine); pid 0 is the
    // calling thread.
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

fn cross_core(c: &mut Criterion, tokio_rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("cross_core");
    g.bench_function("ebbrt_spawn_on_round_trip", |b| {
        b.iter_custom(|iters| {
            exec::block_on(async move {
                let t0 = Instant::now();
                for i in 0..iters {
                    black_box(ebbrt::spawn_on(CoreId(1), async move { black_box(i) }).await);
                }
                t0.elapsed()
            })
        })
    });
    g.bench_function("tokio_spawn_round_trip", |b| {
        b.iter_custom(|iters| {
            tokio_rt.block_on(async move {
                let t0 = Instant::now();
                for i in 0..iters {
                    black_box(tokio::spawn(async move { black_box(i) }).await.unwrap());
                }
                t0.elapsed()
            })
        })
    });
    g.finish();
}

/// Round-trip latencies, one at a time: p50, mean and p99 (criterion
/// reports means of batches only).
fn latency_table(tokio_rt: &tokio::runtime::Runtime) {
    const ROUNDS: usize = 20_000;
    fn summary(name: &str, mut ns: Vec<u64>) {
        ns.sort_unstable();
        let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
        let pct = |p: f64| ns[((ns.len() - 1) as f64 * p) as usize];
        println!(
            "{name:<28} p50 {:>7.2} µs  mean {:>7.2} µs  p99 {:>7.2} µs  ({} rounds)",
            pct(0.5) as f64 / 1e3,
            mean / 1e3,
            pct(0.99) as f64 / 1e3,
            ns.len()
        );
    }
    let ours = exec::block_on(async {
        let mut ns = Vec::with_capacity(ROUNDS);
        for i in 0..ROUNDS {
            let t0 = Instant::now();
            black_box(ebbrt::spawn_on(CoreId(1), async move { black_box(i) }).await);
            ns.push(t0.elapsed().as_nanos() as u64);
        }
        ns
    });
    let theirs = tokio_rt.block_on(async {
        let mut ns = Vec::with_capacity(ROUNDS);
        for i in 0..ROUNDS {
            let t0 = Instant::now();
            black_box(tokio::spawn(async move { black_box(i) }).await.unwrap());
            ns.push(t0.elapsed().as_nanos() as u64);
        }
        ns
    });
    println!("cross-core round trip (core 0 -> core 1 -> core 0), one at a time:");
    summary("ebbrt spawn_on + await", ours);
    summary("tokio spawn + await", theirs);
}

fn main() {
    ebbrt::runtime::enter_instance(2).expect("start a 2-core hosted instance");
    let tokio_rt = tokio_worker_on(1);
    let mut c = Criterion::default().configure_from_args();
    ebb_calls(&mut c);
    local_spawns(&mut c);
    cross_core(&mut c, &tokio_rt);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        latency_table(&tokio_rt);
    }
}
