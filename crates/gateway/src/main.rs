//! `groups-gateway`: the REST gateway process. Prints `{"listening":"ADDR"}` once bound.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use groups_gateway::GatewayConfig;
use groups_runtime::LogFormat;
use tokio::net::TcpListener;

// `about` is the package description; each flag's doc line is its `--help` line.
#[derive(Debug, Parser)]
#[command(name = "groups-gateway", version, about, args_override_self = true)]
struct Args {
    /// Address to listen on; port 0 picks a free one (the bound address is printed).
    #[arg(long, env = "GROUPS_GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    listen: String,
    /// URL of the groups gRPC server.
    #[arg(long, env = "GROUPS_SERVER_URL", default_value = groups_gateway::DEFAULT_SERVER_URL)]
    server_url: String,
    /// Requests a second allowed per instance; 0 turns the limit off.
    #[arg(long, env = "GROUPS_RATE_LIMIT", default_value_t = groups_gateway::DEFAULT_RATE_LIMIT)]
    rate_limit: u32,
    /// Deadline of each gRPC call in milliseconds (1 to 3600000), sent as grpc-timeout; past it, 504.
    #[arg(
        long,
        env = "GROUPS_GATEWAY_DEADLINE_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000)
    )]
    deadline_ms: u64,
    /// Milliseconds requests in flight may take to finish after SIGTERM/Ctrl-C.
    #[arg(
        long,
        env = "GROUPS_DRAIN_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(0..=600_000)
    )]
    drain_timeout_ms: u64,
    /// Milliseconds a connection may take to send a whole request head before it is closed.
    #[arg(long, env = "GROUPS_HEADER_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    header_timeout_ms: u64,
    /// Milliseconds a kept-alive connection may stay idle before it is closed.
    #[arg(long, env = "GROUPS_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    idle_timeout_ms: u64,
    /// Most connections open at once (the open-files limit is raised to its hard limit).
    #[arg(long, env = "GROUPS_MAX_CONNECTIONS", default_value_t = groups_gateway::DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: usize,
    /// Most API requests in flight at once; past it, 503 at once.
    #[arg(long, env = "GROUPS_MAX_IN_FLIGHT", default_value_t = groups_gateway::DEFAULT_MAX_IN_FLIGHT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_in_flight: usize,
    /// Failed authentications (no such instance, no key, bad key) a second per client address,
    /// burst twice that; past it, 429. 0 turns it off.
    #[arg(long, env = "GROUPS_AUTH_FAILURE_LIMIT", default_value_t = groups_gateway::DEFAULT_AUTH_FAILURE_LIMIT)]
    auth_failure_limit: u32,
    /// Proxies (CIDRs, comma-separated) whose X-Forwarded-For names the client; none by default.
    #[arg(long, env = "GROUPS_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<groups_gateway::IpNet>,
    /// Log line format on stderr.
    #[arg(long, env = "GROUPS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Held to the end: dropping it flushes the spans not yet exported.
    let _telemetry = groups_runtime::init("groups-gateway", args.log_format);

    match groups_runtime::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open-files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
    }
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    groups_runtime::announce_listening(address)?;

    let config = GatewayConfig {
        server_url: args.server_url,
        rate_limit: args.rate_limit,
        deadline: Duration::from_millis(args.deadline_ms),
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        max_connections: args.max_connections,
        max_in_flight: args.max_in_flight,
        auth_failure_limit: args.auth_failure_limit,
        trusted_proxies: args.trusted_proxies,
    };
    groups_gateway::run(listener, config, groups_runtime::shutdown_signal()).await
}
