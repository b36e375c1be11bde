//! SPEC's invariant: concurrent removals of one membership, through either route, have exactly
//! one winner; the rest are "Not found", never a 5xx; and the trail records one event.

use std::time::{Duration, Instant};

use groups_testkit::World;

use crate::outages::stack_with_database_proxy;
use crate::{NO_SUCH_ID, NOT_FOUND, Rest, http_client, member_path, send};

/// Removals sent at once.
const RACERS: usize = 64;

/// `RACERS` removals of the demo membership at once, the i-th through `paths[i % len]` of the
/// gateway at `base`; asserts one 204, the rest "Not found", one membership fewer and nothing
/// else, one event. Returns how long it took.
async fn race(base: &str, world: &World, paths: &[String], case: &str) -> Duration {
    let (http, before, started) = (http_client(), world.counts(), Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let request = http
            .delete(format!("{base}{}", paths[i % paths.len()]))
            .header("X-API-KEY", &world.demo.owner.key);
        tasks.spawn(send(request));
    }
    let answers = tasks.join_all().await;
    let elapsed = started.elapsed();
    let removed = answers.iter().filter(|a| a.status == 204).count();
    assert_eq!(removed, 1, "{case}: {answers:#?}");
    for answer in answers.iter().filter(|a| a.status != 204) {
        answer.assert(404, NOT_FOUND, &format!("{case}: lost the race"));
    }
    world.assert_demo_membership_removed_once(before, case);
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_of_one_membership_succeed_exactly_once() {
    let r = Rest::start();
    race(
        &r.stack.url(),
        &r.world,
        &[r.demo_path()],
        "the group's route",
    )
    .await;
}

/// Half through the group's route, half through the user's, with every statement slowed at
/// the database so the removals overlap there: one at a time on each of the pool's
/// connections (row locks decide), and batched (one statement decides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_through_both_routes_succeed_exactly_once() {
    let latency = Duration::from_millis(25);
    for batching in [["--max-batch", "1"], ["--max-batch", "64"]] {
        let world = World::new();
        let gateway_args = ["--rate-limit", "0"];
        let (proxy, _server, gateway) = stack_with_database_proxy(&world, &batching, &gateway_args);
        let (demo, url) = (&world.demo, gateway.url());
        // Warm the pool, so the slow part is the statements, not the connections' set-up.
        let warm = http_client().delete(format!(
            "{url}{}",
            member_path("demo", demo.group, NO_SUCH_ID)
        ));
        let warm = send(warm.header("X-API-KEY", &demo.owner.key)).await;
        warm.assert(404, NOT_FOUND, "warm-up");
        proxy.set_latency(latency);

        let paths = [
            member_path("demo", demo.group, demo.user),
            format!(
                "/v1.1/instances/demo/users/{}/groups/{}/",
                demo.user, demo.group
            ),
        ];
        let elapsed = race(&url, &world, &paths, &batching.join(" ")).await;
        // One after another, each statement would cost a round trip of twice the latency.
        let racers = u32::try_from(RACERS).expect("small");
        assert!(
            elapsed < latency * 2 * racers,
            "{batching:?}: {elapsed:?}, as long as {RACERS} statements one after another"
        );
    }
}
