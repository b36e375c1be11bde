//! What every binary does alike: telemetry set up once per process (`tracing` events to stderr,
//! human or JSON, filtered by `RUST_LOG`, default `info`; spans over OTLP when configured), the
//! Prometheus recorder, request ids, the one JSON line announcing the bound address on stdout,
//! and the shutdown signal (Ctrl-C or SIGTERM).

mod metrics;
mod request_id;
mod serve;
mod trace_export;

use std::io::Write;
use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use metrics::{LATENCY_BUCKETS, PROMETHEUS_CONTENT_TYPE, SIZE_BUCKETS, method_label, metrics};
pub use request_id::{MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER, RequestId};
pub use serve::{ServeConfig, peer_addr, raise_open_files_limit, serve};
pub use trace_export::{Telemetry, continue_trace, exporting, inject, name_span};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber: log lines on stderr and, when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set (and a Tokio runtime is running), span export named `service`. Keep the returned
/// guard until the services stop: dropping it flushes the spans still batched.
///
/// Every event inside a span carries the span's fields (the `request_id` of a request): in
/// human lines as `request{request_id=...}:`, in JSON lines under `"spans"`.
///
/// Later calls (tests, `groupsctl up`) are harmless no-ops.
pub fn init(service: &'static str, format: LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = match format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(lines);
    match trace_export::layer(service) {
        None => {
            let _already_set = registry.try_init();
            Telemetry::off()
        }
        Some((export, provider)) => match registry.with(export).try_init() {
            Ok(()) => trace_export::started(provider),
            Err(_already_set) => {
                let _ = provider.shutdown();
                Telemetry::off()
            }
        },
    }
}

/// Prints `{"listening":"ADDR"}` on stdout and flushes, so a supervisor or a test started with
/// port 0 learns the real address.
pub fn announce_listening(addr: SocketAddr) -> std::io::Result<()> {
    announce_addresses(addr, &[])
}

/// Prints `{"listening":"ADDR","NAME":"ADDR",...}` on stdout and flushes: the bound address and,
/// in the same line, the other addresses the process serves (the server's `"metrics"`).
pub fn announce_addresses(
    listening: SocketAddr,
    others: &[(&str, SocketAddr)],
) -> std::io::Result<()> {
    let mut line = serde_json::Map::new();
    line.insert("listening".to_owned(), listening.to_string().into());
    for (name, address) in others {
        line.insert((*name).to_owned(), address.to_string().into());
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::Value::Object(line))?;
    stdout.flush()
}

/// Completes on Ctrl-C or SIGTERM (where it cannot listen for one, it waits for the other).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
