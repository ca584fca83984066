//! Running one test kernel to the end, whatever happens to it.
//!
//! A kernel runs its tests in order. When it dies mid-test (a panic makes it
//! exit with failure; a crash or a timeout ends it without a word), the test
//! it died in is recorded as failed and the kernel is booted again with
//! `ebbrt.test.start=<i+1>`, so the tests after it still run. The logic is
//! kept apart from QEMU (a [`Booter`] boots once from a given index) so that
//! canned outputs can drive it in unit tests.

use std::collections::BTreeMap;

use crate::exit::Outcome;
use crate::protocol::{self, Event, TestResult};

/// What one boot of a kernel produced.
#[derive(Clone, Debug)]
pub struct Boot {
    /// Everything it printed (serial / stdout), line by line.
    pub lines: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
}

/// Boots a kernel so that it runs its tests from `start` on.
pub trait Booter {
    /// One boot; `Err` when the kernel could not even be started (the
    /// message says why).
    fn boot(&mut self, start: usize) -> Result<Boot, String>;
}

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRecord {
    /// The test's name (`#i` when the kernel died before naming it).
    pub name: String,
    /// Passed or why not.
    pub result: TestResult,
}

/// Everything known about one kernel after it ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelReport {
    /// Results by test index.
    pub tests: BTreeMap<usize, TestRecord>,
    /// Failures that belong to no test (the kernel did not boot, did not
    /// follow the protocol, ...). Each counts as one failure.
    pub errors: Vec<String>,
    /// Number of boots it took.
    pub boots: usize,
}

impl KernelReport {
    /// Tests that passed.
    pub fn passed(&self) -> usize {
        self.tests
            .values()
            .filter(|t| t.result == TestResult::Ok)
            .count()
    }

    /// Tests that failed, plus kernel-level errors.
    pub fn failed(&self) -> usize {
        self.tests.len() - self.passed() + self.errors.len()
    }
}

/// What one boot's output says.
#[derive(Debug, Default)]
struct Parsed {
    running: Option<(usize, usize)>,
    results: BTreeMap<usize, TestRecord>,
    /// The last test that started without a result.
    started: Option<(usize, String)>,
    done: Option<(usize, usize)>,
}

fn parse(lines: &[String]) -> Parsed {
    let mut p = Parsed::default();
    for line in lines {
        match protocol::parse_line(line) {
            Some(Event::Running { total, start }) if p.running.is_none() => {
                p.running = Some((total, start))
            }
            Some(Event::Test {
                index,
                name,
                result: Some(result),
            }) => {
                p.results
                    .entry(index)
                    .or_insert(TestRecord { name, result });
                p.started = None;
            }
            Some(Event::Test {
                index,
                name,
                result: None,
            }) => p.started = Some((index, name)),
            Some(Event::Done { passed, failed }) => p.done = Some((passed, failed)),
            _ => {}
        }
    }
    p
}

/// Runs a kernel's tests to the end, rebooting past every test that kills it.
pub fn run_kernel(booter: &mut dyn Booter) -> KernelReport {
    let mut report = KernelReport::default();
    let mut start = 0;
    loop {
        report.boots += 1;
        let boot = match booter.boot(start) {
            Ok(b) => b,
            Err(e) => {
                report.errors.push(e);
                return report;
            }
        };
        let p = parse(&boot.lines);
        let Some((total, from)) = p.running else {
            let when = if start == 0 {
                String::new()
            } else {
                format!(" (booted with ebbrt.test.start={start})")
            };
            report.errors.push(format!(
                "the kernel {} before it started its tests{when}",
                boot.outcome
            ));
            return report;
        };
        if from != start {
            report.errors.push(format!(
                "booted with ebbrt.test.start={start}, the kernel says it runs from {from}: \
                 it does not follow the protocol"
            ));
            return report;
        }
        for (i, rec) in p.results {
            if i >= start && i < total {
                report.tests.entry(i).or_insert(rec);
            } else {
                report
                    .errors
                    .push(format!("result for test [{i}] outside {start}..{total}"));
            }
        }
        if let Some((passed, failed)) = p.done {
            check_done(&mut report, &boot.outcome, start, total, passed, failed);
            return report;
        }
        // The kernel died before `done`: find the test it died in.
        let last = report
            .tests
            .range(start..)
            .next_back()
            .map(|(i, r)| (*i, r.result.clone()));
        let dead = match last {
            // A panicking test prints its own FAILED line and then the kernel exits.
            Some((i, r)) if r.is_panic() => i,
            Some((i, _)) => i + 1,
            None => start,
        };
        if dead < total && !report.tests.contains_key(&dead) {
            let name = match p.started {
                Some((i, name)) if i == dead => name,
                _ => format!("#{dead}"),
            };
            let why = format!("the kernel {} during this test", boot.outcome);
            report.tests.insert(
                dead,
                TestRecord {
                    name,
                    result: TestResult::Failed(why),
                },
            );
        }
        if dead >= total {
            // Every test has a result, yet no `done` line.
            report.errors.push(format!(
                "the kernel {} after its last test, before `done`",
                boot.outcome
            ));
            return report;
        }
        start = dead + 1;
        if start >= total {
            return report;
        }
    }
}

/// The kernel finished: its `done` line and exit status must agree with the
/// results it printed.
fn check_done(
    report: &mut KernelReport,
    outcome: &Outcome,
    start: usize,
    total: usize,
    passed: usize,
    failed: usize,
) {
    let ran: Vec<&TestRecord> = report.tests.range(start..).map(|(_, r)| r).collect();
    let ok = ran.iter().filter(|r| r.result == TestResult::Ok).count();
    if ran.len() != total.saturating_sub(start) || ok != passed || ran.len() - ok != failed {
        report.errors.push(format!(
            "`done: {passed} passed, {failed} failed` does not match the {} results \
             printed for tests {start}..{total}",
            ran.len()
        ));
    }
    match outcome {
        Outcome::Exited(0) if failed == 0 => {}
        Outcome::Exited(c) if *c != 0 && failed > 0 => {}
        other => report.errors.push(format!(
            "after `done: {passed} passed, {failed} failed` the kernel {other} \
             (expected status {})",
            if failed == 0 { "0" } else { "non-zero" }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Replays canned boots and records the start index of each.
    struct Canned {
        boots: Vec<Result<Boot, String>>,
        starts: Vec<usize>,
    }

    impl Booter for Canned {
        fn boot(&mut self, start: usize) -> Result<Boot, String> {
            self.starts.push(start);
            assert!(
                !self.boots.is_empty(),
                "booted more often than expected (start={start})"
            );
            self.boots.remove(0)
        }
    }

    fn boot(out: &str, outcome: Outcome) -> Result<Boot, String> {
        Ok(Boot {
            lines: out.lines().map(String::from).collect(),
            outcome,
        })
    }

    fn run(boots: Vec<Result<Boot, String>>) -> (KernelReport, Vec<usize>) {
        let mut c = Canned {
            boots,
            starts: Vec::new(),
        };
        let r = run_kernel(&mut c);
        assert!(c.boots.is_empty(), "not every canned boot was used");
        (r, c.starts)
    }

    fn names_and_ok(r: &KernelReport) -> Vec<(usize, &str, bool)> {
        r.tests
            .iter()
            .map(|(i, t)| (*i, t.name.as_str(), t.result == TestResult::Ok))
            .collect()
    }

    const ALL_PASS: &str = "\
booting...
ebbrt-test: running 3 tests (from 0)
ebbrt-test: [0] a ... ok
some log line
ebbrt-test: [1] b ... ok
ebbrt-test: [2] c ... ok
ebbrt-test: done: 3 passed, 0 failed
";

    #[test]
    fn all_pass_in_one_boot() {
        let (r, starts) = run(vec![boot(ALL_PASS, Outcome::Exited(0))]);
        assert_eq!(starts, [0]);
        assert_eq!((r.passed(), r.failed(), r.boots), (3, 0, 1));
        assert!(r.errors.is_empty());
    }

    #[test]
    fn ordinary_failure_needs_no_reboot() {
        let out = "\
ebbrt-test: running 2 tests (from 0)
ebbrt-test: [0] a ... FAILED: Err(Timeout)
ebbrt-test: [1] b ... ok
ebbrt-test: done: 1 passed, 1 failed
";
        let (r, starts) = run(vec![boot(out, Outcome::Exited(1))]);
        assert_eq!(starts, [0]);
        assert_eq!((r.passed(), r.failed()), (1, 1));
        assert!(r.errors.is_empty());
    }

    #[test]
    fn panic_reboots_after_the_panicking_test() {
        let first = "\
ebbrt-test: running 4 tests (from 0)
ebbrt-test: [0] a ... ok
ebbrt-test: [1] b ... FAILED: panicked at tests/qemu_t.rs:3:5: boom
";
        let second = "\
ebbrt-test: running 4 tests (from 2)
ebbrt-test: [2] c ... ok
ebbrt-test: [3] d ... ok
ebbrt-test: done: 2 passed, 0 failed
";
        let (r, starts) = run(vec![
            boot(first, Outcome::Exited(1)),
            boot(second, Outcome::Exited(0)),
        ]);
        assert_eq!(starts, [0, 2]);
        assert_eq!(
            names_and_ok(&r),
            [
                (0, "a", true),
                (1, "b", false),
                (2, "c", true),
                (3, "d", true)
            ]
        );
        assert_eq!((r.passed(), r.failed(), r.boots), (3, 1, 2));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }

    #[test]
    fn crash_and_timeout_fail_the_running_test_and_continue() {
        // Test 1 triple-faults (named by its start line), test 2 hangs
        // (unnamed), test 3 passes.
        let first = "\
ebbrt-test: running 4 tests (from 0)
ebbrt-test: [0] a ... ok
ebbrt-test: [1] b ...
";
        let second = "ebbrt-test: running 4 tests (from 2)\n";
        let third = "\
ebbrt-test: running 4 tests (from 3)
ebbrt-test: [3] d ... ok
ebbrt-test: done: 1 passed, 0 failed
";
        let (r, starts) = run(vec![
            boot(first, Outcome::Crashed("triple fault".into())),
            boot(second, Outcome::TimedOut(Duration::from_secs(120))),
            boot(third, Outcome::Exited(0)),
        ]);
        assert_eq!(starts, [0, 2, 3]);
        assert_eq!(
            names_and_ok(&r),
            [
                (0, "a", true),
                (1, "b", false),
                (2, "#2", false),
                (3, "d", true)
            ]
        );
        let TestResult::Failed(why) = &r.tests[&2].result else {
            unreachable!()
        };
        assert!(why.contains("TIMED OUT"), "{why}");
        let TestResult::Failed(why) = &r.tests[&1].result else {
            unreachable!()
        };
        assert!(why.contains("CRASHED"), "{why}");
        assert_eq!((r.passed(), r.failed()), (2, 2));
    }

    #[test]
    fn a_failure_line_then_a_silent_death_blames_the_next_test() {
        // [0] failed normally (not a panic); the kernel then died in [1].
        let first = "\
ebbrt-test: running 3 tests (from 0)
ebbrt-test: [0] a ... FAILED: wrong answer
";
        let second = "\
ebbrt-test: running 3 tests (from 2)
ebbrt-test: [2] c ... ok
ebbrt-test: done: 1 passed, 0 failed
";
        let (r, starts) = run(vec![
            boot(first, Outcome::Crashed("x".into())),
            boot(second, Outcome::Exited(0)),
        ]);
        assert_eq!(starts, [0, 2]);
        assert_eq!(
            names_and_ok(&r),
            [(0, "a", false), (1, "#1", false), (2, "c", true)]
        );
    }

    #[test]
    fn death_in_the_last_test_ends_without_a_reboot() {
        let out = "\
ebbrt-test: running 2 tests (from 0)
ebbrt-test: [0] a ... ok
ebbrt-test: [1] b ... FAILED: panicked at x.rs:1:1: no
";
        let (r, starts) = run(vec![boot(out, Outcome::Exited(1))]);
        assert_eq!(starts, [0]);
        assert_eq!((r.passed(), r.failed()), (1, 1));
        assert!(r.errors.is_empty());
    }

    #[test]
    fn no_header_is_a_kernel_error() {
        let (r, starts) = run(vec![boot(
            "garbage\n",
            Outcome::Crashed("triple fault".into()),
        )]);
        assert_eq!(starts, [0]);
        assert_eq!((r.passed(), r.failed()), (0, 1));
        assert!(
            r.errors[0].contains("before it started its tests"),
            "{:?}",
            r.errors
        );
        let (r, _) = run(vec![Err("cannot start QEMU".into())]);
        assert_eq!(r.errors, ["cannot start QEMU"]);
    }

    #[test]
    fn ignoring_the_start_index_is_caught_not_looped() {
        let first = "\
ebbrt-test: running 2 tests (from 0)
ebbrt-test: [0] a ... FAILED: panicked at x.rs:1:1
";
        let (r, starts) = run(vec![
            boot(first, Outcome::Exited(1)),
            boot(first, Outcome::Exited(1)),
        ]);
        assert_eq!(starts, [0, 1]);
        assert_eq!(r.failed(), 2);
        assert!(r.errors[0].contains("does not follow the protocol"));
    }

    #[test]
    fn exit_status_must_agree_with_done() {
        let (r, _) = run(vec![boot(ALL_PASS, Outcome::Exited(3))]);
        assert_eq!((r.passed(), r.failed()), (3, 1));
        assert!(r.errors[0].contains("expected status 0"), "{:?}", r.errors);
        let (r, _) = run(vec![boot(ALL_PASS, Outcome::Crashed("after done".into()))]);
        assert_eq!(r.failed(), 1);
        let lying = ALL_PASS.replace("done: 3 passed", "done: 2 passed");
        let (r, _) = run(vec![boot(&lying, Outcome::Exited(0))]);
        assert!(r.errors[0].contains("does not match"), "{:?}", r.errors);
    }

    #[test]
    fn clean_exit_without_done_blames_the_next_test() {
        let out = "\
ebbrt-test: running 2 tests (from 0)
ebbrt-test: [0] a ... ok
";
        let (r, starts) = run(vec![boot(out, Outcome::Exited(0))]);
        // Test 1 was the last: nothing to reboot for.
        assert_eq!(starts, [0]);
        assert_eq!(names_and_ok(&r), [(0, "a", true), (1, "#1", false)]);
    }

    #[test]
    fn zero_tests() {
        let out = "ebbrt-test: running 0 tests (from 0)\nebbrt-test: done: 0 passed, 0 failed\n";
        let (r, _) = run(vec![boot(out, Outcome::Exited(0))]);
        assert_eq!((r.passed(), r.failed()), (0, 0));
    }
}
