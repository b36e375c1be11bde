//! What one workload measured, whoever drove it (the Rust load generator or pgbench): latencies
//! in an HDR histogram, counts, errors by kind.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to a minute, to 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    // Fixed, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// How long a workload runs: for a time (the default), or for a number of requests (`--scale`,
/// where the small seed holds too few memberships for a timed run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Length {
    /// Warm up, then measure what completes within `duration`.
    Timed {
        #[serde(serialize_with = "seconds")]
        warmup: Duration,
        #[serde(serialize_with = "seconds")]
        duration: Duration,
    },
    /// `warmup` requests unmeasured, then `requests` measured.
    Counted { warmup: u64, requests: u64 },
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// One workload's run: how long, how many at once, and which request numbers (see
/// `SeedLayout::membership`) it may use: from where the previous workload stopped to the end of
/// the seed, so the last one (pgbench, by default: the fastest) gets all that is left.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) length: Length,
    /// Before anything is counted, each client asks for this long to remove a membership that
    /// does not exist: the same path and statement, so connections, threads and plans are warm,
    /// without using up the seed (a counted run's own warm-up is only a few hundred requests).
    pub(crate) prime: Duration,
    pub(crate) concurrency: usize,
    pub(crate) range: Range<u64>,
}

impl Plan {
    /// Counted runs know their need up front: refuse one its range cannot hold.
    pub(crate) fn check_capacity(&self) -> anyhow::Result<()> {
        if let Length::Counted { warmup, requests } = self.length {
            let need =
                (warmup + requests).div_ceil(self.concurrency as u64) * self.concurrency as u64;
            let have = self.range.end - self.range.start;
            anyhow::ensure!(
                need <= have,
                "{need} requests need as many memberships, but this workload's share of the seed \
                 is {have}: seed more (--groups/--users) or run fewer requests"
            );
        }
        Ok(())
    }
}

/// What a workload measured.
#[derive(Debug)]
pub(crate) struct Measurement {
    /// Latency of every measured request (successful or not), in µs.
    pub(crate) latency: Histogram<u64>,
    /// Successful requests in the measured window.
    pub(crate) measured_ok: u64,
    /// The measured window.
    pub(crate) window: Duration,
    /// Requests sent in all (warm-up and the tail after the window included).
    pub(crate) sent: u64,
    /// Successful requests in all: each must have deleted one membership.
    pub(crate) ok: u64,
    /// Failed requests by kind (status, gRPC code, transport error), in all.
    pub(crate) errors: BTreeMap<String, u64>,
    /// The workload ran out of memberships before its time was up.
    pub(crate) exhausted: bool,
    /// Request numbers below this may have been used: where the next workload starts.
    pub(crate) used_until: u64,
    /// Warm-up requests for memberships that do not exist (see `Plan::prime`).
    pub(crate) primed: u64,
}

impl Measurement {
    /// Nothing measured yet (rounds are merged into it).
    pub(crate) fn empty() -> Self {
        Self {
            latency: new_histogram(),
            measured_ok: 0,
            window: Duration::ZERO,
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            exhausted: false,
            used_until: 0,
            primed: 0,
        }
    }

    /// Successful removals a second in the window.
    pub(crate) fn throughput(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.measured_ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Failed requests in all.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds another round of the same workload: histograms, counts and windows add up.
    pub(crate) fn merge(&mut self, other: &Measurement) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.measured_ok += other.measured_ok;
        self.window += other.window;
        self.sent += other.sent;
        self.ok += other.ok;
        for (kind, n) in &other.errors {
            self.add_errors(kind, *n);
        }
        self.exhausted |= other.exhausted;
        self.used_until = self.used_until.max(other.used_until);
        self.primed += other.primed;
    }

    /// Counts a failure of `kind`.
    pub(crate) fn add_errors(&mut self, kind: &str, n: u64) {
        if n > 0 {
            *self.errors.entry(kind.to_owned()).or_default() += n;
        }
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct LatencySummary {
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
}

impl LatencySummary {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            max: histogram.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p90, 900);
        assert_eq!(s.p99, 990);
        assert_eq!(s.max, 1000);
        // 3 significant digits: a 12,345 µs sample reads back within 0.1 %.
        h.record(12_345).unwrap();
        let max = LatencySummary::of(&h).max;
        assert!(max.abs_diff(12_345) <= 13, "{max}");
    }

    #[test]
    fn counted_plans_must_fit_their_range() {
        let plan = |range| Plan {
            prime: Duration::ZERO,
            length: Length::Counted {
                warmup: 30,
                requests: 300,
            },
            concurrency: 32,
            range,
        };
        // 330 requests round up to 11 per client x 32 clients = 352.
        assert!(plan(0..352).check_capacity().is_ok());
        assert!(plan(0..351).check_capacity().is_err());
    }
}
