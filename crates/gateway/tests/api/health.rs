//! Readiness follows the database, liveness the process.

use std::time::Duration;

use groups_testkit::World;

use crate::eventually;
use crate::outages::stack_with_database_proxy;
use crate::{http_client, send};

/// README ("Health"): `/healthz` while the gateway runs, `/readyz` only while the server is
/// SERVING, which it is only while its database answers.
#[tokio::test]
async fn readyz_follows_the_database_and_healthz_the_process() {
    let world = World::new();
    let (proxy, _server, gateway) = stack_with_database_proxy(
        &world,
        &["--health-interval-ms", "100", "--pool-timeout-ms", "500"],
        &["--rate-limit", "0"],
    );
    let http = http_client();
    let get = |path: &str| send(http.get(format!("{}{path}", gateway.url())));
    let readiness = |wanted: u16| async move {
        eventually(Duration::from_secs(10), || async {
            let answer = get("/readyz").await;
            (answer.status == wanted).then_some(answer)
        })
        .await
        .unwrap_or_else(|| panic!("/readyz never answered {wanted}"))
    };

    readiness(200)
        .await
        .assert(200, r#"{"status":"ready"}"#, "ready");
    get("/healthz")
        .await
        .assert(200, r#"{"status":"ok"}"#, "alive");

    proxy.cut();
    let down = readiness(503).await;
    let body: serde_json::Value = serde_json::from_str(&down.body).expect("JSON");
    assert_eq!(body["status"], "unavailable", "{down:?}");
    get("/healthz").await.assert(
        200,
        r#"{"status":"ok"}"#,
        "alive while the database is down",
    );

    proxy.restore();
    readiness(200)
        .await
        .assert(200, r#"{"status":"ready"}"#, "ready again");
}
