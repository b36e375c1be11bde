//! The gateway against its backend: outages, deadlines, the rate limit, multiplexing and
//! shutdown.

use super::*;

#[tokio::test]
async fn server_down_is_a_quick_503() {
    // A port that was free a moment ago: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let h = Harness::start_with(|c| c.server_url = format!("http://{addr}")).await;
    for _ in 0..2 {
        let started = Instant::now();
        let request = h.request(Method::DELETE, &member("demo", "1", "2"));
        let answer = h.send_with(request.header("x-api-key", ACCOUNT_KEY)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        answer.assert(503, UNAVAILABLE);
        assert_eq!(answer.header("retry-after"), Some("1"));
    }
}

#[tokio::test]
async fn slow_server_is_504_at_the_deadline_and_is_told_the_deadline() {
    let h = Harness::start_with(|c| c.deadline = Duration::from_millis(300)).await;
    let started = Instant::now();
    h.delete(&member("slow", "1", "2"))
        .await
        .assert(504, TIMED_OUT);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let timeout = h.seen()[0].grpc_timeout.clone().expect("grpc-timeout sent");
    // gRPC's wire format: up to 8 digits and a unit; tonic picks the most precise unit.
    assert!(
        ["300000000n", "300000u", "300m"].contains(&timeout.as_str()),
        "{timeout}"
    );
}

#[tokio::test]
async fn rate_limit_is_per_instance() {
    let h = Harness::start_with(|c| c.rate_limit = 2).await;
    h.delete(&member("busy", "1", "2")).await.assert(204, "");
    // Instance names are case-insensitive: one bucket.
    h.delete(&member("BUSY", "1", "2")).await.assert(204, "");
    let throttled = h.delete(&member("busy", "1", "2")).await;
    throttled.assert(
        429,
        r#"{"detail":"Request was throttled. Expected available in 1 seconds."}"#,
    );
    assert_eq!(throttled.header("retry-after"), Some("1"));
    // Another instance is not affected.
    h.delete(&member("quiet", "1", "2")).await.assert(204, "");
    // Throttled requests never reach the server.
    assert_eq!(h.seen().len(), 3);
}

#[tokio::test]
async fn rate_limit_zero_is_off() {
    let h = Harness::start_with(|c| c.rate_limit = 0).await;
    for _ in 0..20 {
        h.delete(&member("busy", "1", "2")).await.assert(204, "");
    }
}

#[tokio::test]
async fn requests_are_multiplexed_not_serialised() {
    let h = Harness::start_with(|c| c.deadline = Duration::from_millis(1500)).await;
    // Ten slow calls at once all time out together, not one after another.
    let started = Instant::now();
    let url = format!("{}/v1/instances/slow/groups/1/users/2", h.base);
    let calls: Vec<_> = (0..10)
        .map(|_| tokio::spawn(h.http.delete(&url).send()))
        .collect();
    for call in calls {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(h.seen().len(), 10);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(groups_gateway::run(
        listener,
        GatewayConfig::default(),
        async {
            stopped.await.ok();
        },
    ));
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops on shutdown")
        .unwrap();
    assert!(result.is_ok());
}

#[tokio::test]
async fn a_malformed_server_url_is_an_error() {
    let config = GatewayConfig {
        server_url: "not a url".into(),
        ..GatewayConfig::default()
    };
    assert!(groups_gateway::router(&config).is_err());
}
