//! The send schedule: every request of a run, with the time it is meant
//! to leave, drawn before the run starts.
//!
//! Each connection gets its own Poisson process at `qps / connections`
//! (exponential gaps) from its own seed; the union of independent Poisson
//! processes is the Poisson process at the offered rate. Which key and
//! whether it is a get or a set are drawn alongside, so the whole request
//! stream is fixed by (seed, parameters) and nothing the server does can
//! change it.

use crate::dist::{Exponential, GenPareto, KeyChooser};
use crate::rng::{Rng, combine};

/// One scheduled request (16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Nanoseconds after the run's start at which it is meant to be sent.
    pub at_ns: u64,
    /// The key's index in the [`KeySpace`](crate::payload::KeySpace).
    pub key: u32,
    /// 0 for a get; otherwise a set. (The version a set writes is taken
    /// from its key's counter when it is sent, see [`crate::verify`].)
    pub version: u32,
}

impl Request {
    /// Whether it is a set.
    pub fn is_set(&self) -> bool {
        self.version != 0
    }
}

/// What one connection's schedule is drawn from.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Requests per second on this connection.
    pub rate: f64,
    /// Schedule requests meant to leave before this, in nanoseconds.
    pub duration_ns: u64,
    /// The fraction of requests that are sets.
    pub update: f64,
    /// The seed (the run's seed combined with the connection's number).
    pub seed: u64,
    /// How the gaps between requests are distributed.
    pub arrivals: Arrivals,
}

/// The distribution of the gaps between one connection's requests, both
/// with mean `1 / rate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// Exponential gaps: a Poisson process (mutilate's default).
    Poisson,
    /// ETC's measured inter-arrival times (mutilate's `fb_ia`): a
    /// generalized Pareto with shape 0.154971, burstier than Poisson,
    /// scaled to the rate as mutilate scales it.
    FbIa,
}

impl Arrivals {
    /// Parses `poisson` or `fb_ia`.
    pub fn parse(s: &str) -> Result<Arrivals, String> {
        match s {
            "poisson" | "exponential" => Ok(Arrivals::Poisson),
            "fb_ia" => Ok(Arrivals::FbIa),
            _ => Err(format!("arrivals `{s}`: expected poisson or fb_ia")),
        }
    }

    /// The name `parse` takes.
    pub fn name(self) -> &'static str {
        match self {
            Arrivals::Poisson => "poisson",
            Arrivals::FbIa => "fb_ia",
        }
    }

    /// One gap, in the unit of `1 / rate`.
    fn sample(self, rate: f64, rng: &mut Rng) -> f64 {
        match self {
            Arrivals::Poisson => Exponential { rate }.sample(rng),
            Arrivals::FbIa => {
                // mutilate's fb_ia is GPareto(0, 16.0292, 0.154971) in µs;
                // its shape is kept and its scale set for a mean of 1/rate.
                let shape = 0.154971;
                GenPareto {
                    loc: 0.0,
                    scale: (1.0 - shape) / rate,
                    shape,
                }
                .sample(rng)
            }
        }
    }
}

/// Refuses schedules larger than this many requests (16 bytes each).
pub const MAX_REQUESTS: usize = 64 << 20;

/// Draws one connection's schedule.
pub fn build(p: &Params, keys: &KeyChooser) -> Vec<Request> {
    let rate_per_ns = p.rate / 1e9;
    let mut rng = Rng::new(combine(p.seed, 0x7363_6865_6475_6c65));
    let expect = (p.rate * p.duration_ns as f64 / 1e9) as usize;
    let mut out = Vec::with_capacity(expect + expect / 8 + 16);
    let mut t = 0.0f64;
    loop {
        t += p.arrivals.sample(rate_per_ns, &mut rng);
        if t >= p.duration_ns as f64 {
            break;
        }
        let key = keys.sample(&mut rng);
        let version = if rng.next_open01() < p.update {
            // Any nonzero number marks a set (the draw is kept so that the
            // schedules of a seed stay what they were).
            (rng.next_u64() as u32).max(1)
        } else {
            0
        };
        out.push(Request {
            at_ns: t as u64,
            key,
            version,
        });
    }
    out
}

/// A preload schedule: a set of each key in `keys`, all due at once (the
/// engine's pipelining depth paces them; each set's version comes from
/// the key's counter when it is sent).
pub fn preload(keys: impl Iterator<Item = u32>) -> Vec<Request> {
    keys.map(|key| Request {
        at_ns: 0,
        key,
        version: 1,
    })
    .collect()
}

/// A read-back schedule: a get of each key in `keys`, all due at once.
pub fn readback(keys: impl Iterator<Item = u32>) -> Vec<Request> {
    keys.map(|key| Request {
        at_ns: 0,
        key,
        version: 0,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64) -> Params {
        Params {
            rate: 50_000.0,
            duration_ns: 4_000_000_000,
            update: 0.1,
            seed,
            arrivals: Arrivals::Poisson,
        }
    }

    #[test]
    fn poisson_count_gaps_and_order() {
        let keys = KeyChooser::new(1000, None);
        let s = build(&params(1), &keys);
        // 200,000 expected; a Poisson count has sd ≈ 447.
        assert!((197_000..203_000).contains(&s.len()), "{}", s.len());
        assert!(s.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        assert!(s.last().unwrap().at_ns < 4_000_000_000);
        // Exponential gaps: mean 20 µs, and the share shorter than the mean
        // is 1 - 1/e.
        let gaps: Vec<f64> = s
            .windows(2)
            .map(|w| (w[1].at_ns - w[0].at_ns) as f64)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 20_000.0).abs() < 200.0, "mean gap {mean}");
        let short = gaps.iter().filter(|&&g| g < 20_000.0).count() as f64 / gaps.len() as f64;
        assert!((short - (1.0 - (-1.0f64).exp())).abs() < 0.01, "{short}");
    }

    #[test]
    fn fb_ia_keeps_the_rate_but_is_burstier() {
        let keys = KeyChooser::new(1000, None);
        let p = Params {
            arrivals: Arrivals::FbIa,
            ..params(1)
        };
        let s = build(&p, &keys);
        let gaps: Vec<f64> = s
            .windows(2)
            .map(|w| (w[1].at_ns - w[0].at_ns) as f64)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 20_000.0).abs() < 400.0, "mean gap {mean}");
        // GPareto: the share of gaps below the mean is 1 - (1-ξ)^(1/ξ) ≈ 0.6626,
        // against 1 - 1/e ≈ 0.6321 for Poisson.
        let xi: f64 = 0.154971;
        let want = 1.0 - (1.0 - xi).powf(1.0 / xi);
        let short = gaps.iter().filter(|&&g| g < 20_000.0).count() as f64 / gaps.len() as f64;
        assert!((short - want).abs() < 0.01, "{short} vs {want}");
        assert_eq!(Arrivals::parse("fb_ia"), Ok(Arrivals::FbIa));
        assert_eq!(
            Arrivals::parse(Arrivals::Poisson.name()),
            Ok(Arrivals::Poisson)
        );
        assert!(Arrivals::parse("uniform").is_err());
    }

    #[test]
    fn mix_and_keys() {
        let keys = KeyChooser::new(1000, None);
        let s = build(&params(2), &keys);
        let sets = s.iter().filter(|r| r.is_set()).count() as f64 / s.len() as f64;
        assert!((sets - 0.1).abs() < 0.005, "{sets}");
        assert!(s.iter().all(|r| r.key < 1000));
        let none = build(
            &Params {
                update: 0.0,
                ..params(2)
            },
            &keys,
        );
        assert!(none.iter().all(|r| !r.is_set()));
        let all = build(
            &Params {
                update: 1.0,
                ..params(2)
            },
            &keys,
        );
        assert!(all.iter().all(|r| r.is_set()));
    }

    #[test]
    fn fixed_by_the_seed() {
        let keys = KeyChooser::new(1000, None);
        assert_eq!(build(&params(3), &keys), build(&params(3), &keys));
        assert_ne!(build(&params(3), &keys), build(&params(4), &keys));
    }

    #[test]
    fn preload_sets_each_key_once() {
        let p = preload(0..5);
        assert_eq!(p.len(), 5);
        assert!(
            p.iter()
                .enumerate()
                .all(|(i, r)| r.key == i as u32 && r.is_set() && r.at_ns == 0)
        );
        let r = readback(2..4);
        assert_eq!(r.iter().map(|r| r.key).collect::<Vec<_>>(), [2, 3]);
        assert!(r.iter().all(|r| !r.is_set() && r.at_ns == 0));
    }
}
