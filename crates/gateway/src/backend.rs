//! The gRPC side: one long-lived channel to the groups server, its clients, and the one
//! deadline-bound call every route makes through [`Backend::call`].

use std::future::Future;
use std::time::{Duration, Instant};

use groups_proto::{AuditClient, DirectoryClient, GroupMembersClient};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::answer::{self, Answer, Operation};
use crate::api_key::{KeyText, METADATA_KEY};
use crate::observe;

/// How long establishing a connection may take: a server that is down answers 503 quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings notice a dead server within seconds, idle or not, before a request waits on it.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The clients of the server's services; clones share one channel, which multiplexes requests
/// over HTTP/2 and reconnects by itself.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    pub(crate) members: GroupMembersClient<Channel>,
    pub(crate) directory: DirectoryClient<Channel>,
    pub(crate) audit: AuditClient<Channel>,
}

/// The server, as the routes reach it.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    clients: Clients,
    health: HealthClient<Channel>,
    deadline: Duration,
}

impl Backend {
    /// Prepares the channel without connecting: the gateway starts (and answers 503) while the
    /// server is down, and connects on the first request after it comes up.
    pub(crate) fn connect_lazy(server_url: &str, deadline: Duration) -> anyhow::Result<Self> {
        let endpoint = Endpoint::from_shared(server_url.to_owned())?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        Ok(Self {
            clients: Clients {
                members: GroupMembersClient::new(channel.clone()),
                directory: DirectoryClient::new(channel.clone()),
                audit: AuditClient::new(channel.clone()),
            },
            health: HealthClient::new(channel),
            deadline,
        })
    }

    /// Sends `message` with `send` (one method of one client), forwarding the caller's key and
    /// the request's id. The deadline is sent as `grpc-timeout` and enforced here too, so a
    /// server that never answers still gets a 504 on time; a failure becomes `operation`'s
    /// answer from the one table.
    ///
    /// A call the server provably did not start ([`not_started`]: a server shutting down
    /// refused it) is sent once more, on a fresh connection, within the same deadline; never
    /// any other call, so a removal is never done twice.
    pub(crate) async fn call<M, R, F, Fut>(
        &self,
        operation: Operation,
        message: M,
        key: Option<&KeyText<'_>>,
        send: F,
    ) -> Result<R, Answer>
    where
        M: Clone,
        F: Fn(Clients, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let started = Instant::now();
        let attempt = |message: M, timeout: Duration| {
            let mut request = tonic::Request::new(message);
            request.set_timeout(timeout);
            observe::annotate(&mut request);
            if let Some(key) = key {
                request
                    .metadata_mut()
                    .insert(METADATA_KEY, key.to_metadata());
            }
            send(self.clients.clone(), request)
        };
        let calls = async {
            match attempt(message.clone(), self.deadline).await {
                Err(status) if not_started(&status) => {
                    tracing::info!(
                        "the server refused the call while shutting down; sending it again"
                    );
                    attempt(message, self.deadline.saturating_sub(started.elapsed())).await
                }
                answered => answered,
            }
        };
        match tokio::time::timeout(self.deadline, calls).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(answer::for_status(
                &status,
                operation,
                started.elapsed() >= self.deadline,
            )),
            Err(_elapsed) => {
                tracing::warn!(deadline = ?self.deadline, "groups server did not answer in time");
                Err(Answer::timed_out())
            }
        }
    }

    /// Whether the server says `groups.v1.GroupMembers` is SERVING (it is only while its
    /// database answers). `Err` says why not, for the readiness answer.
    pub(crate) async fn readiness(&self) -> Result<(), String> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: GROUP_MEMBERS_SERVICE.to_owned(),
        });
        request.set_timeout(READINESS_TIMEOUT);
        observe::annotate(&mut request);
        let mut health = self.health.clone();
        match tokio::time::timeout(READINESS_TIMEOUT, health.check(request)).await {
            Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving => Ok(()),
            Ok(Ok(response)) => Err(format!(
                "groups server is {}",
                response.get_ref().status().as_str_name()
            )),
            Ok(Err(status)) => Err(format!("groups server unreachable ({:?})", status.code())),
            Err(_elapsed) => Err("groups server did not answer the health check".to_owned()),
        }
    }
}

/// Whether the server provably did not start a failed call: it reset the stream with
/// REFUSED_STREAM, or it sent a graceful GOAWAY whose last stream id is below the call's (h2
/// fails exactly those streams with the remote GOAWAY). Any other failure may come after the
/// server began, so it is never retried.
fn not_started(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            let refused = h2.reason() == Some(h2::Reason::REFUSED_STREAM);
            let above_goaway =
                h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
            return refused || above_goaway;
        }
        source = error.source();
    }
    false
}

/// The service whose health readiness follows.
const GROUP_MEMBERS_SERVICE: &str = groups_proto::GROUP_MEMBERS_SERVICE;
/// A readiness probe answers quickly, whatever the server does.
const READINESS_TIMEOUT: Duration = Duration::from_secs(1);
