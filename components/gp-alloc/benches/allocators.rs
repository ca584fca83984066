//! Allocator benchmark: EbbRT's general-purpose allocator Ebb against glibc
//! malloc (`std::alloc::System`), jemalloc (`tikv-jemallocator`) and
//! mimalloc (`mimalloc`), all in one run, hosted.
//!
//! Every allocator is driven by the same generic harness code (calls
//! through `GlobalAlloc`, monomorphised per allocator, each call through a
//! never-inlined function as a `#[global_allocator]` is) on the same two
//! worker threads, pinned to CPUs 0 and 1 and entered as EbbRT cores 0 and
//! 1 (which only our allocator notices). The harness's own bookkeeping uses
//! the process's default allocator, outside the timed sections.
//!
//! Workloads:
//! - Hoard's threadtest: each of T threads allocates N/T 8-byte objects
//!   (writing them, as the original's constructor does), then frees them,
//!   i times. Configuration I: N = 100,000, i = 1,000; II: N = 100,
//!   i = 1,000,000.
//! - larson-style handoff: each thread owns 10,000 slots of 8..=1000-byte
//!   objects and replaces a random slot 10,000 times a round; after each
//!   round the slot arrays move to the other thread, so the first free of
//!   most slots in a round is of an object another thread allocated (with
//!   T = 1, one array alternates between the two workers, one at a time).
//!
//! Usage: `cargo bench -p ebbrt-gp-alloc --bench allocators -- [--reps N] [--scale F] [--only NAME]
//! [--threads T] [--alloc NAME,...] [--no-warmup]`
//! Each cell is the median of `--reps` runs (default 3), allocators
//! interleaved run by run. `--threads` runs one thread count only and
//! `--no-warmup` skips the warm-up runs: for counting instructions per
//! operation under `valgrind --tool=callgrind` (see docs/benchmarks.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ebbrt_core::cpu::{self, CoreId};

const WORKERS: usize = 2;

type Job = Box<dyn FnOnce() -> Duration + Send>;

struct Pool {
    jobs: Vec<Sender<Job>>,
    done: Receiver<Duration>,
}

impl Pool {
    fn new() -> Pool {
        cpu::set_count(WORKERS).unwrap();
        let (done_tx, done) = channel();
        let jobs = (0..WORKERS)
            .map(|i| {
                let (tx, rx) = channel::<Job>();
                let done_tx = done_tx.clone();
                thread::spawn(move || {
                    pin(i);
                    // SAFETY: each worker enters a distinct core, once.
                    unsafe { cpu::enter(CoreId(i as u32)) };
                    for job in rx {
                        done_tx.send(job()).unwrap();
                    }
                });
                tx
            })
            .collect();
        Pool { jobs, done }
    }

    /// Runs one job on each of the first `n` workers; returns the longest
    /// time any of them reported.
    fn run(&self, jobs: Vec<Job>) -> Duration {
        let n = jobs.len();
        for (w, j) in jobs.into_iter().enumerate() {
            self.jobs[w].send(j).unwrap();
        }
        (0..n).map(|_| self.done.recv().unwrap()).max().unwrap()
    }
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; we set one bit and apply it to
    // the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % num_cpus(), &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn num_cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Spins until `done`, yielding the CPU now and then (the machine may run
/// other work: a descheduled partner must not be waited for by spinning
/// for a whole time slice).
fn spin_until(done: impl Fn() -> bool) {
    let mut n = 0u32;
    while !done() {
        n += 1;
        if n.is_multiple_of(256) {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A barrier that spins (wake-up latency would otherwise dominate short
/// rounds); reusable.
struct SpinBarrier {
    n: usize,
    count: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(n: usize) -> SpinBarrier {
        SpinBarrier {
            n,
            count: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }
    fn wait(&self) {
        let g = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.generation.store(g + 1, Ordering::Release);
        } else {
            spin_until(|| self.generation.load(Ordering::Acquire) != g);
        }
    }
}

#[derive(Clone, Copy)]
struct Foo {
    x: i32,
    y: i32,
}

/// Hoard's threadtest, one thread's share.
fn threadtest<A: GlobalAlloc>(
    a: &A,
    nobjects: usize,
    iterations: usize,
    start: &SpinBarrier,
) -> Duration {
    let layout = Layout::new::<Foo>();
    let mut ptrs: Vec<*mut Foo> = vec![std::ptr::null_mut(); nobjects];
    start.wait();
    let t = Instant::now();
    for _ in 0..iterations {
        for p in ptrs.iter_mut() {
            // SAFETY: a non-zero layout; checked for null.
            let q = unsafe { a.alloc(layout) } as *mut Foo;
            assert!(!q.is_null());
            // SAFETY: `q` is a fresh block for one `Foo`.
            unsafe { q.write(Foo { x: 14, y: 29 }) };
            *p = q;
        }
        for p in ptrs.iter() {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe {
                black_box((**p).x + (**p).y);
                a.dealloc(*p as *mut u8, layout);
            }
        }
    }
    t.elapsed()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const LARSON_SLOTS: usize = 10_000;
const LARSON_MIN: usize = 8;
const LARSON_MAX: usize = 1000;

type Slots = Vec<(usize, usize)>;

fn larson_alloc<A: GlobalAlloc>(a: &A, rng: &mut Rng) -> (usize, usize) {
    let size = LARSON_MIN + (rng.next() as usize % (LARSON_MAX - LARSON_MIN + 1));
    // SAFETY: non-zero size, align 8.
    let p = unsafe { a.alloc(Layout::from_size_align_unchecked(size, 8)) };
    assert!(!p.is_null());
    // SAFETY: `p` holds `size >= 8` bytes.
    unsafe { (p as *mut u64).write(size as u64) };
    (p as usize, size)
}

fn larson_round<A: GlobalAlloc>(a: &A, slots: &mut Slots, rng: &mut Rng) {
    for _ in 0..LARSON_SLOTS {
        let i = rng.next() as usize % slots.len();
        let (p, size) = slots[i];
        // SAFETY: the slot holds a live block of `size` bytes from `a`
        // (possibly allocated on the other thread).
        unsafe {
            black_box((p as *const u64).read());
            a.dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, 8));
        }
        slots[i] = larson_alloc(a, rng);
    }
}

fn larson_free<A: GlobalAlloc>(a: &A, slots: Slots) {
    for (p, size) in slots {
        // SAFETY: live blocks of `a`.
        unsafe { a.dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, 8)) };
    }
}

/// One worker's part of larson with `threads` active workers over `rounds`.
fn larson<A: GlobalAlloc>(
    a: &A,
    me: usize,
    threads: usize,
    rounds: usize,
    shared: &LarsonShared,
) -> Duration {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((me as u64 + 1) * 0x1234_5678));
    shared.start.wait();
    let t = Instant::now();
    if threads == 1 {
        // One array, alternating between the two workers.
        for r in (me..rounds).step_by(WORKERS) {
            spin_until(|| shared.turn.load(Ordering::Acquire) == r);
            let mut slots = shared.slots[0].lock().unwrap().take().unwrap_or_else(|| {
                (0..LARSON_SLOTS)
                    .map(|_| larson_alloc(a, &mut rng))
                    .collect()
            });
            larson_round(a, &mut slots, &mut rng);
            if r + 1 == rounds {
                larson_free(a, slots);
            } else {
                *shared.slots[0].lock().unwrap() = Some(slots);
            }
            shared.turn.store(r + 1, Ordering::Release);
        }
    } else {
        let mut slots: Slots = (0..LARSON_SLOTS)
            .map(|_| larson_alloc(a, &mut rng))
            .collect();
        for _ in 0..rounds {
            larson_round(a, &mut slots, &mut rng);
            *shared.slots[me].lock().unwrap() = Some(slots);
            shared.round.wait();
            slots = shared.slots[(me + 1) % WORKERS]
                .lock()
                .unwrap()
                .take()
                .unwrap();
            shared.round.wait();
        }
        larson_free(a, slots);
    }
    t.elapsed()
}

struct LarsonShared {
    start: SpinBarrier,
    round: SpinBarrier,
    turn: AtomicUsize,
    slots: [Mutex<Option<Slots>>; WORKERS],
}

#[derive(Clone, Copy)]
enum Test {
    ThreadtestI,
    ThreadtestII,
    Larson,
}

impl Test {
    fn name(self) -> &'static str {
        match self {
            Test::ThreadtestI => "threadtest I (N=100000, i=1000)",
            Test::ThreadtestII => "threadtest II (N=100, i=1000000)",
            Test::Larson => "larson handoff (10k slots, 8-1000 B)",
        }
    }
    /// Alloc/free pairs per run, all threads together.
    fn ops(self, threads: usize, scale: f64) -> f64 {
        match self {
            Test::ThreadtestI | Test::ThreadtestII => 1e8 * scale,
            Test::Larson => {
                (larson_rounds(scale) * LARSON_SLOTS * if threads == 1 { 1 } else { threads })
                    as f64
            }
        }
    }
}

fn larson_rounds(scale: f64) -> usize {
    ((1000.0 * scale) as usize).max(2)
}

/// Runs `test` at `threads` threads with allocator `a`; the wall time.
fn run<A: GlobalAlloc + Sync + 'static>(
    pool: &Pool,
    a: &'static A,
    test: Test,
    threads: usize,
    scale: f64,
) -> Duration {
    match test {
        Test::ThreadtestI | Test::ThreadtestII => {
            let (n, i) = match test {
                Test::ThreadtestI => (100_000, 1_000),
                _ => (100, 1_000_000),
            };
            let i = ((i as f64 * scale) as usize).max(1);
            let start = Arc::new(SpinBarrier::new(threads));
            let jobs = (0..threads)
                .map(|_| {
                    let start = start.clone();
                    Box::new(move || threadtest(a, n / threads, i, &start)) as Job
                })
                .collect();
            pool.run(jobs)
        }
        Test::Larson => {
            // With one thread both workers take part, one at a time.
            let workers = WORKERS;
            let shared = Arc::new(LarsonShared {
                start: SpinBarrier::new(workers),
                round: SpinBarrier::new(workers),
                turn: AtomicUsize::new(0),
                slots: [const { Mutex::new(None) }; WORKERS],
            });
            let rounds = larson_rounds(scale);
            let jobs = (0..workers)
                .map(|me| {
                    let shared = shared.clone();
                    Box::new(move || larson(a, me, threads, rounds, &shared)) as Job
                })
                .collect();
            pool.run(jobs)
        }
    }
}

/// Calls an allocator the way a Rust program calls its `#[global_allocator]`:
/// through a function that is never inlined into the caller (`__rust_alloc`
/// is such a function). Without it our allocator, being Rust, would be
/// inlined into the benchmark loops while the C allocators are called.
struct Shim<A>(A);

// SAFETY: forwards every call unchanged.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Shim<A> {
    #[inline(never)]
    // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.0.alloc(layout) }
    }
    #[inline(never)]
    // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract, passed on.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

static OURS: Shim<ebbrt_gp_alloc::Global> = Shim(ebbrt_gp_alloc::Global);
static GLIBC: Shim<System> = Shim(System);
static JEMALLOC: Shim<tikv_jemallocator::Jemalloc> = Shim(tikv_jemallocator::Jemalloc);
static MIMALLOC: Shim<mimalloc::MiMalloc> = Shim(mimalloc::MiMalloc);

const NAMES: [&str; 4] = ["ebbrt", "glibc", "jemalloc", "mimalloc"];

fn run_by_index(pool: &Pool, which: usize, test: Test, threads: usize, scale: f64) -> Duration {
    match which {
        0 => run(pool, &OURS, test, threads, scale),
        1 => run(pool, &GLIBC, test, threads, scale),
        2 => run(pool, &JEMALLOC, test, threads, scale),
        _ => run(pool, &MIMALLOC, test, threads, scale),
    }
}

fn main() {
    let mut reps = 3usize;
    let mut scale = 1.0f64;
    let mut only: Option<String> = None;
    let mut thread_counts = vec![1, 2];
    let mut warmup = true;
    let mut allocs: Vec<usize> = (0..NAMES.len()).collect();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).expect("--reps N"),
            "--scale" => scale = args.next().and_then(|v| v.parse().ok()).expect("--scale F"),
            "--only" => only = args.next(),
            "--threads" => {
                thread_counts = vec![
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|t| (1..=WORKERS).contains(t))
                        .expect("--threads 1|2"),
                ]
            }
            "--no-warmup" => warmup = false,
            "--alloc" => {
                let want = args.next().expect("--alloc NAME[,NAME]");
                allocs = (0..NAMES.len())
                    .filter(|&i| want.split(',').any(|n| n == NAMES[i]))
                    .collect();
                assert!(!allocs.is_empty(), "--alloc: no known allocator named");
            }
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    let pool = Pool::new();
    println!(
        "allocator benchmark: {} workers pinned to CPUs 0-{} ({} CPUs), median of {reps} runs, scale {scale}",
        WORKERS,
        WORKERS - 1,
        num_cpus()
    );
    // Warm every allocator up on both workers (arenas, thread caches).
    for &w in allocs.iter().filter(|_| warmup) {
        run_by_index(&pool, w, Test::Larson, 2, 0.01);
        run_by_index(&pool, w, Test::ThreadtestI, 2, 0.005);
    }
    println!();
    println!(
        "| test | threads | {} | best other | ebbrt / best |",
        NAMES.map(|n| format!("{n} ms (ns/op)")).join(" | ")
    );
    println!("|---|---|{}---|---|", "---|".repeat(NAMES.len()));
    for test in [Test::ThreadtestI, Test::ThreadtestII, Test::Larson] {
        if only.as_deref().is_some_and(|o| !test.name().contains(o)) {
            continue;
        }
        for &threads in &thread_counts {
            let mut times = vec![Vec::new(); NAMES.len()];
            for r in 0..reps {
                // Rotate the order each repetition.
                for k in 0..allocs.len() {
                    let w = allocs[(k + r) % allocs.len()];
                    times[w].push(run_by_index(&pool, w, test, threads, scale));
                }
            }
            let med: Vec<Duration> = times
                .into_iter()
                .map(|mut t| {
                    t.sort();
                    t.get(t.len() / 2).copied().unwrap_or(Duration::MAX)
                })
                .collect();
            let ops = test.ops(threads, scale);
            let cells: Vec<String> = med
                .iter()
                .map(|d| match *d {
                    Duration::MAX => "-".to_string(),
                    d => format!(
                        "{:.1} ({:.2})",
                        d.as_secs_f64() * 1e3,
                        d.as_secs_f64() * 1e9 / ops
                    ),
                })
                .collect();
            let (bi, best) = med[1..]
                .iter()
                .enumerate()
                .min_by_key(|(_, d)| **d)
                .unwrap();
            // Without ours or without any other (`--alloc`), no ratio.
            let ratio = if med[0] == Duration::MAX || *best == Duration::MAX {
                "-".to_string()
            } else {
                format!("{:.2}", med[0].as_secs_f64() / best.as_secs_f64())
            };
            println!(
                "| {} | {threads} | {} | {} | {ratio} |",
                test.name(),
                cells.join(" | "),
                NAMES[bi + 1],
            );
        }
    }
    println!();
    println!("ns/op: nanoseconds per allocation+free pair (wall time, all threads together)");
    println!("ebbrt / best < 1.00: ours is faster than the fastest of the others");
}
