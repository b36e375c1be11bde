//! The public edge holds, against the real binaries: stalled and idle connections are closed
//! while real requests are served, the connection cap, the per-address throttle on failed
//! authentication (behind trusted proxies too), load shedding at both processes, and the
//! defaults themselves (rate limit, outage bound, deadline, listen addresses), keys kept out of
//! gRPC status messages and JSON logs.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use groups_proto::{GroupMembersClient, RemoveGroupMemberRequest};
use groups_testkit::{
    FaultProxy, ServiceCommand, UserId, World, gateway_binary, server_binary, spawn_gateway,
    spawn_stack,
};
use tonic::Code;

const BAD_KEY: &str = "0123456789abcdef0123456789abcdef01234567";

/// The flood test keeps both cores busy for two seconds, and every other test here times what
/// it sees (answers "at once", connections closed "within"): the flood holds this exclusively,
/// the others shared, so it never runs beside them (tests of one binary run in parallel).
static CPU: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn member_url(base: &str, group: impl std::fmt::Display, user: impl std::fmt::Display) -> String {
    format!("{base}/v1.1/instances/demo/groups/{group}/users/{user}/")
}

/// The status `client`'s removal at `url` with `key` is answered with.
async fn removal_status(client: &reqwest::Client, url: &str, key: &str) -> u16 {
    let response = client.delete(url).header("X-API-KEY", key).send().await;
    response.expect("an answer").status().as_u16()
}

/// The owner's removal of the demo membership through the gateway at `base`: the status and
/// how long the answer took.
async fn remove_demo_membership(
    client: &reqwest::Client,
    base: &str,
    world: &World,
) -> (u16, Duration) {
    let url = member_url(base, world.demo.group, world.demo.user);
    let started = Instant::now();
    let status = removal_status(client, &url, &world.demo.owner.key).await;
    (status, started.elapsed())
}

/// The status `client`'s read of the demo group through the gateway at `base` with `key` is
/// answered with.
async fn group_read_status(client: &reqwest::Client, base: &str, world: &World, key: &str) -> u16 {
    let url = format!("{base}/v1.1/instances/demo/groups/{}/", world.demo.group);
    let response = client.get(url).header("X-API-KEY", key).send().await;
    response.expect("an answer").status().as_u16()
}

/// A client whose connections come from `local` (a loopback address of its own).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().expect("an address"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

fn new_member(world: &World, name: &str) -> UserId {
    let user = world.add_user("demo", name);
    world.add_member("demo", world.demo.group, user);
    user
}

/// Whether the peer closed `stream` (a read returns end of file) within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("a timeout");
    let mut buf = [0_u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Whether `stream` is still open at `until` (checked for at least a millisecond).
fn open_until(stream: &mut TcpStream, until: Instant) -> bool {
    let wait = until.saturating_duration_since(Instant::now());
    !closed_within(stream, wait.max(Duration::from_millis(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_heads_and_idle_connections_are_closed_while_requests_are_served() {
    let _quiet = CPU.read().await;
    let world = World::new();
    let stack = spawn_stack(
        &world.db,
        &["--header-timeout-ms", "1500", "--idle-timeout-ms", "3000"],
    );
    let addr = stack.gateway.addr();
    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connected");
            stream
                .write_all(b"DELETE /v1.1/instances/demo/groups/1/users/1/ HTTP/1.1\r\nHost: x\r\n")
                .expect("half a head");
            stream
        })
        .collect();
    let idle_since = Instant::now();
    let mut idle = TcpStream::connect(addr).expect("connected");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("a request");

    // A real removal is served at once, stalled connections or not.
    let (status, elapsed) =
        remove_demo_membership(&reqwest::Client::new(), &stack.url(), &world).await;
    assert_eq!(status, 204);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");

    // Every stalled head is closed at the header timeout (from its own accept), not before.
    let last = stalled.last_mut().expect("stalled connections");
    let early = opened + Duration::from_millis(1200);
    assert!(open_until(last, early), "closed before the header timeout");
    let deadline = opened + Duration::from_secs(5);
    for stream in &mut stalled {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_within(stream, left),
            "a stalled connection stayed open"
        );
    }
    assert!(opened.elapsed() >= Duration::from_millis(1400));
    // The idle keep-alive connection (answered at once) lasts its own, longer timeout.
    let mut answer = [0_u8; 17];
    idle.read_exact(&mut answer).expect("the answer");
    assert_eq!(&answer, b"HTTP/1.1 200 OK\r\n");
    let before_idle_timeout = idle_since + Duration::from_millis(2700);
    assert!(
        open_until(&mut idle, before_idle_timeout),
        "closed before the idle timeout"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)),
        "idle connection closed"
    );
    assert!(idle_since.elapsed() >= Duration::from_millis(2900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let _quiet = CPU.read().await;
    let world = World::new();
    let stack = spawn_stack(&world.db, &["--max-connections", "3"]);
    let addr = stack.gateway.addr();
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr).expect("connected"))
        .collect();
    // Let the gateway accept the three.
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = TcpStream::connect(addr).expect("queued by the kernel");
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("a request");
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("a timeout");
    let mut buf = [0_u8; 17];
    assert!(
        waiting.read(&mut buf).is_err(),
        "not served while at the cap"
    );
    drop(held.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout");
    waiting
        .read_exact(&mut buf)
        .expect("served once a slot is free");
    assert_eq!(&buf, b"HTTP/1.1 200 OK\r\n");
}

/// `groups_server_rpcs_total` of the removal method, from the server's metrics page.
async fn removals_seen(metrics: SocketAddr) -> u64 {
    let page = reqwest::get(format!("http://{metrics}/metrics")).await;
    let page = page.expect("a page").text().await.expect("text");
    page.lines()
        .filter(|line| {
            line.starts_with("groups_server_rpcs_total{") && line.contains("RemoveGroupMember")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_is_throttled_per_client_address() {
    let _quiet = CPU.read().await;
    let world = World::new();
    let server = ServiceCommand::server(world.url())
        .args(["--metrics-listen", "127.0.0.1:0"])
        .spawn();
    let metrics = server.announced_addr("metrics");
    // One failure a second, a burst of two: the slowest refill, so a test on a busy machine
    // still sees the address throttled right after its failures.
    let gateway = spawn_gateway(
        &server.url(),
        &[
            "--auth-failure-limit",
            "1",
            "--trusted-proxies",
            "127.0.0.9/32",
        ],
    );
    let base = gateway.url();
    let attacker = client_from("127.0.0.1");
    let url = member_url(&base, world.demo.group, world.demo.user);
    // Failures (bad keys, unknown instances, no key at all) until the address is throttled:
    // the burst of two, plus what refilled meanwhile.
    let started = Instant::now();
    let mut failures = 0;
    let throttled = loop {
        let request = match failures % 3 {
            0 => attacker.delete(&url).header("X-API-KEY", BAD_KEY),
            1 => attacker.delete(url.replace("/demo/", "/nosuch/")),
            _ => attacker.delete(&url),
        };
        let response = request.send().await.expect("an answer");
        if response.status() == 429 {
            break response;
        }
        assert!(
            matches!(response.status().as_u16(), 403 | 404),
            "{response:?}"
        );
        failures += 1;
        assert!(failures <= 20, "never throttled");
    };
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        failures >= 2 && f64::from(failures) <= 2.0 + elapsed.ceil(),
        "{failures} failures in {elapsed} s"
    );
    let reached = removals_seen(metrics).await;
    assert_eq!(throttled.headers()["retry-after"], "1");
    assert_eq!(
        throttled.text().await.expect("a body"),
        r#"{"detail":"Request was throttled. Expected available in 1 seconds."}"#
    );
    // Before any other check: even a valid key from that address waits, and the server never
    // hears of either request.
    let owner = &world.demo.owner.key;
    assert_eq!(removal_status(&attacker, &url, owner).await, 429);
    assert_eq!(removals_seen(metrics).await, reached);
    assert!(world.is_member(world.demo.group, world.demo.user));
    // A tenant at another address never notices.
    let tenant = client_from("127.0.0.2");
    assert_eq!(removal_status(&tenant, &url, owner).await, 204);
    // Refilled at the limit: a second later the address is heard again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(removal_status(&attacker, &url, BAD_KEY).await, 403);

    // Behind a trusted proxy, the address it forwards is the one counted.
    let proxy = client_from("127.0.0.9");
    let via_proxy = |client_address: &'static str| {
        let request = proxy
            .delete(url.replace("/demo/", "/nosuch/"))
            .header("X-Forwarded-For", format!("10.0.0.1, {client_address}"));
        async move { request.send().await.expect("an answer").status() }
    };
    let mut failures = 0;
    while via_proxy("203.0.113.5").await == 404 {
        failures += 1;
        assert!(failures <= 20, "never throttled");
    }
    assert!(failures >= 2, "{failures}");
    assert_eq!(via_proxy("203.0.113.6").await, 404);
}

/// `connections` connections from `attacker` sending failing removals to `url` for `seconds`:
/// how many the server answered (404, no such instance) and the throttle (429).
async fn flood(
    attacker: &reqwest::Client,
    url: &str,
    connections: u64,
    seconds: f64,
) -> (u64, u64) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (attacker, url) = (attacker.clone(), url.to_owned());
            tokio::spawn(async move {
                let (mut failed, mut throttled) = (0u64, 0u64);
                while Instant::now() < until {
                    match removal_status(&attacker, &url, BAD_KEY).await {
                        404 => failed += 1,
                        429 => throttled += 1,
                        other => panic!("only 404 and 429: {other}"),
                    }
                }
                (failed, throttled)
            })
        })
        .collect();
    let (mut failed, mut throttled) = (0, 0);
    for task in tasks {
        let (f, t) = task.await.expect("a flooding task");
        failed += f;
        throttled += t;
    }
    (failed, throttled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_from_one_address_cannot_multiply_the_failure_limit() {
    let _alone = CPU.write().await;
    const CONNECTIONS: u64 = 32;
    const RATE: u64 = 1;
    let world = World::new();
    let server = ServiceCommand::server(world.url())
        .args(["--metrics-listen", "127.0.0.1:0"])
        .spawn();
    let metrics = server.announced_addr("metrics");
    let gateway = spawn_gateway(&server.url(), &["--auth-failure-limit", &RATE.to_string()]);
    let url =
        member_url(&gateway.url(), world.demo.group, world.demo.user).replace("/demo/", "/nosuch/");
    let attacker = client_from("127.0.0.3");
    let before = removals_seen(metrics).await;
    let started = Instant::now();
    // A second of flood, a pause long enough for a bucket of 2 × RATE to refill and be swept
    // (2 s, then up to 1 s), another second of flood.
    let (first, throttled_first) = flood(&attacker, &url, CONNECTIONS, 1.0).await;
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let (second, throttled_second) = flood(&attacker, &url, CONNECTIONS, 1.0).await;
    let elapsed = started.elapsed().as_secs_f64();
    let reached = removals_seen(metrics).await - before;
    let (failed, throttled) = (first + second, throttled_first + throttled_second);
    assert_eq!(
        reached, failed,
        "every 404 came from the server, every 429 from the gateway"
    );
    // Until its first failure is answered an address is not tracked: each connection has one
    // request in flight then. After it, every request reserves a token before it runs, and
    // every failure is charged, past empty as debt. So over the whole run: the connections'
    // first requests, the burst (twice the rate) and what refilled. Were tokens only taken
    // after each answer, every refilled token would let all 32 connections through; were
    // failures past empty free, the pause would let them all through again.
    let bound = CONNECTIONS + 2 * RATE + (RATE as f64 * elapsed).ceil() as u64 + 1;
    assert!(
        reached <= bound,
        "{reached} failures reached the server in {elapsed:.1} s (first {first}, second {second}; bound {bound}); {throttled} throttled"
    );
    assert!(
        throttled > reached,
        "{throttled} throttled, {reached} reached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_failed_once_is_served_while_it_succeeds() {
    let _quiet = CPU.read().await;
    let world = World::new();
    let server = ServiceCommand::server(world.url()).spawn();
    // One failure a second, a burst of two: after one failure, one left.
    let gateway = spawn_gateway(&server.url(), &["--auth-failure-limit", "1"]);
    let (client, base) = (client_from("127.0.0.4"), gateway.url());
    let failed = group_read_status(&client, &base, &world, BAD_KEY).await;
    assert_eq!(failed, 403);
    // Each success gives back the failure it reserved: more successes than the bucket holds,
    // one after another, are all served.
    for n in 0..6 {
        let status = group_read_status(&client, &base, &world, &world.demo.owner.key).await;
        assert_eq!(status, 200, "read {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_shed_at_once_at_the_gateway_and_at_the_server() {
    let _quiet = CPU.read().await;
    let world = World::new();
    let members: Vec<UserId> = (0..6)
        .map(|n| new_member(&world, &format!("m{n}")))
        .collect();
    let proxy = FaultProxy::start(world.db.server_addr());
    let server = ServiceCommand::server(&world.db.url_via(proxy.addr()))
        .args(["--pool-size", "1", "--queue-size", "2"])
        .spawn();
    let gateway = spawn_gateway(&server.url(), &["--max-in-flight", "2"]);
    let owner = &world.demo.owner.key;
    let warm = group_read_status(&reqwest::Client::new(), &gateway.url(), &world, owner).await;
    assert_eq!(warm, 200);
    proxy.set_latency(Duration::from_millis(400));

    // Gateway: two in flight, the other four 503 at once.
    let client = reqwest::Client::new();
    let sent = members.iter().take(4).map(|user| {
        let request = client
            .delete(member_url(&gateway.url(), world.demo.group, user))
            .header("X-API-KEY", owner);
        tokio::spawn(async move {
            let started = Instant::now();
            let response = request.send().await.expect("an answer");
            let retry_after = response.headers().get("retry-after").cloned();
            (response.status().as_u16(), retry_after, started.elapsed())
        })
    });
    let mut answers = Vec::new();
    for task in sent.collect::<Vec<_>>() {
        answers.push(task.await.expect("a task"));
    }
    let shed: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    let removed = answers.iter().filter(|a| a.0 == 204).count();
    assert_eq!(removed, 2, "{answers:?}");
    assert_eq!(shed.len(), 2, "{answers:?}");
    for (_, retry_after, took) in shed {
        assert_eq!(
            retry_after.as_ref().map(|v| v.to_str().ok()),
            Some(Some("1"))
        );
        assert!(*took < Duration::from_millis(300), "at once: {took:?}");
    }

    // Server: one running, two waiting, the rest UNAVAILABLE at once.
    let grpc = GroupMembersClient::connect(server.url())
        .await
        .expect("connected");
    let calls = (0..6).map(|n| {
        let mut grpc = grpc.clone();
        let mut request = tonic::Request::new(RemoveGroupMemberRequest {
            instance_name: "demo".into(),
            group_id: world.demo.group.get(),
            user_id: 900_000 + n,
            allow_missing: true,
            parent: 0,
        });
        request
            .metadata_mut()
            .insert("x-api-key", owner.parse().expect("a value"));
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = grpc.remove_group_member(request).await.map(drop);
            (outcome, started.elapsed())
        })
    });
    let mut outcomes = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        outcomes.push(call.await.expect("a task"));
    }
    // The worker may take one call or the first two as a batch before the rest arrive: two
    // or three wait at most, and every other call is shed.
    let unavailable: Vec<_> = outcomes
        .iter()
        .filter(|(r, _)| r.as_ref().is_err_and(|s| s.code() == Code::Unavailable))
        .collect();
    let served = outcomes.iter().filter(|(r, _)| r.is_ok()).count();
    assert_eq!(served + unavailable.len(), 6, "{outcomes:?}");
    assert!((2..=3).contains(&unavailable.len()), "{outcomes:?}");
    for (_, took) in unavailable {
        assert!(*took < Duration::from_millis(300), "at once: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_defaults_limit_rate_and_outages_without_any_flag() {
    let _quiet = CPU.read().await;
    let world = World::new();
    let proxy = FaultProxy::start(world.db.server_addr());
    let server = ServiceCommand::server(&world.db.url_via(proxy.addr())).spawn();
    let gateway = spawn_gateway(&server.url(), &[]);
    let client = reqwest::Client::new();
    // 60 requests a second per instance: a burst of 120 gets at most 60 (plus what refills
    // meanwhile) past the limit, and the rest 429.
    let started = Instant::now();
    let burst = (0..120).map(|n| {
        let request = client
            .delete(member_url(&gateway.url(), 987_654, 1000 + n))
            .header("X-API-KEY", &world.demo.owner.key);
        tokio::spawn(async move { request.send().await.expect("an answer").status().as_u16() })
    });
    let mut statuses = Vec::new();
    for task in burst.collect::<Vec<_>>() {
        statuses.push(task.await.expect("a task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let passed = statuses.iter().filter(|s| **s != 429).count();
    assert!(
        statuses.iter().all(|s| *s == 404 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        passed >= 60 && passed as f64 <= 60.0 + (60.0 * elapsed).ceil(),
        "{passed} in {elapsed} s"
    );

    // A cut database is answered 503 within the default checkout timeout (5 s), plus margin.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    proxy.cut();
    let (status, elapsed) = remove_demo_membership(&client, &gateway.url(), &world).await;
    assert_eq!(status, 503);
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    proxy.restore();
}

#[tokio::test]
async fn with_no_flags_the_binaries_listen_where_spec_says() {
    let _quiet = CPU.read().await;
    let world = World::new();
    let server = ServiceCommand::new("groups-server", server_binary())
        .args(["--database-url", world.url()])
        .spawn();
    assert_eq!(server.addr().to_string(), "0.0.0.0:50051");
    let gateway = ServiceCommand::new("groups-gateway", gateway_binary())
        .env("GROUPS_AUTH_FAILURE_LIMIT", "0")
        .spawn();
    assert_eq!(gateway.addr().to_string(), "0.0.0.0:8080");
    // The default server URL is that server.
    let (status, _) =
        remove_demo_membership(&reqwest::Client::new(), "http://127.0.0.1:8080", &world).await;
    assert_eq!(status, 204);
    drop((gateway, server));
}
