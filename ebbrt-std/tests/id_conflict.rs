//! A binary in which two components claim one fixed Ebb id must refuse to
//! start: `start_main` checks the registry before any core runs. This test
//! binary holds two such records and re-runs itself as the application.

// The console every instance needs (runtimes refuse to start without one).
use ebbrt_console_stdout as _;
use std::process::Command;

use ebbrt_core::EbbKind;
use ebbrt_core::ebb::ids;

ebbrt_core::register_component! {
    First { name: "First", kind: EbbKind::Shared, interface: "probe::First",
            summary: "One claimant.", id: Some(ids::app(5)) }
}
ebbrt_core::register_component! {
    Second { name: "Second", kind: EbbKind::PerCore, interface: "probe::Second",
             summary: "The other claimant.", id: Some(ids::app(5)) }
}

fn main() {
    if std::env::var_os("EBBRT_STD_PROBE").is_some() {
        ebbrt_std::start_main(|| async {
            println!("the application ran");
        });
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--cores", "2"])
        .env("EBBRT_STD_PROBE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ok = out.status.code() == Some(1)
        && stdout.is_empty()
        && stderr.contains("component id conflict")
        && stderr.contains("probe::First")
        && stderr.contains("probe::Second");
    if ok {
        println!("test conflicting_static_ids_stop_the_start ... ok\n1 passed, 0 failed");
    } else {
        println!(
            "test conflicting_static_ids_stop_the_start ... FAILED: exit {:?}, stdout {stdout:?}, stderr {stderr:?}\n0 passed, 1 failed",
            out.status.code()
        );
        std::process::exit(1);
    }
}
