//! Graceful shutdown under load: SIGTERM to either process during a stream of removals loses no
//! accepted request. Every request either gets a real HTTP answer or fails before it was
//! processed, and the memberships deleted are exactly the 204s answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use groups_testkit::{ServiceProcess, World, spawn_stack};

/// What the clients saw.
#[derive(Debug, Default)]
struct Seen {
    no_content: usize,
    unavailable: usize,
    other: Vec<u16>,
    transport_errors: usize,
}

/// Removes distinct memberships of `groups` (ids `first_group..`) × users with 16 clients until
/// every membership was tried, the gateway stops taking connections, or a second has passed
/// since `on_start`, which runs once the load is flowing.
async fn load(
    base: String,
    key: String,
    (first_group, groups): (i64, i64),
    (first_user, users): (i64, i64),
    on_start: impl FnOnce(),
) -> Seen {
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let total = usize::try_from(groups * users).unwrap();
    // A new connection per request, so a request is either on an accepted connection or not.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (next, stop) = (next.clone(), stop.clone());
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || stop.load(Ordering::Relaxed) {
                    return seen;
                }
                let i = i64::try_from(i).unwrap();
                let (group, user) = (first_group + i / users, first_user + i % users);
                let url = format!("{base}/v1.1/instances/demo/groups/{group}/users/{user}/");
                match client.delete(url).header("X-API-KEY", &key).send().await {
                    Ok(response) => match response.status().as_u16() {
                        204 => seen.no_content += 1,
                        503 => seen.unavailable += 1,
                        other => seen.other.push(other),
                    },
                    Err(error) if error.is_connect() => return seen,
                    Err(_) => seen.transport_errors += 1,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    on_start();
    // Long enough to drain and to see what comes after; then the clients stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total_seen = Seen::default();
    for task in tasks {
        let seen = task.await.unwrap();
        total_seen.no_content += seen.no_content;
        total_seen.unavailable += seen.unavailable;
        total_seen.other.extend(seen.other);
        total_seen.transport_errors += seen.transport_errors;
    }
    total_seen
}

fn exited_cleanly(process: &mut ServiceProcess) {
    let status = process
        .wait_timeout(Duration::from_secs(15))
        .expect("exits within the drain timeout");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_gateway_under_load_loses_no_accepted_request() {
    let world = World::new();
    let seeded = world.seed("demo", 40, 500);
    let before = world.count_memberships();
    let mut stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
    let seen = load(
        stack.url(),
        world.demo.owner.key.clone(),
        (seeded.groups.0, 40),
        (seeded.users.0, 500),
        || stack.gateway.terminate(),
    )
    .await;
    exited_cleanly(&mut stack.gateway);

    assert!(seen.no_content > 0, "load was flowing: {seen:?}");
    assert!(seen.other.is_empty() && seen.unavailable == 0, "{seen:?}");
    let deleted = before - world.count_memberships();
    assert_eq!(
        deleted,
        i64::try_from(seen.no_content).unwrap(),
        "every removal that happened was answered 204 ({seen:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_server_under_load_answers_every_request() {
    let world = World::new();
    let seeded = world.seed("demo", 40, 500);
    let before = world.count_memberships();
    let mut stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
    let base = stack.url();
    let seen = load(
        base,
        world.demo.owner.key.clone(),
        (seeded.groups.0, 40),
        (seeded.users.0, 500),
        || stack.server.terminate(),
    )
    .await;
    exited_cleanly(&mut stack.server);

    // The gateway stays up: requests after the server stopped are answered 503, not dropped.
    assert!(seen.no_content > 0 && seen.unavailable > 0, "{seen:?}");
    let logs = stack.gateway.logs();
    assert!(
        seen.other.is_empty(),
        "only 204 and 503: {seen:?}\n{}",
        logs.lines()
            .filter(|l| l.contains("unexpected"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(seen.transport_errors, 0, "{seen:?}");
    // Every 204 is a committed delete. A few removals may be committed and still answered 503:
    // when the draining server closes its HTTP/2 connection with request frames of the gateway
    // unread, the kernel resets it and the last response can be lost in flight (seen once in
    // five CI runs: 178 deletes for 174 answers of 204 among 1,501 of 503). The gateway cannot
    // tell such a request from one never processed, and 503 is the right advice for both: a
    // retry of the removal then answers 404. At most one such request per client (16).
    let deleted = before - world.count_memberships();
    let answered_204 = i64::try_from(seen.no_content).unwrap();
    let answered_503 = i64::try_from(seen.unavailable).unwrap();
    assert!(
        (answered_204..=answered_204 + answered_503.min(16)).contains(&deleted),
        "{deleted} deleted for {seen:?}"
    );
}
