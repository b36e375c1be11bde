//! The results: one row per workload (throughput, latency percentiles, errors, CPU per request,
//! peak memory, ratios to pgbench), printed as a table and written as JSON, and the issue's
//! goals checked against them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::measurement::{LatencySummary, Measurement};

/// The three workloads, run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Workload {
    /// REST through the gateway.
    Rest,
    /// gRPC straight to the server.
    Grpc,
    /// pgbench running the server's statement.
    Pgbench,
}

impl Workload {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Rest => "rest",
            Workload::Grpc => "grpc",
            Workload::Pgbench => "pgbench",
        }
    }
}

/// CPU time per request (all requests of the workload, warm-up included), in µs. `None`: the
/// process takes no part in the workload or could not be measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct CpuPerRequest {
    pub(crate) server: Option<f64>,
    pub(crate) gateway: Option<f64>,
    /// Every PostgreSQL process (private server only).
    pub(crate) postgres: Option<f64>,
    /// The load generator: this process for REST and gRPC, pgbench for pgbench.
    pub(crate) client: Option<f64>,
}

/// Peak resident memory during the workload, in MiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct PeakRss {
    pub(crate) server: Option<f64>,
    pub(crate) gateway: Option<f64>,
}

/// A workload's figures against pgbench's.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct VsPgbench {
    /// Requests a second ÷ pgbench's.
    pub(crate) throughput: f64,
    /// p99 ÷ pgbench's p99.
    pub(crate) p99: f64,
}

/// One row.
#[derive(Debug, Serialize)]
pub(crate) struct WorkloadReport {
    pub(crate) workload: Workload,
    /// Successful removals a second in the measured window.
    pub(crate) requests_per_second: f64,
    pub(crate) latency_us: LatencySummary,
    pub(crate) errors: u64,
    pub(crate) error_kinds: BTreeMap<String, u64>,
    /// Requests sent in all (warm-up and tail included), those answered with success, and the
    /// memberships they deleted as counted in the database afterwards.
    pub(crate) sent: u64,
    pub(crate) succeeded: u64,
    pub(crate) deleted: i64,
    pub(crate) measured_seconds: f64,
    /// The workload used up its share of the seed before its time was up.
    pub(crate) seed_exhausted: bool,
    pub(crate) cpu_us_per_request: CpuPerRequest,
    pub(crate) peak_rss_mib: PeakRss,
    pub(crate) vs_pgbench: Option<VsPgbench>,
    /// Each round's figures (the row pools them).
    pub(crate) rounds: Vec<RoundFigures>,
}

/// What one round of a workload measured, before it is summed up with the other rounds.
#[derive(Debug)]
pub(crate) struct WorkloadSample {
    pub(crate) measurement: Measurement,
    /// Memberships deleted, counted in the database before and after.
    pub(crate) deleted: i64,
    /// CPU clock ticks each process spent during the round.
    pub(crate) cpu_ticks: CpuTicks,
    pub(crate) rss: PeakRss,
}

/// CPU clock ticks of each process over a round (`None`: not involved or not measured).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuTicks {
    pub(crate) server: Option<u64>,
    pub(crate) gateway: Option<u64>,
    pub(crate) postgres: Option<u64>,
    pub(crate) client: Option<u64>,
}

/// One round's headline figures, to show how much rounds differ.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct RoundFigures {
    pub(crate) requests_per_second: f64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
}

impl WorkloadReport {
    /// Sums up the rounds of a workload: latencies pooled, counts and CPU added, peaks maxed.
    /// CPU per request divides by every request sent, warm-up included.
    pub(crate) fn new(
        workload: Workload,
        samples: &[WorkloadSample],
        ticks_per_second: u64,
    ) -> Self {
        let mut total = Measurement::empty();
        let mut rounds = Vec::new();
        let mut deleted = 0;
        let mut ticks = [Some(0u64); 4];
        let mut rss = PeakRss::default();
        for sample in samples {
            let m = &sample.measurement;
            rounds.push(RoundFigures {
                requests_per_second: m.throughput(),
                p50_us: m.latency.value_at_quantile(0.5),
                p99_us: m.latency.value_at_quantile(0.99),
            });
            total.merge(m);
            deleted += sample.deleted;
            let t = sample.cpu_ticks;
            for (acc, value) in ticks
                .iter_mut()
                .zip([t.server, t.gateway, t.postgres, t.client])
            {
                *acc = acc.zip(value).map(|(a, v)| a + v);
            }
            rss.server = max_option(rss.server, sample.rss.server);
            rss.gateway = max_option(rss.gateway, sample.rss.gateway);
        }
        let requests = total.sent + total.primed;
        let per_request = |ticks: Option<u64>| {
            let ticks = ticks?;
            (requests > 0 && !samples.is_empty())
                .then(|| ticks as f64 * 1e6 / ticks_per_second as f64 / requests as f64)
        };
        Self {
            workload,
            requests_per_second: total.throughput(),
            latency_us: LatencySummary::of(&total.latency),
            errors: total.error_count(),
            error_kinds: total.errors.clone(),
            sent: total.sent,
            succeeded: total.ok,
            deleted,
            measured_seconds: total.window.as_secs_f64(),
            seed_exhausted: total.exhausted,
            cpu_us_per_request: CpuPerRequest {
                server: per_request(ticks[0]),
                gateway: per_request(ticks[1]),
                postgres: per_request(ticks[2]),
                client: per_request(ticks[3]),
            },
            peak_rss_mib: rss,
            vs_pgbench: None,
            rounds,
        }
    }
}

fn max_option(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The workloads run on one seed.
#[derive(Debug, Serialize)]
pub(crate) struct RunReport {
    pub(crate) label: String,
    pub(crate) memberships: u64,
    pub(crate) seed_seconds: f64,
    pub(crate) workloads: Vec<WorkloadReport>,
}

impl RunReport {
    /// Fills in each row's ratios to the pgbench row, if there is one.
    pub(crate) fn compare_to_pgbench(&mut self) {
        let Some((rate, p99)) = self
            .workloads
            .iter()
            .find(|w| w.workload == Workload::Pgbench)
            .map(|w| (w.requests_per_second, w.latency_us.p99))
        else {
            return;
        };
        for row in &mut self.workloads {
            row.vs_pgbench = Some(VsPgbench {
                throughput: ratio(row.requests_per_second, rate),
                p99: ratio(row.latency_us.p99 as f64, p99 as f64),
            });
        }
    }

    pub(crate) fn workload(&self, workload: Workload) -> Option<&WorkloadReport> {
        self.workloads.iter().find(|w| w.workload == workload)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// `--scale`: a workload's figures at the smallest and the largest seed.
#[derive(Debug, Serialize)]
pub(crate) struct ScaleRow {
    pub(crate) workload: Workload,
    pub(crate) small_memberships: u64,
    pub(crate) large_memberships: u64,
    pub(crate) p50_small_us: u64,
    pub(crate) p50_large_us: u64,
    /// p50 at the large seed ÷ p50 at the small one.
    pub(crate) p50_ratio: f64,
    /// Requests a second at the large seed ÷ at the small one.
    pub(crate) throughput_ratio: f64,
}

pub(crate) fn scale_rows(small: &RunReport, large: &RunReport) -> Vec<ScaleRow> {
    small
        .workloads
        .iter()
        .filter_map(|s| {
            let l = large.workload(s.workload)?;
            Some(ScaleRow {
                workload: s.workload,
                small_memberships: small.memberships,
                large_memberships: large.memberships,
                p50_small_us: s.latency_us.p50,
                p50_large_us: l.latency_us.p50,
                p50_ratio: ratio(l.latency_us.p50 as f64, s.latency_us.p50 as f64),
                throughput_ratio: ratio(l.requests_per_second, s.requests_per_second),
            })
        })
        .collect()
}

/// One of the goals, checked.
#[derive(Debug, Serialize)]
pub(crate) struct Goal {
    pub(crate) goal: String,
    pub(crate) value: f64,
    pub(crate) target: String,
    pub(crate) met: bool,
}

/// The goals, against `run` (the largest seed) and the scale rows if any. Only the goals
/// whose figures were measured are listed. A `--scale` run compares sizes only: its short
/// counted runs include pgbench's connection start-up and ramp, which skews the ratios to
/// pgbench and the CPU per request (the default timed run measures those).
pub(crate) fn goals(run: &RunReport, scale: &[ScaleRow]) -> Vec<Goal> {
    let mut goals = Vec::new();
    let timed = scale.is_empty();
    let mut at_least = |goal: String, value: f64, target: f64| {
        goals.push(Goal {
            goal,
            value,
            target: format!(">= {target}"),
            met: value >= target,
        });
    };
    for (workload, target) in [(Workload::Rest, 0.7), (Workload::Grpc, 0.8)] {
        if let Some(vs) = run.workload(workload).and_then(|w| w.vs_pgbench)
            && timed
        {
            at_least(
                format!("{} req/s / pgbench req/s", workload.name()),
                vs.throughput,
                target,
            );
        }
    }
    let mut at_most = |goal: String, value: Option<f64>, target: f64, unit: &str| {
        if let Some(value) = value {
            goals.push(Goal {
                goal,
                value,
                target: format!("<= {target}{unit}"),
                met: value <= target,
            });
        }
    };
    for workload in [Workload::Rest, Workload::Grpc] {
        let Some(row) = run.workload(workload).filter(|_| timed) else {
            continue;
        };
        let name = workload.name();
        at_most(
            format!("{name} p99 / pgbench p99"),
            row.vs_pgbench.map(|v| v.p99),
            2.0,
            "",
        );
        let cpu = &row.cpu_us_per_request;
        let services = match workload {
            Workload::Rest => cpu.server.zip(cpu.gateway).map(|(s, g)| s + g),
            _ => cpu.server,
        };
        at_most(
            format!("{name}: server+gateway CPU per removal (µs)"),
            services,
            100.0,
            " µs",
        );
    }
    let peak = |f: fn(&PeakRss) -> Option<f64>| {
        run.workloads
            .iter()
            .filter_map(|w| f(&w.peak_rss_mib))
            .reduce(f64::max)
    };
    at_most(
        "peak RSS of groups-server (MiB)".into(),
        peak(|r| r.server),
        50.0,
        " MiB",
    );
    at_most(
        "peak RSS of groups-gateway (MiB)".into(),
        peak(|r| r.gateway),
        50.0,
        " MiB",
    );
    for row in scale.iter().filter(|r| r.workload != Workload::Pgbench) {
        at_most(
            format!(
                "{} p50 at {} / p50 at {}",
                row.workload.name(),
                row.large_memberships,
                row.small_memberships
            ),
            Some(row.p50_ratio),
            1.2,
            "",
        );
    }
    let errors: u64 = run.workloads.iter().map(|w| w.errors).sum();
    at_most("errors".into(), Some(errors as f64), 0.0, "");
    goals
}

/// The human table of one run.
pub(crate) fn table(run: &RunReport) -> String {
    let header = [
        "workload",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "vs pgbench",
        "p99 vs pg",
        "CPU µs/req: server",
        "gateway",
        "postgres",
        "client",
        "RSS MiB: server",
        "gateway",
    ];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    for w in &run.workloads {
        let l = &w.latency_us;
        let c = &w.cpu_us_per_request;
        rows.push(vec![
            w.workload.name().to_owned(),
            format!("{:.0}", w.requests_per_second),
            millis(l.p50),
            millis(l.p90),
            millis(l.p99),
            millis(l.max),
            w.errors.to_string(),
            w.vs_pgbench
                .map_or("-".into(), |v| format!("{:.2}", v.throughput)),
            w.vs_pgbench.map_or("-".into(), |v| format!("{:.2}", v.p99)),
            optional(c.server, 1),
            optional(c.gateway, 1),
            optional(c.postgres, 1),
            optional(c.client, 1),
            optional(w.peak_rss_mib.server, 1),
            optional(w.peak_rss_mib.gateway, 1),
        ]);
    }
    let mut out = format_columns(&rows);
    for w in &run.workloads {
        for (kind, n) in &w.error_kinds {
            let _ = writeln!(out, "  {} error: {n} x {kind}", w.workload.name());
        }
        if w.seed_exhausted {
            let _ = writeln!(
                out,
                "  {}: used up its share of the seed before its time was up; seed more \
                 (--groups/--users)",
                w.workload.name()
            );
        }
        if i64::try_from(w.succeeded) != Ok(w.deleted) {
            let _ = writeln!(
                out,
                "  {}: {} successful answers but {} memberships deleted",
                w.workload.name(),
                w.succeeded,
                w.deleted
            );
        }
    }
    out
}

/// The `--scale` comparison.
pub(crate) fn scale_table(rows: &[ScaleRow]) -> String {
    let mut table = vec![
        [
            "workload",
            "memberships",
            "p50 ms",
            "memberships",
            "p50 ms",
            "p50 ratio",
            "req/s ratio",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for r in rows {
        table.push(vec![
            r.workload.name().to_owned(),
            r.small_memberships.to_string(),
            millis(r.p50_small_us),
            r.large_memberships.to_string(),
            millis(r.p50_large_us),
            format!("{:.2}", r.p50_ratio),
            format!("{:.2}", r.throughput_ratio),
        ]);
    }
    format_columns(&table)
}

/// The goals, one a line.
pub(crate) fn goals_text(goals: &[Goal]) -> String {
    let mut out = String::new();
    for g in goals {
        let _ = writeln!(
            out,
            "  [{}] {}: {:.2} (goal {})",
            if g.met { "met" } else { "MISSED" },
            g.goal,
            g.value,
            g.target
        );
    }
    out
}

fn millis(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// Left-aligns the first column and right-aligns the others.
fn format_columns(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c == 0 {
                let _ = write!(line, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "  {cell:>w$}", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["a".to_owned(), "long header".to_owned()],
            vec!["longer".to_owned(), "1".to_owned()],
        ];
        assert_eq!(
            format_columns(&rows),
            "a       long header\nlonger            1\n"
        );
    }
}
