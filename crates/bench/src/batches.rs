//! The batches the server formed: its `groups_server_batch_size` histogram (removals per
//! statement), read from its `/metrics` page before and after a workload.
//!
//! The buckets (powers of two) bound a batch's size only to a range, but the histogram's sum
//! and count are exact, so the mean, removals per statement and per commit, is the size the
//! batched pgbench baseline runs at.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, ensure};
use serde::Serialize;

/// The metric's name on the server's page.
const METRIC: &str = "groups_server_batch_size";

/// A snapshot (or the difference of two) of the histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct BatchSizes {
    /// Statements per bucket, not cumulative, by the bucket's upper bound (`+Inf` last).
    pub(crate) buckets: Vec<(String, u64)>,
    /// Removals in all.
    pub(crate) removals: f64,
    /// Statements in all.
    pub(crate) statements: u64,
}

impl BatchSizes {
    /// Reads the histogram from the server's metrics page at `addr`.
    pub(crate) fn scrape(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self::parse(&metrics_page(addr)?))
    }

    /// Reads the histogram from a Prometheus text page; empty when the page has none (no
    /// removal yet).
    pub(crate) fn parse(page: &str) -> Self {
        let mut sizes = Self::default();
        let mut cumulative = Vec::new();
        for line in page.lines() {
            let Some(rest) = line.strip_prefix(METRIC) else {
                continue;
            };
            let Some((name, value)) = rest.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            if let Some(labels) = name.strip_prefix("_bucket{") {
                if let Some(le) = label(labels, "le") {
                    cumulative.push((le.to_owned(), value as u64));
                }
            } else if name == "_sum" {
                sizes.removals = value;
            } else if name == "_count" {
                sizes.statements = value as u64;
            }
        }
        let mut below = 0;
        for (le, count) in cumulative {
            sizes.buckets.push((le, count.saturating_sub(below)));
            below = below.max(count);
        }
        sizes
    }

    /// What happened between `before` and this snapshot.
    pub(crate) fn since(&self, before: &Self) -> Self {
        let earlier = |le: &str| {
            before
                .buckets
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0, |(_, n)| *n)
        };
        Self {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| (le.clone(), n.saturating_sub(earlier(le))))
                .collect(),
            removals: (self.removals - before.removals).max(0.0),
            statements: self.statements.saturating_sub(before.statements),
        }
    }

    /// Removals per statement.
    pub(crate) fn mean(&self) -> Option<f64> {
        (self.statements > 0).then(|| self.removals / self.statements as f64)
    }

    /// The batch size a baseline should run at: the mean, rounded, at least 1.
    pub(crate) fn typical(&self) -> Option<u32> {
        self.mean().map(|mean| (mean.round() as u32).max(1))
    }

    /// `mean 3.1 over 52,000 statements; by size: 1: 20%, 2: 31%, 3-4: 40%, 5-8: 9%`.
    pub(crate) fn describe(&self) -> String {
        let Some(mean) = self.mean() else {
            return "no batch".to_owned();
        };
        let mut text = format!(
            "mean {mean:.2} over {} statements; by size:",
            self.statements
        );
        let mut lower = 1;
        for (le, n) in &self.buckets {
            let upper = le
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(|v| v as u64);
            let range = match upper {
                Some(upper) if upper <= lower => upper.to_string(),
                Some(upper) => format!("{lower}-{upper}"),
                None => format!(">{}", lower - 1),
            };
            if *n > 0 {
                let share = 100.0 * *n as f64 / self.statements as f64;
                let _ = write!(text, " {range}: {share:.0}%,");
            }
            lower = upper.map_or(lower, |u| u + 1);
        }
        text.trim_end_matches(',').to_owned()
    }
}

/// The value of label `name` in `a="x",b="y"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

/// The server's Prometheus page at `addr` (`GET /metrics` over HTTP/1.0, read to the end).
fn metrics_page(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the metrics page at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("");
    ensure!(
        status.contains(" 200 "),
        "{addr}/metrics answered {status:?}"
    );
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# TYPE groups_server_batch_size histogram
groups_server_batch_size_bucket{le=\"1\"} 10
groups_server_batch_size_bucket{le=\"2\"} 30
groups_server_batch_size_bucket{le=\"4\"} 40
groups_server_batch_size_bucket{le=\"+Inf\"} 40
groups_server_batch_size_sum 90
groups_server_batch_size_count 40
groups_server_rpcs_total{method=\"x\",code=\"OK\"} 7
";

    #[test]
    fn reads_the_histogram_and_its_mean() {
        let sizes = BatchSizes::parse(PAGE);
        assert_eq!(sizes.statements, 40);
        assert_eq!(sizes.removals, 90.0);
        assert_eq!(
            sizes.buckets,
            [
                ("1".to_owned(), 10),
                ("2".to_owned(), 20),
                ("4".to_owned(), 10),
                ("+Inf".to_owned(), 0)
            ]
        );
        assert_eq!(sizes.mean(), Some(2.25));
        assert_eq!(sizes.typical(), Some(2));
        assert_eq!(
            sizes.describe(),
            "mean 2.25 over 40 statements; by size: 1: 25%, 2: 50%, 3-4: 25%"
        );
    }

    #[test]
    fn differences_cover_one_workload() {
        let before = BatchSizes::parse(PAGE);
        let after = BatchSizes::parse(
            &PAGE
                .replace("} 40", "} 50")
                .replace("_sum 90", "_sum 130")
                .replace("_count 40", "_count 50"),
        );
        let delta = after.since(&before);
        assert_eq!(delta.statements, 10);
        assert_eq!(delta.mean(), Some(4.0));
        assert_eq!(delta.buckets[2], ("4".to_owned(), 10));
        assert_eq!(BatchSizes::parse("").mean(), None);
        assert_eq!(BatchSizes::default().describe(), "no batch");
    }
}
