//! `groups-server`: the gRPC service, configured by flags or environment.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use groups_server::ServerConfig;
use groups_store::PoolConfig;
use groups_telemetry::LogFormat;

/// Serves groups.v1.GroupMembers (gRPC) over PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// PostgreSQL URL, e.g. postgres://user:pass@host:5432/groups.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Address to serve gRPC on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "GROUPS_SERVER_LISTEN", default_value = "0.0.0.0:50051")]
    listen: SocketAddr,
    /// Most database connections in the pool.
    #[arg(long, env = "GROUPS_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pool_size: u32,
    /// Milliseconds a request waits for a free database connection before answering UNAVAILABLE.
    #[arg(long, env = "GROUPS_POOL_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pool_timeout_ms: u64,
    /// Milliseconds between database probes of the gRPC health service.
    #[arg(long, env = "GROUPS_HEALTH_INTERVAL_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    health_interval_ms: u64,
    /// Log format: human or json (filter with RUST_LOG, default info).
    #[arg(long, env = "GROUPS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    groups_telemetry::init(args.log_format);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    announce(listener.local_addr()?)?;
    let config = ServerConfig {
        pool: PoolConfig {
            max_size: args.pool_size,
            min_idle: None,
            checkout_timeout: Duration::from_millis(args.pool_timeout_ms),
        },
        health_interval: Duration::from_millis(args.health_interval_ms),
        ..ServerConfig::new(args.database_url)
    };
    groups_server::run(listener, config, shutdown_signal()).await
}

/// Prints the bound address as one JSON line, so a supervisor (or a test) can find the port.
fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        serde_json::json!({ "listening": addr.to_string() })
    )?;
    stdout.flush()
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received; draining");
}
