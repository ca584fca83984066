//! `enter_instance` makes the test's thread core 0 of a hosted instance, and
//! `exec::block_on` drives that core's loop from outside any task. One test
//! only: an instance owns its process, and its core 0 is this thread.

// The console every instance needs (runtimes refuse to start without one).
use ebbrt_console_stdout as _;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_core::exec;
use ebbrt_core::time::Instant;

#[test]
fn the_calling_thread_becomes_core_0_and_block_on_drives_it() {
    ebbrt_std::enter_instance(2).expect("start the instance");
    assert_eq!(cpu::current(), CoreId(0));
    assert_eq!(cpu::count(), 2);

    // A second instance in the same process is refused with an error.
    let again = ebbrt_std::enter_instance(2).unwrap_err();
    assert!(
        matches!(again, ebbrt_std::StartError::AlreadyInstalled),
        "{again}"
    );

    // Local tasks, `!Send` state, and a result.
    let shared = Rc::new(Cell::new(0));
    let s = shared.clone();
    let out = exec::block_on(async move {
        let hs: Vec<_> = (1..=10)
            .map(|i| {
                let s = s.clone();
                exec::spawn_local(async move { s.set(s.get() + i) })
            })
            .collect();
        for h in hs {
            h.await;
        }
        s.get() * 2
    });
    assert_eq!((out, shared.get()), (110, 55));

    // Tasks spawned between calls run in the next one.
    let early = exec::spawn_local(async { cpu::current() });
    assert_eq!(exec::block_on(early), CoreId(0));

    // Round trips to core 1, whose loop runs on its own thread: block_on
    // idles core 0 until core 1's answer wakes it.
    for i in 0..200u32 {
        let there = exec::block_on(exec::spawn_on(
            CoreId(1),
            async move { (cpu::current(), i) },
        ));
        assert_eq!(there, (CoreId(1), i));
    }

    // Timers fire while core 0 is driven by block_on.
    let t0 = Instant::now();
    exec::block_on(exec::sleep(Duration::from_millis(5)));
    assert!(t0.elapsed() >= Duration::from_millis(5));

    // Nothing is left behind: block_on returned as soon as its future was done.
    assert_eq!(exec::stats().ready, 0);
}
