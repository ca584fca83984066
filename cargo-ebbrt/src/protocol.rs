//! The lines a test kernel prints (CONTRACTS.md, "Test kernels and the
//! protocol"), tests sorted by name, indices 0-based:
//!
//! ```text
//! ebbrt-test: running N tests (from K)
//! ebbrt-test: [i] <name> ... ok
//! ebbrt-test: [i] <name> ... FAILED: <message>
//! ebbrt-test: done: P passed, F failed
//! ```
//!
//! The marker may follow other output on the same line (a log line without
//! its newline), so it is searched for anywhere in a line. A line that ends
//! right after `... ` is a test that started but never finished (the kernel
//! died in it).

/// The marker that starts every protocol line.
pub const MARKER: &str = "ebbrt-test: ";

/// One protocol line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `running N tests (from K)`: N tests in the kernel, starting at index K.
    Running {
        /// Number of tests in the kernel.
        total: usize,
        /// First index this boot runs.
        start: usize,
    },
    /// `[i] name ... ok` / `... FAILED: msg`, or a test that started
    /// (`[i] name ...` and nothing after).
    Test {
        /// The test's index.
        index: usize,
        /// The test's name.
        name: String,
        /// Its result; `None` when only its start was seen.
        result: Option<TestResult>,
    },
    /// `done: P passed, F failed`
    Done {
        /// Tests that passed in this boot.
        passed: usize,
        /// Tests that failed in this boot.
        failed: usize,
    },
}

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestResult {
    /// `ok`
    Ok,
    /// `FAILED: <message>`
    Failed(String),
}

impl TestResult {
    /// A failure caused by a panic, after which the kernel exits.
    pub fn is_panic(&self) -> bool {
        matches!(self, TestResult::Failed(m) if m.starts_with("panicked"))
    }
}

/// Parses one line of a test kernel's output; `None` for anything that is
/// not a (well-formed) protocol line.
pub fn parse_line(line: &str) -> Option<Event> {
    let at = line.find(MARKER)?;
    let rest = line[at + MARKER.len()..].trim_end();
    if let Some(r) = rest.strip_prefix("running ") {
        let (total, r) = r
            .split_once(" tests (from ")
            .or_else(|| r.split_once(" test (from "))?;
        let start = r.strip_suffix(')')?;
        return Some(Event::Running {
            total: total.parse().ok()?,
            start: start.parse().ok()?,
        });
    }
    if let Some(r) = rest.strip_prefix("done: ") {
        let (passed, r) = r.split_once(" passed, ")?;
        let failed = r.strip_suffix(" failed")?;
        return Some(Event::Done {
            passed: passed.parse().ok()?,
            failed: failed.parse().ok()?,
        });
    }
    let r = rest.strip_prefix('[')?;
    let (index, r) = r.split_once("] ")?;
    let index = index.parse().ok()?;
    let (name, outcome) = r.split_once(" ...")?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let outcome = outcome.trim();
    let result = if outcome == "ok" {
        Some(TestResult::Ok)
    } else {
        // Anything else but FAILED (nothing, or a test's own output without
        // a newline) means the test started and has no result yet.
        outcome
            .strip_prefix("FAILED")
            .map(|msg| TestResult::Failed(msg.strip_prefix(':').unwrap_or(msg).trim().to_string()))
    };
    Some(Event::Test {
        index,
        name: name.to_string(),
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(index: usize, name: &str, result: Option<TestResult>) -> Option<Event> {
        Some(Event::Test {
            index,
            name: name.into(),
            result,
        })
    }

    #[test]
    fn each_kind_of_line() {
        assert_eq!(
            parse_line("ebbrt-test: running 5 tests (from 0)"),
            Some(Event::Running { total: 5, start: 0 })
        );
        assert_eq!(
            parse_line("ebbrt-test: running 1 test (from 0)"),
            Some(Event::Running { total: 1, start: 0 })
        );
        assert_eq!(
            parse_line("ebbrt-test: running 12 tests (from 7)\r"),
            Some(Event::Running {
                total: 12,
                start: 7
            })
        );
        assert_eq!(
            parse_line("ebbrt-test: [0] exec::spawn_local ... ok"),
            test(0, "exec::spawn_local", Some(TestResult::Ok))
        );
        assert_eq!(
            parse_line("ebbrt-test: [3] ebb::miss ... FAILED: expected 2, got 3"),
            test(
                3,
                "ebb::miss",
                Some(TestResult::Failed("expected 2, got 3".into()))
            )
        );
        assert_eq!(
            parse_line("ebbrt-test: done: 4 passed, 1 failed"),
            Some(Event::Done {
                passed: 4,
                failed: 1
            })
        );
    }

    #[test]
    fn panics_partial_lines_and_noise() {
        let p = parse_line(
            "ebbrt-test: [2] t::boom ... FAILED: panicked at tests/qemu_x.rs:9:5: oh no ... really",
        );
        let Some(Event::Test {
            result: Some(r), ..
        }) = p
        else {
            panic!("{p:?}")
        };
        assert!(r.is_panic());
        assert_eq!(
            r,
            TestResult::Failed("panicked at tests/qemu_x.rs:9:5: oh no ... really".into())
        );
        assert!(!TestResult::Failed("assertion".into()).is_panic());
        // Started but not finished.
        assert_eq!(
            parse_line("ebbrt-test: [4] t::hang ... "),
            test(4, "t::hang", None)
        );
        assert_eq!(
            parse_line("ebbrt-test: [4] t::hang ..."),
            test(4, "t::hang", None)
        );
        assert_eq!(
            parse_line("ebbrt-test: [4] t::hang ... some output"),
            test(4, "t::hang", None)
        );
        // After other output on the same line.
        assert_eq!(
            parse_line("[INFO] boot ok ebbrt-test: [1] a ... ok"),
            test(1, "a", Some(TestResult::Ok))
        );
        // Not protocol lines.
        for line in [
            "",
            "hello",
            "ebbrt-test:",
            "ebbrt-test: running five tests (from 0)",
            "ebbrt-test: running 5 tests",
            "ebbrt-test: [x] a ... ok",
            "ebbrt-test: [1]a ... ok",
            "ebbrt-test: [1] a b ... ok",
            "ebbrt-test: [1]  ... ok",
            "ebbrt-test: [1] a",
            "ebbrt-test: done: 1 passed",
            "ebbrt-test: done: -1 passed, 0 failed",
            "ebbrt-test: something else",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn failed_without_a_message() {
        assert_eq!(
            parse_line("ebbrt-test: [0] a ... FAILED"),
            test(0, "a", Some(TestResult::Failed(String::new())))
        );
    }
}
