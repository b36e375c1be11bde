//! Restarts lose no answer: SIGTERM to either process during a stream of removals, and the
//! server restarted under load. Every committed removal is answered 204 and every 204 is a
//! committed removal, exactly; a client sees a transport error only when the process it talks
//! to (the gateway) goes away, and then its request was never processed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use groups_testkit::{
    FaultProxy, ServiceCommand, ServiceProcess, Stack, World, spawn_gateway, spawn_stack,
};

/// What the clients saw.
#[derive(Debug, Default)]
struct Seen {
    no_content: usize,
    unavailable: usize,
    other: Vec<u16>,
    transport_errors: usize,
}

impl Seen {
    fn add(&mut self, other: Seen) {
        self.no_content += other.no_content;
        self.unavailable += other.unavailable;
        self.other.extend(other.other);
        self.transport_errors += other.transport_errors;
    }
}

/// Removals of distinct memberships of `groups` (ids `first_group..`) × users by 16 clients,
/// until `stop`; a new connection per request, so a request is either on an accepted
/// connection or not.
struct Load {
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Seen>>,
}

impl Load {
    fn start(base: String, key: String, first: (i64, i64), users: i64, total: usize) -> Self {
        let next = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        let tasks = (0..16)
            .map(|_| {
                let (next, stop) = (next.clone(), stop.clone());
                let (client, base, key) = (client.clone(), base.clone(), key.clone());
                tokio::spawn(async move {
                    let mut seen = Seen::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total || stop.load(Ordering::Relaxed) {
                            return seen;
                        }
                        let i = i64::try_from(i).expect("a small index");
                        let (group, user) = (first.0 + i / users, first.1 + i % users);
                        let url =
                            format!("{base}/v1.1/instances/demo/groups/{group}/users/{user}/");
                        match client.delete(url).header("X-API-KEY", &key).send().await {
                            Ok(response) => match response.status().as_u16() {
                                204 => seen.no_content += 1,
                                503 => seen.unavailable += 1,
                                other => seen.other.push(other),
                            },
                            // Refused: the gateway is gone and nothing was sent.
                            Err(error) if error.is_connect() => return seen,
                            Err(_) => seen.transport_errors += 1,
                        }
                    }
                })
            })
            .collect();
        Self { next, stop, tasks }
    }

    /// Requests sent so far.
    fn sent(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    async fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = Seen::default();
        for task in self.tasks {
            seen.add(task.await.expect("a client task"));
        }
        seen
    }
}

/// Waits until `load` has sent `more` requests beyond what it had.
async fn flowing(load: &Load, more: usize) {
    let target = load.sent() + more;
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.sent() < target {
        assert!(Instant::now() < deadline, "the load does not flow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn exited_cleanly(process: &mut ServiceProcess) {
    let status = process
        .wait_timeout(Duration::from_secs(15))
        .expect("exits within the drain timeout");
    assert!(status.success(), "exit status {status}");
}

/// A world seeded with 40 groups × 500 users, and its memberships counted then.
fn seeded_world() -> (World, (i64, i64), i64) {
    let world = World::new();
    let seeded = world.seed("demo", 40, 500);
    let before = world.count_memberships();
    (world, (seeded.groups.0, seeded.users.0), before)
}

/// 20,000 removals of the seeded memberships through the gateway at `base`, by the owner.
fn removals(world: &World, first: (i64, i64), base: String) -> Load {
    Load::start(base, world.demo.owner.key.clone(), first, 500, 20_000)
}

/// A stack on `world` with [`removals`] through it, once 200 of them were sent.
async fn stack_under_load(world: &World, first: (i64, i64)) -> (Stack, Load) {
    let stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
    let load = removals(world, first, stack.url());
    flowing(&load, 200).await;
    (stack, load)
}

/// SIGTERM, then [`exited_cleanly`].
fn terminated_cleanly(process: &mut ServiceProcess) {
    process.terminate();
    exited_cleanly(process);
}

#[track_caller]
fn every_committed_removal_was_answered_204(world: &World, before: i64, seen: &Seen) {
    assert!(seen.other.is_empty(), "only 204 and 503: {seen:?}");
    let deleted = before - world.count_memberships();
    assert_eq!(
        deleted,
        i64::try_from(seen.no_content).expect("a count"),
        "deleted rows == answers of 204 ({seen:?})"
    );
    // The figures SECURITY.md quotes (`--nocapture`).
    eprintln!("{deleted} memberships deleted; answers: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_gateway_under_load_loses_no_accepted_request() {
    let (world, first, before) = seeded_world();
    let (mut stack, load) = stack_under_load(&world, first).await;
    terminated_cleanly(&mut stack.gateway);
    let seen = load.stop().await;

    assert!(seen.no_content > 0, "load was flowing: {seen:?}");
    assert_eq!(seen.unavailable, 0, "{seen:?}");
    // A request the gateway had accepted was answered; the connection of one it had not was
    // refused or closed unanswered, and such a request was never sent on to the server.
    every_committed_removal_was_answered_204(&world, before, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_server_under_load_answers_every_request_exactly() {
    let (world, first, before) = seeded_world();
    let (mut stack, load) = stack_under_load(&world, first).await;
    terminated_cleanly(&mut stack.server);
    // The gateway stays up: requests after the server stopped are answered 503, not dropped.
    flowing(&load, 50).await;
    let seen = load.stop().await;

    assert!(seen.no_content > 0 && seen.unavailable > 0, "{seen:?}");
    assert_eq!(
        seen.transport_errors, 0,
        "the gateway answered every request: {seen:?}"
    );
    every_committed_removal_was_answered_204(&world, before, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_restarts_of_the_server_under_load_lose_no_answer() {
    let (world, first, before) = seeded_world();
    let mut server = ServiceCommand::server(world.url()).spawn();
    let address = server.addr().to_string();
    let gateway = spawn_gateway(&server.url(), &["--rate-limit", "0"]);
    let load = removals(&world, first, gateway.url());
    for round in 0..4 {
        flowing(&load, 150).await;
        terminated_cleanly(&mut server);
        // The same address again, as a supervisor restarts a service.
        server = ServiceCommand::server(world.url())
            .args(["--listen", &address])
            .spawn();
        assert_eq!(server.addr().to_string(), address, "round {round}");
    }
    flowing(&load, 150).await;
    let seen = load.stop().await;
    assert_eq!(seen.transport_errors, 0, "{seen:?}");
    assert!(
        seen.no_content > 600,
        "load was flowing through the restarts: {seen:?}"
    );
    every_committed_removal_was_answered_204(&world, before, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_in_flight_when_the_server_is_stopped_are_all_answered_204() {
    let world = World::new();
    let seeded = world.seed("demo", 1, 8);
    let before = world.count_memberships();
    // A slow database: every statement takes over a second, so the removals are surely in
    // flight at the server when it is told to stop.
    let proxy = FaultProxy::start(world.db.server_addr());
    // One database worker, whose connection is opened before the latency starts (opening one
    // takes several round trips).
    let mut server = ServiceCommand::server(&world.db.url_via(proxy.addr()))
        .args(["--pool-size", "1"])
        .spawn();
    let gateway = spawn_gateway(&server.url(), &["--rate-limit", "0"]);
    let group = format!(
        "{}/v1.1/instances/demo/groups/{}/",
        gateway.url(),
        seeded.groups.0
    );
    let key = &world.demo.owner.key;
    let warm = reqwest::Client::new().get(&group).header("X-API-KEY", key);
    assert_eq!(warm.send().await.expect("an answer").status(), 200);
    proxy.set_latency(Duration::from_millis(600));
    let client = reqwest::Client::new();
    let removals: Vec<_> = (0..8)
        .map(|i| {
            let url = format!("{group}users/{}/", seeded.users.0 + i);
            let request = client.delete(url).header("X-API-KEY", key);
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // Long enough for the requests to reach the server, far shorter than one statement.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    let mut answers = Vec::new();
    for removal in removals {
        answers.push(removal.await.expect("a task").expect("an answer"));
    }
    exited_cleanly(&mut server);
    assert_eq!(
        answers,
        [204; 8],
        "server:\n{}\ngateway:\n{}",
        server.logs(),
        gateway.logs()
    );
    assert_eq!(before - world.count_memberships(), 8);
}
