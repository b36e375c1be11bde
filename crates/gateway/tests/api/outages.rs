//! Outages and deadlines as a client sees them: no server, a server that drops connections,
//! is cut off or killed, a database down (503 with `Retry-After`, then served again with no
//! restart), and a backend slower than the deadline (504).

use std::net::TcpListener;
use std::time::Duration;

use groups_testkit::{
    FaultProxy, ServiceCommand, ServiceProcess, UserId, World, spawn_gateway, spawn_server,
};
use reqwest::RequestBuilder;

use crate::{
    NO_SUCH_ID, NOT_FOUND, Rest, TIMED_OUT, UNAVAILABLE, UNKNOWN_ACCOUNT_KEY, eventually,
    http_client, member_path, send,
};

#[tokio::test]
async fn without_a_grpc_server_the_gateway_answers_503_with_retry_after() {
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address")
    };
    let gateway = spawn_gateway(&format!("http://{closed_port}"), &["--rate-limit", "0"]);
    let http = http_client();
    for attempt in 0..3 {
        let answer = send(
            http.delete(format!("{}{}", gateway.url(), member_path("demo", 1, 2)))
                .header("X-API-KEY", UNKNOWN_ACCOUNT_KEY),
        )
        .await;
        answer.assert(503, UNAVAILABLE, &format!("attempt {attempt}"));
        assert!(answer.retry_after() >= 1);
        assert!(
            answer.elapsed < Duration::from_secs(3),
            "answered after {:?}",
            answer.elapsed
        );
    }
}

#[tokio::test]
async fn a_grpc_server_that_drops_connections_is_503_with_retry_after() {
    // Accepts every connection and closes it at once: a server restarting behind a load
    // balancer, or a port that is not (yet) a gRPC server.
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address")
    };
    let dropping = FaultProxy::start(closed_port);
    dropping.cut();
    let gateway = spawn_gateway(
        &format!("http://{}", dropping.addr()),
        &["--rate-limit", "0"],
    );
    let http = http_client();
    // The connection may fail at several points of its set-up; enough attempts meet them all.
    let mut wrong = Vec::new();
    for attempt in 0..20 {
        let answer = send(
            http.delete(format!("{}{}", gateway.url(), member_path("demo", 1, 2)))
                .header("X-API-KEY", UNKNOWN_ACCOUNT_KEY),
        )
        .await;
        let right = answer.status == 503
            && answer.body == UNAVAILABLE
            && answer.header("retry-after").is_some()
            && answer.elapsed < Duration::from_secs(3);
        if !right {
            wrong.push(format!(
                "attempt {attempt}: {} {} after {:?}",
                answer.status, answer.body, answer.elapsed
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
    attempts: usize,
    bound: Duration,
    what: &str,
) {
    let http = http_client();
    let demo = &world.demo;
    let delete = |user: UserId| -> RequestBuilder {
        http.delete(format!(
            "{gateway}{}",
            member_path("demo", demo.group, user)
        ))
        .header("X-API-KEY", &demo.owner.key)
    };
    let warm = world.add_user("demo", "warm-up");
    world.add_member("demo", demo.group, warm);
    send(delete(warm))
        .await
        .assert(204, "", &format!("before the {what}"));

    proxy.cut();
    for attempt in 0..attempts {
        let answer = send(delete(demo.user)).await;
        answer.assert(503, UNAVAILABLE, &format!("{what}, attempt {attempt}"));
        assert!(answer.retry_after() >= 1);
        assert!(
            answer.elapsed < bound,
            "answered after {:?}",
            answer.elapsed
        );
    }
    assert!(world.is_member(demo.group, demo.user));

    proxy.restore();
    let served = eventually(Duration::from_secs(10), || async {
        let answer = send(delete(demo.user)).await;
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
    unavailable_while_cut_then_served_again(
        &world,
        &proxy,
        &gateway.url(),
        5,
        Duration::from_secs(3),
        "cut",
    )
    .await;
    drop(gateway);
    drop(server);
}

#[tokio::test]
async fn grpc_server_killed_is_503_with_retry_after() {
    let mut r = Rest::start();
    let demo = &r.world.demo;
    let key = demo.owner.key.clone();
    let warm = r.new_member("warm-up");
    r.delete(&member_path("demo", demo.group, warm), Some(&key))
        .await
        .assert(204, "", "server up");

    r.stack.server.kill();
    for attempt in 0..5 {
        let answer = r.delete(&r.demo_path(), Some(&key)).await;
        answer.assert(
            503,
            UNAVAILABLE,
            &format!("server killed, attempt {attempt}"),
        );
        assert!(answer.retry_after() >= 1);
        assert!(
            answer.elapsed < Duration::from_secs(3),
            "answered after {:?}",
            answer.elapsed
        );
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
    let (proxy, _server, gateway) = stack_with_database_proxy(
        &world,
        &["--pool-timeout-ms", "500"],
        &["--rate-limit", "0"],
    );
    // The pool checkout timeout (500 ms) plus a generous margin for a loaded machine.
    let bound = Duration::from_millis(2500);
    let url = gateway.url();
    unavailable_while_cut_then_served_again(&world, &proxy, &url, 3, bound, "database cut").await;
}

#[tokio::test]
async fn a_backend_slower_than_the_deadline_is_504() {
    let world = World::new();
    let (proxy, _server, gateway) =
        stack_with_database_proxy(&world, &[], &["--rate-limit", "0", "--deadline-ms", "300"]);
    let http = http_client();
    let demo = &world.demo;
    let delete = |user: i64| {
        http.delete(format!(
            "{}{}",
            gateway.url(),
            member_path("demo", demo.group, user)
        ))
        .header("X-API-KEY", &demo.owner.key)
    };
    // Warm the pool, so the slow part is the statement, not the connection set-up.
    send(delete(NO_SUCH_ID))
        .await
        .assert(404, NOT_FOUND, "warm-up");

    proxy.set_latency(Duration::from_secs(1));
    for attempt in 0..2 {
        let answer = send(delete(demo.user.get())).await;
        answer.assert(504, TIMED_OUT, &format!("slow database, attempt {attempt}"));
        assert!(
            answer.elapsed < Duration::from_secs(1),
            "answered after {:?}, the deadline is 300 ms",
            answer.elapsed
        );
    }
}
