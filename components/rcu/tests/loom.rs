//! Model-checked grace periods (`loom`): a reader that could still see an
//! object never runs concurrently with its reclamation, in every
//! interleaving and memory-ordering outcome loom explores.
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p ebbrt-rcu --test loom --release
//! ```
//!
//! The object's memory is a `loom::cell::UnsafeCell`: a read of it that is
//! not ordered before the "free" (a write) is reported as a data race. The
//! reader stays online but for its final departure (the part of the
//! protocol built on acquire/release alone); coming back online after being
//! offline relies on SeqCst fences, which loom models only approximately.
#![cfg(loom)]

use ebbrt_rcu::Domain;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

fn no_wake(_: usize) {}

/// Objects 1 (published first) and 2 (its replacement).
struct World {
    domain: Domain,
    current: AtomicUsize,
    objects: [UnsafeCell<u32>; 3],
}

fn read(w: &World) -> u32 {
    let p = w.current.load(Ordering::Acquire);
    // SAFETY-free: loom's UnsafeCell checks the access for races.
    w.objects[p].with(|v| unsafe { *v })
}

#[test]
fn a_reader_never_overlaps_the_reclamation_of_what_it_sees() {
    loom::model(|| {
        let w = Arc::new(World {
            domain: Domain::new(2),
            current: AtomicUsize::new(1),
            objects: [UnsafeCell::new(0), UnsafeCell::new(11), UnsafeCell::new(22)],
        });
        w.domain.online(0);
        w.domain.online(1);
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let a = read(&w);
                w.domain.quiescent(1, no_wake);
                let b = read(&w);
                w.domain.offline(1, no_wake);
                assert!(a == 11 || a == 22, "{a}");
                assert!(b == 11 || b == 22, "{b}");
            })
        };
        // The updater: replace 1 by 2, wait for a grace period, "free" 1.
        w.current.store(2, Ordering::Release);
        let t = w.domain.start();
        while !w.domain.poll(0, t, no_wake) {
            thread::yield_now();
        }
        w.objects[1].with_mut(|v| unsafe { *v = 0 });
        reader.join().unwrap();
    });
}
