//! A suite that tries to break the REST API: property tests throw arbitrary paths, ids, instance
//! names, keys, headers, query strings, methods and raw bytes at the real gateway (rate limit
//! off) in front of the real server and PostgreSQL, on every route, and compare every answer
//! with a model of SPEC.md (`model`); oversized requests check what the HTTP layer answers past
//! its limits (HTTP/1.1 and HTTP/2), and a rate-limited gateway what every route answers past
//! its rate.
//!
//! One stack serves the whole file (started by whichever test comes first). Cases run one at a
//! time under a lock, because some keys may remove members: the model says which requests
//! remove one, the database must then hold exactly one event for it (and none for any other
//! request), and the fixture puts the membership back, so after every case the rows are exactly
//! as they were.

mod live;
mod model;
mod strategies;
mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use groups_testkit::spawn_gateway;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::live::{ANSWERED, LIVE, wait_until_ready};
use crate::model::{Expected, MAX_TARGET, NO_PERMISSION, NO_SUCH_KEY, NOT_FOUND, Trail};
use crate::strategies::{
    KeyPlacement, NEAR_PATHS, Segments, UNKNOWN_KEY, escape, header_value, key_placement, listing,
    method, segment, segments, with_key,
};
use crate::wire::{Request, exchange};

/// Cases per property.
const CASES: u32 = 256;

/// Runs `property` on `CASES` generated values; panics with the smallest failing one (and the
/// first mismatch of the whole file, which a later one may follow from).
fn check_property<S>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let ran = AtomicU32::new(0);
    let started = Instant::now();
    ANSWERED.with_borrow_mut(BTreeMap::clear);
    let outcome = TestRunner::new(config).run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        property(value)
    });
    if let Err(failure) = outcome {
        let first = LIVE.first_failure().unwrap_or_default();
        panic!("{name}: {failure}\nfirst mismatch of the run: {first}");
    }
    let (requests, statuses) = ANSWERED.with_borrow(|answered| {
        let statuses: Vec<String> = answered.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        (answered.values().sum::<u32>(), statuses.join(", "))
    });
    let (ran, took) = (ran.into_inner(), started.elapsed());
    eprintln!(
        "{name}: {ran} cases passed in {took:.1?}, {requests} requests answered as the model said ({statuses})"
    );
}

// ---- properties ------------------------------------------------------------------------------

#[test]
fn hostile_paths_on_every_route_get_only_spec_answers() {
    let live = &*LIVE;
    let strategy = (segments(live.rows.ids()), key_placement(&live.keys));
    check_property("paths", strategy, |(segments, placement)| {
        let requests = segments.requests();
        live.check_all(requests.map(|(m, t)| with_key(&t, &placement, m)))
    });
}

#[test]
fn instance_names_of_any_text_get_only_spec_answers() {
    let live = &*LIVE;
    let name = prop_oneof![
        any::<String>().prop_map(|s| escape(s.as_bytes(), true)),
        "\\PC{1,70}".prop_map(|s| s.replace(['/', '?', '#', '%'], "")),
        prop::collection::vec(any::<u8>(), 1..70).prop_map(|b| escape(&b, false)),
        "[a-zA-Z0-9_-]{0,70}",
        // "demo" and "empty" in any letter case, each letter escaped or not.
        (
            prop::sample::select(&["demo", "empty"][..]),
            prop::collection::vec(0u8..4, 5)
        )
            .prop_map(|(name, how)| {
                name.chars()
                    .zip(how)
                    .map(|(c, how)| match how {
                        0 => c.to_string(),
                        1 => c.to_ascii_uppercase().to_string(),
                        2 => format!("%{:02X}", c as u8),
                        _ => format!("%{:02x}", c.to_ascii_uppercase() as u8),
                    })
                    .collect()
            }),
    ];
    // The owners of "empty" and "demo": the ids are "empty"'s.
    let key = prop::sample::select(live.keys[..2].to_vec());
    let empty = &live.rows.instances[1];
    let group = empty.groups[0].id.to_string();
    let user = empty.users[0].id.to_string();
    check_property("instance names", (name, key), |(name, key)| {
        let requests = Segments::plain(&name, &group, &user).requests();
        live.check_all(
            requests.map(|(m, t)| Request::new(m, t).header("X-API-KEY", key.as_bytes())),
        )
    });
}

#[test]
fn keys_headers_and_queries_of_any_shape_get_only_spec_answers() {
    let live = &*LIVE;
    let known = live.rows.ids();
    let target = (
        prop::sample::select(&["demo", "empty", "empty", "Demo", "EMPTY", "nosuch"][..]),
        prop::sample::select(known.clone()),
        prop::sample::select(known),
    );
    let junk_pair = prop_oneof![
        "[a-z_%+=&]{0,12}",
        ("[a-z_]{1,8}", header_value()).prop_map(|(k, v)| format!("{k}={}", escape(&v, true))),
    ];
    let junk_header = ("x-fuzz-[a-z0-9-]{1,10}", header_value());
    let strategy = (
        target,
        key_placement(&live.keys),
        prop::collection::vec(junk_pair, 0..4),
        prop::collection::vec(junk_header, 0..6),
    );
    check_property(
        "keys, headers and queries",
        strategy,
        |((instance, group, user), mut placement, junk, extra)| {
            placement.query.extend(junk);
            placement.headers.extend(extra);
            let requests = Segments::plain(instance, &group, &user).requests();
            live.check_all(requests.map(|(m, t)| with_key(&t, &placement, m)))
        },
    );
}

#[test]
fn any_method_on_any_route_gets_only_spec_answers() {
    let live = &*LIVE;
    let targets = prop_oneof![
        3 => segments(live.rows.ids()).prop_map(|s| s.requests().map(|(_, target)| target).to_vec()),
        3 => prop::sample::select(NEAR_PATHS).prop_map(|path| vec![path.to_owned()]),
        1 => prop::collection::vec(segment(), 1..5).prop_map(|s| vec![format!("/{}", s.join("/"))]),
    ];
    let strategy = (method(), targets, key_placement(&live.keys));
    check_property("methods", strategy, |(method, targets, placement)| {
        live.check_all(targets.iter().map(|t| with_key(t, &placement, &method)))
    });
}

#[test]
fn raw_bytes_in_the_request_target_are_refused_or_answered_as_spec_says() {
    let live = &*LIVE;
    #[rustfmt::skip]
    let prefixes: &[&str] = &[
        "/", "/v1.1/instances/", "/v1.1/instances/demo/groups/",
        "/v1.1/instances/demo/groups/1/users/", "/v1.1/instances/demo/users/",
        "/v1/instances/demo/users/1/groups/", "/v1.1/instances/demo/audit/memberships/?page_size=",
    ];
    let prefix = prop::sample::select(prefixes);
    let byte = prop_oneof![
        40 => prop::sample::select(
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/?"
                .to_vec()
        ),
        4 => prop::sample::select(b"\"{}<>`^|[]\\#".to_vec()),
        2 => 0x80u8..=0xff,
        1 => 0u8..=0x1f,
        1 => Just(0x7fu8),
    ]
    .prop_filter("request-line framing", |b| {
        !matches!(b, b' ' | b'\r' | b'\n')
    });
    let strategy = (
        prefix,
        prop::collection::vec(byte, 0..40),
        key_placement(&live.keys),
    );
    check_property("raw targets", strategy, |(prefix, bytes, placement)| {
        // The removals' method and the reads'.
        live.check_all(["DELETE", "GET"].map(|method| {
            let mut request = with_key("", &placement, method);
            request.target = [prefix.as_bytes(), &bytes, &request.target].concat();
            request
        }))
    });
}

#[test]
fn audit_queries_of_any_shape_get_only_spec_answers() {
    let live = &*LIVE;
    // Mostly a key that may read the trail (the owners, the full admin), in its header.
    let reader = prop::sample::select(live.keys[..3].to_vec()).prop_map(|key| KeyPlacement {
        headers: vec![("X-API-KEY".to_owned(), key.into_bytes())],
        query: Vec::new(),
    });
    let key = prop_oneof![3 => reader, 1 => key_placement(&live.keys)];
    let strategy = (listing(live.rows.ids()), key);
    let (pages, turned) = (AtomicU32::new(0), AtomicU32::new(0));
    check_property("audit queries", strategy, |(listing, placement)| {
        let mut issued = false;
        let expected = live.check_with(|tokens| {
            let (target, method) = listing.target(tokens);
            issued = tokens.iter().any(|t| target.contains(&t.text));
            with_key(&target, &placement, method)
        })?;
        if let Expected::Page { .. } = expected {
            pages.fetch_add(1, Ordering::Relaxed);
            turned.fetch_add(u32::from(issued), Ordering::Relaxed);
        }
        Ok(())
    });
    // Not vacuous: pages were listed, some of them through a token handed out before.
    let (pages, turned) = (pages.into_inner(), turned.into_inner());
    assert!(
        pages >= 20 && turned >= 5,
        "{pages} pages, {turned} after a token"
    );
    eprintln!("audit queries: {pages} pages listed as the model said, {turned} after a token");
}

/// Every key (and none, and an unknown one) on every route, on every row of both instances and
/// on the other instance's: the permission table, the order of checks and the objects, all of
/// them, every run (the properties above draw these only now and then).
#[test]
fn every_principal_on_every_row_gets_only_spec_answers() {
    let live = &*LIVE;
    let mut keys: Vec<Option<&str>> = live.keys.iter().map(|k| Some(k.as_str())).collect();
    keys.extend([Some(UNKNOWN_KEY), None]);
    let [demo, empty] = &live.rows.instances[..] else {
        panic!("two instances")
    };
    for (instance, other) in [(demo, empty), (empty, demo)] {
        let groups: Vec<String> = (instance.groups.iter().chain(&other.groups[..1]))
            .map(|g| g.id.to_string())
            .collect();
        let users: Vec<String> = (instance.users.iter().chain(&other.users[..1]))
            .map(|u| u.id.to_string())
            .collect();
        let mut targets = Vec::new();
        for (group, user) in groups
            .iter()
            .flat_map(|g| users.iter().map(move |u| (g, u)))
        {
            targets.extend(Segments::plain(&instance.name, group, user).requests());
        }
        targets.sort();
        targets.dedup();
        for key in &keys {
            let requests = targets.iter().map(|(method, target)| {
                let request = Request::new(method, target.clone());
                match key {
                    Some(key) => request.header("Authorization", format!("token {key}").as_bytes()),
                    None => request,
                }
            });
            live.check_all(requests)
                .unwrap_or_else(|failure| panic!("{failure}"));
        }
    }
}

// ---- past the limits -------------------------------------------------------------------------

/// A path to the "empty" instance's group with `user` as the user segment.
fn empty_member_path(user: &str) -> String {
    let group = LIVE.rows.instances[1].groups[0].id;
    format!("/v1.1/instances/empty/groups/{group}/users/{user}/")
}

/// Sends `request`, expects `expected`, and that the gateway still serves afterwards.
#[track_caller]
fn expect_and_still_serving(request: &Request, expected: &Expected) {
    let reply = request
        .send(LIVE.addr())
        .unwrap_or_else(|e| panic!("{e}\n{request:?}"));
    assert!(
        expected.matches(&reply),
        "expected {expected:?}, got {reply:?}"
    );
    assert_still_serving();
}

/// The gateway answers its health route, and the rows are the fixture's.
#[track_caller]
fn assert_still_serving() {
    LIVE.assert_rows();
    let health = Request::new("GET", "/healthz").send(LIVE.addr());
    let health = health.expect("still serving");
    assert_eq!(health.status, 200, "{health:?}");
}

#[test]
fn a_path_over_64_kib_is_414_not_a_dropped_connection() {
    let path = empty_member_path(&"1".repeat(100_000));
    expect_and_still_serving(&Request::new("DELETE", path), &Expected::Refused(414));
    // Just under the limit, the route answers as usual.
    let path = empty_member_path(&"1".repeat(MAX_TARGET - empty_member_path("").len()));
    let request = Request::new("DELETE", path).header("X-API-KEY", UNKNOWN_KEY.as_bytes());
    assert_eq!(request.target.len(), MAX_TARGET);
    expect_and_still_serving(&request, &Expected::detail(404, NOT_FOUND));
}

#[test]
fn a_query_over_64_kib_is_414_and_one_over_400_kib_is_431() {
    let path = empty_member_path("1");
    let query = |n: usize| format!("{path}?api_key={}", "k".repeat(n));
    expect_and_still_serving(
        &Request::new("DELETE", query(100_000)),
        &Expected::Refused(414),
    );
    expect_and_still_serving(
        &Request::new("DELETE", query(1 << 20)),
        &Expected::Refused(431),
    );
}

#[test]
fn a_1_mib_header_is_431_and_a_300_kib_one_is_read() {
    let path = empty_member_path("1");
    let huge = Request::new("DELETE", path.clone()).header("X-API-KEY", &vec![b'k'; 1 << 20]);
    expect_and_still_serving(&huge, &Expected::Refused(431));
    // Below the HTTP layer's limit, the gateway reads it: as a key, it is a malformed one.
    let large = Request::new("DELETE", path).header("X-API-KEY", &vec![b'k'; 300 << 10]);
    expect_and_still_serving(&large, &Expected::detail(403, NO_SUCH_KEY));
}

#[test]
fn more_than_100_header_fields_are_431() {
    let path = empty_member_path("1");
    let with_fields = |n: usize| {
        (0..n).fold(Request::new("DELETE", path.clone()), |request, i| {
            request.header(&format!("x-fuzz-{i}"), b"v")
        })
    };
    // Host and Connection count too: 98 more make 100.
    expect_and_still_serving(&with_fields(98), &Expected::detail(403, NO_PERMISSION));
    expect_and_still_serving(&with_fields(99), &Expected::Refused(431));
    expect_and_still_serving(&with_fields(200), &Expected::Refused(431));
}

#[test]
fn a_large_body_on_a_delete_is_ignored() {
    let live = &*LIVE;
    let path = empty_member_path("1");
    let mut bytes = Request::new("DELETE", path)
        .header("Content-Length", (8u32 << 20).to_string().as_bytes())
        .to_bytes();
    bytes.extend(std::iter::repeat_n(b'x', 8 << 20));
    let reply = exchange(live.addr(), &bytes, false).expect("an answer before the body is read");
    assert!(
        Expected::detail(403, NO_PERMISSION).matches(&reply),
        "{reply:?}"
    );
    live.assert_rows();
}

/// Over HTTP/2 (cleartext, prior knowledge), the gateway's header list limit is hyper's 16 KiB.
#[tokio::test]
async fn oversized_http2_headers_are_431_or_a_refused_stream_not_a_server_error() {
    let live = &*LIVE;
    let tcp = tokio::net::TcpStream::connect(live.addr())
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let url = format!("http://{}{}", live.addr(), empty_member_path("1"));
    let request = |key_len: usize| {
        http::Request::delete(&url)
            .header("x-api-key", "k".repeat(key_len))
            .body(())
            .expect("a request")
    };
    let mut client = client.ready().await.expect("ready");
    let (response, _) = client.send_request(request(8 << 10), true).expect("sent");
    let response = response.await.expect("an answer to 8 KiB");
    assert_eq!(response.status(), 403, "{response:?}");

    let mut client = client.ready().await.expect("ready");
    let (response, _) = client.send_request(request(20 << 10), true).expect("sent");
    match response.await {
        Ok(response) => assert_eq!(response.status(), 431, "{response:?}"),
        Err(error) => assert!(
            error.reason() == Some(h2::Reason::REFUSED_STREAM),
            "20 KiB: {error}"
        ),
    }
    // Far past it the connection is closed (GOAWAY), which is the client's loss alone.
    let huge = client
        .ready()
        .await
        .ok()
        .and_then(|mut c| c.send_request(request(1 << 20), true).ok());
    if let Some((response, _)) = huge
        && let Ok(response) = response.await
    {
        assert_eq!(response.status(), 431, "{response:?}");
    }
    assert_still_serving();
}

/// Past the instance's rate, every route answers 429 with `Retry-After`, after the checks the
/// gateway makes alone (ids, query values, instance name) and before the server is asked.
#[test]
fn every_route_answers_429_with_retry_after_past_the_rate_limit() {
    let live = &*LIVE;
    let gateway = spawn_gateway(&live.stack.server.url(), &["--rate-limit", "1"]);
    wait_until_ready(gateway.addr());
    let trail = Trail::default();
    // Sends `target` to the rated gateway: the reply, which must be the model's.
    let as_model = |method: &str, target: &str| {
        let request = Request::new(method, target);
        let reply = request.send(gateway.addr()).expect("an answer");
        let expected = live.rows.predict(&trail, &request).expected;
        assert!(expected.matches(&reply), "{target}: {expected:?} {reply:?}");
        reply
    };
    let requests = Segments::plain("rated", "1", "1").requests();
    for (n, (method, target)) in requests.into_iter().enumerate() {
        // A bucket of one a second: within a second of the first request, the second is
        // throttled. A machine slow enough to pass that second tries again with a new name.
        let name = |attempt: usize| format!("rated-{n}-{attempt}");
        let throttled = (0..5).any(|attempt| {
            let target = target.replacen("rated", &name(attempt), 1);
            let started = Instant::now();
            as_model(method, &target);
            let second = Request::new(method, target.clone())
                .send(gateway.addr())
                .expect("an answer");
            if started.elapsed() >= Duration::from_millis(900) {
                return false;
            }
            let throttled = Expected::throttled(1);
            assert!(
                throttled.matches(&second),
                "{target}: {throttled:?} {second:?}"
            );
            // Checks the gateway makes before the limit still answer first.
            let bad_id = target
                .replacen("/1", "/0", 1)
                .replacen("user=1", "user=0", 1);
            let bad_name = target.replacen(&name(attempt), "%FF", 1);
            for target in [bad_id, bad_name] {
                assert_ne!(as_model(method, &target).status, 429, "{target}");
            }
            true
        });
        assert!(throttled, "{method} {target}: never within a second");
    }
}
