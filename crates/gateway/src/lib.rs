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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::backend::Backend;
use crate::rate_limit::RateLimiter;
use crate::routes::Gateway;

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
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            server_url: DEFAULT_SERVER_URL.to_owned(),
            rate_limit: DEFAULT_RATE_LIMIT,
            deadline: DEFAULT_DEADLINE,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
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
        limiter: RateLimiter::new(config.rate_limit),
    };
    Ok(routes::app(Arc::new(gateway)))
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
    // Small JSON answers: send them at once rather than wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let (shutdown, drain_deadline) = groups_runtime::bounded_drain(shutdown, config.drain_timeout);
    let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    tokio::select! {
        served = serve => served?,
        () = drain_deadline => {
            tracing::warn!(timeout = ?config.drain_timeout, "drain timeout: dropping requests still in flight");
        }
    }
    tracing::info!("gateway stopped");
    Ok(())
}
