//! SPEC's invariant: concurrent removals of one membership, through either route, have exactly
//! one winner; the rest are "Not found", never a 5xx; and the trail records one event.

use std::time::{Duration, Instant};

use groups_testkit::{RowCounts, World};

use crate::outages::stack_with_database_proxy;
use crate::{Answer, NO_SUCH_ID, NOT_FOUND, Rest, http_client, member_path, send};

/// Removals sent at once.
const RACERS: usize = 64;

/// `RACERS` removals of the demo membership at once, the i-th through `paths[i % len]`.
async fn race(base: &str, world: &World, paths: &[String]) -> Vec<Answer> {
    let http = http_client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let request = http
            .delete(format!("{base}{}", paths[i % paths.len()]))
            .header("X-API-KEY", &world.demo.owner.key);
        tasks.spawn(send(request));
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.expect("task"));
    }
    answers
}

/// One 204, the rest "Not found", one membership fewer and nothing else, one event.
#[track_caller]
fn assert_one_winner(world: &World, before: RowCounts, answers: &[Answer], case: &str) {
    let removed = answers.iter().filter(|a| a.status == 204).count();
    assert_eq!(removed, 1, "{case}: {answers:#?}");
    for answer in answers.iter().filter(|a| a.status != 204) {
        answer.assert(404, NOT_FOUND, &format!("{case}: lost the race"));
    }
    world.assert_demo_membership_removed_once(before, case);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_of_one_membership_succeed_exactly_once() {
    let r = Rest::start();
    let before = r.world.counts();
    let answers = race(&r.stack.url(), &r.world, &[r.demo_path()]).await;
    assert_one_winner(&r.world, before, &answers, "the group's route");
}

/// Half through the group's route, half through the user's, with every statement slowed at
/// the database so the removals overlap there: one at a time on each of the pool's
/// connections (row locks decide), and batched (one statement decides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_through_both_routes_succeed_exactly_once() {
    const LATENCY: Duration = Duration::from_millis(25);
    for batching in [["--max-batch", "1"], ["--max-batch", "64"]] {
        let world = World::new();
        let (proxy, _server, gateway) =
            stack_with_database_proxy(&world, &batching, &["--rate-limit", "0"]);
        let demo = &world.demo;
        // Warm the pool, so the slow part is the statements, not the connections' set-up.
        let warm = http_client()
            .delete(format!(
                "{}{}",
                gateway.url(),
                member_path("demo", demo.group, NO_SUCH_ID)
            ))
            .header("X-API-KEY", &demo.owner.key);
        send(warm).await.assert(404, NOT_FOUND, "warm-up");
        proxy.set_latency(LATENCY);

        let before = world.counts();
        let paths = [
            member_path("demo", demo.group, demo.user),
            format!(
                "/v1.1/instances/demo/users/{}/groups/{}/",
                demo.user, demo.group
            ),
        ];
        let started = Instant::now();
        let answers = race(&gateway.url(), &world, &paths).await;
        let elapsed = started.elapsed();
        assert_one_winner(&world, before, &answers, &batching.join(" "));
        // One after another, each statement would cost a round trip of twice the latency.
        let serial = LATENCY * 2 * u32::try_from(RACERS).expect("small");
        assert!(
            elapsed < serial,
            "{batching:?}: {elapsed:?}, as long as {RACERS} statements one after another"
        );
    }
}
