//! What every binary does alike: telemetry set up once per process (`tracing` events to stderr,
//! human or JSON, filtered by `RUST_LOG`, default `info`), the one JSON line announcing the bound
//! address on stdout, and the shutdown signal (Ctrl-C or SIGTERM).

use std::io::Write;
use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. Later calls (tests, `groupsctl up`) are harmless no-ops.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Prints `{"listening":"ADDR"}` on stdout and flushes, so a supervisor or a test started with
/// port 0 learns the real address.
pub fn announce_listening(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        serde_json::json!({ "listening": addr.to_string() })
    )?;
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

/// Splits a shutdown future in two: the first resolves with `shutdown` (give it to the server's
/// graceful shutdown); the second resolves `drain` later (race the server against it, so requests
/// that never finish cannot hold the process up forever).
pub fn bounded_drain(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: std::time::Duration,
) -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (began, mut watch) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = began.send(true);
    };
    let deadline = async move {
        if watch.wait_for(|began| *began).await.is_err() {
            // The server finished without a shutdown: nothing to bound.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(drain).await;
    };
    (shutdown, deadline)
}
