//! Host tests on plain threads (`ebbrt_rcu::threads`), so that they also run
//! under Miri: `cargo +nightly miri test -p ebbrt-rcu-hashtable` (sizes
//! shrink there).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::vec::Vec;

use ebbrt_rcu::threads::{Participant, Threads};

use super::*;

type Map<V> = RcuHashMap<u64, V, Arc<Threads>, DefaultHasher>;

fn map<V: Send + Sync + 'static>(t: &Arc<Threads>) -> Map<V> {
    RcuHashMap::with_rcu(t.clone(), DefaultHasher::default())
}

/// Scales a stress test's sizes down under Miri.
fn n(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

/// A value that counts its drops and checks it is not used after one.
struct Tracked {
    key: u64,
    seq: u64,
    alive: AtomicBool,
    drops: Arc<AtomicUsize>,
}

impl Tracked {
    fn new(key: u64, seq: u64, drops: &Arc<AtomicUsize>) -> Arc<Tracked> {
        Arc::new(Tracked {
            key,
            seq,
            alive: AtomicBool::new(true),
            drops: drops.clone(),
        })
    }

    fn check(&self, key: u64) {
        assert!(self.alive.load(Ordering::SeqCst), "value used after drop");
        assert_eq!(self.key, key, "a lookup returned another key's value");
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(self.alive.swap(false, Ordering::SeqCst), "dropped twice");
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn insert_get_replace_remove() {
    let t = Threads::new(1);
    let p = t.enter();
    let m: Map<u32> = map(&t);
    let (v1, old) = m.insert(7, 70);
    assert_eq!(old, None);
    assert_eq!(m.get(&7), Some(70));
    let (v2, old) = m.insert(7, 71);
    assert_eq!(old, Some(70));
    assert!(v2 > v1, "versions are fresh");
    assert_eq!(m.get_versioned(&7), Some((71, v2)));
    assert_eq!(m.insert_new(7, 72), Err(72));
    assert_eq!(m.replace(8, 80), Err(80));
    assert!(m.insert_new(8, 80).is_ok());
    assert_eq!(m.replace(8, 81).map(|(_, old)| old), Ok(80));
    assert_eq!(m.len(), 2);
    assert_eq!(m.remove(&7), Some(71));
    assert_eq!(m.remove(&7), None);
    assert!(!m.contains_key(&7));
    assert_eq!(m.len(), 1);
    p.barrier();
}

#[test]
fn compare_and_swap_checks_the_version() {
    let t = Threads::new(1);
    let _p = t.enter();
    let m: Map<&str> = map(&t);
    assert_eq!(m.compare_and_swap(1, 1, "x"), Err(CasError::NotFound));
    let (v, _) = m.insert(1, "a");
    let v2 = m.compare_and_swap(1, v, "b").unwrap();
    assert_eq!(m.compare_and_swap(1, v, "c"), Err(CasError::Changed(v2)));
    assert_eq!(m.get(&1), Some("b"));
    assert_eq!(m.remove_if(&1, |e| e.version == v), None);
    assert_eq!(m.remove_if(&1, |e| e.version == v2), Some("b"));
}

#[test]
fn update_reads_and_writes_under_the_lock() {
    let t = Threads::new(1);
    let _p = t.enter();
    let m: Map<u64> = map(&t);
    for _ in 0..5 {
        // incr, creating the entry at 1.
        let (before, v) = m.update(3, |e| {
            let n = e.map_or(0, |e| *e.value);
            (Action::Set(n + 1), n)
        });
        assert!(v.is_some());
        assert_eq!(m.get(&3), Some(before + 1));
    }
    let ((), v) = m.update(3, |_| (Action::Keep, ()));
    assert_eq!(v, None);
    assert_eq!(m.get(&3), Some(5));
    m.update(3, |_| (Action::Remove, ()));
    assert_eq!(m.get(&3), None);
    assert_eq!(m.len(), 0);
}

#[test]
fn values_are_freed_once_after_a_grace_period_and_never_leaked() {
    let drops = Arc::new(AtomicUsize::new(0));
    let t = Threads::new(1);
    let p = t.enter();
    let made;
    {
        let m: Map<Arc<Tracked>> = map(&t);
        let mut count = 0;
        for k in 0..200 {
            m.insert(k, Tracked::new(k, 0, &drops));
            count += 1;
        }
        for k in 0..100 {
            m.insert(k, Tracked::new(k, 1, &drops));
            count += 1;
        }
        for k in 50..150 {
            m.remove(&k);
        }
        // Replaced and removed values wait for a grace period.
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        p.quiescent();
        p.barrier();
        assert_eq!(drops.load(Ordering::SeqCst), 200);
        m.clear();
        assert_eq!(m.len(), 0);
        made = count;
    }
    p.barrier();
    assert_eq!(drops.load(Ordering::SeqCst), made);
}

#[test]
fn grows_and_shrinks_keeping_every_entry() {
    let t = Threads::new(1);
    let p = t.enter();
    let m: Map<u64> = map(&t);
    let start = m.buckets();
    let total = n(5000, 300) as u64;
    for k in 0..total {
        m.insert(k, k * 10);
        // The next resize waits for the last one's grace period.
        p.quiescent();
    }
    assert!(m.buckets() >= total as usize, "{} buckets", m.buckets());
    for k in 0..total {
        assert_eq!(m.get(&k), Some(k * 10), "key {k} after growing");
    }
    for k in 0..total - 10 {
        m.remove(&k);
        p.quiescent();
    }
    assert!(m.buckets() < 64, "{} buckets", m.buckets());
    assert_eq!(m.buckets(), start.max(m.buckets()));
    for k in total - 10..total {
        assert_eq!(m.get(&k), Some(k * 10), "key {k} after shrinking");
    }
    assert_eq!(m.len(), 10);
}

#[test]
fn a_resize_waits_for_the_previous_ones_grace_period() {
    let t = Threads::new(1);
    let p = t.enter();
    let m: Map<u64> = map(&t);
    // Without quiescent states, the table grows once and then stays put;
    // the grace period's end resizes it to fit what came meanwhile.
    for k in 0..200 {
        m.insert(k, k);
    }
    assert_eq!(m.buckets(), 32);
    p.quiescent();
    assert_eq!(m.buckets(), 256);
    for k in 0..200 {
        assert_eq!(m.get(&k), Some(k));
    }
}

/// Readers look up keys that are never removed (they must always be found,
/// whatever the writers and resizes do) and keys that come and go (they must
/// map to their own value, alive); writers insert, replace and remove keys
/// of their own, making the table grow and shrink. At the end every value
/// ever made was dropped exactly once, and the final contents are what the
/// writers' own records say.
#[test]
fn stress_readers_never_miss_stable_keys_nor_see_freed_values() {
    const READERS: usize = 3;
    const WRITERS: usize = 2;
    let stable = n(256, 16) as u64;
    let rounds = n(20_000, 150);
    let span = n(4096, 64) as u64;
    let drops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let t = Threads::new(READERS + WRITERS + 1);
    let main = t.enter();
    let m: Arc<Map<Arc<Tracked>>> = Arc::new(map(&t));
    for k in 0..stable {
        m.insert(k, Tracked::new(k, 0, &drops));
        made.fetch_add(1, Ordering::SeqCst);
    }
    main.offline();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (t, m, done) = (t.clone(), m.clone(), done.clone());
            thread::spawn(move || {
                let p: Participant = t.enter();
                let mut i = r as u64;
                let mut hits = 0u64;
                while !done.load(Ordering::SeqCst) {
                    i = i
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let k = i % stable;
                    let found = m.with(&k, |e| e.value.check(k));
                    assert!(found.is_some(), "stable key {k} missed");
                    let k = stable + (i >> 17) % span;
                    if let Some(v) = m.get(&k) {
                        v.check(k);
                        hits += 1;
                    }
                    p.quiescent();
                }
                hits
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS as u64)
        .map(|w| {
            let (t, m, drops, made) = (t.clone(), m.clone(), drops.clone(), made.clone());
            thread::spawn(move || {
                let p = t.enter();
                let mut mine: HashMap<u64, u64> = HashMap::new();
                let mut i = w;
                for seq in 1..=rounds as u64 {
                    i = i.wrapping_mul(2862933555777941757).wrapping_add(3037000493);
                    // Keys of writer `w` are `w` modulo WRITERS.
                    let k = stable + ((i >> 20) % (span / WRITERS as u64)) * WRITERS as u64 + w;
                    // Phases of mostly inserts, then mostly removals: the
                    // table grows and shrinks.
                    let growing = (seq / (rounds as u64 / 4).max(1)).is_multiple_of(2);
                    if (i >> 8) % 4 != 0 {
                        if growing {
                            let (_, old) = m.insert(k, Tracked::new(k, seq, &drops));
                            made.fetch_add(1, Ordering::SeqCst);
                            if let Some(old) = old {
                                old.check(k);
                                assert_eq!(Some(old.seq), mine.get(&k).copied());
                            }
                            mine.insert(k, seq);
                        } else {
                            let old = m.remove(&k);
                            assert_eq!(old.as_ref().map(|o| o.seq), mine.remove(&k));
                        }
                    } else if let Some(&s) = mine.get(&k) {
                        let v = m.get(&k).expect("own key lost");
                        assert_eq!(v.seq, s);
                    }
                    p.quiescent();
                }
                mine
            })
        })
        .collect();
    let mut expected: HashMap<u64, u64> = HashMap::new();
    for w in writers {
        expected.extend(w.join().unwrap());
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    main.quiescent();
    assert_eq!(m.len(), stable as usize + expected.len());
    for (k, seq) in &expected {
        assert_eq!(m.get(k).map(|v| v.seq), Some(*seq), "key {k}");
    }
    for k in 0..stable {
        assert_eq!(m.get(&k).map(|v| v.seq), Some(0));
    }
    drop(m);
    main.barrier();
    assert_eq!(drops.load(Ordering::SeqCst), made.load(Ordering::SeqCst));
}
