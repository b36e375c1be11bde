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
    let server_args = ["--health-interval-ms", "100", "--pool-timeout-ms", "500"];
    let (proxy, _server, gateway) =
        stack_with_database_proxy(&world, &server_args, &["--rate-limit", "0"]);
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

    let (ready, alive) = (r#"{"status":"ready"}"#, r#"{"status":"ok"}"#);
    readiness(200).await.assert(200, ready, "ready");
    get("/healthz").await.assert(200, alive, "alive");

    proxy.cut();
    let down = readiness(503).await;
    let body: serde_json::Value = serde_json::from_str(&down.body).expect("JSON");
    assert_eq!(body["status"], "unavailable", "{down:?}");
    let still = get("/healthz").await;
    still.assert(200, alive, "alive while the database is down");

    proxy.restore();
    readiness(200).await.assert(200, ready, "ready again");
}
