//! `cargo ebbrt run cluster --hosted`, as a user runs it: the hosted
//! frontend boots two native nodes under QEMU (TCG here) and runs its
//! checks; this test wants every check passed, exit status 0, and the
//! lines a user reads.
//!
//! The tool builds the frontend and the native image into a target
//! directory under `target/tmp` (the one `cargo test` builds into is locked
//! while it runs), shared with the memcached example's native test, so it
//! takes minutes when cold.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn a_frontend_and_two_native_nodes_pass_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples-native");
    let mut child = Command::new(env!("CARGO"))
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["ebbrt", "run", "cluster", "--hosted", "--timeout", "1200"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group: stopped with everything under it if this
        // test fails halfway.
        .process_group(0)
        .spawn()
        .expect("run cargo ebbrt");
    struct Group(u32);
    impl Drop for Group {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", self.0)])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _group = Group(child.id());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .expect("read the frontend's output");
    let status = child.wait().expect("wait for cargo ebbrt");
    println!("{out}");
    for line in ["node 1 connected", "node 2 connected"] {
        assert!(
            out.lines().any(|l| l == line),
            "no line `{line}` in:\n{out}"
        );
    }
    assert!(
        out.contains("cluster: node 2 lost: node 2 was killed by signal 9"),
        "the frontend did not report node 2's death:\n{out}"
    );
    assert!(!out.contains("FAILED"), "a check failed:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("cluster: all ") && l.ends_with(" checks passed")),
        "not every check passed:\n{out}"
    );
    assert!(
        status.success(),
        "cargo ebbrt run cluster --hosted: {status}\n{out}"
    );
}
