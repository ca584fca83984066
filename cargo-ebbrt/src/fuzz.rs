//! `cargo ebbrt test`'s short fuzz runs: every cargo-fuzz target of the
//! workspace's packages (a `fuzz/` directory beside a member's Cargo.toml,
//! marked `cargo-fuzz = true`), a few seconds each from its committed
//! corpus, so that a change that makes a parser crash fails the tests.
//!
//! The corpus under `fuzz/corpus/<target>` is read only: new inputs go to a
//! scratch directory under the target directory. The runs do without
//! AddressSanitizer (the project's parsers are safe Rust, and ASan would
//! rebuild every dependency instrumented) and keep debug assertions
//! (overflow checks). A crash leaves its input under `fuzz/artifacts/`,
//! as a long run would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cargo::{Workspace, cargo_command};

/// A package's fuzz directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzDir {
    /// The package it belongs to.
    pub package: String,
    /// The directory (its Cargo.toml has `cargo-fuzz = true`).
    pub dir: PathBuf,
}

/// The fuzz directories of the workspace's members (of `package` only, if
/// given), in package order.
pub fn discover(ws: &Workspace, package: Option<&str>) -> Vec<FuzzDir> {
    ws.packages
        .iter()
        .filter(|p| package.is_none_or(|n| n == p.name))
        .filter_map(|p| {
            let dir = p.dir.join("fuzz");
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            is_fuzz_manifest(&manifest).then(|| FuzzDir {
                package: p.name.clone(),
                dir,
            })
        })
        .collect()
}

/// Whether a Cargo.toml is a cargo-fuzz workspace's (`cargo-fuzz = true`
/// in `[package.metadata]`).
fn is_fuzz_manifest(manifest: &str) -> bool {
    manifest.lines().any(|l| {
        let l = l.split('#').next().unwrap_or("").trim();
        l.split_once('=')
            .is_some_and(|(k, v)| k.trim() == "cargo-fuzz" && v.trim() == "true")
    })
}

/// One target's run.
#[derive(Debug)]
pub struct Run {
    /// `<package>/<target>`.
    pub name: String,
    /// `Err` says why it failed.
    pub result: Result<(), String>,
}

/// Whether cargo-fuzz is installed.
pub fn installed(root: &Path) -> bool {
    cargo_command(root)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs every target of `d` for `time` each, building into `target_dir`.
pub fn run_dir(root: &Path, d: &FuzzDir, time: Duration, target_dir: &Path) -> Vec<Run> {
    let listed = cargo_command(root)
        .args(["fuzz", "list", "--fuzz-dir"])
        .arg(&d.dir)
        .output();
    let targets: Vec<String> = match listed {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Ok(o) => {
            return vec![Run {
                name: d.package.clone(),
                result: Err(format!(
                    "cargo fuzz list failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
            }];
        }
        Err(e) => {
            return vec![Run {
                name: d.package.clone(),
                result: Err(format!("cannot run cargo fuzz: {e}")),
            }];
        }
    };
    targets
        .iter()
        .map(|t| Run {
            name: format!("{}/{t}", d.package),
            result: run_one(root, d, t, time, target_dir),
        })
        .collect()
}

fn run_one(
    root: &Path,
    d: &FuzzDir,
    target: &str,
    time: Duration,
    target_dir: &Path,
) -> Result<(), String> {
    let scratch = target_dir.join("new-inputs").join(&d.package).join(target);
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let mut c = command(root, d, target, time, target_dir, &scratch);
    let out = c
        .output()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && err.contains("Done ") {
        return Ok(());
    }
    let tail: Vec<&str> = err.lines().rev().take(20).collect();
    Err(format!(
        "{}:\n{}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// `cargo fuzz run --fuzz-dir D --sanitizer none --debug-assertions
/// --target-dir T <target> <scratch> <corpus> -- -max_total_time=S`.
fn command(
    root: &Path,
    d: &FuzzDir,
    target: &str,
    time: Duration,
    target_dir: &Path,
    scratch: &Path,
) -> Command {
    let mut c = cargo_command(root);
    c.args(["fuzz", "run", "--fuzz-dir"])
        .arg(&d.dir)
        .args(["--sanitizer", "none", "--debug-assertions", "--target-dir"])
        .arg(target_dir)
        .arg(target)
        .arg(scratch);
    let corpus = d.dir.join("corpus").join(target);
    if corpus.is_dir() {
        c.arg(corpus);
    }
    c.arg("--")
        .arg(format!("-max_total_time={}", time.as_secs().max(1)))
        .arg("-rss_limit_mb=2048");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_manifests_are_recognised() {
        assert!(is_fuzz_manifest(
            "[package]\nname = \"x\"\n\n[package.metadata]\ncargo-fuzz = true\n"
        ));
        assert!(!is_fuzz_manifest("[package]\nname = \"x\"\n"));
        assert!(!is_fuzz_manifest("# cargo-fuzz = true\n"));
        assert!(!is_fuzz_manifest("cargo-fuzz = false\n"));
    }

    #[test]
    fn the_run_reads_the_corpus_and_writes_elsewhere() {
        let dir = std::env::temp_dir().join(format!("ebbrt-fuzz-cmd-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("corpus/t")).unwrap();
        let d = FuzzDir {
            package: "p".into(),
            dir: dir.clone(),
        };
        let c = command(
            Path::new("/nowhere"),
            &d,
            "t",
            Duration::from_secs(10),
            Path::new("/tgt"),
            Path::new("/scratch"),
        );
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = |s: &str| args.iter().position(|a| a == s).unwrap();
        assert_eq!(args[at("--sanitizer") + 1], "none");
        assert_eq!(args[at("--target-dir") + 1], "/tgt");
        // Scratch first (libFuzzer writes new inputs to its first corpus).
        assert_eq!(args[at("t") + 1], "/scratch");
        assert_eq!(
            args[at("t") + 2],
            dir.join("corpus/t").display().to_string()
        );
        assert!(args.iter().any(|a| a == "-max_total_time=10"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
