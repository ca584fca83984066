//! A binary that links no console (an application that turned the facade's
//! default off and brought none) must refuse to start, saying which
//! interface at which id has no implementation. This test binary links no
//! console component and re-runs itself as the application.

use std::process::Command;

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
        && stderr.contains("no component implements ebbrt_core::console::Console at CONSOLE (2)");
    if ok {
        println!("test a_missing_console_stops_the_start ... ok\n1 passed, 0 failed");
    } else {
        println!(
            "test a_missing_console_stops_the_start ... FAILED: exit {:?}, stdout {stdout:?}, stderr {stderr:?}\n0 passed, 1 failed",
            out.status.code()
        );
        std::process::exit(1);
    }
}
