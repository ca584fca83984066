//! Lookup throughput of `RcuHashMap` against `std::sync::RwLock<HashMap>`
//! and `dashmap::DashMap`, hosted: 100,000 `u64` keys with `Arc<u64>`
//! values, every lookup a hit that clones the value handle (what a
//! memcached GET does), the same hasher (`foldhash`) for all three.
//!
//! ```sh
//! cargo bench -p ebbrt-rcu-hashtable --bench lookup
//! ```
//!
//! - `lookup/1`: lookups on core 0 alone (the bench's thread, made core 0
//!   of a 2-core instance with `enter_instance`);
//! - `lookup/2`: the same while core 1 looks up other keys of the same
//!   map as fast as it can (readers sharing the table: the lock's or the
//!   shard's reader count is written by both cores).
//!
//! The RCU table runs under the cores' RCU (`CoreRcu`): each lookup takes
//! this core's read guard. No writer runs during the measurement.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use ebbrt::cpu::CoreId;
use ebbrt::exec;
use ebbrt_rcu_hashtable::{DefaultHasher, RcuHashMap};

const KEYS: u64 = 100_000;
/// Lookups per measured iteration, over a fixed pseudo-random key order.
const BATCH: usize = 1024;

type Rcu = RcuHashMap<u64, Arc<u64>>;
type Locked = RwLock<HashMap<u64, Arc<u64>, DefaultHasher>>;
type Dash = DashMap<u64, Arc<u64>, DefaultHasher>;

struct Maps {
    rcu: Rcu,
    locked: Locked,
    dash: Dash,
    order: Vec<u64>,
}

fn maps() -> Arc<Maps> {
    let hasher = DefaultHasher::default();
    let rcu = RcuHashMap::with_rcu(ebbrt_rcu::CoreRcu, hasher.clone());
    let mut locked = HashMap::with_hasher(hasher.clone());
    let dash = DashMap::with_hasher(hasher);
    for k in 0..KEYS {
        rcu.insert(k, Arc::new(k));
        locked.insert(k, Arc::new(k));
        dash.insert(k, Arc::new(k));
    }
    // The bench's thread inserted outside the event loop: no grace period
    // has passed, so the table grew once and waits to grow again. Let it.
    while rcu.buckets() < KEYS as usize {
        exec::block_on(ebbrt_rcu::synchronize());
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let order = (0..BATCH)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % KEYS
        })
        .collect();
    Arc::new(Maps {
        rcu,
        locked: RwLock::new(locked),
        dash,
        order,
    })
}

#[derive(Clone, Copy)]
enum Which {
    Rcu,
    Locked,
    Dash,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Rcu => "rcu",
            Which::Locked => "rwlock_hashmap",
            Which::Dash => "dashmap",
        }
    }

    #[inline]
    fn lookup(self, m: &Maps, k: u64) -> Option<Arc<u64>> {
        match self {
            Which::Rcu => m.rcu.get(&k),
            Which::Locked => m.locked.read().unwrap().get(&k).cloned(),
            Which::Dash => m.dash.get(&k).map(|v| v.clone()),
        }
    }
}

/// Core 1 looks up keys (in another order) until `stop`.
fn background_reader(m: &Arc<Maps>, which: Which, stop: &Arc<AtomicBool>) -> exec::JoinHandle<u64> {
    let (m, stop) = (m.clone(), stop.clone());
    exec::spawn_on(CoreId(1), async move {
        let mut n = 0u64;
        // Never yields: no writer runs, so holding up grace periods costs
        // nothing here.
        while !stop.load(Ordering::Relaxed) {
            for &k in m.order.iter().rev() {
                black_box(which.lookup(&m, k));
            }
            n += BATCH as u64;
        }
        n
    })
}

fn lookups(c: &mut Criterion, m: &Arc<Maps>) {
    for readers in [1usize, 2] {
        let mut g = c.benchmark_group(format!("lookup/{readers}"));
        g.throughput(Throughput::Elements(BATCH as u64));
        g.measurement_time(Duration::from_secs(3));
        for which in [Which::Rcu, Which::Locked, Which::Dash] {
            let stop = Arc::new(AtomicBool::new(false));
            let bg = (readers == 2).then(|| background_reader(m, which, &stop));
            g.bench_with_input(BenchmarkId::from_parameter(which.name()), m, |b, m| {
                b.iter(|| {
                    for &k in &m.order {
                        black_box(which.lookup(m, k));
                    }
                })
            });
            stop.store(true, Ordering::Relaxed);
            if let Some(bg) = bg {
                black_box(exec::block_on(bg));
            }
        }
        g.finish();
    }
}

fn main() {
    ebbrt::runtime::enter_instance(2).expect("start a 2-core hosted instance");
    let m = maps();
    let mut c = Criterion::default().configure_from_args();
    lookups(&mut c, &m);
    c.final_summary();
}
