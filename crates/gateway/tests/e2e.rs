//! The REST API end to end, as a public client sees it: the real `groups-gateway` in front of the
//! real `groups-server` over a fresh PostgreSQL database per test. Every REST row of SPEC.md with
//! its exact status and body, the order of checks, key sources, routes, CORS, outages (server
//! down, database down, slow database), the rate limit, concurrency and tenant isolation.
//!
//! `tests/rest.rs` covers the gateway alone against a fake server; here nothing is faked.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groups_testkit::{
    FaultProxy, Role, RowCounts, ServiceCommand, ServiceProcess, Stack, UserId, World,
    spawn_gateway, spawn_server, spawn_stack,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};

const GROUP_NOT_FOUND: &str = r#"{"detail":"Group was not found."}"#;
const NOT_FOUND: &str = r#"{"detail":"Not found"}"#;
const INSTANCE_NOT_FOUND: &str = r#"{"detail":"Instance was not found."}"#;
const NO_PERMISSION: &str = r#"{"detail":"You do not have permission to perform this action."}"#;
const NO_SUCH_KEY: &str = r#"{"detail":"No such API Key."}"#;
const UNAVAILABLE: &str = r#"{"detail":"Service temporarily unavailable, try again later."}"#;
const TIMED_OUT: &str = r#"{"detail":"Request timed out."}"#;

/// Well-formed keys nobody holds: an account-shaped one (even) and an API-key-shaped one (odd).
const UNKNOWN_ACCOUNT_KEY: &str = "0123456789abcdef0123456789abcdef01234560";
const UNKNOWN_API_KEY: &str = "0123456789abcdef0123456789abcdef01234561";

/// A group and a user id no row has.
const NO_SUCH_ID: i64 = 987_654_321;

/// `/v1.1/instances/{instance}/groups/{group}/users/{user}/`.
fn member_path(instance: &str, group: impl ToString, user: impl ToString) -> String {
    format!(
        "/v1.1/instances/{instance}/groups/{}/users/{}/",
        group.to_string(),
        user.to_string()
    )
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
        if body.is_empty() {
            assert!(self.header("content-type").is_none(), "{case}: {self:?}");
        } else {
            assert_eq!(
                self.header("content-type"),
                Some("application/json"),
                "{case}: {self:?}"
            );
        }
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
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("a body");
    Answer {
        status,
        headers,
        body,
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.url())
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// `DELETE path` with the key (if any) in `X-API-KEY`.
    async fn delete(&self, path: &str, key: Option<&str>) -> Answer {
        let mut request = self.request(Method::DELETE, path);
        if let Some(key) = key {
            request = request.header("X-API-KEY", key);
        }
        send(request).await
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

/// An outage seen through the gateway: while `proxy` is cut, each of `attempts` removals of the
/// demo membership answers 503 with `Retry-After` within `bound` and removes nothing; once it is
/// restored, the removal succeeds again within 10 s, with nothing restarted.
async fn unavailable_while_cut_then_served_again(
    world: &World,
    proxy: &FaultProxy,
    delete: impl Fn(UserId) -> RequestBuilder,
    attempts: usize,
    bound: Duration,
    what: &str,
) {
    let demo = &world.demo;
    proxy.cut();
    for attempt in 0..attempts {
        let answer = send(delete(demo.user)).await;
        answer.assert(503, UNAVAILABLE, &format!("{what}, attempt {attempt}"));
        assert!(answer.retry_after() >= 1);
        assert!(
            answer.elapsed < bound,
            "answered after {:?}",
            answer.elapsed
        );
    }
    assert!(world.is_member(demo.group, demo.user));

    proxy.restore();
    let served = eventually(Duration::from_secs(10), || async {
        let answer = send(delete(demo.user)).await;
        match answer.status {
            204 => Some(()),
            503 => None,
            _ => panic!("after restore: {answer:?}"),
        }
    })
    .await;
    assert!(served.is_some(), "not served again within 10 s");
    assert!(!world.is_member(demo.group, demo.user));
}

/// Retries `attempt` until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- row 8: removed ------------------------------------------------------------------------

#[tokio::test]
async fn removed_is_204_with_an_empty_body_and_deletes_only_the_membership() {
    let r = Rest::start();
    let demo = &r.world.demo;
    let bob = r.new_member("bob");
    let other_group = r.world.add_group("demo", "other-group");
    r.world.add_member("demo", other_group, demo.user);
    let before = r.world.counts();

    r.delete(&r.demo_path(), Some(&demo.owner.key))
        .await
        .assert(204, "", "removal");

    assert!(!r.world.is_member(demo.group, demo.user));
    assert!(r.world.is_member(demo.group, bob));
    assert!(r.world.is_member(other_group, demo.user));
    assert_eq!(
        r.world.counts(),
        RowCounts {
            memberships: before.memberships - 1,
            ..before
        }
    );
    // Once gone, it is "not a member".
    r.delete(&r.demo_path(), Some(&demo.owner.key))
        .await
        .assert(404, NOT_FOUND, "second removal");
}

#[tokio::test]
async fn owner_full_and_write_admins_remove_members() {
    let r = Rest::start();
    let owner = r.world.demo.owner.key.clone();
    let full = r.world.add_admin("demo", Some(Role::Full)).key;
    let write = r.world.add_admin("demo", Some(Role::Write)).key;
    for (who, key) in [("owner", owner), ("full", full), ("write", write)] {
        let user = r.new_member(&format!("member-of-{who}"));
        r.delete(&member_path("demo", r.world.demo.group, user), Some(&key))
            .await
            .assert(204, "", who);
        assert!(!r.world.is_member(r.world.demo.group, user), "{who}");
    }
}

#[tokio::test]
async fn instance_names_are_case_insensitive() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    for name in ["DEMO", "Demo", "de%6Do"] {
        let user = r.new_member(&format!("user-{name}"));
        r.delete(&member_path(name, r.world.demo.group, user), Some(&key))
            .await
            .assert(204, "", name);
        assert!(!r.world.is_member(r.world.demo.group, user), "{name}");
    }
}

#[tokio::test]
async fn v1_alias_and_no_trailing_slash_remove_too() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    let group = r.world.demo.group;
    for (i, template) in [
        "/v1.1/instances/demo/groups/{g}/users/{u}/",
        "/v1.1/instances/demo/groups/{g}/users/{u}",
        "/v1/instances/demo/groups/{g}/users/{u}/",
        "/v1/instances/demo/groups/{g}/users/{u}",
    ]
    .into_iter()
    .enumerate()
    {
        let user = r.new_member(&format!("user-{i}"));
        let path = template
            .replace("{g}", &group.to_string())
            .replace("{u}", &user.to_string());
        r.delete(&path, Some(&key)).await.assert(204, "", &path);
        assert!(!r.world.is_member(group, user), "{path}");
    }
}

// ---- row 1: malformed ids ------------------------------------------------------------------

const MALFORMED_IDS: [&str; 11] = [
    "abc",
    "0",
    "000",
    "-1",
    "9223372036854775808",
    "99999999999999999999999999999999",
    "1.5",
    "+1",
    "0x10",
    "%201",
    "1e3",
];

#[tokio::test]
async fn malformed_group_id_is_group_not_found() {
    let r = Rest::start();
    let demo = &r.world.demo;
    let before = r.world.counts();
    for group in MALFORMED_IDS {
        r.delete(
            &member_path("demo", group, demo.user),
            Some(&demo.owner.key),
        )
        .await
        .assert(404, GROUP_NOT_FOUND, group);
    }
    assert_eq!(r.world.counts(), before);
}

#[tokio::test]
async fn malformed_user_id_is_not_found() {
    let r = Rest::start();
    let demo = &r.world.demo;
    let before = r.world.counts();
    for user in MALFORMED_IDS {
        r.delete(
            &member_path("demo", demo.group, user),
            Some(&demo.owner.key),
        )
        .await
        .assert(404, NOT_FOUND, user);
    }
    assert_eq!(r.world.counts(), before);
}

#[tokio::test]
async fn malformed_group_and_user_answer_for_the_group() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    for (group, user) in [("abc", "xyz"), ("0", "0"), ("-1", "1.5")] {
        let case = format!("{group}/{user}");
        r.delete(&member_path("demo", group, user), Some(&key))
            .await
            .assert(404, GROUP_NOT_FOUND, &case);
        // Before the instance and the key are looked at.
        r.delete(&member_path("nope", group, user), None)
            .await
            .assert(404, GROUP_NOT_FOUND, &case);
    }
}

// ---- row 2: instance -----------------------------------------------------------------------

#[tokio::test]
async fn unknown_or_invalid_instance_is_instance_not_found() {
    let r = Rest::start();
    let demo = &r.world.demo;
    let before = r.world.counts();
    let too_long = "a".repeat(65);
    for name in [
        "nope",
        "no.such",
        "no%20such",
        "%C3%A4",
        "demo%00",
        "%FF",
        too_long.as_str(),
    ] {
        for key in [Some(demo.owner.key.as_str()), None] {
            r.delete(&member_path(name, demo.group, demo.user), key)
                .await
                .assert(404, INSTANCE_NOT_FOUND, name);
        }
    }
    assert_eq!(r.world.counts(), before);
}

// ---- rows 3 and 4: the key -----------------------------------------------------------------

#[tokio::test]
async fn no_key_is_permission_denied() {
    let r = Rest::start();
    r.delete(&r.demo_path(), None)
        .await
        .assert(403, NO_PERMISSION, "no key");
    // Empty values count as not given.
    let path = format!("{}?api_key=&apikey=", r.demo_path());
    send(r.request(Method::DELETE, &path).header("X-API-KEY", ""))
        .await
        .assert(403, NO_PERMISSION, "empty key values");
    // An Authorization header that is not exactly two words is not a key.
    let key = r.world.demo.owner.key.clone();
    for value in [key.clone(), format!("Token {key} extra")] {
        send(
            r.request(Method::DELETE, &r.demo_path())
                .header("Authorization", value),
        )
        .await
        .assert(403, NO_PERMISSION, "authorization not two words");
    }
    assert!(r.world.is_member(r.world.demo.group, r.world.demo.user));
}

#[tokio::test]
async fn unknown_revoked_malformed_foreign_or_inactive_keys_are_no_such_api_key() {
    let r = Rest::start();
    let w = &r.world;
    let owner = w.demo.owner.key.clone();
    w.add_instance("other");
    let upper = owner.to_uppercase();
    assert_ne!(upper, owner, "the owner's key has a hex letter");
    let cases: Vec<(&str, String)> = vec![
        ("unknown account-shaped key", UNKNOWN_ACCOUNT_KEY.to_owned()),
        ("unknown API-key-shaped key", UNKNOWN_API_KEY.to_owned()),
        ("revoked API key", w.add_revoked_api_key("demo", false).key),
        (
            "revoked ignore_acl API key",
            w.add_revoked_api_key("demo", true).key,
        ),
        ("39 characters", owner[..39].to_owned()),
        ("41 characters", format!("{owner}0")),
        ("upper-case hex", upper),
        ("not hex", format!("{}g", &owner[..39])),
        ("not a key at all", "let me in".to_owned()),
        (
            "another instance's API key",
            w.add_api_key("other", true).key,
        ),
        (
            "an inactive write admin's key",
            w.add_inactive_admin("demo", Some(Role::Write)).key,
        ),
    ];
    let before = w.counts();
    for (case, key) in &cases {
        r.delete(&r.demo_path(), Some(key))
            .await
            .assert(403, NO_SUCH_KEY, case);
    }
    assert_eq!(w.counts(), before);
}

// ---- row 5: permission ---------------------------------------------------------------------

#[tokio::test]
async fn api_keys_read_admins_and_admins_without_a_role_are_permission_denied() {
    let r = Rest::start();
    let w = &r.world;
    let other = w.add_instance("other");
    let cases = [
        ("API key", w.add_api_key("demo", false).key),
        ("API key with ignore_acl", w.add_api_key("demo", true).key),
        ("read admin", w.add_admin("demo", Some(Role::Read)).key),
        ("admin with no role", w.add_admin("demo", None).key),
        ("another instance's owner", other.owner.key.clone()),
    ];
    let before = w.counts();
    for (case, key) in &cases {
        r.delete(&r.demo_path(), Some(key))
            .await
            .assert(403, NO_PERMISSION, case);
    }
    assert_eq!(w.counts(), before);
}

// ---- row 6: group --------------------------------------------------------------------------

#[tokio::test]
async fn missing_deleted_and_foreign_groups_are_group_not_found() {
    let r = Rest::start();
    let w = &r.world;
    let demo = &w.demo;
    let key = Some(demo.owner.key.as_str());
    let deleted = w.add_group("demo", "deleted");
    w.add_member("demo", deleted, demo.user);
    w.delete_group("demo", deleted);
    let other = w.add_instance("other");
    let before = w.counts();
    for (case, group, user) in [
        ("no such group", NO_SUCH_ID, demo.user.get()),
        ("largest id", i64::MAX, demo.user.get()),
        ("deleted group", deleted.get(), demo.user.get()),
        (
            "another instance's group",
            other.group.get(),
            other.user.get(),
        ),
    ] {
        r.delete(&member_path("demo", group, user), key)
            .await
            .assert(404, GROUP_NOT_FOUND, case);
    }
    assert_eq!(w.counts(), before);
    assert!(w.is_member(other.group, other.user));
    assert!(w.is_member(deleted, demo.user));
}

// ---- row 7: membership ---------------------------------------------------------------------

#[tokio::test]
async fn non_members_are_not_found_whether_or_not_the_user_exists() {
    let r = Rest::start();
    let w = &r.world;
    let demo = &w.demo;
    let key = Some(demo.owner.key.as_str());
    let loner = w.add_user("demo", "loner");
    let other = w.add_instance("other");
    let before = w.counts();
    for (case, user) in [
        ("existing user, not a member", loner.get()),
        ("no such user", NO_SUCH_ID),
        ("largest id", i64::MAX),
        ("another instance's user", other.user.get()),
    ] {
        r.delete(&member_path("demo", demo.group, user), key)
            .await
            .assert(404, NOT_FOUND, case);
    }
    assert_eq!(w.counts(), before);
}

// ---- order of checks -----------------------------------------------------------------------

/// A row of the order-of-checks table: case, instance, group, user, key, status, body.
type OrderCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    u16,
    &'a str,
);

#[tokio::test]
async fn the_first_failing_check_answers() {
    let r = Rest::start();
    let w = &r.world;
    let demo = &w.demo;
    let (group, user) = (demo.group.get().to_string(), demo.user.get().to_string());
    let owner = demo.owner.key.clone();
    let reader = w.add_admin("demo", Some(Role::Read)).key;
    let api_key = w.add_api_key("demo", true).key;
    let revoked = w.add_revoked_api_key("demo", false).key;
    let deleted_group = w.add_group("demo", "deleted");
    w.delete_group("demo", deleted_group);
    let deleted = deleted_group.to_string();
    let loner = w.add_user("demo", "loner").get().to_string();
    let none = NO_SUCH_ID.to_string();
    let before = w.counts();

    // (case, instance, group, user, key, status, body)
    #[rustfmt::skip]
    let cases: [OrderCase<'_>; 12] = [
        ("bad group + no instance + no key", "nope", "x", &user, None, 404, GROUP_NOT_FOUND),
        ("bad user + no instance + no key", "nope", &group, "x", None, 404, NOT_FOUND),
        ("no instance + no key", "nope", &group, &user, None, 404, INSTANCE_NOT_FOUND),
        ("invalid instance + read admin", "no.such", &group, &user, Some(&reader), 404, INSTANCE_NOT_FOUND),
        ("no key + no group + no user", "demo", &none, &none, None, 403, NO_PERMISSION),
        ("malformed key + no group", "demo", &none, &user, Some("garbage"), 403, NO_SUCH_KEY),
        ("revoked key + deleted group", "demo", &deleted, &loner, Some(&revoked), 403, NO_SUCH_KEY),
        ("unknown key + member", "demo", &group, &user, Some(UNKNOWN_ACCOUNT_KEY), 403, NO_SUCH_KEY),
        ("read admin + no group", "demo", &none, &user, Some(&reader), 403, NO_PERMISSION),
        ("API key + deleted group + not a member", "demo", &deleted, &loner, Some(&api_key), 403, NO_PERMISSION),
        ("deleted group + not a member", "demo", &deleted, &loner, Some(&owner), 404, GROUP_NOT_FOUND),
        ("no group + no user", "demo", &none, &none, Some(&owner), 404, GROUP_NOT_FOUND),
    ];
    for (case, instance, group, user, key, status, body) in cases {
        r.delete(&member_path(instance, group, user), key)
            .await
            .assert(status, body, case);
    }
    assert_eq!(w.counts(), before);
    assert!(w.is_member(demo.group, demo.user));
}

// ---- key sources and precedence ------------------------------------------------------------

/// A row of the key precedence table: case, headers, query parameters, status, body.
type PrecedenceCase = (
    &'static str,
    Vec<(&'static str, String)>,
    Vec<(&'static str, String)>,
    u16,
    &'static str,
);

#[tokio::test]
async fn the_key_is_read_from_header_query_or_authorization_first_found_wins() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    let bad = UNKNOWN_ACCOUNT_KEY;
    let group = r.world.demo.group;

    // Each source alone removes.
    type Build<'a> = Box<dyn Fn(RequestBuilder, &str) -> RequestBuilder + 'a>;
    let sources: Vec<(&str, Build<'_>)> = vec![
        ("X-API-KEY", Box::new(|rq, k| rq.header("X-API-KEY", k))),
        ("?api_key=", Box::new(|rq, k| rq.query(&[("api_key", k)]))),
        ("?apikey=", Box::new(|rq, k| rq.query(&[("apikey", k)]))),
        (
            "Authorization: Token",
            Box::new(|rq, k| rq.header("Authorization", format!("Token {k}"))),
        ),
        (
            "Authorization: Bearer",
            Box::new(|rq, k| rq.header("Authorization", format!("Bearer {k}"))),
        ),
    ];
    for (i, (source, build)) in sources.iter().enumerate() {
        let user = r.new_member(&format!("user-{i}"));
        let request = r.request(Method::DELETE, &member_path("demo", group, user));
        send(build(request, &key)).await.assert(204, "", source);
        assert!(!r.world.is_member(group, user), "{source}");
    }

    // Precedence: header, then api_key, then apikey, then Authorization.
    let header = |value: &str| vec![("X-API-KEY", value.to_owned())];
    let token = |value: &str| vec![("Authorization", format!("Token {value}"))];
    let query = |name: &'static str, value: &str| vec![(name, value.to_owned())];
    // (case, headers, query parameters, status, body)
    #[rustfmt::skip]
    let cases: [PrecedenceCase; 8] = [
        ("good header + bad query", header(&key), query("api_key", bad), 204, ""),
        ("bad header + good query", header(bad), query("api_key", &key), 403, NO_SUCH_KEY),
        ("good api_key + bad apikey", vec![], [query("api_key", &key), query("apikey", bad)].concat(), 204, ""),
        ("bad api_key + good apikey", vec![], [query("apikey", &key), query("api_key", bad)].concat(), 403, NO_SUCH_KEY),
        ("good query + bad Authorization", token(bad), query("apikey", &key), 204, ""),
        ("bad query + good Authorization", token(&key), query("api_key", bad), 403, NO_SUCH_KEY),
        ("good header + bad Authorization", [header(&key), token(bad)].concat(), vec![], 204, ""),
        ("empty header + good Authorization", [header(""), token(&key)].concat(), vec![], 204, ""),
    ];
    for (i, (case, headers, query, status, body)) in cases.into_iter().enumerate() {
        let user = r.new_member(&format!("precedence-{i}"));
        let mut request = r
            .request(Method::DELETE, &member_path("demo", group, user))
            .query(&query);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        send(request).await.assert(status, body, case);
        assert_eq!(r.world.is_member(group, user), status != 204, "{case}");
    }
}

// ---- other methods, unknown paths, CORS ----------------------------------------------------

#[tokio::test]
async fn other_methods_on_the_route_are_405_with_allow() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    for method in ["PUT", "GET", "POST", "PATCH"] {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        for path in [
            r.demo_path(),
            r.demo_path().trim_end_matches('/').to_owned(),
            r.demo_path().replacen("/v1.1/", "/v1/", 1),
        ] {
            let answer = send(r.request(method.clone(), &path).header("X-API-KEY", &key)).await;
            let body = format!(r#"{{"detail":"Method \"{method}\" not allowed."}}"#);
            answer.assert(405, &body, &format!("{method} {path}"));
            let allow = answer
                .header("allow")
                .unwrap_or_else(|| panic!("no Allow: {answer:?}"));
            assert!(allow.contains("DELETE"), "Allow: {allow}");
        }
    }
    assert!(r.world.is_member(r.world.demo.group, r.world.demo.user));
}

#[tokio::test]
async fn unknown_paths_are_404_not_found() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    let demo = &r.world.demo;
    let (g, u) = (demo.group, demo.user);
    let paths = [
        "/".to_owned(),
        "/v1.1/".to_owned(),
        "/v1.1/instances/demo/".to_owned(),
        format!("/v1.1/instances/demo/groups/{g}/users/"),
        format!("/v1.1/instances/demo/groups/{g}/users/{u}/extra/"),
        format!("/v2/instances/demo/groups/{g}/users/{u}/"),
        format!("/v1.1/instances//groups/{g}/users/{u}/"),
        format!("/v1.1/instances/demo/groups//users/{u}/"),
        format!("/v1.1/instances/demo/groups/{g}/members/{u}/"),
        format!("/V1.1/instances/demo/groups/{g}/users/{u}/"),
    ];
    for path in &paths {
        for method in [Method::DELETE, Method::GET] {
            send(r.request(method.clone(), path).header("X-API-KEY", &key))
                .await
                .assert(404, NOT_FOUND, &format!("{method} {path}"));
        }
    }
    assert!(r.world.is_member(g, u));
}

#[tokio::test]
async fn cors_allows_any_origin_to_delete_with_a_key_header() {
    let r = Rest::start();
    let origin = "https://dashboard.example.org";
    for requested_headers in [
        "x-api-key",
        "X-API-KEY",
        "x-user-key",
        "x-api-key,x-user-key",
    ] {
        let preflight = send(
            r.request(Method::OPTIONS, &r.demo_path())
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "DELETE")
                .header("Access-Control-Request-Headers", requested_headers),
        )
        .await;
        assert!(
            (200..300).contains(&preflight.status),
            "{requested_headers}: {preflight:?}"
        );
        let allowed_origin = preflight.header("access-control-allow-origin");
        assert!(
            allowed_origin == Some("*") || allowed_origin == Some(origin),
            "{preflight:?}"
        );
        let methods = preflight
            .header("access-control-allow-methods")
            .unwrap_or_default()
            .to_ascii_uppercase();
        assert!(methods.contains("DELETE"), "{preflight:?}");
        let headers = preflight
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        for wanted in requested_headers.to_ascii_lowercase().split(',') {
            assert!(
                headers == "*" || headers.contains(wanted),
                "{wanted} not allowed: {preflight:?}"
            );
        }
    }
    assert!(r.world.is_member(r.world.demo.group, r.world.demo.user));

    // The actual request, and an error answer, carry the header too (a browser reads neither
    // otherwise).
    for (key, status, body) in [
        (UNKNOWN_ACCOUNT_KEY, 403, NO_SUCH_KEY),
        (r.world.demo.owner.key.as_str(), 204, ""),
    ] {
        let answer = send(
            r.request(Method::DELETE, &r.demo_path())
                .header("Origin", origin)
                .header("X-API-KEY", key),
        )
        .await;
        answer.assert(status, body, "actual request");
        assert!(
            answer.header("access-control-allow-origin").is_some(),
            "{answer:?}"
        );
    }
}

// ---- outages -------------------------------------------------------------------------------

#[tokio::test]
async fn without_a_grpc_server_the_gateway_answers_503_with_retry_after() {
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address")
    };
    let gateway = spawn_gateway(&format!("http://{closed_port}"), &["--rate-limit", "0"]);
    let http = http_client();
    for attempt in 0..3 {
        let answer = send(
            http.delete(format!("{}{}", gateway.url(), member_path("demo", 1, 2)))
                .header("X-API-KEY", UNKNOWN_ACCOUNT_KEY),
        )
        .await;
        answer.assert(503, UNAVAILABLE, &format!("attempt {attempt}"));
        assert!(answer.retry_after() >= 1);
        assert!(
            answer.elapsed < Duration::from_secs(3),
            "answered after {:?}",
            answer.elapsed
        );
    }
}

#[tokio::test]
async fn a_grpc_server_that_drops_connections_is_503_with_retry_after() {
    // Accepts every connection and closes it at once: a server restarting behind a load
    // balancer, or a port that is not (yet) a gRPC server.
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address")
    };
    let dropping = FaultProxy::start(closed_port);
    dropping.cut();
    let gateway = spawn_gateway(
        &format!("http://{}", dropping.addr()),
        &["--rate-limit", "0"],
    );
    let http = http_client();
    // The connection may fail at several points of its set-up; enough attempts meet them all.
    let mut wrong = Vec::new();
    for attempt in 0..20 {
        let answer = send(
            http.delete(format!("{}{}", gateway.url(), member_path("demo", 1, 2)))
                .header("X-API-KEY", UNKNOWN_ACCOUNT_KEY),
        )
        .await;
        let right = answer.status == 503
            && answer.body == UNAVAILABLE
            && answer.header("retry-after").is_some()
            && answer.elapsed < Duration::from_secs(3);
        if !right {
            wrong.push(format!(
                "attempt {attempt}: {} {} after {:?}",
                answer.status, answer.body, answer.elapsed
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 503 {UNAVAILABLE} with Retry-After every time:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn grpc_server_cut_off_is_503_then_served_again_without_a_restart() {
    let world = World::new();
    let server = spawn_server(world.url(), &[]);
    let proxy = FaultProxy::start(server.addr());
    let gateway = spawn_gateway(&format!("http://{}", proxy.addr()), &["--rate-limit", "0"]);
    let http = http_client();
    let demo = &world.demo;
    let key = demo.owner.key.clone();
    let delete = |user: UserId| {
        http.delete(format!(
            "{}{}",
            gateway.url(),
            member_path("demo", demo.group, user)
        ))
        .header("X-API-KEY", &key)
    };
    let warm = world.add_user("demo", "warm-up");
    world.add_member("demo", demo.group, warm);
    send(delete(warm)).await.assert(204, "", "before the cut");

    // Each attempt meets a connection that is accepted and closed at once, as while a server
    // restarts behind a load balancer.
    unavailable_while_cut_then_served_again(
        &world,
        &proxy,
        delete,
        5,
        Duration::from_secs(3),
        "cut",
    )
    .await;
    drop(gateway);
    drop(server);
}

#[tokio::test]
async fn grpc_server_killed_is_503_with_retry_after() {
    let mut r = Rest::start();
    let demo = &r.world.demo;
    let key = demo.owner.key.clone();
    let warm = r.new_member("warm-up");
    r.delete(&member_path("demo", demo.group, warm), Some(&key))
        .await
        .assert(204, "", "server up");

    r.stack.server.kill();
    for attempt in 0..5 {
        let answer = r.delete(&r.demo_path(), Some(&key)).await;
        answer.assert(
            503,
            UNAVAILABLE,
            &format!("server killed, attempt {attempt}"),
        );
        assert!(answer.retry_after() >= 1);
        assert!(
            answer.elapsed < Duration::from_secs(3),
            "answered after {:?}",
            answer.elapsed
        );
    }
    assert!(r.world.is_member(demo.group, demo.user));
}

/// A server whose database connections go through a fault proxy, and a gateway in front of it.
fn stack_with_database_proxy(
    world: &World,
    server_args: &[&str],
    gateway_args: &[&str],
) -> (FaultProxy, ServiceProcess, ServiceProcess) {
    let proxy = FaultProxy::start(world.db.server_addr());
    let server = ServiceCommand::server(&world.db.url_via(proxy.addr()))
        .args(server_args)
        .spawn();
    let gateway = spawn_gateway(&server.url(), gateway_args);
    (proxy, server, gateway)
}

#[tokio::test]
async fn database_down_is_503_with_retry_after_then_served_again_without_a_restart() {
    let world = World::new();
    let (proxy, _server, gateway) = stack_with_database_proxy(
        &world,
        &["--pool-timeout-ms", "500"],
        &["--rate-limit", "0"],
    );
    let http = http_client();
    let demo = &world.demo;
    let key = demo.owner.key.clone();
    let delete = |user: UserId| {
        http.delete(format!(
            "{}{}",
            gateway.url(),
            member_path("demo", demo.group, user)
        ))
        .header("X-API-KEY", &key)
    };
    let warm = world.add_user("demo", "warm-up");
    world.add_member("demo", demo.group, warm);
    send(delete(warm)).await.assert(204, "", "database up");

    // The pool checkout timeout (500 ms) plus a generous margin for a loaded machine.
    let bound = Duration::from_millis(2500);
    unavailable_while_cut_then_served_again(&world, &proxy, delete, 3, bound, "database cut").await;
}

#[tokio::test]
async fn a_backend_slower_than_the_deadline_is_504() {
    let world = World::new();
    let (proxy, _server, gateway) =
        stack_with_database_proxy(&world, &[], &["--rate-limit", "0", "--deadline-ms", "300"]);
    let http = http_client();
    let demo = &world.demo;
    let delete = |user: i64| {
        http.delete(format!(
            "{}{}",
            gateway.url(),
            member_path("demo", demo.group, user)
        ))
        .header("X-API-KEY", &demo.owner.key)
    };
    // Warm the pool, so the slow part is the statement, not the connection set-up.
    send(delete(NO_SUCH_ID))
        .await
        .assert(404, NOT_FOUND, "warm-up");

    proxy.set_latency(Duration::from_secs(1));
    for attempt in 0..2 {
        let answer = send(delete(demo.user.get())).await;
        answer.assert(504, TIMED_OUT, &format!("slow database, attempt {attempt}"));
        assert!(
            answer.elapsed < Duration::from_secs(1),
            "answered after {:?}, the deadline is 300 ms",
            answer.elapsed
        );
    }
}

/// README ("Health"): `/healthz` while the gateway runs, `/readyz` only while the server is
/// SERVING, which it is only while its database answers.
#[tokio::test]
async fn readyz_follows_the_database_and_healthz_the_process() {
    let world = World::new();
    let (proxy, _server, gateway) = stack_with_database_proxy(
        &world,
        &["--health-interval-ms", "100", "--pool-timeout-ms", "500"],
        &["--rate-limit", "0"],
    );
    let http = http_client();
    let get = |path: &str| send(http.get(format!("{}{path}", gateway.url())));
    let readiness = |wanted: u16| async move {
        eventually(Duration::from_secs(10), || async {
            let answer = get("/readyz").await;
            (answer.status == wanted).then_some(answer)
        })
        .await
        .unwrap_or_else(|| panic!("/readyz never answered {wanted}"))
    };

    readiness(200)
        .await
        .assert(200, r#"{"status":"ready"}"#, "ready");
    get("/healthz")
        .await
        .assert(200, r#"{"status":"ok"}"#, "alive");

    proxy.cut();
    let down = readiness(503).await;
    let body: serde_json::Value = serde_json::from_str(&down.body).expect("JSON");
    assert_eq!(body["status"], "unavailable", "{down:?}");
    get("/healthz").await.assert(
        200,
        r#"{"status":"ok"}"#,
        "alive while the database is down",
    );

    proxy.restore();
    readiness(200)
        .await
        .assert(200, r#"{"status":"ready"}"#, "ready again");
}

// ---- rate limit ----------------------------------------------------------------------------

#[tokio::test]
async fn an_instance_over_its_rate_is_429_with_retry_after_and_others_are_not() {
    let r = Rest::start_with(&["--rate-limit", "5"]);
    let other = r.world.add_instance("other");
    let demo = &r.world.demo;
    let not_a_member = member_path("demo", demo.group, NO_SUCH_ID);

    let started = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(r.delete(&not_a_member, Some(&demo.owner.key)).await);
    }
    // Another instance, in the same second: its own budget.
    let mut others = Vec::new();
    for _ in 0..4 {
        others.push(
            r.delete(
                &member_path("other", other.group, NO_SUCH_ID),
                Some(&other.owner.key),
            )
            .await,
        );
    }
    let elapsed = started.elapsed();

    let mut throttled = 0;
    for answer in &answers {
        if answer.status == 404 {
            answer.assert(404, NOT_FOUND, "within the rate");
            continue;
        }
        assert_eq!(answer.status, 429, "{answer:?}");
        throttled += 1;
        let seconds = answer.retry_after();
        assert!(seconds >= 1, "{answer:?}");
        let body = format!(
            r#"{{"detail":"Request was throttled. Expected available in {seconds} seconds."}}"#
        );
        answer.assert(429, &body, "throttled");
    }
    // 5 at once, then 5 a second: allow for the refill during a slow run.
    let refilled = (elapsed.as_secs_f64() * 5.0).ceil() as usize;
    assert!(
        answers.len() - throttled <= 5 + refilled,
        "{throttled} of 20 throttled in {elapsed:?}"
    );
    assert!(throttled >= 1, "none of 20 throttled in {elapsed:?}");
    for answer in &others {
        answer.assert(404, NOT_FOUND, "another instance");
    }
}

// ---- invariants: concurrency, tenant isolation, input, logs --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_of_one_membership_succeed_exactly_once() {
    let r = Arc::new(Rest::start());
    let before = r.world.counts();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let r = Arc::clone(&r);
        tasks.spawn(async move {
            let key = r.world.demo.owner.key.clone();
            r.delete(&r.demo_path(), Some(&key)).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.expect("task"));
    }
    let removed = answers.iter().filter(|a| a.status == 204).count();
    assert_eq!(removed, 1, "{answers:#?}");
    for answer in answers.iter().filter(|a| a.status != 204) {
        answer.assert(404, NOT_FOUND, "lost the race");
    }
    assert!(!r.world.is_member(r.world.demo.group, r.world.demo.user));
    assert_eq!(
        r.world.counts(),
        RowCounts {
            memberships: before.memberships - 1,
            ..before
        }
    );
}

#[tokio::test]
async fn a_key_of_one_instance_never_reveals_or_touches_another_instances_rows() {
    let r = Rest::start();
    let w = &r.world;
    let demo = &w.demo;
    let other = w.add_instance("other");
    let demo_api_key = w.add_api_key("demo", true).key;
    let before = w.counts();

    // On "other" with demo's keys: the same answer whether other's group and user exist.
    for (case, key, status, body) in [
        ("demo's API key", demo_api_key.as_str(), 403, NO_SUCH_KEY),
        (
            "demo's owner, no role on other",
            demo.owner.key.as_str(),
            403,
            NO_PERMISSION,
        ),
    ] {
        for (group, user) in [
            (other.group.get(), other.user.get()),
            (other.group.get(), NO_SUCH_ID),
            (NO_SUCH_ID, other.user.get()),
            (NO_SUCH_ID, NO_SUCH_ID),
        ] {
            r.delete(&member_path("other", group, user), Some(key))
                .await
                .assert(status, body, &format!("{case}: {group}/{user}"));
        }
    }
    // On demo, naming other's rows: answered as if they did not exist.
    let key = Some(demo.owner.key.as_str());
    for (case, group, user, body) in [
        (
            "other's group",
            other.group.get(),
            other.user.get(),
            GROUP_NOT_FOUND,
        ),
        (
            "no such group",
            NO_SUCH_ID,
            other.user.get(),
            GROUP_NOT_FOUND,
        ),
        (
            "other's user",
            demo.group.get(),
            other.user.get(),
            NOT_FOUND,
        ),
        ("no such user", demo.group.get(), NO_SUCH_ID, NOT_FOUND),
    ] {
        r.delete(&member_path("demo", group, user), key)
            .await
            .assert(404, body, case);
    }
    assert_eq!(w.counts(), before);
    assert!(w.is_member(other.group, other.user));
}

#[tokio::test]
async fn no_input_makes_a_server_error() {
    let r = Rest::start();
    let demo = &r.world.demo;
    let key = demo.owner.key.clone();
    let long = "a".repeat(10_000);
    let (g, u) = (demo.group.to_string(), demo.user.to_string());
    let paths = [
        member_path(&long, &g, &u),
        member_path("demo", &long, &u),
        member_path("demo", &g, &long),
        member_path("demo%2Fx", &g, &u),
        member_path("demo", "%FF%FE", &u),
        member_path("demo", &g, "%00"),
        member_path("%", &g, &u),
        format!(
            "{}?{}",
            member_path("demo", &g, NO_SUCH_ID),
            "api_key=%zz&&=&%FF=%FF"
        ),
        format!(
            "{}?api_key={}",
            member_path("demo", &g, NO_SUCH_ID),
            "k".repeat(8_000)
        ),
    ];
    for path in &paths {
        let answer = r.delete(path, Some(&key)).await;
        assert!(
            (400..500).contains(&answer.status),
            "{}: {answer:?}",
            &path[..path.len().min(80)]
        );
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
    let long_key = send(
        r.request(Method::DELETE, &r.demo_path())
            .header("X-API-KEY", "k".repeat(8_000)),
    )
    .await;
    long_key.assert(403, NO_SUCH_KEY, "an 8 kB key");
    // Still serving, and nothing was removed by any of it.
    assert!(r.world.is_member(demo.group, demo.user));
    r.delete(&r.demo_path(), Some(&key))
        .await
        .assert(204, "", "after hostile input");
}

/// SIGTERM, then waits (without blocking the runtime, which may still have to close this
/// test's connections) for the exit, so the logs are complete.
async fn stop(service: &mut ServiceProcess) {
    service.terminate();
    let deadline = Instant::now() + Duration::from_secs(15);
    while service.try_wait().is_none() {
        assert!(Instant::now() < deadline, "{service:?} did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn keys_never_appear_in_the_logs() {
    let world = World::new();
    // The most verbose logging there is.
    let server = ServiceCommand::server(world.url())
        .env("RUST_LOG", "trace")
        .spawn();
    let gateway = ServiceCommand::gateway(&server.url())
        .args(["--rate-limit", "0"])
        .env("RUST_LOG", "trace")
        .spawn();
    let http = http_client();
    let demo = &world.demo;
    let keys = [
        demo.owner.key.clone(),
        world.add_api_key("demo", false).key,
        world.add_revoked_api_key("demo", true).key,
        world.add_admin("demo", Some(Role::Read)).key,
        UNKNOWN_ACCOUNT_KEY.to_owned(),
    ];
    let url = format!(
        "{}{}",
        gateway.url(),
        member_path("demo", demo.group, NO_SUCH_ID)
    );
    for key in &keys {
        for request in [
            http.delete(&url).header("X-API-KEY", key),
            http.delete(&url).query(&[("api_key", key)]),
            http.delete(&url).query(&[("apikey", key)]),
            http.delete(&url)
                .header("Authorization", format!("Token {key}")),
            http.get(&url).header("X-API-KEY", key),
        ] {
            let answer = send(request).await;
            assert!(answer.status < 500, "{answer:?}");
        }
    }
    let removed = send(
        http.delete(format!(
            "{}{}",
            gateway.url(),
            member_path("demo", demo.group, demo.user)
        ))
        .query(&[("api_key", &demo.owner.key)]),
    )
    .await;
    removed.assert(204, "", "removal with the key in the query");

    let (mut gateway, mut server) = (gateway, server);
    stop(&mut gateway).await;
    stop(&mut server).await;
    for (name, logs) in [("gateway", gateway.logs()), ("server", server.logs())] {
        assert!(!logs.is_empty(), "{name} logged nothing");
        for key in &keys {
            assert!(!logs.contains(key.as_str()), "a key is in the {name} logs");
            assert!(
                !logs.contains(&key[..20]),
                "part of a key is in the {name} logs"
            );
        }
    }
}
