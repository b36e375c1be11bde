//! `groups-gateway`: the REST gateway process. Prints `{"listening":"ADDR"}` once bound.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use groups_gateway::GatewayConfig;
use groups_runtime::LogFormat;
use tokio::net::TcpListener;

// `about` is the package description; each flag's doc line is its `--help` line.
#[derive(Debug, Parser)]
#[command(name = "groups-gateway", version, about)]
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
    /// Log line format on stderr.
    #[arg(long, env = "GROUPS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Held to the end: dropping it flushes the spans not yet exported.
    let _telemetry = groups_runtime::init("groups-gateway", args.log_format);

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
    };
    groups_gateway::run(listener, config, groups_runtime::shutdown_signal()).await
}
