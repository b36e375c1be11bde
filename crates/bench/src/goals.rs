//! The performance goals (issue 10), as data: each names the client count it is measured at,
//! what is measured and its bound, and is checked at every durability the run measured. They
//! are reported, met or missed with the value measured, and never asserted.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::Workload;
use crate::report::{Point, Row, durabilities, durability_label, p99, ratio};
use Bound::{AtLeast, AtMost};
use Workload::{Grpc, Pgbench, Rest};

/// Which side of the bound a goal is met on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

type Measure = fn(&Point) -> Option<f64>;

/// The goals, in the order they are printed: each measured at the point of that many clients,
/// met within its bound.
#[rustfmt::skip]
pub(crate) const GOALS: [(u16, &str, Bound, Measure); 11] = [
    (32, "gRPC removals/s ÷ naive pgbench's", AtLeast(1.2), |p| vs_naive(p, Grpc, rate)),
    (32, "REST removals/s ÷ naive pgbench's", AtLeast(0.8), |p| vs_naive(p, Rest, rate)),
    (32, "gRPC p99 ÷ naive pgbench's", AtMost(2.0), |p| vs_naive(p, Grpc, p99)),
    (32, "REST p99 ÷ naive pgbench's", AtMost(2.0), |p| vs_naive(p, Rest, p99)),
    (32, "server + gateway CPU per REST removal, µs", AtMost(100.0), |p| {
        let cpu = p.row(Rest)?.cpu_us_per_removal;
        Some(cpu.server? + cpu.gateway?)
    }),
    (32, "server CPU per gRPC removal, µs", AtMost(50.0), |p| p.row(Grpc)?.cpu_us_per_removal.server),
    (1, "REST p50 − naive pgbench p50, ms", AtMost(0.3), |p| {
        Some((p50(p.row(Rest)?) - p50(p.row(Pgbench)?)) / 1000.0)
    }),
    (32, "peak RSS of the server, MiB", AtMost(50.0), |p| peak(p, |r| r.peak_rss_mib.server)),
    (32, "peak RSS of the gateway, MiB", AtMost(50.0), |p| peak(p, |r| r.peak_rss_mib.gateway)),
    (32, "errors (a success that deleted nothing is one)", AtMost(0.0), errors),
    (512, "errors of any kind (5xx and timeouts included)", AtMost(0.0), errors),
];

fn rate(row: &Row) -> f64 {
    row.removals_per_second
}

fn p50(row: &Row) -> f64 {
    row.latency_us.p50 as f64
}

fn errors(point: &Point) -> Option<f64> {
    Some(point.rows.iter().map(|r| r.errors).sum::<u64>() as f64)
}

fn vs_naive(point: &Point, workload: Workload, figure: fn(&Row) -> f64) -> Option<f64> {
    ratio(
        figure(point.row(workload)?),
        figure(point.row(Workload::Pgbench)?),
    )
}

fn peak(point: &Point, figure: fn(&Row) -> Option<f64>) -> Option<f64> {
    point.rows.iter().filter_map(figure).reduce(f64::max)
}

/// A goal checked at one durability.
#[derive(Debug, Serialize)]
pub(crate) struct Verdict {
    pub(crate) durability: &'static str,
    pub(crate) clients: u16,
    pub(crate) goal: &'static str,
    pub(crate) target: String,
    /// `None`: that point was not run (or the figure not measured).
    pub(crate) value: Option<f64>,
    pub(crate) met: Option<bool>,
}

/// Every goal at every durability the run measured.
pub(crate) fn check(points: &[Point]) -> Vec<Verdict> {
    let verdicts = durabilities(points).into_iter().flat_map(|durable| {
        GOALS.iter().map(move |&(clients, goal, bound, measure)| {
            let point = (points.iter()).find(|p| p.durable == durable && p.clients == clients);
            let value = point.and_then(measure);
            let (sign, target, met) = match bound {
                AtLeast(t) => ("≥", t, value.map(|v| v >= t)),
                AtMost(t) => ("≤", t, value.map(|v| v <= t)),
            };
            Verdict {
                durability: durability_label(durable),
                clients,
                goal,
                target: format!("{sign} {target}"),
                value,
                met,
            }
        })
    });
    verdicts.collect()
}

/// One line a verdict.
pub(crate) fn render(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        let mark = match v.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not run",
        };
        let value = v.value.map_or("-".to_owned(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "  [{mark}] {}, {} clients: {} {} (measured {value})",
            v.durability, v.clients, v.goal, v.target
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::point;

    #[test]
    fn goals_are_checked_at_their_own_client_count() {
        let verdicts = check(&[point(32)]);
        assert_eq!(verdicts.len(), GOALS.len());
        let find = |goal: &str| verdicts.iter().find(|v| v.goal == goal).unwrap();
        let grpc = find("gRPC removals/s ÷ naive pgbench's");
        assert_eq!((grpc.value, grpc.met), (Some(1.2), Some(true)));
        let rest = find("REST removals/s ÷ naive pgbench's");
        assert_eq!((rest.value, rest.met), (Some(0.8), Some(true)));
        let p99 = find("REST p99 ÷ naive pgbench's");
        assert_eq!((p99.value, p99.met), (Some(2.25), Some(false)));
        let cpu = find("server CPU per gRPC removal, µs");
        assert_eq!((cpu.value, cpu.met), (Some(40.0), Some(true)));
        // Not measured: the gateway's CPU, and the points at 1 and 512 clients.
        assert_eq!(find("server + gateway CPU per REST removal, µs").met, None);
        assert_eq!(find("REST p50 − naive pgbench p50, ms").met, None);
        assert_eq!(find(GOALS[10].1).met, None);
        assert_eq!(find(GOALS[9].1).met, Some(true));

        // At one client, REST p50 1.5 ms against pgbench's 0.5 ms.
        let one = check(&[point(1)]);
        let latency = one.iter().find(|v| v.clients == 1).unwrap();
        assert_eq!((latency.value, latency.met), (Some(1.0), Some(false)));

        let text = render(&verdicts);
        assert!(
            text.contains(
                "[MISSED] fsync off, 32 clients: REST p99 ÷ naive pgbench's ≤ 2 (measured 2.25)"
            ),
            "{text}"
        );
        assert!(
            text.contains("[not run] fsync off, 1 clients: REST p50"),
            "{text}"
        );
    }
}
