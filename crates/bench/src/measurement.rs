//! What one workload measured, whoever drove it (the Rust load generator or pgbench): latencies
//! in an HDR histogram, counts of removals, errors by kind.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, from 1 µs to a minute, to 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// One workload's run: warm up, then measure what completes within `duration`, with `clients`
/// in flight, using request numbers `0..memberships` (see `SeedLayout::membership`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) clients: usize,
    pub(crate) memberships: u64,
}

/// What a workload measured. Counts are of removals (a batched pgbench transaction is several)
/// and, but for `latency` and `measured_ok`, include warm-up and the tail after the window.
#[derive(Debug)]
pub(crate) struct Measurement {
    /// Latency of every measured request (successful or not), in µs.
    pub(crate) latency: Histogram<u64>,
    /// Successful removals in the measured window.
    pub(crate) measured_ok: u64,
    pub(crate) window: Duration,
    /// Removals asked for.
    pub(crate) sent: u64,
    /// Successful removals: each must have deleted one membership.
    pub(crate) ok: u64,
    /// Failed removals by kind (status, gRPC code, transport error).
    pub(crate) errors: BTreeMap<String, u64>,
    /// The workload ran out of memberships before its time was up.
    pub(crate) exhausted: bool,
    /// Request numbers below this may have been used: what has to be put back afterwards.
    pub(crate) used_until: u64,
}

impl Default for Measurement {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            measured_ok: 0,
            window: Duration::ZERO,
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            exhausted: false,
            used_until: 0,
        }
    }
}

impl Measurement {
    /// Successful removals a second in the window.
    pub(crate) fn throughput(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.measured_ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Failed removals in all.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Counts `n` failures of `kind`.
    pub(crate) fn add_errors(&mut self, kind: &str, n: u64) {
        if n > 0 {
            *self.errors.entry(kind.to_owned()).or_default() += n;
        }
    }

    /// Adds the counts and latencies of `other` (another task of the same run) to these.
    pub(crate) fn merge(&mut self, other: Self) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.measured_ok += other.measured_ok;
        self.sent += other.sent;
        self.ok += other.ok;
        for (kind, n) in other.errors {
            self.add_errors(&kind, n);
        }
        self.exhausted |= other.exhausted;
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
        let at = |q| histogram.value_at_quantile(q);
        Self {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
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
}
