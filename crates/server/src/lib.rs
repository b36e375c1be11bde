//! The gRPC server: `groups.v1.GroupMembers`, `groups.v1.Directory` and `groups.v1.Audit` over
//! the PostgreSQL store, with gRPC health and reflection.
//!
//! [`run`] serves on an already bound listener until a shutdown future resolves, so the binary,
//! `groupsctl up` and the tests all start the same code the same way. Every method goes through
//! the same pipeline (`pipeline`) and the same database workers (`workers`).

mod audit;
mod credential;
mod deadline;
mod directory;
mod members;
mod observe;
mod pipeline;
mod service;
mod status;
mod workers;

use std::future::Future;
use std::time::Duration;

use groups_proto::{AuditServer, DirectoryServer, GroupMembersServer};
use groups_runtime::ServeConfig;
use groups_store::{Pool, PoolConfig};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use observe::{
    BATCH_SIZE, DATABASE_ERRORS_TOTAL, POOL_CONNECTIONS, RPC_DURATION_SECONDS, RPCS_TOTAL,
    describe_metrics,
};
pub use service::Service;

use crate::workers::{Database, WorkerConfig};

/// Default of [`ServerConfig::max_batch`].
pub const DEFAULT_MAX_BATCH: usize = 64;
/// Default of [`ServerConfig::queue_size`].
pub const DEFAULT_QUEUE_SIZE: usize = 1024;
/// Default of [`ServerConfig::audit_retention_days`].
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 90;

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// Connection pool settings: `max_size` is the number of database workers, each using one
    /// connection at a time; the pool keeps one more for health probes and retention.
    pub pool: PoolConfig,
    /// Most removals one statement carries.
    pub max_batch: usize,
    /// Most requests waiting for a database worker; past it, UNAVAILABLE at once.
    pub queue_size: usize,
    /// Audit events older than this many days are deleted; 0 keeps them forever.
    pub audit_retention_days: u32,
    /// How often retention runs (first at start).
    pub audit_prune_interval: Duration,
    /// How often the health service asks the database whether it answers.
    pub health_interval: Duration,
    /// After shutdown begins, how long requests in flight may take before they are dropped.
    pub drain_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl ServerConfig {
    /// Defaults for everything but the database.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            pool: PoolConfig::default(),
            max_batch: DEFAULT_MAX_BATCH,
            queue_size: DEFAULT_QUEUE_SIZE,
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
            audit_prune_interval: Duration::from_secs(60),
            health_interval: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(10),
            max_connections: 10_000,
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
    let spare = PoolConfig {
        max_size: config.pool.max_size.saturating_add(1),
        ..config.pool.clone()
    };
    let pool = Pool::new(&config.database_url, &spare);
    let db = Database::start(
        pool.clone(),
        WorkerConfig {
            workers: usize::try_from(config.pool.max_size).unwrap_or(1),
            max_batch: config.max_batch.max(1),
            capacity: config.queue_size.max(1),
        },
    )?;
    let metrics_page = match metrics_listener {
        Some(metrics_listener) => {
            groups_runtime::metrics();
            tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
            let app = observe::metrics_app(pool.clone());
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
        pool.clone(),
        health.clone(),
        config.health_interval,
    ));
    let retention = (config.audit_retention_days > 0).then(|| {
        tokio::spawn(audit::retain(
            pool.clone(),
            config.audit_retention_days,
            config.audit_prune_interval,
        ))
    });
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(groups_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let service = Service {
        db,
        checkout: config.pool.checkout_timeout,
    };
    let app = tonic::service::Routes::new(health_service)
        .add_service(reflection)
        .add_service(GroupMembersServer::new(service.clone()))
        .add_service(DirectoryServer::new(service.clone()))
        .add_service(AuditServer::new(service))
        .prepare()
        .into_axum_router()
        .layer(axum::middleware::map_response(
            status::undecodable_is_invalid_argument,
        ))
        // Outermost: it sees the answer as the caller gets it.
        .layer(axum::middleware::from_fn(observe::observe_rpc));
    tracing::info!(addr = %listener.local_addr()?, "gRPC server listening");
    // On shutdown, first tell health checkers the server is going (NOT_SERVING), then stop
    // taking calls: each connection gets GOAWAY, calls in flight finish within the drain
    // bound, and connections close without a reset (groups_runtime::serve).
    let shutdown = async move {
        shutdown.await;
        watcher.abort();
        for service in HEALTH_SERVICES {
            health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        tracing::info!("NOT_SERVING; draining calls in flight");
    };
    // Served by axum's router (HTTP/2 over cleartext, and HTTP/1) rather than tonic's
    // transport: that one turns a passed `grpc-timeout` into CANCELLED before the handler can
    // answer DEADLINE_EXCEEDED, and answers undecodable requests outside any layer of ours.
    let limits = ServeConfig {
        max_connections: config.max_connections,
        header_timeout: Some(HEADER_TIMEOUT),
        // The gateway keeps its connection open between bursts: no idle limit.
        idle_timeout: None,
        http2_keepalive: Some(HTTP2_KEEPALIVE),
        drain_timeout: config.drain_timeout,
    };
    let served = groups_runtime::serve(listener, app, limits, shutdown).await;
    if let Some(retention) = retention {
        retention.abort();
    }
    if let Some(metrics_page) = metrics_page {
        metrics_page.abort();
    }
    served?;
    tracing::info!("gRPC server stopped");
    Ok(())
}

/// How long one health probe of the database may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that has not sent its first request within this is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 pings to each client: a dead peer is noticed within twice this.
const HTTP2_KEEPALIVE: Duration = Duration::from_secs(5);

pub use groups_proto::GROUP_MEMBERS_SERVICE;

/// Every name `grpc.health.v1` answers for: the server (`""`) and each service of `groups.v1`.
pub const HEALTH_SERVICES: [&str; 4] = [
    "",
    groups_proto::GROUP_MEMBERS_SERVICE,
    groups_proto::DIRECTORY_SERVICE,
    groups_proto::AUDIT_SERVICE,
];

/// Keeps `grpc.health.v1` truthful: SERVING (overall and for each service) only while the
/// database answers.
async fn report_database_health(pool: Pool, health: HealthReporter, interval: Duration) {
    // Not serving until the first probe says otherwise.
    for service in HEALTH_SERVICES {
        health
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
    let mut last = None;
    loop {
        let probe = pool.clone();
        // A database that stops answering must not keep the last SERVING forever.
        let probed = tokio::task::spawn_blocking(move || probe.is_reachable(PROBE_TIMEOUT));
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
        observe::record_pool_state(&pool);
        let status = if up {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for service in HEALTH_SERVICES {
            health.set_service_status(service, status).await;
        }
        tokio::time::sleep(interval).await;
    }
}
