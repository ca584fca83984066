//! Turning a run's [`Stats`] into the numbers people read: a table for
//! humans and JSON for scripts.

use serde_json::{Value, json};

use crate::engine::Stats;

/// One run (or search step), summarized.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The rate asked for.
    pub offered_qps: f64,
    /// Replies per second: replies over the time until the later of the
    /// schedule's end and the last reply.
    pub achieved_qps: f64,
    /// Requests the schedule held per second (the Poisson realization of
    /// the offered rate).
    pub scheduled_qps: f64,
    /// The scheduled length, seconds.
    pub duration_s: f64,
    /// p50, p90, p99, p99.9 and maximum latency, microseconds.
    pub latency_us: [f64; 5],
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// p99 and maximum of how late requests were written, microseconds,
    /// of those not held back by a full pipelining window: the
    /// generator's own lateness.
    pub send_lag_us: [f64; 2],
    /// Requests that became due while their connection's window
    /// (`--depth`) was full, and the p99 and maximum of how long they
    /// waited to be written, microseconds: the server's backlog.
    pub window_wait: (u64, [f64; 2]),
    /// The counts.
    pub stats: Counts,
    /// The first few error messages.
    pub messages: Vec<String>,
}

/// The counters of a [`Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Requests scheduled.
    pub scheduled: u64,
    /// Requests written.
    pub sent: u64,
    /// Replies received.
    pub completed: u64,
    /// Gets written.
    pub gets: u64,
    /// Sets written.
    pub sets: u64,
    /// Get hits.
    pub hits: u64,
    /// Get misses.
    pub misses: u64,
    /// Sets refused.
    pub not_stored: u64,
    /// Error replies.
    pub error_replies: u64,
    /// Connections lost.
    pub connection_errors: u64,
    /// Requests unanswered at the end.
    pub unfinished: u64,
    /// Values that failed verification.
    pub mismatches: u64,
    /// Hits older than a write acknowledged before the get was sent.
    pub stale: u64,
    /// Keys lost (final read-back only).
    pub lost: u64,
    /// All of the failures above.
    pub errors: u64,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl Step {
    /// Summarizes `s`, a run at `offered_qps` scheduled over `duration_s`.
    pub fn new(offered_qps: f64, duration_s: f64, s: &Stats) -> Step {
        let h = &s.latency;
        let elapsed = (s.last_reply_ns as f64 / 1e9).max(duration_s);
        let q = |p: f64| us(h.value_at_quantile(p));
        Step {
            offered_qps,
            achieved_qps: if elapsed > 0.0 {
                s.completed as f64 / elapsed
            } else {
                0.0
            },
            scheduled_qps: s.scheduled as f64 / duration_s,
            duration_s,
            latency_us: [q(0.5), q(0.9), q(0.99), q(0.999), us(h.max())],
            mean_us: h.mean() / 1000.0,
            send_lag_us: [us(s.send_lag.value_at_quantile(0.99)), us(s.send_lag.max())],
            window_wait: (
                s.window_wait.len(),
                [
                    us(s.window_wait.value_at_quantile(0.99)),
                    us(s.window_wait.max()),
                ],
            ),
            stats: Counts {
                scheduled: s.scheduled,
                sent: s.sent,
                completed: s.completed,
                gets: s.gets,
                sets: s.sets,
                hits: s.hits,
                misses: s.misses,
                not_stored: s.not_stored,
                error_replies: s.error_replies,
                connection_errors: s.connection_errors,
                unfinished: s.unfinished,
                mismatches: s.mismatches,
                stale: s.stale,
                lost: s.lost,
                errors: s.errors(),
            },
            messages: s.messages.clone(),
        }
    }

    /// The p99 in nanoseconds, as the search compares it.
    pub fn p99_ns(&self) -> u64 {
        (self.latency_us[2] * 1000.0) as u64
    }

    /// A warning when the generator itself fell far enough behind its
    /// schedule to account for much of the tail (too few threads, or a
    /// CPU shared with the server or other work).
    pub fn lag_note(&self) -> Option<String> {
        let (lag, p99) = (self.send_lag_us[0], self.latency_us[2]);
        (lag >= 100.0 && lag >= p99 / 2.0).then(|| {
            format!(
                "note: the generator wrote its p99 request {lag:.0} µs late (p99 latency {p99:.0} µs): a busy CPU or \
                 too few --threads; the latencies include that wait"
            )
        })
    }

    /// A note when requests waited for the pipelining window (at least
    /// 1 % of those written): the server fell behind, and how far.
    pub fn window_note(&self) -> Option<String> {
        let (held, [p99, max]) = self.window_wait;
        let share = held as f64 / self.stats.sent.max(1) as f64;
        (share >= 0.01).then(|| {
            format!(
                "note: {:.1} % of the requests came due while their connection had --depth requests \
                 outstanding (the server behind) and were written up to {max:.0} µs late (p99 {p99:.0} µs); \
                 not counted in lag99",
                share * 100.0
            )
        })
    }

    /// The table's header line.
    pub fn header() -> String {
        format!(
            "{:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>6} {:>5} {:>9}",
            "offered/s",
            "achieved/s",
            "replies",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "misses",
            "errors",
            "mismat.",
            "stale",
            "lag99 µs"
        )
    }

    /// This step as a table row.
    pub fn row(&self) -> String {
        let l = &self.latency_us;
        format!(
            "{:>10.0} {:>10.0} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>6} {:>6} {:>5} {:>9.1}",
            self.offered_qps,
            self.achieved_qps,
            self.stats.completed,
            l[0],
            l[1],
            l[2],
            l[3],
            l[4],
            self.stats.misses,
            self.stats.errors,
            self.stats.mismatches,
            self.stats.stale,
            self.send_lag_us[0]
        )
    }

    /// This step as JSON.
    pub fn json(&self) -> Value {
        let c = &self.stats;
        let l = &self.latency_us;
        json!({
            "offered_qps": self.offered_qps,
            "achieved_qps": self.achieved_qps,
            "scheduled_qps": self.scheduled_qps,
            "duration_s": self.duration_s,
            "latency_us": {"p50": l[0], "p90": l[1], "p99": l[2], "p999": l[3], "max": l[4], "mean": self.mean_us},
            "send_lag_us": {"p99": self.send_lag_us[0], "max": self.send_lag_us[1]},
            "window_wait_us": {"held": self.window_wait.0, "p99": self.window_wait.1[0], "max": self.window_wait.1[1]},
            "scheduled": c.scheduled, "sent": c.sent, "completed": c.completed,
            "gets": c.gets, "sets": c.sets, "hits": c.hits, "misses": c.misses, "not_stored": c.not_stored,
            "error_replies": c.error_replies, "connection_errors": c.connection_errors,
            "unfinished": c.unfinished, "mismatches": c.mismatches, "stale": c.stale, "errors": c.errors,
            "messages": self.messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_quantiles_throughput_and_errors() {
        let mut s = Stats::default();
        for v in 1..=1000u64 {
            s.latency.record(v * 1000).unwrap();
        }
        s.completed = 1000;
        s.mismatches = 2;
        s.stale = 4;
        s.unfinished = 1;
        s.last_reply_ns = 2_000_000_000;
        let step = Step::new(600.0, 1.0, &s);
        // Replies over the time until the last one (2 s), not the schedule's 1 s.
        assert!((step.achieved_qps - 500.0).abs() < 1e-9);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001;
        assert!(close(step.latency_us[0], 500.0), "{:?}", step.latency_us);
        assert!(close(step.latency_us[2], 990.0), "{:?}", step.latency_us);
        assert!(close(step.latency_us[4], 1000.0), "{:?}", step.latency_us);
        assert_eq!(step.stats.errors, 7);
        let j = step.json();
        assert_eq!(j["mismatches"], 2);
        assert_eq!(j["stale"], 4);
        assert_eq!(j["achieved_qps"], 500.0);
        assert_eq!(step.row().split_whitespace().count(), 13, "{}", step.row());
        assert_eq!(step.row().split_whitespace().nth(10), Some("2"));
        assert_eq!(step.row().split_whitespace().nth(11), Some("4"));
        assert_eq!(
            Step::header()
                .split_whitespace()
                .filter(|w| *w != "µs")
                .count(),
            13
        );
        assert_eq!(step.lag_note(), None);
        assert_eq!(step.window_note(), None);
        s.sent = 1000;
        for _ in 0..20 {
            s.window_wait.record(3_000_000).unwrap();
        }
        let held = Step::new(600.0, 1.0, &s);
        assert_eq!(held.json()["window_wait_us"]["held"], 20);
        let note = held.window_note().unwrap();
        assert!(
            note.contains("2.0 %") && note.contains("3000 µs late"),
            "{note}"
        );
        // The window's waits are not the generator's lateness.
        assert_eq!(held.lag_note(), None);
        s.send_lag.record(600_000).unwrap();
        let late = Step::new(600.0, 1.0, &s);
        assert!(
            late.lag_note().unwrap().contains("600 µs late"),
            "{:?}",
            late.lag_note()
        );
    }
}
