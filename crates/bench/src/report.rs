//! The results: at each point (durability × clients) one row per workload, the services next
//! to the naive and batched pgbench baselines, printed as tables and written as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::batches::BatchSizes;
use crate::cli::Workload::{self, Grpc, Pgbench, Rest};
use crate::measurement::{LatencySummary, Measurement};

/// Cores other processes may keep busy during a workload before its figures are flagged.
const BUSY_CORES: f64 = 0.2;

/// CPU time per removal (all removals of the workload, warm-up included), in µs. `None`: the
/// process takes no part in the workload or could not be measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Cpu {
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

/// One workload at one point.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) workload: Workload,
    /// Removals per statement of a pgbench workload (REST and gRPC: see `batches`).
    pub(crate) batch: Option<f64>,
    /// Clients of the workload (a batched pgbench keeps as many removals in flight with fewer).
    pub(crate) clients: usize,
    pub(crate) removals_per_second: f64,
    pub(crate) latency_us: LatencySummary,
    pub(crate) errors: u64,
    pub(crate) error_kinds: BTreeMap<String, u64>,
    /// Removals asked for in all (warm-up and tail included), those answered with success, and
    /// the memberships they deleted as counted in the database afterwards.
    pub(crate) sent: u64,
    pub(crate) succeeded: u64,
    pub(crate) deleted: i64,
    pub(crate) measured_seconds: f64,
    /// The workload used up the seed before its time was up.
    pub(crate) seed_exhausted: bool,
    pub(crate) cpu_us_per_removal: Cpu,
    pub(crate) peak_rss_mib: PeakRss,
    /// Cores kept busy by processes other than the benchmark's own while it ran.
    pub(crate) other_cores: Option<f64>,
    /// The batches the server formed (REST and gRPC).
    pub(crate) batches: Option<BatchSizes>,
}

impl Row {
    /// A row from a measurement whose successes deleted `deleted` memberships.
    pub(crate) fn new(
        workload: Workload,
        clients: usize,
        mut m: Measurement,
        deleted: i64,
    ) -> Self {
        let missing = u64::try_from(i128::from(m.ok) - i128::from(deleted)).unwrap_or(0);
        m.add_errors("answered success, deleted nothing", missing);
        Self {
            workload,
            batch: None,
            clients,
            removals_per_second: m.throughput(),
            latency_us: LatencySummary::of(&m.latency),
            errors: m.error_count(),
            sent: m.sent,
            succeeded: m.ok,
            deleted,
            measured_seconds: m.window.as_secs_f64(),
            seed_exhausted: m.exhausted,
            error_kinds: m.errors,
            cpu_us_per_removal: Cpu::default(),
            peak_rss_mib: PeakRss::default(),
            other_cores: None,
            batches: None,
        }
    }

    /// `pgbench B=4` for a batched pgbench row, else the workload's name.
    pub(crate) fn label(&self) -> String {
        match (self.workload, self.batch) {
            (Workload::PgbenchBatched, Some(b)) => format!("pgbench B={b}"),
            (Workload::PgbenchUnaudited, Some(b)) => format!("pgbench B={b} unaudited"),
            (workload, _) => workload.name(),
        }
    }
}

/// Every workload at one durability and client count.
#[derive(Debug, Serialize)]
pub(crate) struct Point {
    pub(crate) durable: bool,
    pub(crate) fsync: String,
    pub(crate) synchronous_commit: String,
    pub(crate) clients: u16,
    /// `/proc/loadavg` before the point's first workload.
    pub(crate) load_average: String,
    pub(crate) rows: Vec<Row>,
}

impl Point {
    pub(crate) fn row(&self, workload: Workload) -> Option<&Row> {
        self.rows.iter().find(|r| r.workload == workload)
    }

    /// The batched pgbench row at the batch size `workload` made the server form (the naive
    /// one when that size is 1).
    pub(crate) fn batched_for(&self, workload: Workload) -> Option<&Row> {
        let batch = self.row(workload)?.batches.as_ref()?.typical()?;
        if batch == 1 {
            return self.row(Workload::Pgbench);
        }
        self.rows
            .iter()
            .find(|r| r.workload == Workload::PgbenchBatched && r.batch == Some(f64::from(batch)))
    }

    /// The batched baseline of gRPC's batch size, else of REST's.
    pub(crate) fn batched(&self) -> Option<&Row> {
        self.batched_for(Grpc).or_else(|| self.batched_for(Rest))
    }

    /// `row`'s removals a second ÷ `baseline`'s.
    pub(crate) fn throughput_ratio(&self, row: &Row, baseline: Option<&Row>) -> Option<f64> {
        ratio(row.removals_per_second, baseline?.removals_per_second)
    }
}

/// The durabilities of `points`, in order.
pub(crate) fn durabilities(points: &[Point]) -> Vec<bool> {
    let mut durabilities: Vec<bool> = points.iter().map(|p| p.durable).collect();
    durabilities.dedup();
    durabilities
}

pub(crate) fn durability_label(durable: bool) -> &'static str {
    if durable { "durable" } else { "fsync off" }
}

pub(crate) fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// A cell of a point's table, for one of its rows.
type RowCell = fn(&Point, &Row) -> String;
/// A cell of the summary, for one point.
type PointCell = fn(&Point) -> String;

/// The columns of a point's table: header and cell.
#[rustfmt::skip]
const POINT_COLUMNS: [(&str, RowCell); 16] = [
    ("workload", |_, r| r.label()),
    ("clients", |_, r| r.clients.to_string()),
    ("removals/s", |_, r| format!("{:.0}", r.removals_per_second)),
    ("÷ naive", |p, r| fixed(p.throughput_ratio(r, p.row(Pgbench)), 2)),
    ("÷ batched", |p, r| fixed(p.throughput_ratio(r, p.batched_for(r.workload)), 2)),
    ("p50 ms", |_, r| millis(r.latency_us.p50)),
    ("p99 ms", |_, r| millis(r.latency_us.p99)),
    ("p99 ÷ naive", |p, r| fixed(p.row(Pgbench).and_then(|n| ratio(p99(r), p99(n))), 2)),
    ("errors", |_, r| r.errors.to_string()),
    ("CPU µs/removal: server", |_, r| fixed(r.cpu_us_per_removal.server, 1)),
    ("gateway", |_, r| fixed(r.cpu_us_per_removal.gateway, 1)),
    ("postgres", |_, r| fixed(r.cpu_us_per_removal.postgres, 1)),
    ("client", |_, r| fixed(r.cpu_us_per_removal.client, 1)),
    ("RSS MiB: server", |_, r| fixed(r.peak_rss_mib.server, 1)),
    ("gateway", |_, r| fixed(r.peak_rss_mib.gateway, 1)),
    ("other cores", |_, r| fixed(r.other_cores, 2)),
];

/// The columns of the summary: header and cell.
#[rustfmt::skip]
const SUMMARY_COLUMNS: [(&str, PointCell); 16] = [
    ("durability", |p| durability_label(p.durable).to_owned()),
    ("clients", |p| p.clients.to_string()),
    ("REST/s", |p| rate(p.row(Rest))),
    ("gRPC/s", |p| rate(p.row(Grpc))),
    ("naive pg/s", |p| rate(p.row(Pgbench))),
    ("batched pg/s", |p| rate(p.batched())),
    ("B", |p| fixed(p.batched().and_then(|b| b.batch), 0)),
    ("REST÷naive", |p| vs(p, Rest, p.row(Pgbench))),
    ("gRPC÷naive", |p| vs(p, Grpc, p.row(Pgbench))),
    ("REST÷batched", |p| vs(p, Rest, p.batched_for(Rest))),
    ("gRPC÷batched", |p| vs(p, Grpc, p.batched_for(Grpc))),
    ("p99 ms: REST", |p| p99_ms(p.row(Rest))),
    ("gRPC", |p| p99_ms(p.row(Grpc))),
    ("naive", |p| p99_ms(p.row(Pgbench))),
    ("batched", |p| p99_ms(p.batched())),
    ("errors", |p| p.rows.iter().map(|r| r.errors).sum::<u64>().to_string()),
];

/// The table of one point, and below it the errors and the batches the server formed.
pub(crate) fn point_table(point: &Point) -> String {
    let header = POINT_COLUMNS.map(|(name, _)| name.to_owned()).to_vec();
    let cells = |row| POINT_COLUMNS.map(|(_, cell)| cell(point, row)).to_vec();
    let lines = point.rows.iter().map(cells);
    let mut out = format_columns(&std::iter::once(header).chain(lines).collect::<Vec<_>>());
    for row in &point.rows {
        let name = row.label();
        let mut note = |text: String| out.push_str(&format!("  {name}{text}\n"));
        for (kind, n) in &row.error_kinds {
            note(format!(" error: {n} x {kind}"));
        }
        if row.seed_exhausted {
            note(": used up the seed before its time was up; seed more (--groups/--users)".into());
        }
        let (ok, deleted) = (row.succeeded, row.deleted);
        if i64::try_from(ok) != Ok(deleted) {
            note(format!(": {ok} successful answers but {deleted} deleted"));
        }
        if let Some(busy) = row.other_cores.filter(|c| *c > BUSY_CORES) {
            note(format!(
                ": other processes kept {busy:.2} cores busy: rerun"
            ));
        }
        if let Some(batches) = &row.batches {
            note(format!(": server batches: {}", batches.describe()));
        }
    }
    out
}

/// One line per point: the services next to both baselines.
pub(crate) fn summary_table(points: &[Point]) -> String {
    let header = SUMMARY_COLUMNS.map(|(name, _)| name.to_owned()).to_vec();
    let cells = |point| SUMMARY_COLUMNS.map(|(_, cell)| cell(point)).to_vec();
    let lines = points.iter().map(cells);
    format_columns(&std::iter::once(header).chain(lines).collect::<Vec<_>>())
}

fn rate(row: Option<&Row>) -> String {
    fixed(row.map(|r| r.removals_per_second), 0)
}

pub(crate) fn p99(row: &Row) -> f64 {
    row.latency_us.p99 as f64
}

fn p99_ms(row: Option<&Row>) -> String {
    row.map_or("-".into(), |r| millis(r.latency_us.p99))
}

/// `workload`'s removals a second ÷ `baseline`'s.
fn vs(point: &Point, workload: Workload, baseline: Option<&Row>) -> String {
    let row = point.row(workload);
    fixed(row.and_then(|r| point.throughput_ratio(r, baseline)), 2)
}

fn millis(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// Left-aligns the first column and right-aligns the others.
pub(crate) fn format_columns(rows: &[Vec<String>]) -> String {
    let width = |c: usize| {
        rows.iter()
            .filter_map(|r| r.get(c))
            .map(|s| s.chars().count())
            .max()
    };
    let widths: Vec<usize> = (0..).map_while(width).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, (cell, w)) in row.iter().zip(&widths).enumerate() {
            line += &if c == 0 {
                format!("{cell:<w$}")
            } else {
                format!("  {cell:>w$}")
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::measurement::new_histogram;

    /// A row of `rate` removals a second, p50 and p99 in µs (below 2048: recorded exactly),
    /// with no error.
    pub(crate) fn row(workload: Workload, rate: f64, p50: u64, p99: u64) -> Row {
        let mut latency = new_histogram();
        latency.record_n(p50, 50).unwrap();
        latency.record_n(p99, 50).unwrap();
        let n = rate as u64;
        let m = Measurement {
            latency,
            measured_ok: n,
            window: Duration::from_secs(1),
            sent: n,
            ok: n,
            used_until: n,
            ..Measurement::default()
        };
        Row::new(workload, 32, m, n as i64)
    }

    /// A point where gRPC made the server form batches of 4 and pgbench ran at that size.
    pub(crate) fn point(clients: u16) -> Point {
        let mut grpc = row(Workload::Grpc, 6000.0, 1000, 1200);
        grpc.batches = Some(BatchSizes {
            buckets: vec![("4".into(), 100)],
            removals: 400.0,
            statements: 100,
        });
        grpc.cpu_us_per_removal.server = Some(40.0);
        let mut batched = row(Workload::PgbenchBatched, 20000.0, 400, 600);
        batched.batch = Some(4.0);
        Point {
            durable: false,
            fsync: "off".into(),
            synchronous_commit: "off".into(),
            clients,
            load_average: "0.10 0.20 0.30 1/100 42".into(),
            rows: vec![
                row(Workload::Rest, 4000.0, 1500, 1800),
                grpc,
                row(Workload::Pgbench, 5000.0, 500, 800),
                batched,
            ],
        }
    }

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

    #[test]
    fn services_are_compared_with_both_baselines() {
        let point = point(32);
        let grpc = point.row(Workload::Grpc).unwrap();
        let naive = point.row(Workload::Pgbench);
        assert_eq!(point.throughput_ratio(grpc, naive), Some(1.2));
        let batched = point.batched_for(Workload::Grpc).unwrap();
        assert_eq!(batched.label(), "pgbench B=4");
        assert_eq!(point.throughput_ratio(grpc, Some(batched)), Some(0.3));
        // REST formed no batch it could be compared with; at a batch of 1 the naive baseline
        // is the batched one.
        assert!(point.batched_for(Workload::Rest).is_none());
        let mut point = point;
        point.rows[0].batches = Some(BatchSizes {
            buckets: vec![("1".into(), 9), ("2".into(), 1)],
            removals: 11.0,
            statements: 10,
        });
        let naive = point.row(Workload::Pgbench).unwrap();
        assert!(std::ptr::eq(
            point.batched_for(Workload::Rest).unwrap(),
            naive
        ));

        let table = point_table(&point);
        let grpc_line = table.lines().find(|l| l.starts_with("grpc")).unwrap();
        let cells: Vec<&str> = grpc_line.split_whitespace().collect();
        assert_eq!(
            &cells[..8],
            ["grpc", "32", "6000", "1.20", "0.30", "1.00", "1.20", "1.50"]
        );
        assert!(
            table.contains("grpc: server batches: mean 4.00 over 100 statements"),
            "{table}"
        );

        let summary = summary_table(&[point]);
        let line = summary.lines().nth(1).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[..3], ["fsync", "off", "32"]);
        assert_eq!(
            cells[3..11],
            ["4000", "6000", "5000", "20000", "4", "0.80", "1.20", "0.80"]
        );
    }

    #[test]
    fn a_success_that_deleted_nothing_is_an_error() {
        let mut r = row(Workload::Rest, 100.0, 1000, 2000);
        assert_eq!(r.errors, 0);
        let m = Measurement {
            measured_ok: 10,
            window: Duration::from_secs(1),
            sent: 12,
            ok: 10,
            errors: BTreeMap::from([("HTTP 503 unavailable".to_owned(), 2)]),
            used_until: 12,
            ..Measurement::default()
        };
        r = Row::new(Workload::Rest, 32, m, 9);
        assert_eq!(r.errors, 3);
        assert_eq!(r.error_kinds["answered success, deleted nothing"], 1);
    }
}
