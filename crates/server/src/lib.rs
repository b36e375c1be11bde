//! The gRPC server: `groups.v1.GroupMembers` over the PostgreSQL store.
//!
//! [`run`] serves on an already bound listener until a shutdown future resolves, so the binary,
//! `groupsctl up` and the tests all start the same code the same way.

mod credential;
mod service;
mod status;

use std::future::Future;
use std::time::Duration;

use groups_proto::GroupMembersServer;
use groups_store::{PoolConfig, Store};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

pub use service::GroupMembersService;

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// Connection pool settings.
    pub pool: PoolConfig,
}

/// Serves gRPC on `listener` until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::new(&config.database_url, &config.pool);
    let service = GroupMembersServer::new(GroupMembersService::new(store));
    tracing::info!(addr = %listener.local_addr()?, "gRPC server listening");
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(service)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    tracing::info!("gRPC server stopped");
    Ok(())
}
