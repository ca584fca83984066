//! The start sequence of the hosted runtime, end to end: this test binary
//! re-runs itself as a probe application (`EBBRT_STD_PROBE=<scenario>`) that
//! calls `ebbrt_std::start_main`, and checks each probe's exit status and
//! output. `start_main` owns the process (it exits it), so every scenario
//! needs a process of its own.

// The console every instance needs (runtimes refuse to start without one).
use ebbrt_console_stdout as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::exec;

const PROBE_ENV: &str = "EBBRT_STD_PROBE";

// Two test cases for the `tests` scenario: the runtime's panic hook must
// report the panic of the second against it.
use ebbrt_core::test_support::{TEST_CASES, TestCase, async_case};

#[ebbrt_core::__private::linkme::distributed_slice(TEST_CASES)]
#[linkme(crate = ebbrt_core::__private::linkme)]
static PASSES: TestCase = TestCase {
    name: "a_passes",
    run: || async_case(async {}),
};

#[ebbrt_core::__private::linkme::distributed_slice(TEST_CASES)]
#[linkme(crate = ebbrt_core::__private::linkme)]
static PANICS: TestCase = TestCase {
    name: "b_panics_on_core_1",
    run: || {
        async_case(async {
            exec::spawn_on(CoreId(1), async { panic!("test panic on purpose") }).await;
        })
    },
};

fn main() {
    match std::env::var(PROBE_ENV) {
        Ok(scenario) => probe(&scenario),
        Err(_) => drive(),
    }
}

// ---------------------------------------------------------------- probes

/// The CPUs the calling thread may run on.
fn thread_cpus() -> usize {
    // SAFETY: a zeroed cpu_set_t is valid; we pass its size; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        libc::CPU_COUNT(&set) as usize
    }
}

fn probe(scenario: &str) -> ! {
    match scenario {
        "report" => ebbrt_std::start_main(|| async {
            let n = cpu::count();
            println!("cores={n}");
            println!("args={:?}", ebbrt_std::args());
            println!("boot={:?}", ebbrt_std::boot_arg("probe.key"));
            let per_core =
                exec::on_each_core(|c| async move { (c, cpu::current(), thread_cpus()) }).await;
            for (asked, ran, cpus) in per_core {
                println!("core {} ran on {} pinned to {cpus} cpu(s)", asked.0, ran.0);
            }
            log::debug!("a debug line");
            ebbrt_core::console::print(format_args!("via console\n"));
            ebbrt_core::console::eprint(format_args!("to stderr\n"));
        }),
        "code" => ebbrt_std::start_main(|| async { 7 }),
        "tests" => ebbrt_std::start_main(|| {
            ebbrt_core::test_support::run_all(0, ebbrt_core::console::print)
        }),
        "error" => ebbrt_std::start_main(|| async { Err::<(), _>("it went wrong") }),
        "panic_core1" => ebbrt_std::start_main(|| async {
            // Core 0 waits for core 1 forever: the panic must end the process.
            exec::spawn_on(CoreId(1), async {
                exec::yield_now().await;
                panic!("probe panic on purpose");
            })
            .await;
        }),
        "panic_main" => ebbrt_std::start_main(|| async {
            let v: Vec<u32> = Vec::new();
            v[3] as i32
        }),
        "timers" => ebbrt_std::start_main(|| async {
            // Sleeps on every core, woken by timers and cross-core wakes.
            let t0 = ebbrt_core::time::Instant::now();
            let slept = exec::on_each_core(|c| async move {
                exec::sleep(Duration::from_millis(20 + 10 * c.0 as u64)).await;
                c
            })
            .await;
            let took = t0.elapsed();
            println!("slept on {} cores in {took:?}", slept.len());
            if took < Duration::from_millis(20 + 10 * (slept.len() as u64 - 1)) {
                1
            } else {
                0
            }
        }),
        other => {
            eprintln!("unknown probe scenario {other}");
            std::process::exit(99);
        }
    }
}

// ---------------------------------------------------------------- driver

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(scenario: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let dir = std::env::temp_dir();
    let tag = format!(
        "ebbrt-std-probe-{}-{scenario}-{}",
        std::process::id(),
        args.join("_").len()
    );
    let out_path: PathBuf = dir.join(format!("{tag}.out"));
    let err_path: PathBuf = dir.join(format!("{tag}.err"));
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(args)
        .env(PROBE_ENV, scenario)
        .env_remove("EBBRT_CORES")
        .env_remove("EBBRT_ARGS")
        .env_remove("EBBRT_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    Outcome {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

type Check = fn() -> Result<(), String>;

/// Command-line arguments, environment, and the expected message.
type BadCase = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

fn expect(cond: bool, what: &str, o: &Outcome) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!(
            "{what}\n  exit: {:?}\n  stdout: {:?}\n  stderr: {:?}",
            o.code, o.stdout, o.stderr
        ))
    }
}

fn drive() {
    let checks: &[(&str, Check)] = &[
        ("cores_flag_args_and_boot_args", || {
            let o = run(
                "report",
                &["alpha", "--cores", "3", "beta", "--", "--cores=9"],
                &[("EBBRT_ARGS", "probe.key=value other=1 ebbrt.pin=1")],
            );
            expect(o.code == Some(0), "exit 0", &o)?;
            expect(o.stdout.contains("cores=3\n"), "three cores", &o)?;
            expect(
                o.stdout.contains(r#"args=["alpha", "beta", "--cores=9"]"#),
                "runtime flags removed, the rest kept",
                &o,
            )?;
            expect(
                o.stdout.contains(r#"boot=Some("value")"#),
                "boot_arg from EBBRT_ARGS",
                &o,
            )?;
            for c in 0..3 {
                expect(
                    o.stdout
                        .contains(&format!("core {c} ran on {c} pinned to 1 cpu(s)")),
                    "each core on its own pinned thread (ebbrt.pin=1)",
                    &o,
                )?;
            }
            // The default pins only when CPUs are left over: with more
            // cores than this process has CPUs, none is pinned.
            let all = thread_cpus();
            let unpinned = run("report", &["--cores", &(all + 1).to_string()], &[]);
            expect(
                unpinned.code == Some(0),
                "exit 0 with more cores than CPUs",
                &unpinned,
            )?;
            expect(
                unpinned
                    .stdout
                    .contains(&format!("core 0 ran on 0 pinned to {all} cpu(s)")),
                "more cores than CPUs: unpinned by default",
                &unpinned,
            )?;
            let bad = run("report", &[], &[("EBBRT_ARGS", "ebbrt.pin=sometimes")]);
            expect(
                bad.code == Some(2) && bad.stderr.contains("invalid `ebbrt.pin=sometimes`"),
                "a bad ebbrt.pin is a configuration error",
                &bad,
            )?;
            expect(o.stdout.contains("via console\n"), "console::print", &o)?;
            expect(o.stderr.contains("to stderr\n"), "console::eprint", &o)?;
            expect(
                !o.stderr.contains("a debug line"),
                "default log level is info",
                &o,
            )
        }),
        ("cores_from_env_and_boot_args", || {
            let o = run("report", &["--cores=2"], &[("EBBRT_CORES", "5")]);
            expect(
                o.stdout.contains("cores=2\n"),
                "the flag beats EBBRT_CORES",
                &o,
            )?;
            let o = run(
                "report",
                &[],
                &[("EBBRT_CORES", "2"), ("EBBRT_ARGS", "ebbrt.cores=4")],
            );
            expect(
                o.stdout.contains("cores=2\n"),
                "EBBRT_CORES beats ebbrt.cores",
                &o,
            )?;
            let o = run("report", &[], &[("EBBRT_ARGS", "ebbrt.cores=4")]);
            expect(
                o.code == Some(0) && o.stdout.contains("cores=4\n"),
                "ebbrt.cores",
                &o,
            )
        }),
        ("default_cores_is_available_parallelism", || {
            let n = std::thread::available_parallelism()
                .unwrap()
                .get()
                .min(cpu::MAX_CORES);
            let o = run("report", &[], &[]);
            expect(
                o.code == Some(0) && o.stdout.contains(&format!("cores={n}\n")),
                "default core count",
                &o,
            )
        }),
        ("bad_core_counts_exit_2_with_a_message", || {
            let cases: &[BadCase] = &[
                (
                    &["--cores", "0"],
                    &[],
                    "invalid core count `0` (from --cores)",
                ),
                (
                    &["--cores=many"],
                    &[],
                    "invalid core count `many` (from --cores)",
                ),
                (&["--cores"], &[], "`--cores` needs a value"),
                (&[], &[("EBBRT_CORES", "-2")], "(from EBBRT_CORES)"),
                (
                    &[],
                    &[("EBBRT_ARGS", "ebbrt.cores=100000")],
                    "(from ebbrt.cores in EBBRT_ARGS)",
                ),
                (
                    &[],
                    &[("EBBRT_LOG", "chatty")],
                    "invalid log filter `chatty`",
                ),
            ];
            for (args, env, msg) in cases {
                let o = run("report", args, env);
                expect(o.code == Some(2), "exit status 2", &o)?;
                expect(o.stderr.contains(msg), msg, &o)?;
                expect(!o.stderr.contains("panicked"), "no panic", &o)?;
                expect(o.stdout.is_empty(), "the application never started", &o)?;
            }
            Ok(())
        }),
        ("log_level_from_ebbrt_log", || {
            let o = run("report", &["--cores", "1"], &[("EBBRT_LOG", "debug")]);
            expect(o.code == Some(0), "exit 0", &o)?;
            expect(o.stderr.contains("a debug line"), "debug records shown", &o)?;
            expect(
                o.stderr.contains("DEBUG core 0 runtime]"),
                "record names level, core and target",
                &o,
            )
        }),
        ("main_exit_code_is_the_process_status", || {
            let o = run("code", &["--cores", "2"], &[]);
            expect(o.code == Some(7), "exit 7", &o)
        }),
        ("main_error_prints_and_exits_1", || {
            let o = run("error", &["--cores", "2"], &[]);
            expect(o.code == Some(1), "exit 1", &o)?;
            expect(
                o.stderr.contains("Error: \"it went wrong\""),
                "Error: printed",
                &o,
            )
        }),
        ("a_panic_on_another_core_exits_101", || {
            let o = run("panic_core1", &["--cores", "2"], &[]);
            expect(o.code == Some(101), "exit 101 (not a hang)", &o)?;
            expect(
                o.stderr.contains("core 1 panicked at"),
                "names the core",
                &o,
            )?;
            expect(
                o.stderr.contains("probe panic on purpose"),
                "the message",
                &o,
            )?;
            expect(o.stderr.contains("tests/runtime.rs"), "the location", &o)
        }),
        ("a_panic_in_main_exits_101", || {
            let o = run("panic_main", &["--cores", "3"], &[]);
            expect(o.code == Some(101), "exit 101", &o)?;
            expect(o.stderr.contains("core 0 panicked at"), "names core 0", &o)
        }),
        ("a_panic_in_a_test_is_reported_against_it", || {
            let o = run("tests", &["--cores", "2"], &[]);
            expect(o.code == Some(101), "exit 101", &o)?;
            expect(
                o.stdout.contains("ebbrt-test: [0] a_passes ... ok\n"),
                "first test passed",
                &o,
            )?;
            expect(
                o.stdout
                    .contains("ebbrt-test: [1] b_panics_on_core_1 ... FAILED: panicked at ebbrt-std/tests/runtime.rs:"),
                "the panic is the test's failure",
                &o,
            )?;
            expect(
                o.stdout.contains(": test panic on purpose\n"),
                "with its message",
                &o,
            )?;
            expect(o.stderr.contains("core 1 panicked at"), "and on stderr", &o)
        }),
        ("timers_and_wakes_on_every_core", || {
            let o = run("timers", &["--cores", "4"], &[]);
            expect(o.code == Some(0), "sleeps complete, not early", &o)?;
            expect(o.stdout.contains("slept on 4 cores"), "all cores", &o)
        }),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check() {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
    }
    println!("{} passed, {failed} failed", checks.len() - failed);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
