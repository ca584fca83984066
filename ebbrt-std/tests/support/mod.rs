//! Shared by the test binaries that check a refused start: the binary
//! re-runs itself as the application and reads what the runtime said.

use std::process::Command;

/// In the re-run (`EBBRT_STD_PROBE` set): starts the application, which
/// must never run. Otherwise returns.
pub fn run_as_application_if_probed() {
    if std::env::var_os("EBBRT_STD_PROBE").is_some() {
        ebbrt_std::start_main(|| async {
            println!("the application ran");
        });
    }
}

/// Re-runs this binary as the application on 2 cores and checks that the
/// start was refused: status 1, nothing on stdout, and every one of
/// `expect` in stderr. Prints the `test ... ok` line and the
/// `N passed, N failed` summary, and exits 1 on failure.
pub fn expect_refused_start(test: &str, expect: &[&str]) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--cores", "2"])
        .env("EBBRT_STD_PROBE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ok = out.status.code() == Some(1)
        && stdout.is_empty()
        && expect.iter().all(|e| stderr.contains(e));
    if ok {
        println!("test {test} ... ok\n1 passed, 0 failed");
    } else {
        println!(
            "test {test} ... FAILED: exit {:?}, stdout {stdout:?}, stderr {stderr:?}\n0 passed, 1 failed",
            out.status.code()
        );
        std::process::exit(1);
    }
}
