//! The REST API end to end, as a public client sees it: the real `groups-gateway` in front of the
//! real `groups-server` over a real PostgreSQL, by topic: the SPEC table
//! (`groups_testkit::spec`) in `spec`, and around it what a table cannot say. Nothing is faked
//! here; `tests/rest/` covers the gateway alone against a fake server.

mod concurrency;
mod health;
mod input;
mod keys;
mod logs;
mod outages;
mod rate_limit;
mod routes;
mod sdk;
mod spec;

use std::fmt::Display;
use std::time::{Duration, Instant};

use groups_testkit::{Stack, UNKNOWN_ACCOUNT_KEY, UserId, World, eventually, spawn_stack, stop};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};

const NOT_FOUND: &str = r#"{"detail":"Not found"}"#;
const NO_SUCH_KEY: &str = r#"{"detail":"No such API Key."}"#;
const UNAVAILABLE: &str = r#"{"detail":"Service temporarily unavailable, try again later."}"#;
const TIMED_OUT: &str = r#"{"detail":"Request timed out."}"#;

/// A group and a user id no row has.
const NO_SUCH_ID: i64 = 987_654_321;

/// `/v1.1/instances/{instance}/groups/{group}/users/{user}/`.
fn member_path(instance: &str, group: impl Display, user: impl Display) -> String {
    format!("/v1.1/instances/{instance}/groups/{group}/users/{user}/")
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// What a client saw.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
    elapsed: Duration,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// Asserts the status and the exact body; a body is always JSON, a 204 has none.
    #[track_caller]
    fn assert(&self, status: u16, body: &str, case: &str) {
        assert_eq!(self.status, status, "{case}: {self:?}");
        assert_eq!(self.body, body, "{case}: {self:?}");
        let json = (!body.is_empty()).then_some("application/json");
        assert_eq!(self.header("content-type"), json, "{case}: {self:?}");
    }

    /// The whole seconds of `Retry-After`; panics when it is missing or not a number.
    #[track_caller]
    fn retry_after(&self) -> u64 {
        self.header("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After: {self:?}"))
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {self:?}"))
    }
}

async fn send(request: RequestBuilder) -> Answer {
    let started = Instant::now();
    let response = request.send().await.expect("an HTTP answer");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("a body"),
        elapsed: started.elapsed(),
    }
}

/// A world, the real server and gateway in front of its database, and an HTTP client.
struct Rest {
    world: World,
    stack: Stack,
    http: reqwest::Client,
}

impl Rest {
    fn start() -> Self {
        Self::start_with(&["--rate-limit", "0"])
    }

    fn start_with(gateway_args: &[&str]) -> Self {
        let world = World::new();
        let stack = spawn_stack(&world.db, gateway_args);
        Self {
            world,
            stack,
            http: http_client(),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.stack.url()))
    }

    /// `method path` with the key (if any) in `X-API-KEY`.
    async fn call(&self, method: Method, path: &str, key: Option<&str>) -> Answer {
        let mut request = self.request(method, path);
        if let Some(key) = key {
            request = request.header("X-API-KEY", key);
        }
        send(request).await
    }

    async fn delete(&self, path: &str, key: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, key).await
    }

    /// The member path of the demo user in the demo group.
    fn demo_path(&self) -> String {
        let demo = &self.world.demo;
        member_path("demo", demo.group, demo.user)
    }

    /// A fresh user of "demo" made a member of the demo group.
    fn new_member(&self, username: &str) -> UserId {
        let user = self.world.add_user("demo", username);
        self.world.add_member("demo", self.world.demo.group, user);
        user
    }
}
