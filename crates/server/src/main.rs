//! `groups-server`: the gRPC service, configured by flags or environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use groups_runtime::LogFormat;
use groups_server::ServerConfig;
use groups_store::PoolConfig;

/// Serves groups.v1.GroupMembers, groups.v1.Directory and groups.v1.Audit (gRPC) over PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about, args_override_self = true)]
struct Args {
    /// PostgreSQL URL, e.g. postgres://user:pass@host:5432/groups.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Address to serve gRPC on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "GROUPS_SERVER_LISTEN", default_value = "0.0.0.0:50051")]
    listen: String,
    /// Database workers, each with one pooled connection (the pool keeps one more for health
    /// probes and audit retention); default: one per CPU core.
    #[arg(long, env = "GROUPS_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pool_size: Option<u32>,
    /// Most removals a worker runs as one statement (one round trip, one commit).
    #[arg(long, env = "GROUPS_MAX_BATCH", default_value_t = groups_server::DEFAULT_MAX_BATCH, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    max_batch: usize,
    /// Most requests waiting for a database worker; past it, UNAVAILABLE at once.
    #[arg(long, env = "GROUPS_QUEUE_SIZE", default_value_t = groups_server::DEFAULT_QUEUE_SIZE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    queue_size: usize,
    /// Days audit events are kept; older ones are deleted in the background. 0 keeps them forever.
    #[arg(long, env = "GROUPS_AUDIT_RETENTION_DAYS", default_value_t = groups_server::DEFAULT_AUDIT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    audit_retention_days: u32,
    /// Milliseconds between runs of the audit retention (the first runs at start).
    #[arg(long, env = "GROUPS_AUDIT_PRUNE_INTERVAL_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    audit_prune_interval_ms: u64,
    /// Milliseconds a request waits for a free database connection before answering UNAVAILABLE.
    #[arg(long, env = "GROUPS_POOL_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pool_timeout_ms: u64,
    /// Milliseconds a statement may run at the database before it is cancelled there.
    #[arg(long, env = "GROUPS_STATEMENT_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    statement_timeout_ms: u64,
    /// Milliseconds between database probes of the gRPC health service.
    #[arg(long, env = "GROUPS_HEALTH_INTERVAL_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    health_interval_ms: u64,
    /// Milliseconds requests in flight may take to finish after SIGTERM/Ctrl-C.
    #[arg(long, env = "GROUPS_DRAIN_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    drain_timeout_ms: u64,
    /// Log format: human or json (filter with RUST_LOG, default info).
    #[arg(long, env = "GROUPS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Address to serve Prometheus metrics on (GET /metrics); off when not given. Port 0 picks
    /// a free port (printed as "metrics" in the address line).
    #[arg(long, env = "GROUPS_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Held to the end: dropping it flushes the spans not yet exported.
    let _telemetry = groups_runtime::init("groups-server", args.log_format);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let metrics_listener = match args.metrics_listen {
        Some(address) => Some(tokio::net::TcpListener::bind(address).await?),
        None => None,
    };
    let mut others = Vec::new();
    if let Some(metrics_listener) = &metrics_listener {
        others.push(("metrics", metrics_listener.local_addr()?));
    }
    groups_runtime::announce_addresses(listener.local_addr()?, &others)?;
    let config = ServerConfig {
        pool: PoolConfig {
            max_size: args
                .pool_size
                .unwrap_or_else(groups_store::default_pool_size),
            min_idle: None,
            checkout_timeout: Duration::from_millis(args.pool_timeout_ms),
            statement_timeout: Duration::from_millis(args.statement_timeout_ms),
        },
        max_batch: args.max_batch,
        queue_size: args.queue_size,
        audit_retention_days: args.audit_retention_days,
        audit_prune_interval: Duration::from_millis(args.audit_prune_interval_ms),
        health_interval: Duration::from_millis(args.health_interval_ms),
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        ..ServerConfig::new(args.database_url)
    };
    groups_server::run_with_metrics(
        listener,
        metrics_listener,
        config,
        groups_runtime::shutdown_signal(),
    )
    .await
}
