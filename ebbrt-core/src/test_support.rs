//! The test runner of EbbRT test kernels.
//!
//! A test kernel is a binary made of `#[ebbrt::test]` functions and an
//! `ebbrt::test_main!()` entry; the same file runs hosted (a Linux process)
//! and natively (under QEMU). Each `#[ebbrt::test]` leaves a [`TestCase`] in
//! the link-time slice [`TEST_CASES`]; [`run_all`] runs them one after
//! another on the core that awaits it, sorted by name, and prints the lines
//! that `cargo ebbrt test` reads:
//!
//! ```text
//! ebbrt-test: running N tests (from K)
//! ebbrt-test: [i] <name> ... ok
//! ebbrt-test: [i] <name> ... FAILED: <message>
//! ebbrt-test: done: P passed, F failed
//! ```
//!
//! Indices are 0-based positions in name order; a run starts at index `K`
//! (boot argument `ebbrt.test.start`). A panic cannot be survived by the
//! library OS, so the runtime's panic handler (native) or hook (hosted)
//! calls [`report_panic`], which prints the running test's
//! `FAILED: panicked at ...` line, and then exits with a failure status; the
//! tool restarts the kernel from the next index.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::future::Future;
use core::pin::Pin;

/// The future of one test run: `Err` carries the failure message.
pub type TestFuture = Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// One test case, as registered by `#[ebbrt::test]`.
#[derive(Clone, Copy)]
pub struct TestCase {
    /// The test's path inside its crate (`module::function`).
    pub name: &'static str,
    /// Starts the test.
    pub run: fn() -> TestFuture,
}

impl fmt::Debug for TestCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCase")
            .field("name", &self.name)
            .finish()
    }
}

/// Every test case linked into the binary.
#[linkme::distributed_slice]
pub static TEST_CASES: [TestCase];

/// What a test function may return: `()`, or `Result<(), E: Debug>` where
/// `Err(e)` fails the test with the message `{e:?}`.
#[diagnostic::on_unimplemented(
    message = "an #[ebbrt::test] function returns `()` or `Result<(), E>` with `E: Debug`, not `{Self}`",
    label = "this test's result type"
)]
pub trait TestOutcome {
    /// The outcome: `Err` holds the failure message.
    fn into_test_result(self) -> Result<(), String>;
}

impl TestOutcome for () {
    fn into_test_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Debug> TestOutcome for Result<(), E> {
    fn into_test_result(self) -> Result<(), String> {
        self.map_err(|e| alloc::format!("{e:?}"))
    }
}

/// The [`TestFuture`] of an `async` test function's future.
pub fn async_case<F>(test: F) -> TestFuture
where
    F: Future + 'static,
    F::Output: TestOutcome,
{
    Box::pin(async move { test.await.into_test_result() })
}

/// The [`TestFuture`] of a plain test function: it runs at the future's
/// first poll, on the runner's core.
pub fn sync_case<F, R>(test: F) -> TestFuture
where
    F: FnOnce() -> R + 'static,
    R: TestOutcome,
{
    Box::pin(async move { test().into_test_result() })
}

/// The name of a test case from its full path: the crate's name (the first
/// segment of `module_path!()`) is left out, since a test kernel is one crate.
pub const fn case_name(path: &'static str) -> &'static str {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b':' && bytes[i + 1] == b':' {
            let (_, rest) = bytes.split_at(i + 2);
            return match core::str::from_utf8(rest) {
                Ok(s) => s,
                Err(_) => path,
            };
        }
        i += 1;
    }
    path
}

/// The test now running, for [`report_panic`].
#[derive(Clone, Copy)]
struct Running {
    index: usize,
    name: &'static str,
    out: fn(fmt::Arguments),
}

// Held only to copy a `Running` in or out: nothing can panic while it is
// held, so a panic handler taking it cannot deadlock on its own core.
static CURRENT: spin::Mutex<Option<Running>> = spin::Mutex::new(None);

/// Runs every registered test case from index `start` (in name order),
/// printing the protocol lines through `out` (each a whole line, newline
/// included). Resolves to the exit code: 0 iff every test that ran passed.
/// A `start` past the last test is an error (exit code 1): the tool asked
/// for tests this kernel does not have.
pub fn run_all(start: usize, out: fn(fmt::Arguments)) -> impl Future<Output = i32> {
    run_cases(TEST_CASES.iter().collect(), start, out)
}

async fn run_cases(
    mut cases: Vec<&'static TestCase>,
    start: usize,
    out: fn(fmt::Arguments),
) -> i32 {
    cases.sort_by(|a, b| a.name.cmp(b.name));
    let n = cases.len();
    out(format_args!(
        "ebbrt-test: running {n} tests (from {start})\n"
    ));
    if start > n {
        out(format_args!(
            "ebbrt-test: error: start index {start} is past the end: this kernel has {n} tests\n"
        ));
        out(format_args!("ebbrt-test: done: 0 passed, 0 failed\n"));
        return 1;
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for (index, case) in cases.iter().enumerate().skip(start) {
        *CURRENT.lock() = Some(Running {
            index,
            name: case.name,
            out,
        });
        let result = (case.run)().await;
        *CURRENT.lock() = None;
        match result {
            Ok(()) => {
                passed += 1;
                out(format_args!("ebbrt-test: [{index}] {} ... ok\n", case.name));
            }
            Err(msg) => {
                failed += 1;
                out(format_args!(
                    "ebbrt-test: [{index}] {} ... FAILED: {}\n",
                    case.name,
                    OneLine(&msg)
                ));
            }
        }
    }
    out(format_args!(
        "ebbrt-test: done: {passed} passed, {failed} failed\n"
    ));
    if failed == 0 { 0 } else { 1 }
}

/// Prints the `FAILED: panicked at <msg>` line of the running test, if a
/// test is running; `msg` is `<location>: <message>`. Returns whether it
/// printed. A runtime's panic handler (native) or panic hook (hosted) calls
/// this, then exits with a failure status. Only the first panic of a test
/// is reported: a second one (on another core, say) returns `false`.
pub fn report_panic(msg: fmt::Arguments) -> bool {
    let Some(r) = CURRENT.lock().take() else {
        return false;
    };
    (r.out)(format_args!(
        "ebbrt-test: [{}] {} ... FAILED: panicked at {}\n",
        r.index,
        r.name,
        OneLine(&msg)
    ));
    true
}

/// The start index of a run from the boot argument `ebbrt.test.start`
/// (absent: 0).
pub fn parse_start(arg: Option<&str>) -> Result<usize, StartIndexError> {
    match arg {
        None => Ok(0),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| StartIndexError { value: s.into() }),
    }
}

/// `ebbrt.test.start` was not a test index.
#[derive(Clone, PartialEq, Eq)]
pub struct StartIndexError {
    /// The value given.
    pub value: String,
}

impl fmt::Display for StartIndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boot argument ebbrt.test.start={:?} is not a test index (expected a number such as 0 or 3)",
            self.value
        )
    }
}

// `Debug` is what an application's `Err` result prints: keep it readable.
impl fmt::Debug for StartIndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::error::Error for StartIndexError {}

/// Shows a message on one line (a protocol line): line breaks become `\n`.
struct OneLine<'a, T: fmt::Display>(&'a T);

impl<T: fmt::Display> fmt::Display for OneLine<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escape<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl Write for Escape<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let mut rest = s;
                while let Some(i) = rest.find(['\n', '\r']) {
                    self.0.write_str(&rest[..i])?;
                    self.0.write_str(if rest.as_bytes()[i] == b'\n' {
                        "\\n"
                    } else {
                        "\\r"
                    })?;
                    rest = &rest[i + 1..];
                }
                self.0.write_str(rest)
            }
        }
        write!(Escape(f), "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;
    use std::sync::Mutex;
    use std::vec;

    use super::*;
    use crate::testing::run_on;

    // The runner's "current test" record is global: one runner at a time.
    static SERIAL: Mutex<()> = Mutex::new(());
    static OUT: Mutex<String> = Mutex::new(String::new());

    fn capture(args: fmt::Arguments) {
        OUT.lock().unwrap().write_fmt(args).unwrap();
    }

    /// Runs `cases` from `start` on core 0; the exit code and the output.
    fn run(cases: &'static [TestCase], start: usize) -> (i32, String) {
        OUT.lock().unwrap().clear();
        let code = run_on(0, move || run_cases(cases.iter().collect(), start, capture));
        (code, core::mem::take(&mut *OUT.lock().unwrap()))
    }

    async fn passes() {}
    async fn fails() -> Result<(), &'static str> {
        crate::exec::yield_now().await;
        Err("bad\nthing")
    }
    fn sync_passes() -> Result<(), u32> {
        Ok(())
    }

    static CASES: [TestCase; 3] = [
        TestCase {
            name: "z::sync_passes",
            run: || sync_case(sync_passes),
        },
        TestCase {
            name: "b_fails",
            run: || async_case(fails()),
        },
        TestCase {
            name: "a_passes",
            run: || async_case(passes()),
        },
    ];

    #[test]
    fn runs_in_name_order_and_prints_the_protocol() {
        let _g = SERIAL.lock().unwrap();
        let (code, out) = run(&CASES, 0);
        assert_eq!(
            out,
            "ebbrt-test: running 3 tests (from 0)\n\
             ebbrt-test: [0] a_passes ... ok\n\
             ebbrt-test: [1] b_fails ... FAILED: \"bad\\nthing\"\n\
             ebbrt-test: [2] z::sync_passes ... ok\n\
             ebbrt-test: done: 2 passed, 1 failed\n"
        );
        assert_eq!(code, 1);
    }

    #[test]
    fn a_run_starts_at_the_given_index() {
        let _g = SERIAL.lock().unwrap();
        let (code, out) = run(&CASES, 2);
        assert_eq!(
            out,
            "ebbrt-test: running 3 tests (from 2)\n\
             ebbrt-test: [2] z::sync_passes ... ok\n\
             ebbrt-test: done: 1 passed, 0 failed\n"
        );
        assert_eq!(code, 0);
        let (code, out) = run(&CASES, 3);
        assert!(out.ends_with("done: 0 passed, 0 failed\n"), "{out}");
        assert_eq!(code, 0);
        let (code, out) = run(&CASES, 4);
        assert!(
            out.contains("error: start index 4 is past the end: this kernel has 3 tests"),
            "{out}"
        );
        assert_eq!(code, 1);
    }

    #[test]
    fn no_tests_is_a_pass() {
        let _g = SERIAL.lock().unwrap();
        let (code, out) = run(&[], 0);
        assert_eq!(
            out,
            "ebbrt-test: running 0 tests (from 0)\nebbrt-test: done: 0 passed, 0 failed\n"
        );
        assert_eq!(code, 0);
    }

    // What a runtime's panic hook does: report the running test once.
    async fn panics_in_spirit() {
        assert!(report_panic(format_args!(
            "src/lib.rs:3:5: assertion failed\n  left: 1"
        )));
        assert!(!report_panic(format_args!("a second panic")));
    }

    #[test]
    fn a_panic_is_reported_against_the_running_test() {
        static PANICS: [TestCase; 1] = [TestCase {
            name: "m::panics",
            run: || async_case(panics_in_spirit()),
        }];
        let _g = SERIAL.lock().unwrap();
        assert!(!report_panic(format_args!("no test is running")));
        let (_, out) = run(&PANICS, 0);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "ebbrt-test: [0] m::panics ... FAILED: panicked at src/lib.rs:3:5: assertion failed\\n  left: 1"
        );
        assert!(!report_panic(format_args!("after the run")));
    }

    #[linkme::distributed_slice(TEST_CASES)]
    static REGISTERED: TestCase = TestCase {
        name: case_name(concat!(module_path!(), "::registered")),
        run: || sync_case(|| ()),
    };

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot read linkme's link sections (TEST_CASES)")]
    fn run_all_runs_the_registered_cases() {
        let _g = SERIAL.lock().unwrap();
        OUT.lock().unwrap().clear();
        let code = run_on(1, || run_all(0, capture));
        let out = core::mem::take(&mut *OUT.lock().unwrap());
        assert_eq!(code, 0);
        assert!(
            out.contains("] test_support::tests::registered ... ok\n"),
            "{out}"
        );
    }

    #[test]
    fn case_names_leave_out_the_crate() {
        assert_eq!(case_name("qemu_exec::net::accepts"), "net::accepts");
        assert_eq!(case_name("qemu_exec::accepts"), "accepts");
        assert_eq!(case_name("lonely"), "lonely");
    }

    #[test]
    fn outcomes() {
        assert_eq!(().into_test_result(), Ok(()));
        assert_eq!(
            Err::<(), _>(vec![1, 2]).into_test_result(),
            Err("[1, 2]".to_string())
        );
        assert_eq!(Ok::<(), u8>(()).into_test_result(), Ok(()));
    }

    #[test]
    fn start_index_from_the_boot_argument() {
        assert_eq!(parse_start(None), Ok(0));
        assert_eq!(parse_start(Some("7")), Ok(7));
        let e = parse_start(Some("seven")).unwrap_err();
        assert_eq!(
            std::format!("{e:?}"),
            "boot argument ebbrt.test.start=\"seven\" is not a test index (expected a number such as 0 or 3)"
        );
        assert!(parse_start(Some("-1")).is_err());
    }

    #[test]
    fn messages_are_kept_on_one_line() {
        assert_eq!(std::format!("{}", OneLine(&"a\nb\r\nc")), "a\\nb\\r\\nc");
    }
}
