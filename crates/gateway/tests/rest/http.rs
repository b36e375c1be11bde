//! HTTP around the routes: 405 with `Allow`, `OPTIONS`, JSON 404s and CORS.

use super::*;

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let h = Harness::start().await;
    for method in [Method::PUT, Method::GET, Method::POST, Method::PATCH] {
        let answer = h.send(method.clone(), &member("demo", "1", "2")).await;
        let body = format!(r#"{{"detail":"Method \"{method}\" not allowed."}}"#);
        answer.assert(405, &body);
        assert_eq!(answer.header("allow"), Some("DELETE, OPTIONS"));
    }
    // HEAD has no body, but the same status and Allow.
    let answer = h.send(Method::HEAD, &member("demo", "1", "2")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header("allow"), Some("DELETE, OPTIONS"));
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn plain_options_lists_the_allowed_methods() {
    let h = Harness::start().await;
    let answer = h.send(Method::OPTIONS, &member("demo", "1", "2")).await;
    answer.assert(204, "");
    assert_eq!(answer.header("allow"), Some("DELETE, OPTIONS"));
    h.send(Method::OPTIONS, "/v1.1/nothing/here")
        .await
        .assert(404, NOT_FOUND);
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let h = Harness::start().await;
    for path in [
        "/",
        "/v1.1/instances/demo/groups/1/users/",
        "/v1.1/instances//groups/1/users/2/",
        "/v1.1/instances/demo/groups//users/2",
        "/v1.1/instances/demo/groups/1/users//",
        "/v2/instances/demo/groups/1/users/2/",
        "/v1.1/instances/demo/groups/1/users/2//",
        "/v1.1/instances/demo/groups/1/users/2/extra",
    ] {
        h.delete(path).await.assert(404, NOT_FOUND);
        h.send(Method::GET, path).await.assert(404, NOT_FOUND);
        h.send(Method::OPTIONS, path).await.assert(404, NOT_FOUND);
    }
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn cors_preflight_and_actual_request() {
    let h = Harness::start().await;
    let path = member("demo", "1", "2");
    let preflight = h
        .request(Method::OPTIONS, &path)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "x-api-key, x-user-key");
    let preflight = h.send_with(preflight).await;
    assert_eq!(preflight.status, StatusCode::OK, "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    let methods = preflight.header("access-control-allow-methods").unwrap();
    let methods = methods.to_ascii_uppercase();
    assert!(methods.contains("DELETE"), "{methods}");
    let headers = preflight.header("access-control-allow-headers").unwrap();
    for name in ["x-api-key", "x-user-key", "authorization", "content-type"] {
        assert!(headers.contains(name), "{headers}");
    }

    let actual = h
        .request(Method::DELETE, &path)
        .header("origin", "https://app.example");
    let actual = h.send_with(actual.header("x-api-key", ACCOUNT_KEY)).await;
    actual.assert(204, "");
    assert_eq!(actual.header("access-control-allow-origin"), Some("*"));
}
