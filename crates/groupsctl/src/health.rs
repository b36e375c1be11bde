//! `groupsctl health`: a gRPC health probe of the server, for container health checks (the
//! runtime image has no grpc_health_probe).

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long the probe may take in all.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks `server_url` for the health of `groups.v1.GroupMembers`; `Ok` only when SERVING.
pub(crate) fn check(server_url: &str) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(server_url.to_owned())?
            .connect_timeout(PROBE_TIMEOUT)
            .timeout(PROBE_TIMEOUT)
            .connect()
            .await
            .with_context(|| format!("cannot reach {server_url}"))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: groups_server::GROUP_MEMBERS_SERVICE.to_owned(),
            })
            .await
            .with_context(|| format!("health check of {server_url} failed"))?;
        let status = response.get_ref().status();
        anyhow::ensure!(
            status == ServingStatus::Serving,
            "{server_url} is {}",
            status.as_str_name()
        );
        Ok(json!({ "status": status.as_str_name() }))
    })
}
