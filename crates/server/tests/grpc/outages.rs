//! Outages and deadlines: an unreachable database or an exhausted pool is UNAVAILABLE with
//! `RetryInfo` within the pool timeout, and service resumes by itself; a caller's passed
//! deadline is DEADLINE_EXCEEDED.

use std::time::{Duration, Instant};

use groups_proto::{GroupMembersClient, RemoveGroupMemberRequest};
use groups_testkit::{FaultProxy, ServiceProcess, World};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::raw::{frame, raw_call, varint};
use crate::{NO_SUCH_ID, channel, eventually, expect_error, request, send, server_behind_proxy};

#[tokio::test]
async fn database_unreachable_is_unavailable_with_retry_info_then_recovers() {
    let world = World::new();
    let (proxy, _server, client, key) =
        client_behind_proxy(&world, &["--pool-timeout-ms", "500"]).await;
    let demo = &world.demo;
    let user = world.add_user("demo", "warm-up");
    world.add_member("demo", demo.group, user);
    remove(&client, &key, request("demo", demo.group.get(), user.get()))
        .await
        .expect("served while the database is up");

    proxy.cut();
    for attempt in 0..3 {
        let (status, elapsed) = unavailable(
            &client,
            &world,
            &key,
            &format!("database cut, attempt {attempt}"),
        )
        .await;
        assert!(
            elapsed < Duration::from_secs(3),
            "answered after {elapsed:?}, bound is the 500 ms pool timeout"
        );
        let retry = status
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .unwrap_or_else(|| panic!("no RetryInfo delay in {status:?}"));
        assert!(retry > Duration::ZERO, "{retry:?}");
        assert!(
            !status.message().contains(&proxy.addr().to_string()),
            "no internals: {status:?}"
        );
    }
    assert!(world.is_member(demo.group, demo.user));

    proxy.restore();
    let recovered = eventually(Duration::from_secs(10), || async {
        match remove(
            &client,
            &key,
            request("demo", demo.group.get(), demo.user.get()),
        )
        .await
        {
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
    assert!(!world.is_member(demo.group, demo.user));
}

#[tokio::test]
async fn an_exhausted_pool_is_unavailable_with_retry_info_within_the_pool_timeout() {
    let world = World::new();
    let (proxy, _server, client, key) =
        client_behind_proxy(&world, &["--pool-size", "1", "--pool-timeout-ms", "300"]).await;
    let demo = &world.demo;
    warm_up(&client, &world, &key).await;

    // The one connection is busy with a slow statement...
    proxy.set_latency(Duration::from_secs(2));
    let slow = tokio::spawn({
        let (client, key) = (client.clone(), key.clone());
        let message = request("demo", demo.group.get(), NO_SUCH_ID);
        async move { remove(&client, &key, message).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // ...so the next request waits the pool timeout, then answers UNAVAILABLE.
    let (status, elapsed) = unavailable(&client, &world, &key, "pool exhausted").await;
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}, the pool timeout is 300 ms"
    );
    assert!(
        status
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .is_some(),
        "RetryInfo: {status:?}"
    );
    slow.abort();
    assert!(world.is_member(demo.group, demo.user));
}

/// SPEC gRPC table: "deadline passed → DEADLINE_EXCEEDED". The caller's `grpc-timeout` is sent
/// on a bare HTTP/2 connection, so the code seen is the server's, not a client library's.
#[tokio::test]
async fn a_passed_deadline_is_deadline_exceeded() {
    let world = World::new();
    let (proxy, server, client, key) = client_behind_proxy(&world, &[]).await;
    let demo = &world.demo;
    // Warm the pool, so the slow part is the statement, not the connection set-up.
    warm_up(&client, &world, &key).await;
    proxy.set_latency(Duration::from_secs(1));

    let payload = {
        // RemoveGroupMemberRequest { instance_name: "demo", group_id, user_id } by hand.
        let mut p = vec![0x0a, 4];
        p.extend_from_slice(b"demo");
        p.push(0x10);
        p.extend(varint(demo.group.get()));
        p.push(0x18);
        p.extend(varint(demo.user.get()));
        p
    };
    let started = Instant::now();
    let status = raw_call(
        server.addr(),
        &[("x-api-key", &key), ("grpc-timeout", "300m")],
        frame(&payload),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}"
    );
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

/// A server on `world` (started with `args`) behind a proxy, a client of it and the owner's key.
async fn client_behind_proxy(
    world: &World,
    args: &[&str],
) -> (
    FaultProxy,
    ServiceProcess,
    GroupMembersClient<Channel>,
    String,
) {
    let (proxy, server) = server_behind_proxy(world, args);
    let client = GroupMembersClient::new(channel(&server).await);
    (proxy, server, client, world.demo.owner.key.clone())
}

/// One removal of a non-member, which opens the pool's connection.
async fn warm_up(client: &GroupMembersClient<Channel>, world: &World, key: &str) {
    remove(
        client,
        key,
        request("demo", world.demo.group.get(), NO_SUCH_ID),
    )
    .await
    .expect_err("warm-up: not a member");
}

/// `message` sent with `key`.
async fn remove(
    client: &GroupMembersClient<Channel>,
    key: &str,
    message: RemoveGroupMemberRequest,
) -> Result<(), Status> {
    send(client, message, &[("x-api-key", key)]).await
}

/// The removal of the demo membership with `key`, which must fail with UNAVAILABLE
/// (`DATABASE_UNAVAILABLE`): the status and how long it took.
async fn unavailable(
    client: &GroupMembersClient<Channel>,
    world: &World,
    key: &str,
    what: &str,
) -> (Status, Duration) {
    let demo = &world.demo;
    let started = Instant::now();
    let status = expect_error(
        remove(
            client,
            key,
            request("demo", demo.group.get(), demo.user.get()),
        )
        .await,
        Code::Unavailable,
        "DATABASE_UNAVAILABLE",
        what,
    );
    (status, started.elapsed())
}
