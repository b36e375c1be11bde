//! The process's Prometheus recorder: installed once, on first use, whichever part of the process
//! asks first (in `groupsctl up` the server and the gateway share it), and never a reason to fail.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Upper bounds (seconds) of every latency histogram's buckets: 0.5 ms to 10 s, the range
/// between a removal served from a warm pool and the gateway's default deadline.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of every size histogram's buckets (metric names ending in `_size`, such as the
/// server's batch sizes): powers of two up to 1024.
pub const SIZE_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How often histograms are compacted when nobody scrapes them (memory stays bounded).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Mime type of the text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The handle that renders this process's metrics, installing the recorder on first call.
///
/// Were another recorder installed already (not by us), ours is kept aside: the process keeps
/// working and renders an empty page, with a warning in the log.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Only an empty bucket list is refused, and this one is not.
        let builder = builder
            .set_buckets(&LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_size".to_owned()),
                    &SIZE_BUCKETS,
                )
            })
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "latency buckets refused: histograms become summaries");
                PrometheusBuilder::new()
            });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(error) = ::metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
        }
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the metrics upkeep thread");
        }
        handle
    })
}

/// A bounded label for an HTTP method: the standard ones by name, any other (an extension
/// method is any token a client likes) as `other`.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_and_renders_what_is_recorded() {
        let first = metrics();
        ::metrics::counter!("groups_runtime_test_total", "k" => "v").increment(2);
        ::metrics::histogram!("groups_runtime_test_seconds").record(0.003);
        let page = metrics().render();
        assert!(std::ptr::eq(first, metrics()));
        assert!(
            page.contains("groups_runtime_test_total{k=\"v\"} 2"),
            "{page}"
        );
        assert!(
            page.contains("groups_runtime_test_seconds_bucket{le=\"0.005\"} 1"),
            "{page}"
        );
    }

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::DELETE), "DELETE");
        let odd = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
