//! Outages and deadlines: an unreachable database or an exhausted pool is UNAVAILABLE with
//! `RetryInfo` within the pool timeout, and service resumes by itself; a caller's passed
//! deadline is DEADLINE_EXCEEDED.

use std::time::{Duration, Instant};

use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::raw::{frame, raw_call, varint};
use crate::{Grpc, NO_SUCH_ID, eventually, expect_error, request, send};

#[tokio::test]
async fn database_unreachable_is_unavailable_with_retry_info_then_recovers() {
    let (proxy, g) = Grpc::behind_proxy(&["--pool-timeout-ms", "500"]).await;
    let (demo, key) = (&g.world.demo, Some(g.world.demo.owner.key.as_str()));
    let user = g.new_member("warm-up");
    let warm = g.remove("demo", demo.group.get(), user.get(), key).await;
    warm.expect("served while the database is up");

    proxy.cut();
    for attempt in 0..3 {
        // The bound is the 500 ms pool timeout, with a margin.
        let what = format!("database cut, attempt {attempt}");
        let status = unavailable(&g, Duration::from_secs(3), &what).await;
        let internals = status.message().contains(&proxy.addr().to_string());
        assert!(!internals, "no internals: {status:?}");
    }
    assert!(g.world.is_member(demo.group, demo.user));

    proxy.restore();
    let recovered = eventually(Duration::from_secs(10), || async {
        match g.remove_demo(key).await {
            Ok(()) => Some(()),
            Err(status) if status.code() == Code::Unavailable => None,
            Err(status) => panic!("after restore: {status:?}"),
        }
    })
    .await;
    assert!(
        recovered.is_some(),
        "no recovery within 10 s without a restart"
    );
    assert!(!g.world.is_member(demo.group, demo.user));
}

#[tokio::test]
async fn an_exhausted_pool_is_unavailable_with_retry_info_within_the_pool_timeout() {
    let (proxy, g) = Grpc::behind_proxy(&["--pool-size", "1", "--pool-timeout-ms", "300"]).await;
    warm_up(&g).await;

    // The one connection is busy with a slow statement...
    proxy.set_latency(Duration::from_secs(2));
    let (client, key) = (g.client.clone(), g.world.demo.owner.key.clone());
    let message = request("demo", g.world.demo.group.get(), NO_SUCH_ID);
    let slow = tokio::spawn(async move { send(&client, message, &[("x-api-key", &key)]).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // ...so the next request waits the pool timeout, then answers UNAVAILABLE.
    // The pool timeout is 300 ms.
    unavailable(&g, Duration::from_millis(1500), "pool exhausted").await;
    slow.abort();
    assert!(g.world.is_member(g.world.demo.group, g.world.demo.user));
}

/// SPEC gRPC table: "deadline passed → DEADLINE_EXCEEDED". The caller's `grpc-timeout` is sent
/// on a bare HTTP/2 connection, so the code seen is the server's, not a client library's.
#[tokio::test]
async fn a_passed_deadline_is_deadline_exceeded() {
    let (proxy, g) = Grpc::behind_proxy(&[]).await;
    let demo = &g.world.demo;
    // Warm the pool, so the slow part is the statement, not the connection set-up.
    warm_up(&g).await;
    proxy.set_latency(Duration::from_secs(1));

    // RemoveGroupMemberRequest { instance_name: "demo", group_id, user_id } by hand.
    let mut payload = b"\x0a\x04demo\x10".to_vec();
    payload.extend(varint(demo.group.get()));
    payload.push(0x18);
    payload.extend(varint(demo.user.get()));
    let started = Instant::now();
    let headers = [
        ("x-api-key", demo.owner.key.as_str()),
        ("grpc-timeout", "300m"),
    ];
    let status = raw_call(g.server.addr(), &headers, frame(&payload)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}"
    );
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

/// One removal of a non-member, which opens the pool's connection.
async fn warm_up(g: &Grpc) {
    let (demo, key) = (&g.world.demo, &g.world.demo.owner.key);
    let removal = g
        .remove("demo", demo.group.get(), NO_SUCH_ID, Some(key))
        .await;
    removal.expect_err("warm-up: not a member");
}

/// The removal of the demo membership by its owner, which must fail within `bound` with
/// UNAVAILABLE (`DATABASE_UNAVAILABLE`) and a `RetryInfo` delay: the status.
async fn unavailable(g: &Grpc, bound: Duration, what: &str) -> Status {
    let started = Instant::now();
    let removal = g.remove_demo(Some(&g.world.demo.owner.key)).await;
    let elapsed = started.elapsed();
    let status = expect_error(removal, Code::Unavailable, "DATABASE_UNAVAILABLE", what);
    assert!(elapsed < bound, "{what}: answered after {elapsed:?}");
    let retry = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let retry = retry.unwrap_or_else(|| panic!("{what}: no RetryInfo delay in {status:?}"));
    assert!(retry > Duration::ZERO, "{what}: {retry:?}");
    status
}
