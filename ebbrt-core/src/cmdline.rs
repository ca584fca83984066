//! Boot arguments: `key=value` words separated by ASCII whitespace, as on a
//! Linux kernel command line. Natively they are the kernel command line
//! (QEMU `-append`); hosted, the environment variable `EBBRT_ARGS`. Both
//! runtimes look them up with [`lookup`], so the syntax is the same.

/// The value of `key` in `cmdline`: `Some(value)` for `key=value`,
/// `Some("")` for a bare `key`, `None` when absent. The last occurrence
/// wins, as on Linux.
pub fn lookup<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .find_map(|word| match word.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if word == key => Some(""),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn finds_values_and_flags() {
        let line = "ebbrt.log=debug  ebbrt.boottime ebbrt.test.start=3 x=a=b";
        assert_eq!(lookup(line, "ebbrt.log"), Some("debug"));
        assert_eq!(lookup(line, "ebbrt.boottime"), Some(""));
        assert_eq!(lookup(line, "ebbrt.test.start"), Some("3"));
        assert_eq!(lookup(line, "x"), Some("a=b"));
        assert_eq!(lookup(line, "ebbrt"), None);
        assert_eq!(lookup(line, "ebbrt.test"), None);
        assert_eq!(lookup("", "a"), None);
    }

    #[test]
    fn last_occurrence_wins() {
        assert_eq!(lookup("a=1 a=2", "a"), Some("2"));
        assert_eq!(lookup("a=1 a", "a"), Some(""));
    }

    #[test]
    fn only_ascii_whitespace_separates_words() {
        assert_eq!(lookup("a=1\tb=2\nc", "b"), Some("2"));
        assert_eq!(lookup("a=1\tb=2\nc", "c"), Some(""));
        assert_eq!(lookup("a=1\u{a0}b=2", "a"), Some("1\u{a0}b=2"));
        assert_eq!(lookup("a=1\u{a0}b=2", "b"), None);
    }
}
