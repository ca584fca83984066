//! The SLA search: the highest offered load whose p99 stays under a bound.
//!
//! Doubling from a starting rate until a step fails, then bisecting between
//! the last pass and the first failure until they are within a tolerance or
//! the step budget is spent. A step passes when its p99 is within the SLA,
//! it carried (nearly) the load it was offered, and it had no errors: a
//! server that answers fast by answering few does not pass.
//!
//! On a machine shared with other work a single step can fail from a
//! stall that has nothing to do with the server (the generator itself
//! waiting for a CPU). With `retries` a failed step is run again, up to
//! that many times, and the rate counts as passing when any attempt
//! passed; every attempt is reported as a step of its own.

/// What a step must show to pass.
#[derive(Clone, Copy, Debug)]
pub struct Criteria {
    /// The p99 bound, in nanoseconds.
    pub sla_p99_ns: u64,
    /// The least achieved/offered ratio that counts as carrying the load.
    pub min_carried: f64,
}

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// p99 latency, nanoseconds.
    pub p99_ns: u64,
    /// Replies per second.
    pub achieved_qps: f64,
    /// Requests per second the step's schedule actually held: the offered
    /// rate give or take the Poisson process's own variation, which is
    /// what the replies are compared with.
    pub scheduled_qps: f64,
    /// Error replies, protocol errors, unanswered requests, mismatches.
    pub errors: u64,
}

impl Criteria {
    /// Whether a step that measured `m` passes.
    pub fn passes(&self, m: &Measured) -> bool {
        // A step too short to hold a request measured nothing.
        m.achieved_qps > 0.0
            && m.errors == 0
            && m.p99_ns <= self.sla_p99_ns
            && m.achieved_qps >= self.min_carried * m.scheduled_qps
    }
}

/// How the search walks.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// The first offered rate.
    pub start_qps: f64,
    /// Never offer more than this.
    pub max_qps: f64,
    /// Stop once the highest pass is within this fraction of the lowest fail.
    pub tolerance: f64,
    /// Stop after this many steps in all.
    pub max_steps: usize,
    /// Attempts after a failed step at the same rate (0: a failure is
    /// final).
    pub retries: usize,
}

/// The outcome: each step's offered rate and verdict, and the best pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// (offered QPS, measurement, passed) in the order run.
    pub steps: Vec<(f64, Measured, bool)>,
    /// Index into `steps` of the highest offered rate that passed.
    pub best: Option<usize>,
}

/// Runs the search, calling `step(offered_qps)` for each measurement.
pub fn run(plan: &Plan, criteria: &Criteria, mut step: impl FnMut(f64) -> Measured) -> Outcome {
    let mut steps: Vec<(f64, Measured, bool)> = Vec::new();
    let mut probe = |q: f64, steps: &mut Vec<(f64, Measured, bool)>| {
        for attempt in 0..=plan.retries {
            if attempt > 0 && steps.len() >= plan.max_steps {
                break;
            }
            let m = step(q);
            let ok = criteria.passes(&m);
            steps.push((q, m, ok));
            if ok {
                return true;
            }
        }
        false
    };
    let mut lo: Option<f64> = None; // highest pass
    let mut hi: Option<f64> = None; // lowest fail
    let mut q = plan.start_qps.min(plan.max_qps);
    // Up by doubling (or down by halving if the start already fails).
    while steps.len() < plan.max_steps {
        if probe(q, &mut steps) {
            lo = Some(q);
            if hi.is_some() || q >= plan.max_qps {
                break;
            }
            q = (q * 2.0).min(plan.max_qps);
        } else {
            hi = Some(q);
            if lo.is_some() || q <= 1.0 {
                break;
            }
            q = (q / 2.0).max(1.0);
        }
    }
    // Then bisect.
    while let (Some(l), Some(h)) = (lo, hi) {
        if steps.len() >= plan.max_steps || (h - l) <= plan.tolerance * h {
            break;
        }
        let mid = (l + h) / 2.0;
        if probe(mid, &mut steps) {
            lo = Some(mid);
        } else {
            hi = Some(mid);
        }
    }
    let best = lo.and_then(|l| steps.iter().position(|s| s.0 == l && s.2));
    Outcome { steps, best }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRITERIA: Criteria = Criteria {
        sla_p99_ns: 500_000,
        min_carried: 0.95,
    };

    /// A server that carries up to `capacity` and whose p99 grows with load
    /// until it passes the SLA at `knee`.
    fn server(capacity: f64, knee: f64) -> impl FnMut(f64) -> Measured {
        move |q| Measured {
            p99_ns: if q <= knee { 100_000 } else { 2_000_000 },
            achieved_qps: q.min(capacity),
            scheduled_qps: q,
            errors: 0,
        }
    }

    fn plan(start: f64) -> Plan {
        Plan {
            start_qps: start,
            max_qps: 10_000_000.0,
            tolerance: 0.02,
            max_steps: 40,
            retries: 0,
        }
    }

    #[test]
    fn a_retry_passes_a_step_that_failed_once() {
        // Fails the first time 8k is offered, passes the second; the knee
        // is at 20k.
        let mut seen_8k = 0;
        let out = run(
            &Plan {
                retries: 1,
                ..plan(1000.0)
            },
            &CRITERIA,
            |q| {
                let stalled = q == 8000.0 && {
                    seen_8k += 1;
                    seen_8k == 1
                };
                Measured {
                    p99_ns: if q <= 20_000.0 && !stalled {
                        100_000
                    } else {
                        2_000_000
                    },
                    achieved_qps: q,
                    scheduled_qps: q,
                    errors: 0,
                }
            },
        );
        let best = out.steps[out.best.unwrap()].0;
        assert!((20_000.0 * 0.98..=20_000.0).contains(&best), "{best}");
        // 8k twice: the failure, then the pass; above the knee every rate
        // is tried twice.
        let at_8k: Vec<bool> = out
            .steps
            .iter()
            .filter(|s| s.0 == 8000.0)
            .map(|s| s.2)
            .collect();
        assert_eq!(at_8k, [false, true]);
        assert_eq!(out.steps.iter().filter(|s| s.0 == 32_000.0).count(), 2);
        // Without retries the stall ends the doubling at 4k.
        let mut seen = 0;
        let strict = run(&plan(1000.0), &CRITERIA, |q| {
            let stalled = q == 8000.0 && {
                seen += 1;
                seen == 1
            };
            Measured {
                p99_ns: if stalled { 2_000_000 } else { 100_000 },
                achieved_qps: q,
                scheduled_qps: q,
                errors: 0,
            }
        });
        assert!(strict.steps[strict.best.unwrap()].0 < 8000.0);
    }

    #[test]
    fn finds_the_knee_within_tolerance() {
        let out = run(&plan(1000.0), &CRITERIA, server(1e9, 77_000.0));
        let best = out.steps[out.best.unwrap()].0;
        assert!((77_000.0 * 0.98..=77_000.0).contains(&best), "{best}");
        // Doubling first: 1k, 2k, … 64k pass, 128k fails.
        let first: Vec<f64> = out.steps.iter().take(8).map(|s| s.0).collect();
        assert_eq!(first, [1e3, 2e3, 4e3, 8e3, 16e3, 32e3, 64e3, 128e3]);
        assert!(out.steps.iter().all(|s| s.2 == (s.0 <= 77_000.0)));
    }

    #[test]
    fn a_server_that_drops_load_does_not_pass() {
        // Fast replies, but only 30k/s of them.
        let out = run(&plan(1000.0), &CRITERIA, server(30_000.0, 1e12));
        let best = out.steps[out.best.unwrap()].0;
        assert!(
            (30_000.0 * 0.98..=30_000.0 / 0.95).contains(&best),
            "{best}"
        );
    }

    #[test]
    fn errors_fail_a_step() {
        let m = Measured {
            p99_ns: 1,
            achieved_qps: 100.0,
            scheduled_qps: 100.0,
            errors: 1,
        };
        assert!(!CRITERIA.passes(&m));
        assert!(CRITERIA.passes(&Measured { errors: 0, ..m }));
        // Carried load is judged against what the schedule held.
        assert!(CRITERIA.passes(&Measured {
            errors: 0,
            scheduled_qps: 105.0,
            ..m
        }));
        assert!(!CRITERIA.passes(&Measured {
            errors: 0,
            scheduled_qps: 106.0,
            ..m
        }));
        // Nothing scheduled, nothing answered: nothing measured.
        let empty = Measured {
            p99_ns: 0,
            achieved_qps: 0.0,
            scheduled_qps: 0.0,
            errors: 0,
        };
        assert!(!CRITERIA.passes(&empty));
    }

    #[test]
    fn a_failing_start_searches_down_and_the_budget_holds() {
        let out = run(&plan(100_000.0), &CRITERIA, server(1e9, 5_000.0));
        let best = out.steps[out.best.unwrap()].0;
        assert!((5_000.0 * 0.98..=5_000.0).contains(&best), "{best}");
        let capped = run(
            &Plan {
                max_steps: 3,
                ..plan(1000.0)
            },
            &CRITERIA,
            server(1e9, 1e12),
        );
        assert_eq!(capped.steps.len(), 3);
        let never = run(
            &Plan {
                max_steps: 50,
                ..plan(1000.0)
            },
            &CRITERIA,
            server(1e9, 0.5),
        );
        assert_eq!(never.best, None);
        assert!(never.steps.iter().all(|s| !s.2));
    }

    #[test]
    fn stops_at_the_maximum() {
        let out = run(
            &Plan {
                max_qps: 3000.0,
                ..plan(1000.0)
            },
            &CRITERIA,
            server(1e9, 1e12),
        );
        assert_eq!(
            out.steps.iter().map(|s| s.0).collect::<Vec<_>>(),
            [1000.0, 2000.0, 3000.0]
        );
        assert_eq!(out.best, Some(2));
    }
}
