//! The gRPC server: `groups.v1.GroupMembers` over the PostgreSQL store.
//!
//! [`run`] serves on an already bound listener until a shutdown future resolves, so the binary,
//! `groupsctl up` and the tests all start the same code the same way.

mod credential;
mod deadline;
mod observe;
mod service;
mod status;

use std::future::Future;
use std::time::Duration;

use axum::serve::ListenerExt;
use groups_proto::GroupMembersServer;
use groups_runtime::bounded_drain;
use groups_store::{PoolConfig, Store};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use observe::{
    DATABASE_ERRORS_TOTAL, POOL_CONNECTIONS, RPC_DURATION_SECONDS, RPCS_TOTAL, describe_metrics,
};
pub use service::GroupMembersService;

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// Connection pool settings.
    pub pool: PoolConfig,
    /// How often the health service asks the database whether it answers.
    pub health_interval: Duration,
    /// After shutdown begins, how long requests in flight may take before they are dropped.
    pub drain_timeout: Duration,
}

impl ServerConfig {
    /// Defaults for everything but the database.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            pool: PoolConfig::default(),
            health_interval: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves gRPC on `listener` until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_metrics(listener, None, config, shutdown).await
}

/// [`run`], also serving `GET /metrics` (Prometheus text format) on `metrics_listener` when
/// given; the process's metrics recorder is installed then.
pub async fn run_with_metrics(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::new(&config.database_url, &config.pool);
    let metrics_page = match metrics_listener {
        Some(metrics_listener) => {
            groups_runtime::metrics();
            tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
            let app = observe::metrics_app(store.clone());
            Some(tokio::spawn(async move {
                if let Err(error) = axum::serve(metrics_listener, app).await {
                    tracing::error!(%error, "metrics endpoint failed");
                }
            }))
        }
        None => None,
    };
    describe_metrics();
    let (health, health_service) = tonic_health::server::health_reporter();
    let watcher = tokio::spawn(report_database_health(
        store.clone(),
        health,
        config.health_interval,
    ));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(groups_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let service = GroupMembersServer::new(GroupMembersService::new(store));
    let app = tonic::service::Routes::new(health_service)
        .add_service(reflection)
        .add_service(service)
        .prepare()
        .into_axum_router()
        .layer(axum::middleware::map_response(
            status::undecodable_is_invalid_argument,
        ))
        // Outermost: it sees the answer as the caller gets it.
        .layer(axum::middleware::from_fn(observe::observe_rpc));
    tracing::info!(addr = %listener.local_addr()?, "gRPC server listening");
    // Served by axum (HTTP/2 over cleartext) rather than tonic's transport: that one turns a
    // passed `grpc-timeout` into CANCELLED before the handler can answer DEADLINE_EXCEEDED, and
    // answers undecodable requests outside any layer of ours.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let (shutdown, drain_deadline) = bounded_drain(shutdown, config.drain_timeout);
    let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let served = tokio::select! {
        served = serve => served,
        () = drain_deadline => {
            tracing::warn!(timeout = ?config.drain_timeout, "drain timeout: dropping requests still in flight");
            Ok(())
        }
    };
    watcher.abort();
    if let Some(metrics_page) = metrics_page {
        metrics_page.abort();
    }
    served?;
    tracing::info!("gRPC server stopped");
    Ok(())
}

/// How long one health probe of the database may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The full name of the service, as health checks and reflection spell it.
pub const GROUP_MEMBERS_SERVICE: &str = "groups.v1.GroupMembers";

/// Keeps `grpc.health.v1` truthful: SERVING (overall and for `groups.v1.GroupMembers`) only
/// while the database answers.
async fn report_database_health(store: Store, health: HealthReporter, interval: Duration) {
    // Not serving until the first probe says otherwise.
    for service in ["", GROUP_MEMBERS_SERVICE] {
        health
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
    let mut last = None;
    loop {
        let probe = store.clone();
        // A database that stops answering must not keep the last SERVING forever.
        let probed = tokio::task::spawn_blocking(move || probe.is_reachable());
        let up = matches!(
            tokio::time::timeout(PROBE_TIMEOUT.max(interval), probed).await,
            Ok(Ok(true))
        );
        if last != Some(up) {
            tracing::info!(database_reachable = up, "health status changed");
            last = Some(up);
        }
        // Also refreshed on every scrape of the server's own page; this keeps a shared page
        // (`groupsctl up` serves it from the gateway) current too.
        observe::record_pool_state(&store);
        let status = if up {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        health.set_service_status("", status).await;
        health
            .set_service_status(GROUP_MEMBERS_SERVICE, status)
            .await;
        tokio::time::sleep(interval).await;
    }
}
