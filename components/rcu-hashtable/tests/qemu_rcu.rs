//! In-QEMU (and, under `cargo test`, hosted) tests of RCU on the real event
//! loops and of the hash table shared by every core: grace periods wait for
//! a core inside a read section, idle cores do not hold them back,
//! callbacks run on the core that queued them, and the table keeps every
//! entry while cores write, read and make it grow and shrink.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::time::Duration;

use ebbrt::cpu::{self, CoreId};
use ebbrt::exec::{self, sleep};
use ebbrt::iobuf::IoBuf;
use ebbrt::on_each_core;
use ebbrt_rcu::{RCU, call_rcu, read_lock, synchronize};
use ebbrt_rcu_hashtable::{IoBufTable, RcuHashMap};

/// The other core of a two-core (or larger) instance, if any.
fn other_core() -> Option<CoreId> {
    (cpu::count() > 1).then_some(CoreId(1))
}

#[ebbrt::test]
async fn synchronize_waits_for_a_read_section_on_another_core() -> Result<(), String> {
    let Some(other) = other_core() else {
        return Ok(());
    };
    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let reader = {
        let (started, finished) = (started.clone(), finished.clone());
        // (`spawn_on_with`: a guard is `!Send`, it belongs to its core.)
        exec::spawn_on_with(other, move || async move {
            // A guard held across awaits: the core is not quiescent until
            // it is dropped, however many passes its loop makes.
            let g = read_lock();
            started.store(true, Ordering::SeqCst);
            for _ in 0..5 {
                sleep(Duration::from_millis(2)).await;
            }
            finished.store(true, Ordering::SeqCst);
            drop(g);
        })
    };
    while !started.load(Ordering::SeqCst) {
        exec::yield_now().await;
    }
    synchronize().await;
    let seen = finished.load(Ordering::SeqCst);
    reader.await;
    if seen {
        Ok(())
    } else {
        Err("synchronize returned while another core was in a read section".into())
    }
}

#[ebbrt::test]
async fn idle_cores_do_not_hold_grace_periods_back() {
    // Every core waits for a grace period while the others are idle or
    // waiting too; each completes (a hang fails the kernel by its timeout).
    for _ in 0..3 {
        on_each_core(|_| async { synchronize().await }).await;
    }
}

#[ebbrt::test]
async fn callbacks_run_on_the_core_that_queued_them() -> Result<(), String> {
    let ran = on_each_core(|core| async move {
        let on = Arc::new(AtomicU32::new(u32::MAX));
        let theirs = on.clone();
        call_rcu(move || theirs.store(cpu::current().0, Ordering::SeqCst));
        // Queued before synchronize's own callback: run before it resolves.
        synchronize().await;
        (core, on.load(Ordering::SeqCst), RCU.pending())
    })
    .await;
    for (core, on, pending) in ran {
        if on != core.0 || pending != 0 {
            return Err(format!(
                "{core}: callback ran on {on}, {pending} callbacks pending"
            ));
        }
    }
    Ok(())
}

#[ebbrt::test]
async fn replaced_values_are_freed_after_a_grace_period() -> Result<(), String> {
    let map: Arc<RcuHashMap<u64, Arc<u64>>> = Arc::new(RcuHashMap::new());
    let first = Arc::new(1u64);
    map.insert(1, first.clone());
    map.insert(1, Arc::new(2));
    // The table's node still holds `first` until a grace period passes.
    let held = Arc::strong_count(&first);
    synchronize().await;
    let after = Arc::strong_count(&first);
    if (held, after) == (2, 1) {
        Ok(())
    } else {
        Err(format!(
            "references to the replaced value: {held} before, {after} after a grace period"
        ))
    }
}

#[ebbrt::test]
async fn every_core_shares_the_table_and_it_grows_and_shrinks() -> Result<(), String> {
    let table = IoBufTable::create().map_err(|e| format!("{e:?}"))?;
    const PER_CORE: u32 = 600;
    let cores = cpu::count() as u32;
    // Every core inserts its keys, yielding now and then so that the loops
    // pass quiescent states (and resizes can follow one another).
    on_each_core(move |core| async move {
        for i in 0..PER_CORE {
            let key = format!("{}:{i}", core.0).into_bytes().into_boxed_slice();
            table
                .map()
                .insert(key, IoBuf::from(alloc::vec![core.0 as u8; 8]));
            if i % 16 == 0 {
                exec::yield_now().await;
            }
        }
    })
    .await;
    let total = (PER_CORE * cores) as usize;
    on_each_core(|_| async { synchronize().await }).await;
    let grown = table.map().buckets();
    // Every core reads every other core's keys.
    let missing: Vec<usize> = on_each_core(move |_| async move {
        let mut missing = 0;
        for c in 0..cores {
            for i in 0..PER_CORE {
                let key = format!("{c}:{i}");
                match table.map().get(key.as_bytes()) {
                    Some(v) if v.as_slice() == [c as u8; 8] => {}
                    _ => missing += 1,
                }
            }
        }
        missing
    })
    .await;
    if table.map().len() != total || grown < total || missing.iter().any(|&m| m != 0) {
        return Err(format!(
            "len {} of {total}, {grown} buckets, missing per core {missing:?}",
            table.map().len()
        ));
    }
    // Each core removes its keys but ten.
    on_each_core(move |core| async move {
        for i in 10..PER_CORE {
            let key = format!("{}:{i}", core.0);
            table.map().remove(key.as_bytes());
            if i % 16 == 0 {
                exec::yield_now().await;
            }
        }
    })
    .await;
    // A resize held back by the previous one's grace period happens when
    // that grace period ends.
    on_each_core(|_| async { synchronize().await }).await;
    let shrunk = table.map().buckets();
    let left = table.map().len();
    if left != 10 * cores as usize || shrunk >= grown {
        return Err(format!(
            "{left} entries left, {shrunk} buckets (from {grown})"
        ));
    }
    Ok(())
}

ebbrt::test_main!();
