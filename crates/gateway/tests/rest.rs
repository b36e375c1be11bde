//! The gateway as a client sees it: a real gateway on 127.0.0.1:0 in front of a fake in-process
//! `GroupMembers` server whose answers are chosen by the instance name of the request.
//!
//! These cover the gateway's own part of SPEC.md (local checks, key forwarding, the reason
//! table, deadlines, rate limit, CORS, JSON everywhere); the real server and database are
//! exercised end to end elsewhere.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use groups_core::Reason;
use groups_gateway::GatewayConfig;
use groups_proto::{GroupMembers, GroupMembersServer, RemoveGroupMemberRequest};
use reqwest::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

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
        let text = |name: &str| {
            request
                .metadata()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
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
    _stop_gateway: oneshot::Sender<()>,
    _stop_server: oneshot::Sender<()>,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut GatewayConfig)) -> Self {
        let fake = FakeServer::default();
        let seen = fake.seen.clone();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let (stop_server, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            Server::builder()
                .add_service(GroupMembersServer::new(fake))
                .serve_with_incoming_shutdown(TcpIncoming::from(grpc), async {
                    stopped.await.ok();
                }),
        );

        let mut config = GatewayConfig {
            server_url: format!("http://{grpc_addr}"),
            rate_limit: 0,
            ..GatewayConfig::default()
        };
        configure(&mut config);
        let (base, stop_gateway) = spawn_gateway(config).await;
        Self {
            base,
            seen,
            http: reqwest::Client::new(),
            _stop_gateway: stop_gateway,
            _stop_server: stop_server,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn send(&self, method: Method, path: &str) -> Answer {
        self.send_with(self.http.request(method, format!("{}{path}", self.base)))
            .await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path).await
    }

    async fn send_with(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }
}

async fn spawn_gateway(config: GatewayConfig) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(groups_gateway::run(listener, config, async {
        stopped.await.ok();
    }));
    (format!("http://{addr}"), stop)
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

#[tokio::test]
async fn success_is_204_with_an_empty_body_and_forwards_the_request() {
    let h = Harness::start().await;
    let answer = h
        .send_with(
            h.http
                .delete(format!("{}{}", h.base, member("Demo", "12", "034")))
                .header("x-api-key", ACCOUNT_KEY),
        )
        .await;
    answer.assert(204, "");
    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0].request;
    assert_eq!(request.instance_name, "demo");
    assert_eq!((request.group_id, request.user_id), (12, 34));
    assert!(!request.allow_missing);
    assert_eq!(seen[0].api_key.as_deref(), Some(ACCOUNT_KEY));
}

#[tokio::test]
async fn every_reason_maps_to_its_rest_answer() {
    let h = Harness::start().await;
    for (reason, status, body) in [
        (Reason::InstanceNotFound, 404, INSTANCE_NOT_FOUND),
        (Reason::ApiKeyMissing, 403, NO_PERMISSION),
        (Reason::ApiKeyInvalid, 403, NO_SUCH_KEY),
        (Reason::PermissionDenied, 403, NO_PERMISSION),
        (Reason::GroupNotFound, 404, GROUP_NOT_FOUND),
        (Reason::MembershipNotFound, 404, NOT_FOUND),
        (Reason::DatabaseUnavailable, 503, UNAVAILABLE),
        (Reason::InvalidArgument, 500, SERVER_ERROR),
    ] {
        let instance = reason.as_str().to_ascii_lowercase();
        let answer = h.delete(&member(&instance, "1", "2")).await;
        answer.assert(status, body);
        let retry_after = (reason == Reason::DatabaseUnavailable).then_some("3");
        assert_eq!(answer.header("retry-after"), retry_after, "{reason:?}");
    }
}

#[tokio::test]
async fn statuses_without_error_info_map_on_their_code() {
    let h = Harness::start().await;
    h.delete(&member("bare-internal", "1", "2"))
        .await
        .assert(500, SERVER_ERROR);
    let answer = h.delete(&member("bare-unavailable", "1", "2")).await;
    answer.assert(503, UNAVAILABLE);
    assert_eq!(answer.header("retry-after"), Some("1"));
    h.delete(&member("bare-deadline", "1", "2"))
        .await
        .assert(504, TIMED_OUT);
    // A reason is trusted only in this service's domain.
    h.delete(&member("foreign-domain", "1", "2"))
        .await
        .assert(500, SERVER_ERROR);
}

#[tokio::test]
async fn malformed_ids_answer_in_order_without_calling_the_server() {
    let h = Harness::start().await;
    let max = "9223372036854775807";
    let too_big = "9223372036854775808";
    for (instance, group, user, body) in [
        ("demo", "abc", "xyz", GROUP_NOT_FOUND),
        ("not.valid", "0", "-1", GROUP_NOT_FOUND),
        ("demo", too_big, "1", GROUP_NOT_FOUND),
        ("demo", "%FF", "1", GROUP_NOT_FOUND),
        ("demo", "1", "0", NOT_FOUND),
        ("not.valid", "1", "1.0", NOT_FOUND),
        ("demo", max, too_big, NOT_FOUND),
        ("not.valid", max, max, INSTANCE_NOT_FOUND),
        ("%FF", "1", "2", INSTANCE_NOT_FOUND),
        ("%C3%A4", "1", "2", INSTANCE_NOT_FOUND),
        (&"a".repeat(65), "1", "2", INSTANCE_NOT_FOUND),
    ] {
        h.delete(&member(instance, group, user))
            .await
            .assert(404, body);
    }
    assert!(h.seen().is_empty(), "the server was called: {:?}", h.seen());
}

#[tokio::test]
async fn path_segments_are_percent_decoded() {
    let h = Harness::start().await;
    h.delete(&member("de%6Do", "%31", "2"))
        .await
        .assert(204, "");
    let seen = h.seen();
    assert_eq!(seen[0].request.instance_name, "demo");
    assert_eq!(seen[0].request.group_id, 1);
}

#[tokio::test]
async fn v1_alias_and_missing_trailing_slash_are_served() {
    let h = Harness::start().await;
    for path in [
        "/v1.1/instances/demo/groups/1/users/2/",
        "/v1.1/instances/demo/groups/1/users/2",
        "/v1/instances/demo/groups/1/users/2/",
        "/v1/instances/demo/groups/1/users/2",
    ] {
        h.delete(path).await.assert(204, "");
    }
    assert_eq!(h.seen().len(), 4);
}

#[tokio::test]
async fn key_sources_first_found_wins() {
    let h = Harness::start().await;
    let url = format!("{}{}", h.base, member("demo", "1", "2"));
    let cases = [
        // Header beats query beats Authorization.
        (
            h.http
                .delete(format!("{url}?api_key={OTHER_KEY}&apikey={THIRD_KEY}"))
                .header("X-API-KEY", ACCOUNT_KEY)
                .header("authorization", format!("Token {THIRD_KEY}")),
            Some(ACCOUNT_KEY),
        ),
        (
            h.http
                .delete(format!("{url}?apikey={THIRD_KEY}&api_key={OTHER_KEY}"))
                .header("authorization", format!("Token {THIRD_KEY}")),
            Some(OTHER_KEY),
        ),
        (
            h.http
                .delete(format!("{url}?apikey={OTHER_KEY}"))
                .header("authorization", format!("Token {THIRD_KEY}")),
            Some(OTHER_KEY),
        ),
        (
            h.http
                .delete(&url)
                .header("authorization", format!("ApiKey {THIRD_KEY}")),
            Some(THIRD_KEY),
        ),
        // Empty values are not given: the next source answers.
        (
            h.http
                .delete(format!("{url}?api_key=&apikey="))
                .header("x-api-key", "")
                .header("authorization", format!("Token {THIRD_KEY}")),
            Some(THIRD_KEY),
        ),
        // Not a key: forwarded as the malformed marker, never as is.
        (
            h.http.delete(&url).header("x-api-key", "not a key"),
            Some("malformed"),
        ),
        (
            h.http.delete(format!("{url}?api_key=%FF%00")),
            Some("malformed"),
        ),
        (
            h.http
                .delete(&url)
                .header("x-api-key", ACCOUNT_KEY.to_uppercase()),
            Some("malformed"),
        ),
        // Authorization needs exactly two words.
        (
            h.http
                .delete(&url)
                .header("authorization", format!("Token {THIRD_KEY} extra")),
            None,
        ),
        (h.http.delete(format!("{url}?x=%zz&&=&;")), None),
    ];
    let expected: Vec<_> = cases
        .iter()
        .map(|(_, key)| key.map(str::to_owned))
        .collect();
    for (request, _) in cases {
        h.send_with(request).await.assert(204, "");
    }
    let forwarded: Vec<_> = h.seen().into_iter().map(|s| s.api_key).collect();
    assert_eq!(forwarded, expected);
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let h = Harness::start().await;
    for method in ["PUT", "GET", "POST", "PATCH"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let answer = h.send(method.clone(), &member("demo", "1", "2")).await;
        answer.assert(
            405,
            &format!(r#"{{"detail":"Method \"{method}\" not allowed."}}"#),
        );
        assert_eq!(answer.header("allow"), Some("DELETE, OPTIONS"));
    }
    // HEAD has no body, but the same status and Allow.
    let answer = h.send(Method::HEAD, &member("demo", "1", "2")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header("allow"), Some("DELETE, OPTIONS"));
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn plain_options_lists_the_allowed_methods() {
    let h = Harness::start().await;
    let answer = h.send(Method::OPTIONS, &member("demo", "1", "2")).await;
    answer.assert(204, "");
    assert_eq!(answer.header("allow"), Some("DELETE, OPTIONS"));
    h.send(Method::OPTIONS, "/v1.1/nothing/here")
        .await
        .assert(404, NOT_FOUND);
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let h = Harness::start().await;
    for path in [
        "/",
        "/v1.1/instances/demo/groups/1/users/",
        "/v1.1/instances//groups/1/users/2/",
        "/v1.1/instances/demo/groups//users/2",
        "/v1.1/instances/demo/groups/1/users//",
        "/v2/instances/demo/groups/1/users/2/",
        "/v1.1/instances/demo/groups/1/users/2//",
        "/v1.1/instances/demo/groups/1/users/2/extra",
    ] {
        h.delete(path).await.assert(404, NOT_FOUND);
        h.send(Method::GET, path).await.assert(404, NOT_FOUND);
        h.send(Method::OPTIONS, path).await.assert(404, NOT_FOUND);
    }
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn cors_preflight_and_actual_request() {
    let h = Harness::start().await;
    let url = format!("{}{}", h.base, member("demo", "1", "2"));
    let preflight = h
        .send_with(
            h.http
                .request(Method::OPTIONS, &url)
                .header("origin", "https://app.example")
                .header("access-control-request-method", "DELETE")
                .header("access-control-request-headers", "x-api-key, x-user-key"),
        )
        .await;
    assert_eq!(preflight.status, StatusCode::OK, "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.contains("DELETE"), "{methods}");
    let headers = preflight.header("access-control-allow-headers").unwrap();
    for name in ["x-api-key", "x-user-key", "authorization", "content-type"] {
        assert!(headers.contains(name), "{headers}");
    }

    let actual = h
        .send_with(
            h.http
                .delete(&url)
                .header("origin", "https://app.example")
                .header("x-api-key", ACCOUNT_KEY),
        )
        .await;
    actual.assert(204, "");
    assert_eq!(actual.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn server_down_is_a_quick_503() {
    // A port that was free a moment ago: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let (base, _stop) = spawn_gateway(GatewayConfig {
        server_url: format!("http://{addr}"),
        ..GatewayConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let started = Instant::now();
        let response = http
            .delete(format!("{base}{}", member("demo", "1", "2")))
            .header("x-api-key", ACCOUNT_KEY)
            .send()
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.text().await.unwrap(), UNAVAILABLE);
    }
}

#[tokio::test]
async fn slow_server_is_504_at_the_deadline_and_is_told_the_deadline() {
    let h = Harness::start_with(|c| c.deadline = Duration::from_millis(300)).await;
    let started = Instant::now();
    h.delete(&member("slow", "1", "2"))
        .await
        .assert(504, TIMED_OUT);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let timeout = h.seen()[0].grpc_timeout.clone().expect("grpc-timeout sent");
    // gRPC's wire format: up to 8 digits and a unit; tonic picks the most precise unit.
    assert!(
        ["300000000n", "300000u", "300m"].contains(&timeout.as_str()),
        "{timeout}"
    );
}

#[tokio::test]
async fn rate_limit_is_per_instance() {
    let h = Harness::start_with(|c| c.rate_limit = 2).await;
    h.delete(&member("busy", "1", "2")).await.assert(204, "");
    // Instance names are case-insensitive: one bucket.
    h.delete(&member("BUSY", "1", "2")).await.assert(204, "");
    let throttled = h.delete(&member("busy", "1", "2")).await;
    throttled.assert(
        429,
        r#"{"detail":"Request was throttled. Expected available in 1 seconds."}"#,
    );
    assert_eq!(throttled.header("retry-after"), Some("1"));
    // Another instance is not affected.
    h.delete(&member("quiet", "1", "2")).await.assert(204, "");
    // Throttled requests never reach the server.
    assert_eq!(h.seen().len(), 3);
}

#[tokio::test]
async fn rate_limit_zero_is_off() {
    let h = Harness::start_with(|c| c.rate_limit = 0).await;
    for _ in 0..20 {
        h.delete(&member("busy", "1", "2")).await.assert(204, "");
    }
}

#[tokio::test]
async fn requests_are_multiplexed_not_serialised() {
    let h = Harness::start_with(|c| c.deadline = Duration::from_millis(1500)).await;
    // Ten slow calls at once all time out together, not one after another.
    let started = Instant::now();
    let url = format!("{}/v1/instances/slow/groups/1/users/2", h.base);
    let calls: Vec<_> = (0..10)
        .map(|_| tokio::spawn(h.http.delete(&url).send()))
        .collect();
    for call in calls {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(h.seen().len(), 10);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(groups_gateway::run(
        listener,
        GatewayConfig::default(),
        async {
            stopped.await.ok();
        },
    ));
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops on shutdown")
        .unwrap();
    assert!(result.is_ok());
}

#[tokio::test]
async fn a_malformed_server_url_is_an_error() {
    let config = GatewayConfig {
        server_url: "not a url".into(),
        ..GatewayConfig::default()
    };
    assert!(groups_gateway::router(&config).is_err());
}
