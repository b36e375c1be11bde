//! The gateway as a client sees it: a real gateway on 127.0.0.1:0 in front of a fake in-process
//! `GroupMembers` server whose answers are chosen by the instance name of the request.
//!
//! These cover the gateway's own part of SPEC.md (local checks, key forwarding, the reason
//! table, deadlines, rate limit, CORS, JSON everywhere); the real server and database are
//! exercised end to end elsewhere.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use groups_core::Reason;
use groups_gateway::GatewayConfig;
use groups_proto::{GroupMembers, GroupMembersServer, RemoveGroupMemberRequest};
use reqwest::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

mod answers;
mod backend;
mod http;

const ACCOUNT_KEY: &str = "0123456789abcdef0123456789abcdef01234568";
const OTHER_KEY: &str = "fedcba9876543210fedcba9876543210fedcba98";
const THIRD_KEY: &str = "1111111111111111111111111111111111111113";

/// What the fake server was sent.
#[derive(Debug, Clone)]
struct Seen {
    request: RemoveGroupMemberRequest,
    api_key: Option<String>,
    grpc_timeout: Option<String>,
}

/// Answers by instance name: a reason's name in lower case fails with that reason, `slow`
/// sleeps past any short deadline, a few names return statuses without `ErrorInfo`, and
/// anything else succeeds.
#[derive(Debug, Clone, Default)]
struct FakeServer {
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn with_reason(code: Code, reason: Reason, domain: &str) -> Status {
    let mut details = ErrorDetails::with_error_info(reason.as_str(), domain, []);
    if reason == Reason::DatabaseUnavailable {
        details.set_retry_info(Some(Duration::from_millis(2500)));
    }
    Status::with_error_details(code, "detail text the gateway must not use", details)
}

#[tonic::async_trait]
impl GroupMembers for FakeServer {
    async fn remove_group_member(
        &self,
        request: tonic::Request<RemoveGroupMemberRequest>,
    ) -> Result<tonic::Response<()>, Status> {
        let metadata = request.metadata();
        let text = |name: &str| metadata.get(name).map(|v| v.to_str().unwrap().to_owned());
        let seen = Seen {
            api_key: text("x-api-key"),
            grpc_timeout: text("grpc-timeout"),
            request: request.get_ref().clone(),
        };
        self.seen.lock().unwrap().push(seen);

        let name = request.get_ref().instance_name.as_str();
        if let Some(reason) = Reason::ALL
            .into_iter()
            .find(|r| r.as_str().to_ascii_lowercase() == name)
        {
            let code = match reason {
                Reason::InvalidArgument => Code::InvalidArgument,
                Reason::InstanceNotFound
                | Reason::GroupNotFound
                | Reason::UserNotFound
                | Reason::MembershipNotFound => Code::NotFound,
                Reason::ApiKeyMissing | Reason::ApiKeyInvalid => Code::Unauthenticated,
                Reason::PermissionDenied => Code::PermissionDenied,
                Reason::DatabaseUnavailable => Code::Unavailable,
            };
            return Err(with_reason(code, reason, Reason::DOMAIN));
        }
        match name {
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(tonic::Response::new(()))
            }
            "bare-internal" => Err(Status::internal("stack trace and secrets")),
            "bare-unavailable" => Err(Status::unavailable("overloaded")),
            "bare-deadline" => Err(Status::deadline_exceeded("too slow")),
            "foreign-domain" => Err(with_reason(
                Code::NotFound,
                Reason::GroupNotFound,
                "other.example",
            )),
            _ => Ok(tonic::Response::new(())),
        }
    }
}

/// A gateway in front of a fresh fake server; both stop when this is dropped.
struct Harness {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    http: reqwest::Client,
    _tasks: JoinSet<()>,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut GatewayConfig)) -> Self {
        let (fake, mut tasks) = (FakeServer::default(), JoinSet::new());
        let seen = fake.seen.clone();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_url = format!("http://{}", grpc.local_addr().unwrap());
        let server = Server::builder().add_service(GroupMembersServer::new(fake));
        tasks.spawn(async move {
            let _ = server.serve_with_incoming(TcpIncoming::from(grpc)).await;
        });

        let mut config = GatewayConfig {
            server_url,
            rate_limit: 0,
            ..GatewayConfig::default()
        };
        configure(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tasks.spawn(async move {
            let _ = groups_gateway::run(listener, config, std::future::pending()).await;
        });
        Self {
            base,
            seen,
            http: reqwest::Client::new(),
            _tasks: tasks,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    async fn send(&self, method: Method, path: &str) -> Answer {
        self.send_with(self.request(method, path)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path).await
    }

    async fn send_with(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts status and exact JSON body.
    #[track_caller]
    fn assert(&self, status: u16, body: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.body, body, "{self:?}");
        if !body.is_empty() {
            assert_eq!(self.header("content-type"), Some("application/json"));
        }
    }
}

fn member(instance: &str, group: &str, user: &str) -> String {
    format!("/v1.1/instances/{instance}/groups/{group}/users/{user}/")
}

const GROUP_NOT_FOUND: &str = r#"{"detail":"Group was not found."}"#;
const NOT_FOUND: &str = r#"{"detail":"Not found"}"#;
const INSTANCE_NOT_FOUND: &str = r#"{"detail":"Instance was not found."}"#;
const NO_PERMISSION: &str = r#"{"detail":"You do not have permission to perform this action."}"#;
const NO_SUCH_KEY: &str = r#"{"detail":"No such API Key."}"#;
const UNAVAILABLE: &str = r#"{"detail":"Service temporarily unavailable, try again later."}"#;
const TIMED_OUT: &str = r#"{"detail":"Request timed out."}"#;
const SERVER_ERROR: &str = r#"{"detail":"A server error occurred."}"#;
