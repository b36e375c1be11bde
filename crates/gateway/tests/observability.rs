//! What operators rely on, against the real processes: one request id followed through the
//! gateway's and the server's logs, the Prometheus counts of both after known traffic, and one
//! trace per removal (gateway span → server span) at an OTLP collector stand-in.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::{Duration, Instant};

use groups_proto::{GroupMembersClient, RemoveGroupMemberRequest};
use groups_runtime::RequestId;
use groups_testkit::{
    ExportedSpan, FaultProxy, OtlpSink, ServiceCommand, ServiceProcess, Stack, UserId, World,
    spawn_json_logging_stack,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const REMOVE_RPC: &str = "/groups.v1.GroupMembers/RemoveGroupMember";
const MEMBER_ROUTE: &str = "/v1.1/instances/{instance}/groups/{group_id}/users/{user_id}/";
const GET_USER_RPC: &str = "/groups.v1.Directory/GetUser";
const USER_ROUTE: &str = "/v1.1/instances/{instance}/users/{user_id}/";
const POOL: &str = "groups_server_pool_connections";

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

fn member_url(gateway: &ServiceProcess, group: impl Display, user: impl Display) -> String {
    format!(
        "{}/v1.1/instances/demo/groups/{group}/users/{user}/",
        gateway.url()
    )
}

fn user_url(gateway: &ServiceProcess, user: impl Display) -> String {
    format!("{}/v1.1/instances/demo/users/{user}/", gateway.url())
}

/// A fresh user of "demo", member of the demo group.
fn new_member(world: &World, username: &str) -> UserId {
    let user = world.add_user("demo", username);
    world.add_member("demo", world.demo.group, user);
    user
}

/// The JSON log lines of `logs` that were written inside the span of request `id`.
fn json_lines_of(logs: &str, id: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|span| span["request_id"] == id))
        })
        .collect()
}

/// The one line of `kind` (`request` at the gateway, `rpc` at the server) of request `id`,
/// once written: the server writes its line when the answer's trailers go out, which may
/// trail the client.
async fn the_line_of(process: &ServiceProcess, id: &str, kind: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = json_lines_of(&process.logs(), id);
        let of_kind: Vec<&Value> = lines.iter().filter(|l| l["message"] == kind).collect();
        if !of_kind.is_empty() || Instant::now() >= deadline {
            assert_eq!(of_kind.len(), 1, "one {kind} line: {lines:#?}");
            assert!(of_kind[0]["latency_ms"].is_f64(), "{:?}", of_kind[0]);
            return of_kind[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Request `id` followed through the stack: its access line at the gateway has `access`'s
/// fields, its RPC line at the server says OK, and that line's span (the request's, the first
/// of its span list) has `span`'s fields (a null one: absent).
async fn assert_followed(stack: &Stack, id: &str, access: Value, span: Value) {
    let has_fields = |line: &Value, fields: Value| {
        for (name, field) in fields.as_object().expect("fields") {
            assert_eq!(&line[name], field, "{name}: {line}");
        }
    };
    has_fields(&the_line_of(&stack.gateway, id, "request").await, access);
    let rpc = the_line_of(&stack.server, id, "rpc").await;
    assert_eq!(rpc["code"], "OK");
    has_fields(&rpc["spans"][0], span);
}

#[tokio::test]
async fn one_request_id_follows_a_call_through_both_processes_json_logs() {
    let world = World::new();
    let stack = spawn_json_logging_stack(world.url());
    let (gateway, server) = (&stack.gateway, &stack.server);
    let demo = &world.demo;
    let removal = format!("test-{}", RequestId::generate());
    let read = format!("test-{}", RequestId::generate());

    let (group, user) = (demo.group.get(), demo.user.get());
    // The read asks no group: none in its span.
    for (request, id, access, span) in [
        (
            http_client().delete(member_url(gateway, group, user)),
            &removal,
            json!({ "method": "DELETE", "route": MEMBER_ROUTE, "status": 204 }),
            json!({ "rpc": REMOVE_RPC, "instance": "demo", "group": group, "user": user, "outcome": "removed" }),
        ),
        (
            http_client().get(user_url(gateway, user)),
            &read,
            json!({ "method": "GET", "route": USER_ROUTE, "status": 200 }),
            json!({ "rpc": GET_USER_RPC, "instance": "demo", "group": null, "user": user, "outcome": "found" }),
        ),
    ] {
        let request = request.header("X-API-KEY", &demo.owner.key);
        let response = request.header("X-Request-Id", id).send().await;
        let response = response.expect("an answer");
        assert_eq!(access["status"], response.status().as_u16());
        assert_eq!(response.headers()["x-request-id"], id.as_str());
        assert_followed(&stack, id, access, span).await;
    }

    for (name, logs) in [("gateway", gateway.logs()), ("server", server.logs())] {
        assert!(!logs.contains(&demo.owner.key), "{name} logged the key");
        for raw in ["/instances/demo/groups/", "/instances/demo/users/"] {
            assert!(!logs.contains(raw), "{name} logged a raw path");
        }
    }
}

#[tokio::test]
async fn a_request_without_a_usable_id_gets_a_new_one_in_both_human_logs() {
    let world = World::new();
    let server = ServiceCommand::server(world.url()).spawn();
    let gateway = ServiceCommand::gateway(&server.url()).spawn();
    let demo = &world.demo;
    let http = http_client();
    let member = new_member(&world, "second");

    let key_shaped = "0123456789abcdef0123456789abcdef01234567";
    let long = "x".repeat(129);
    let cases: [(Option<&str>, UserId); 3] = [
        (None, demo.user),
        (Some("two words"), member),
        (Some(long.as_str()), member),
    ];
    for (given, user) in cases {
        let mut request = http
            .delete(member_url(&gateway, demo.group, user))
            .header("X-API-KEY", &demo.owner.key);
        if let Some(given) = given {
            request = request.header("X-Request-Id", given);
        }
        let response = request.send().await.expect("an answer");
        let id = response.headers()["x-request-id"].to_str();
        let id = id.expect("ASCII");
        assert_eq!(id.len(), 32, "{given:?} → {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let needle = format!("request_id={id}");
        assert!(gateway.wait_for_log(&needle, WAIT), "{}", gateway.logs());
        assert!(server.wait_for_log(&needle, WAIT), "{}", server.logs());
    }
    // A key sent as a request id is not taken (it would be logged with every line).
    let health = http.get(format!("{}/healthz", gateway.url()));
    let response = health.header("X-Request-Id", key_shaped).send().await;
    let response = response.expect("an answer");
    assert_ne!(response.headers()["x-request-id"], key_shaped);
    assert!(!gateway.logs().contains(key_shaped));
}

#[tokio::test]
async fn an_internal_grpc_caller_sends_its_own_id_and_gets_it_back() {
    let world = World::new();
    let server = ServiceCommand::server(world.url()).spawn();
    let mut client = GroupMembersClient::connect(server.url())
        .await
        .expect("connected");
    let demo = &world.demo;
    // The demo membership's removal, with these metadata.
    let removal = |metadata: &[(&'static str, &str)]| {
        let mut request = tonic::Request::new(RemoveGroupMemberRequest {
            instance_name: "demo".to_owned(),
            group_id: demo.group.get(),
            user_id: demo.user.get(),
            allow_missing: false,
            parent: 0,
        });
        for &(name, value) in metadata {
            let value = value.parse().expect("ASCII");
            request.metadata_mut().insert(name, value);
        }
        request
    };
    let request = removal(&[
        ("x-api-key", &demo.owner.key),
        ("x-request-id", "batch-job-7"),
    ]);
    let response = client.remove_group_member(request).await.expect("removed");
    let echoed = response.metadata().get("x-request-id").unwrap();
    assert_eq!(echoed, "batch-job-7");
    let logged = server.wait_for_log("request_id=batch-job-7", WAIT);
    assert!(logged, "{}", server.logs());

    // Errors travel with the id too (a trailers-only answer).
    let again = removal(&[("x-request-id", "batch-job-8")]);
    let status = client.remove_group_member(again).await.expect_err("no key");
    let echoed = status.metadata().get("x-request-id").unwrap();
    assert_eq!(echoed, "batch-job-8");
}

/// One sample of a Prometheus text page: name and labels.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format (enough of it for our pages: no escapes in label values).
fn samples(page: &str) -> Vec<Sample> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the one sample named `name` with (at least) these labels; 0 when none.
#[track_caller]
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let labelled = |s: &&Sample| {
        let has = |&(k, v): &(&str, &str)| s.labels.get(k).map(String::as_str) == Some(v);
        s.name == name && labels.iter().all(has)
    };
    let matching: Vec<&Sample> = samples.iter().filter(labelled).collect();
    assert!(matching.len() <= 1, "{name} {labels:?}: {matching:?}");
    matching.first().map_or(0.0, |s| s.value)
}

async fn scrape(url: String) -> Vec<Sample> {
    let response = reqwest::get(url).await.expect("a metrics page");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{response:?}");
    samples(&response.text().await.expect("a body"))
}

#[tokio::test]
async fn both_processes_count_requests_by_route_method_and_status() {
    let world = World::new();
    let proxy = FaultProxy::start(world.db.server_addr());
    let server = ServiceCommand::server(&world.db.url_via(proxy.addr()))
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--pool-timeout-ms", "500"])
        .spawn();
    let gateway = ServiceCommand::gateway(&server.url())
        .args(["--rate-limit", "0"])
        .spawn();
    let metrics_url = format!("http://{}/metrics", server.announced_addr("metrics"));
    let http = http_client();
    let demo = &world.demo;
    let delete = |user: UserId| {
        http.delete(member_url(&gateway, demo.group, user))
            .header("X-API-KEY", &demo.owner.key)
    };

    // 3 removed, 2 not members, 1 unknown path, then 2 while the database is unreachable.
    let (m1, m2) = (new_member(&world, "m1"), new_member(&world, "m2"));
    for user in [demo.user, m1, m2] {
        assert_eq!(delete(user).send().await.unwrap().status(), 204);
    }
    for user in [demo.user, m1] {
        assert_eq!(delete(user).send().await.unwrap().status(), 404);
    }
    // And a read: one user found, one not.
    for (user, status) in [(demo.user.get(), 200), (987_654_321, 404)] {
        let read = http
            .get(user_url(&gateway, user))
            .header("X-API-KEY", &demo.owner.key);
        assert_eq!(read.send().await.unwrap().status(), status);
    }
    let unknown = http.get(format!("{}/no/such/path", gateway.url()));
    assert_eq!(unknown.send().await.unwrap().status(), 404);
    // While the database answers, the pool holds connections (the gauges are read at scrape).
    let pool = |samples: &[Sample], state| value(samples, POOL, &[("state", state)]);
    let up = scrape(metrics_url.clone()).await;
    let (in_use, idle) = (pool(&up, "in_use"), pool(&up, "idle"));
    assert!(
        in_use >= 0.0 && idle >= 0.0 && in_use + idle >= 1.0,
        "in_use {in_use}, idle {idle}"
    );
    proxy.cut();
    for _ in 0..2 {
        assert_eq!(delete(demo.user).send().await.unwrap().status(), 503);
    }
    proxy.restore();

    let g = scrape(format!("{}/metrics", gateway.url())).await;
    let requests = "groups_gateway_requests_total";
    let delete_route = [("route", MEMBER_ROUTE), ("method", "DELETE")];
    for (status, count) in [("204", 3.0), ("404", 2.0), ("503", 2.0)] {
        let labels = [delete_route[0], delete_route[1], ("status", status)];
        assert_eq!(value(&g, requests, &labels), count, "gateway {status}");
    }
    let read_route = [("route", USER_ROUTE), ("method", "GET")];
    for status in ["200", "404"] {
        let labels = [read_route[0], read_route[1], ("status", status)];
        assert_eq!(value(&g, requests, &labels), 1.0, "gateway GET {status}");
    }
    let durations = "groups_gateway_request_duration_seconds_count";
    assert_eq!(value(&g, durations, &read_route), 2.0);
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert_eq!(value(&g, requests, &unmatched), 1.0);
    assert_eq!(value(&g, durations, &delete_route), 7.0);
    let buckets = "groups_gateway_request_duration_seconds_bucket";
    let slowest = [delete_route[0], delete_route[1], ("le", "+Inf")];
    assert_eq!(value(&g, buckets, &slowest), 7.0);
    let raw = |s: &Sample| s.labels.values().any(|v| v.contains("/instances/demo/"));
    assert!(!g.iter().any(raw), "a raw path in a label");

    let s = scrape(metrics_url).await;
    let rpcs = "groups_server_rpcs_total";
    let durations = "groups_server_rpc_duration_seconds_count";
    let method = ("method", REMOVE_RPC);
    for (code, count) in [("OK", 3.0), ("NOT_FOUND", 2.0), ("UNAVAILABLE", 2.0)] {
        let labels = [method, ("code", code)];
        assert_eq!(value(&s, rpcs, &labels), count, "server {code}");
    }
    assert_eq!(value(&s, durations, &[method]), 7.0);
    let read = ("method", GET_USER_RPC);
    for code in ["OK", "NOT_FOUND"] {
        let labels = [read, ("code", code)];
        assert_eq!(value(&s, rpcs, &labels), 1.0, "server GetUser {code}");
    }
    assert_eq!(value(&s, durations, &[read]), 2.0);
    assert_eq!(value(&s, "groups_server_database_errors_total", &[]), 2.0);
    let (in_use, idle) = (pool(&s, "in_use"), pool(&s, "idle"));
    assert!(in_use >= 0.0 && idle >= 0.0, "in_use {in_use}, idle {idle}");
    assert!(s.iter().any(|s| s.name == POOL), "no pool gauges");
}

#[tokio::test]
async fn a_removal_is_one_trace_across_both_processes() {
    let world = World::new();
    let sink = OtlpSink::start();
    // With the periodic export a minute away, only the flush at shutdown can deliver the
    // spans: stopping both right after the requests checks that nothing batched is lost.
    let with_export = |command: ServiceCommand| {
        command
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint())
            .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
            .spawn()
    };
    let mut server = with_export(ServiceCommand::server(world.url()));
    let mut gateway = with_export(ServiceCommand::gateway(&server.url()));
    let demo = &world.demo;
    let http = http_client();
    let member = new_member(&world, "traced");

    // A removal, where the gateway starts the trace, then one by a client that traces, whose
    // trace the gateway continues.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let first = format!("test-{}", RequestId::generate());
    let second = format!("test-{}", RequestId::generate());
    let traced = format!("00-{client_trace}-{client_span}-01");
    for (user, id, traceparent) in [(demo.user, &first, None), (member, &second, Some(traced))] {
        let mut request = http
            .delete(member_url(&gateway, demo.group, user))
            .header("X-API-KEY", &demo.owner.key)
            .header("X-Request-Id", id);
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        assert_eq!(request.send().await.unwrap().status(), 204);
    }

    let of = |spans: &[ExportedSpan], id: &str, service: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.attribute("request_id") == Some(id))
            .cloned()
    };
    let all_four = |spans: &[ExportedSpan]| {
        [&first, &second].iter().all(|id| {
            of(spans, id, "groups-gateway").is_some() && of(spans, id, "groups-server").is_some()
        })
    };
    for process in [&mut gateway, &mut server] {
        process.terminate();
        let status = process.wait_timeout(WAIT).expect("stopped on SIGTERM");
        assert!(status.success(), "{status}: {}", process.logs());
    }
    assert!(
        sink.wait_for(Duration::from_secs(1), all_four),
        "spans: {:#?}\ngateway: {}\nserver: {}",
        sink.spans(),
        gateway.logs(),
        server.logs()
    );
    let spans = sink.spans();
    for id in [&first, &second] {
        let g = of(&spans, id, "groups-gateway").unwrap();
        let s = of(&spans, id, "groups-server").unwrap();
        assert_eq!(g.trace_id, s.trace_id, "one trace: {g:#?} {s:#?}");
        assert_eq!(
            s.parent_span_id, g.span_id,
            "server span under the gateway's"
        );
        assert_eq!(g.name, format!("DELETE {MEMBER_ROUTE}"));
        assert_eq!(s.name, REMOVE_RPC);
        assert_eq!([g.kind.as_str(), s.kind.as_str()], ["SPAN_KIND_SERVER"; 2]);
        let leaked = g
            .attributes
            .iter()
            .any(|(_, v)| v.contains(&demo.owner.key));
        assert!(!leaked, "the key in the gateway's span: {g:#?}");
    }
    let g = of(&spans, &first, "groups-gateway").unwrap();
    assert!(
        g.parent_span_id.is_empty(),
        "the gateway's span is the root: {g:#?}"
    );
    let g = of(&spans, &second, "groups-gateway").unwrap();
    assert_eq!(g.trace_id, client_trace);
    assert_eq!(g.parent_span_id, client_span);
}
