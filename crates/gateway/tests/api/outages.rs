//! Outages and deadlines as a client sees them: no server, a server that drops connections,
//! is cut off or killed, a database down (503 with `Retry-After`, then served again with no
//! restart), and a backend slower than the deadline (504).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use groups_testkit::{
    FaultProxy, ServiceCommand, ServiceProcess, World, spawn_gateway, spawn_server,
};

use crate::{
    Answer, NO_SUCH_ID, NOT_FOUND, Rest, TIMED_OUT, UNAVAILABLE, UNKNOWN_ACCOUNT_KEY, eventually,
    http_client, member_path, send,
};

/// A port that was free a moment ago: nothing listens there.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// A removal with an unknown key through `gateway`.
async fn removal_through(gateway: &ServiceProcess) -> Answer {
    let url = format!("{}{}", gateway.url(), member_path("demo", 1, 2));
    send(
        http_client()
            .delete(url)
            .header("X-API-KEY", UNKNOWN_ACCOUNT_KEY),
    )
    .await
}

impl Answer {
    /// Asserts 503 with `Retry-After`, answered within `bound`.
    #[track_caller]
    fn assert_unavailable(&self, bound: Duration, case: &str) {
        self.assert(503, UNAVAILABLE, case);
        assert!(self.retry_after() >= 1, "{case}: {self:?}");
        let elapsed = self.elapsed;
        assert!(elapsed < bound, "{case}: answered after {elapsed:?}");
    }
}

#[tokio::test]
async fn without_a_grpc_server_the_gateway_answers_503_with_retry_after() {
    let gateway = spawn_gateway(&format!("http://{}", closed_port()), &["--rate-limit", "0"]);
    for attempt in 0..3 {
        let answer = removal_through(&gateway).await;
        answer.assert_unavailable(Duration::from_secs(3), &format!("attempt {attempt}"));
    }
}

#[tokio::test]
async fn a_grpc_server_that_drops_connections_is_503_with_retry_after() {
    // Accepts every connection and closes it at once: a server restarting behind a load
    // balancer, or a port that is not (yet) a gRPC server.
    let dropping = FaultProxy::start(closed_port());
    dropping.cut();
    let server_url = format!("http://{}", dropping.addr());
    let gateway = spawn_gateway(&server_url, &["--rate-limit", "0"]);
    // The connection may fail at several points of its set-up; enough attempts meet them all.
    let mut wrong = Vec::new();
    for attempt in 0..20 {
        let answer = removal_through(&gateway).await;
        let right = answer.status == 503
            && answer.body == UNAVAILABLE
            && answer.header("retry-after").is_some()
            && answer.elapsed < Duration::from_secs(3);
        if !right {
            let (status, body, elapsed) = (answer.status, &answer.body, answer.elapsed);
            wrong.push(format!(
                "attempt {attempt}: {status} {body} after {elapsed:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 503 {UNAVAILABLE} with Retry-After every time:\n{}",
        wrong.join("\n")
    );
}

/// An outage seen through the gateway at `gateway`: a removal by the owner succeeds before it;
/// while `proxy` is cut, each of `attempts` removals of the demo membership answers 503 with
/// `Retry-After` within `bound` and removes nothing; once it is restored, the removal succeeds
/// again within 10 s, with nothing restarted.
async fn unavailable_while_cut_then_served_again(
    world: &World,
    proxy: &FaultProxy,
    gateway: &str,
    (attempts, bound): (usize, Duration),
    what: &str,
) {
    let (http, demo) = (http_client(), &world.demo);
    let delete = |user| {
        let url = format!("{gateway}{}", member_path("demo", demo.group, user));
        send(http.delete(url).header("X-API-KEY", &demo.owner.key))
    };
    let warm = world.add_user("demo", "warm-up");
    world.add_member("demo", demo.group, warm);
    delete(warm)
        .await
        .assert(204, "", &format!("before the {what}"));

    proxy.cut();
    for attempt in 0..attempts {
        let answer = delete(demo.user).await;
        answer.assert_unavailable(bound, &format!("{what}, attempt {attempt}"));
    }
    assert!(world.is_member(demo.group, demo.user));

    proxy.restore();
    let served = eventually(Duration::from_secs(10), || async {
        let answer = delete(demo.user).await;
        match answer.status {
            204 => Some(()),
            503 => None,
            _ => panic!("after restore: {answer:?}"),
        }
    })
    .await;
    assert!(served.is_some(), "not served again within 10 s");
    assert!(!world.is_member(demo.group, demo.user));
}

#[tokio::test]
async fn grpc_server_cut_off_is_503_then_served_again_without_a_restart() {
    let world = World::new();
    let server = spawn_server(world.url(), &[]);
    let proxy = FaultProxy::start(server.addr());
    let gateway = spawn_gateway(&format!("http://{}", proxy.addr()), &["--rate-limit", "0"]);
    // Each attempt meets a connection that is accepted and closed at once, as while a server
    // restarts behind a load balancer.
    let attempts = (5, Duration::from_secs(3));
    unavailable_while_cut_then_served_again(&world, &proxy, &gateway.url(), attempts, "cut").await;
}

#[tokio::test]
async fn grpc_server_killed_is_503_with_retry_after() {
    let mut r = Rest::start();
    let demo = &r.world.demo;
    let key = demo.owner.key.clone();
    let warm = r.new_member("warm-up");
    let path = member_path("demo", demo.group, warm);
    r.delete(&path, Some(&key))
        .await
        .assert(204, "", "server up");

    r.stack.server.kill();
    for attempt in 0..5 {
        let answer = r.delete(&r.demo_path(), Some(&key)).await;
        let case = format!("server killed, attempt {attempt}");
        answer.assert_unavailable(Duration::from_secs(3), &case);
    }
    assert!(r.world.is_member(demo.group, demo.user));
}

/// A server whose database connections go through a fault proxy, and a gateway in front of it.
pub(crate) fn stack_with_database_proxy(
    world: &World,
    server_args: &[&str],
    gateway_args: &[&str],
) -> (FaultProxy, ServiceProcess, ServiceProcess) {
    let proxy = FaultProxy::start(world.db.server_addr());
    let server = ServiceCommand::server(&world.db.url_via(proxy.addr()))
        .args(server_args)
        .spawn();
    let gateway = spawn_gateway(&server.url(), gateway_args);
    (proxy, server, gateway)
}

#[tokio::test]
async fn database_down_is_503_with_retry_after_then_served_again_without_a_restart() {
    let world = World::new();
    let server_args = ["--pool-timeout-ms", "500"];
    let (proxy, _server, gateway) =
        stack_with_database_proxy(&world, &server_args, &["--rate-limit", "0"]);
    // The pool checkout timeout (500 ms) plus a generous margin for a loaded machine.
    let attempts = (3, Duration::from_millis(2500));
    let url = gateway.url();
    unavailable_while_cut_then_served_again(&world, &proxy, &url, attempts, "database cut").await;
}

#[tokio::test]
async fn a_backend_slower_than_the_deadline_is_504() {
    let world = World::new();
    let gateway_args = ["--rate-limit", "0", "--deadline-ms", "300"];
    let (proxy, _server, gateway) = stack_with_database_proxy(&world, &[], &gateway_args);
    let (http, demo) = (http_client(), &world.demo);
    let delete = |user: i64| {
        let url = format!("{}{}", gateway.url(), member_path("demo", demo.group, user));
        send(http.delete(url).header("X-API-KEY", &demo.owner.key))
    };
    // Warm the pool, so the slow part is the statement, not the connection set-up.
    delete(NO_SUCH_ID).await.assert(404, NOT_FOUND, "warm-up");

    proxy.set_latency(Duration::from_secs(1));
    for attempt in 0..2 {
        let answer = delete(demo.user.get()).await;
        answer.assert(504, TIMED_OUT, &format!("slow database, attempt {attempt}"));
        let elapsed = answer.elapsed;
        let within = elapsed < Duration::from_secs(1);
        assert!(within, "answered after {elapsed:?}, the deadline is 300 ms");
    }
}
