//! The general-purpose allocator as this test binary's `#[global_allocator]`:
//! everything — the test harness, threads, channels, collections — runs on
//! it, hosted, over the page allocator's arena. Four threads become EbbRT
//! cores (fast per-core path); the harness's own threads are not cores
//! (shared locked path). Objects cross between all of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::channel;
use std::thread;

use ebbrt_core::cpu::{self, CoreId};
use ebbrt_gp_alloc::Global;

#[global_allocator]
static GLOBAL: Global = Global;

const CORES: usize = 4;

fn cores() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| cpu::set_count(CORES).unwrap());
}

#[test]
fn collections_work_on_non_core_threads() {
    let mut m: HashMap<String, Vec<u64>> = HashMap::new();
    for i in 0..20_000u64 {
        m.entry(format!("key-{}", i % 977)).or_default().push(i);
    }
    let total: usize = m.values().map(Vec::len).sum();
    assert_eq!(total, 20_000);
    let big = vec![7u8; 5 << 20];
    assert!(big.iter().all(|b| *b == 7));
    let mut s = String::new();
    for i in 0..10_000 {
        s.push_str(&i.to_string());
    }
    assert!(s.len() > 30_000);
}

/// Each core builds messages and sends them to the next core, which checks
/// and drops them there: a cross-core free for every message. Then the
/// main thread (no core) drops what the cores send it.
#[test]
fn multi_core_stress_with_cross_core_frees() {
    cores();
    const MSGS: usize = 20_000;
    let (to_main, from_cores) = channel::<Vec<String>>();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..CORES {
        let (tx, rx) = channel::<BTreeMap<u32, Box<[u8]>>>();
        senders.push(tx);
        receivers.push(rx);
    }
    let mut handles = Vec::new();
    for (c, rx) in receivers.into_iter().enumerate() {
        let next = senders[(c + 1) % CORES].clone();
        let to_main = to_main.clone();
        handles.push(thread::spawn(move || {
            // SAFETY: each of these threads enters a distinct core, once.
            unsafe { cpu::enter(CoreId(c as u32)) };
            let mut checked = 0usize;
            for i in 0..MSGS {
                let mut m = BTreeMap::new();
                let len = 1 + (i * 37 + c * 11) % 3000;
                m.insert(i as u32, vec![c as u8; len].into_boxed_slice());
                next.send(m).unwrap();
                // Drain what the previous core sent so far.
                while let Ok(m) = rx.try_recv() {
                    let (k, v) = m.into_iter().next().unwrap();
                    let from = (c + CORES - 1) % CORES;
                    assert_eq!(v.len(), 1 + (k as usize * 37 + from * 11) % 3000);
                    assert!(v.iter().all(|b| *b as usize == from));
                    checked += 1;
                }
                if i % 1000 == 0 {
                    to_main
                        .send(
                            (0..50)
                                .map(|j| format!("core {c} msg {i} part {j}"))
                                .collect(),
                        )
                        .unwrap();
                }
            }
            drop(next);
            (rx, checked)
        }));
    }
    drop(to_main);
    drop(senders);
    let mut total = 0;
    let mut rxs = Vec::new();
    for h in handles {
        let (rx, checked) = h.join().unwrap();
        total += checked;
        rxs.push(rx);
    }
    // What is left in the channels is freed here, on a thread that is no core.
    for rx in rxs {
        total += rx.try_iter().count();
    }
    assert_eq!(total, CORES * MSGS);
    let strings: usize = from_cores.iter().map(|v| v.len()).sum();
    assert_eq!(strings, CORES * (MSGS / 1000) * 50);
}

#[test]
fn realloc_grows_and_shrinks_in_place_or_by_copy() {
    let mut v: Vec<u32> = Vec::new();
    for i in 0..300_000 {
        v.push(i);
    }
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<_>>());
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let pages: Vec<Box<Page>> = (0..64).map(|i| Box::new(Page([i as u8; 4096]))).collect();
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(&**p as *const Page as usize % 4096, 0);
        assert!(p.0.iter().all(|b| *b == i as u8));
    }
}
