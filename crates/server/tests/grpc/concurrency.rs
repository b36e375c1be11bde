//! SPEC's invariant: concurrent removals of one membership, through either parent, have exactly
//! one winner; the rest are "not a member", never a 5xx; and the trail records one event.

use std::time::{Duration, Instant};

use groups_proto::{GroupMembersClient, RemoveGroupMemberRequest};
use groups_testkit::{RowCounts, ServiceProcess, World};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{Grpc, channel, send, server_behind_proxy};

/// Removals sent at once.
const RACERS: usize = 64;

/// What the racers got.
#[derive(Debug, Default)]
struct Outcome {
    ok: usize,
    not_a_member: usize,
    other: Vec<Status>,
}

/// `RACERS` removals of the demo membership at once over two connections (so the requests also
/// race across HTTP/2 connections), the i-th with `parents[i % len]`.
async fn race(world: &World, server: &ServiceProcess, parents: &[i32]) -> Outcome {
    let clients = [
        GroupMembersClient::new(channel(server).await),
        GroupMembersClient::new(channel(server).await),
    ];
    let demo = &world.demo;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let client = clients[i % 2].clone();
        let message = RemoveGroupMemberRequest {
            instance_name: "demo".to_owned(),
            group_id: demo.group.get(),
            user_id: demo.user.get(),
            allow_missing: false,
            parent: parents[i % parents.len()],
        };
        let key = demo.owner.key.clone();
        tasks.spawn(async move { send(&client, message, &[("x-api-key", &key)]).await });
    }
    let mut outcome = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            Ok(()) => outcome.ok += 1,
            Err(status)
                if status.code() == Code::NotFound
                    && status
                        .get_details_error_info()
                        .is_some_and(|i| i.reason == "MEMBERSHIP_NOT_FOUND") =>
            {
                outcome.not_a_member += 1;
            }
            Err(status) => outcome.other.push(status),
        }
    }
    outcome
}

/// One winner, the rest not members, one membership fewer and nothing else, one event.
#[track_caller]
fn assert_one_winner(world: &World, before: RowCounts, outcome: &Outcome, case: &str) {
    assert!(
        outcome.other.is_empty(),
        "{case}: unexpected answers: {outcome:?}"
    );
    assert_eq!(
        (outcome.ok, outcome.not_a_member),
        (1, RACERS - 1),
        "{case}"
    );
    world.assert_demo_membership_removed_once(before, case);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removals_of_one_membership_succeed_exactly_once() {
    let g = Grpc::start().await;
    let before = g.world.counts();
    let outcome = race(&g.world, &g.server, &[0]).await;
    assert_one_winner(&g.world, before, &outcome, "parent UNSPECIFIED");
}

/// Half through the group (parent GROUP), half through the user (parent USER), with every
/// statement slowed at the database so the removals overlap there: one at a time on each of
/// the pool's connections (row locks decide), and batched (one statement decides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removals_through_both_parents_succeed_exactly_once() {
    const LATENCY: Duration = Duration::from_millis(25);
    for batching in [["--max-batch", "1"], ["--max-batch", "64"]] {
        let world = World::new();
        let (proxy, server) = server_behind_proxy(&world, &batching);
        let demo = &world.demo;
        // Warm the pool, so the slow part is the statements, not the connections' set-up.
        let warm = GroupMembersClient::new(channel(&server).await);
        let message = crate::request("demo", demo.group.get(), crate::NO_SUCH_ID);
        let warmed = send(&warm, message, &[("x-api-key", &demo.owner.key)]).await;
        assert_eq!(warmed.expect_err("not a member").code(), Code::NotFound);
        proxy.set_latency(LATENCY);

        let before = world.counts();
        let started = Instant::now();
        let outcome = race(&world, &server, &[1, 2]).await;
        let elapsed = started.elapsed();
        assert_one_winner(&world, before, &outcome, &batching.join(" "));
        // One after another, each statement would cost a round trip of twice the latency.
        let serial = LATENCY * 2 * u32::try_from(RACERS).expect("small");
        assert!(
            elapsed < serial,
            "{batching:?}: {elapsed:?}, as long as {RACERS} statements one after another"
        );
    }
}
