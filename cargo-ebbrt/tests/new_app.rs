//! End to end, as a new user would: `cargo ebbrt new` makes an application
//! in a temporary directory outside this repository, and in it `cargo
//! ebbrt run --hosted`, `cargo ebbrt run` (native, under QEMU), `cargo
//! ebbrt test`, `cargo ebbrt docs` and plain `cargo run` all work.
//!
//! The application builds into a target directory of its own under
//! `target/tmp` (kept between runs, so a second run reuses the build).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tool under test.
const TOOL: &str = env!("CARGO_BIN_EXE_cargo-ebbrt");

/// Removes the application's directory when the test ends.
struct TempApp {
    dir: PathBuf,
}

impl Drop for TempApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.dir.parent().unwrap_or(&self.dir));
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `cmd` in `dir` with the shared target directory; returns its
/// output, printing it so that a failure shows what happened.
fn run(mut cmd: Command, dir: &Path, what: &str) -> Output {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-app-target");
    let out = cmd
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("== {what}: {}\n{stdout}", out.status);
    // Compiler progress is noise; the tool's own lines and errors are not.
    for line in stderr
        .lines()
        .filter(|l| !l.trim_start().starts_with("Compiling"))
    {
        println!("  stderr| {line}");
    }
    assert!(out.status.success(), "{what} failed: {}", out.status);
    out
}

fn tool(args: &[&str]) -> Command {
    let mut c = Command::new(TOOL);
    c.arg("ebbrt").args(args);
    c
}

#[test]
fn a_new_application_runs_hosted_and_native_and_tests_and_documents_itself() {
    let base = std::env::temp_dir().join(format!("ebbrt-new-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let app = TempApp {
        dir: base.join("first-app"),
    };
    let dir = &app.dir;
    // Outside the repository: the tool's default framework is this checkout.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(!dir.starts_with(repo));

    run(tool(&["new", "first-app"]), &base, "cargo ebbrt new");
    assert!(dir.join("src/main.rs").is_file());

    let out = run(
        tool(&["run", "--hosted", "--timeout", "300"]),
        dir,
        "cargo ebbrt run --hosted",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("hello from core 0 of"), "{stdout}");
    assert!(stdout.contains(" bumps on "), "{stdout}");

    let out = run(
        tool(&["run", "--timeout", "600"]),
        dir,
        "cargo ebbrt run (native)",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("3 bumps on 2 cores"), "{stdout}");
    assert!(
        stderr.contains("first-app (native) exited with status 0"),
        "{stderr}"
    );
    // It does not use the network: no NIC, no network lines.
    assert!(!stderr.contains("virtio-net-pci"), "{stderr}");
    assert!(!stderr.contains("network:"), "{stderr}");

    let out = run(tool(&["test"]), dir, "cargo ebbrt test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("first-app/qemu_app: 1 passed, 0 failed"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("1 passed, 0 failed"),
        "{stdout}"
    );

    run(tool(&["docs"]), dir, "cargo ebbrt docs");
    let catalog = std::fs::read_to_string(dir.join("docs/components.md")).unwrap();
    assert!(
        catalog.starts_with("# Components of `first-app`"),
        "{catalog}"
    );
    assert!(
        catalog.contains("| [`Counter`](#counter) | `first-app` | per-core |"),
        "{catalog}"
    );
    assert!(catalog.contains("`ebbrt/gp-slab` (default)"), "{catalog}");
    run(tool(&["docs", "--check"]), dir, "cargo ebbrt docs --check");

    let mut plain = Command::new(cargo());
    plain.args(["run", "-q"]);
    let out = run(plain, dir, "cargo run (hosted)");
    assert!(String::from_utf8_lossy(&out.stdout).contains("bumps on"));
}
