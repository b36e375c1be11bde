//! SPEC's invariant: concurrent removals of one membership, through either parent, have exactly
//! one winner; the rest are "not a member", never a 5xx; and the trail records one event.

use std::time::{Duration, Instant};

use groups_proto::GroupMembersClient;
use groups_testkit::{ServiceProcess, World};
use tonic::Code;

use crate::{Grpc, NO_SUCH_ID, channel, expect_error, request, send};

/// Removals sent at once.
const RACERS: usize = 64;

/// `RACERS` removals of the demo membership at once over two connections (so the requests also
/// race across HTTP/2 connections), the i-th with `parents[i % len]`; asserts one winner, the
/// rest not members, one membership fewer and nothing else, one event. Returns how long it took.
async fn race(world: &World, server: &ServiceProcess, parents: &[i32], case: &str) -> Duration {
    let (demo, before, started) = (&world.demo, world.counts(), Instant::now());
    let clients = [channel(server).await, channel(server).await].map(GroupMembersClient::new);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let client = clients[i % 2].clone();
        let message = groups_proto::RemoveGroupMemberRequest {
            parent: parents[i % parents.len()],
            ..request("demo", demo.group.get(), demo.user.get())
        };
        let key = demo.owner.key.clone();
        tasks.spawn(async move { send(&client, message, &[("x-api-key", &key)]).await });
    }
    let answers = tasks.join_all().await;
    let elapsed = started.elapsed();
    let removed = answers.iter().filter(|answer| answer.is_ok()).count();
    assert_eq!(removed, 1, "{case}: {answers:?}");
    for answer in answers.into_iter().filter(Result::is_err) {
        expect_error(answer, Code::NotFound, "MEMBERSHIP_NOT_FOUND", case);
    }
    world.assert_demo_membership_removed_once(before, case);
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removals_of_one_membership_succeed_exactly_once() {
    let g = Grpc::start().await;
    race(&g.world, &g.server, &[0], "parent UNSPECIFIED").await;
}

/// Half through the group (parent GROUP), half through the user (parent USER), with every
/// statement slowed at the database so the removals overlap there: one at a time on each of
/// the pool's connections (row locks decide), and batched (one statement decides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removals_through_both_parents_succeed_exactly_once() {
    const LATENCY: Duration = Duration::from_millis(25);
    for max_batch in ["1", "64"] {
        let (proxy, g) = Grpc::behind_proxy(&["--max-batch", max_batch]).await;
        // Warm the pool, so the slow part is the statements, not the connections' set-up.
        let (demo, key) = (&g.world.demo, Some(g.world.demo.owner.key.as_str()));
        let warmed = g.remove("demo", demo.group.get(), NO_SUCH_ID, key).await;
        assert_eq!(warmed.expect_err("not a member").code(), Code::NotFound);
        proxy.set_latency(LATENCY);

        let case = format!("--max-batch {max_batch}");
        let elapsed = race(&g.world, &g.server, &[1, 2], &case).await;
        // One after another, each statement would cost a round trip of twice the latency.
        let serial = LATENCY * 2 * u32::try_from(RACERS).expect("small");
        assert!(
            elapsed < serial,
            "{case}: {elapsed:?}, as long as {RACERS} statements one after another"
        );
    }
}
