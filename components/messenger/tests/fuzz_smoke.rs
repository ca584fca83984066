//! A short run of the messenger's cargo-fuzz target (the frame decoder,
//! `fuzz/`), so that CI exercises it on every change: 10 seconds from the
//! committed corpus (read only: new inputs go to a scratch directory). Long
//! runs are by hand (`cargo fuzz run --fuzz-dir components/messenger/fuzz
//! frame_decoder`).
//!
//! The crate is safe Rust (`forbid(unsafe_code)`), so the run does without
//! AddressSanitizer; debug assertions (overflow checks) stay on. It builds
//! into `target/tmp/fuzz`, shared with the memcached parsers' run. Needs
//! `cargo-fuzz` (`cargo install cargo-fuzz`; .ci/run does).

use std::path::Path;
use std::process::Command;

fn fuzz_briefly(fuzz_dir: &Path, target: &str) {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-new-{target}"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let out = Command::new(env!("CARGO"))
        .current_dir(fuzz_dir)
        .args(["fuzz", "run", "--sanitizer", "none", "--debug-assertions"])
        .arg("--target-dir")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz"))
        .arg(target)
        .arg(&scratch)
        .arg(fuzz_dir.join("corpus").join(target))
        .args(["--", "-max_total_time=10", "-rss_limit_mb=2048"])
        .output()
        .expect("run cargo fuzz");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("no such command: `fuzz`"),
        "cargo-fuzz is not installed: cargo install cargo-fuzz (.ci/run does)"
    );
    let tail: Vec<&str> = err.lines().rev().take(25).collect();
    assert!(
        out.status.success() && err.contains("Done "),
        "cargo fuzz run {target} failed ({}):\n{}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_frame_decoder_target_survives_a_short_run() {
    fuzz_briefly(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz"),
        "frame_decoder",
    );
}
