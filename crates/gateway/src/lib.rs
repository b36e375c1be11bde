//! The REST gateway: Syncano's `DELETE /v1.1/instances/{instance}/groups/{group_id}/users/{user_id}/`
//! and what the vendor SDK's example needs around it (the user-side removal, reading a user and
//! a group) and the audit listing, in front of the `groups.v1` gRPC services.
//!
//! The gateway checks what it can without the server (ids, instance name syntax, query values,
//! its rate limit), forwards the caller's key as `x-api-key`, and maps the server's
//! `ErrorInfo.reason` to SPEC.md's status and JSON detail in one table ([`answer`]). `main`,
//! tests and `groupsctl up` all start it the same way: [`run`] on a bound listener with a
//! shutdown future.

mod answer;
mod api_key;
mod backend;
mod objects;
mod observe;
mod paths;
mod rate_limit;
mod routes;
mod shield;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use groups_runtime::ServeConfig;
use tokio::net::TcpListener;

use crate::backend::Backend;
use crate::rate_limit::TokenBuckets;
use crate::routes::Gateway;
use crate::shield::Shield;

pub use ipnet::IpNet;

pub use crate::observe::{REQUEST_DURATION_SECONDS, REQUESTS_TOTAL, UNMATCHED_ROUTE};
pub use crate::routes::routes;

/// Default URL of the gRPC server.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:50051";
/// Default rate limit: requests a second per instance, as in the original.
pub const DEFAULT_RATE_LIMIT: u32 = 60;
/// Default deadline of each gRPC call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Default time requests in flight get to finish after shutdown begins.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for a whole request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default idle time of a kept-alive connection.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default most connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default most API requests in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default failed authentications a second per client address.
pub const DEFAULT_AUTH_FAILURE_LIMIT: u32 = 20;

/// How the gateway reaches the server and guards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// URL of the groups gRPC server, e.g. `http://127.0.0.1:50051`.
    pub server_url: String,
    /// Requests a second allowed per instance; 0 turns the limit off.
    pub rate_limit: u32,
    /// Deadline of each gRPC call, sent as `grpc-timeout`; past it the client gets 504.
    pub deadline: Duration,
    /// After shutdown begins, how long requests in flight may take before they are dropped.
    pub drain_timeout: Duration,
    /// A connection that has not sent a whole request head within this is closed.
    pub header_timeout: Duration,
    /// A kept-alive connection idle this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most API requests in flight at once; past it, 503 at once.
    pub max_in_flight: usize,
    /// Failed authentications a second per client address (burst twice that); 0 turns it off.
    pub auth_failure_limit: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            server_url: DEFAULT_SERVER_URL.to_owned(),
            rate_limit: DEFAULT_RATE_LIMIT,
            deadline: DEFAULT_DEADLINE,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            auth_failure_limit: DEFAULT_AUTH_FAILURE_LIMIT,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The REST application, ready to serve. Its gRPC channel connects lazily, so building it
/// needs no running server; it fails only on a malformed `server_url`.
///
/// Must be called inside a Tokio runtime.
pub fn router(config: &GatewayConfig) -> anyhow::Result<Router> {
    // `/metrics` renders the process's recorder: installed here unless already (`groupsctl up`).
    groups_runtime::metrics();
    observe::describe_metrics();
    let gateway = Gateway {
        backend: Backend::connect_lazy(&config.server_url, config.deadline)?,
        limiter: TokenBuckets::new(config.rate_limit, config.rate_limit),
    };
    let shield = Shield::new(
        config.max_in_flight,
        config.auth_failure_limit,
        config.trusted_proxies.clone(),
    );
    Ok(routes::app(Arc::new(gateway), Arc::new(shield)))
}

/// Serves the gateway on `listener` until `shutdown` completes, then stops accepting and lets
/// the requests in flight finish (each is bounded by the deadline).
pub async fn run(
    listener: TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(&config)?;
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        server_url = %config.server_url,
        rate_limit = config.rate_limit,
        deadline = ?config.deadline,
        "gateway serving"
    );
    let limits = ServeConfig {
        max_connections: config.max_connections,
        header_timeout: Some(config.header_timeout),
        idle_timeout: Some(config.idle_timeout),
        http2_keepalive: Some(Duration::from_secs(20)),
        drain_timeout: config.drain_timeout,
    };
    groups_runtime::serve(listener, app, limits, shutdown).await?;
    tracing::info!("gateway stopped");
    Ok(())
}
