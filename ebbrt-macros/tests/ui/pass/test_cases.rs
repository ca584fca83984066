//! `#[ebbrt::test]` registers test cases that `run_all` runs in name order,
//! printing the protocol lines.
#![deny(warnings)]

#[path = "../support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::sync::Mutex;

use ebbrt_core::test_support::{TEST_CASES, run_all};
use ebbrt_macros::test;

#[test]
async fn yields_and_passes() {
    ebbrt_core::exec::yield_now().await;
}

#[test]
fn plain_fn_passes() -> Result<(), String> {
    Ok(())
}

#[test]
async fn returns_an_error() -> Result<(), std::io::ErrorKind> {
    Err(std::io::ErrorKind::NotFound)
}

mod inner {
    #[ebbrt_macros::test]
    async fn spawns_on_another_core() -> Result<(), String> {
        let core = ebbrt_core::exec::spawn_on(ebbrt_core::cpu::CoreId(1), async {
            ebbrt_core::cpu::current()
        })
        .await;
        if core.0 == 1 {
            Ok(())
        } else {
            Err(format!("ran on {core}"))
        }
    }
}

static OUT: Mutex<String> = Mutex::new(String::new());

fn capture(args: std::fmt::Arguments) {
    OUT.lock().unwrap().write_fmt(args).unwrap();
}

fn main() {
    assert_eq!(TEST_CASES.len(), 4);
    support::run(2, || async {
        assert_eq!(run_all(0, capture).await, 1);
        assert_eq!(run_all(3, capture).await, 0);
    });
    assert_eq!(
        *OUT.lock().unwrap(),
        "ebbrt-test: running 4 tests (from 0)\n\
         ebbrt-test: [0] inner::spawns_on_another_core ... ok\n\
         ebbrt-test: [1] plain_fn_passes ... ok\n\
         ebbrt-test: [2] returns_an_error ... FAILED: NotFound\n\
         ebbrt-test: [3] yields_and_passes ... ok\n\
         ebbrt-test: done: 3 passed, 1 failed\n\
         ebbrt-test: running 4 tests (from 3)\n\
         ebbrt-test: [3] yields_and_passes ... ok\n\
         ebbrt-test: done: 1 passed, 0 failed\n"
    );
}
