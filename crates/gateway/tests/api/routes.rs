//! The routes around the operations: another method is 405 with the route's `Allow`, an
//! unknown path is a JSON 404, and CORS lets any origin call with a key header.

use reqwest::Method;

use crate::{NO_SUCH_KEY, NOT_FOUND, Rest, UNKNOWN_ACCOUNT_KEY, send};

#[tokio::test]
async fn other_methods_on_a_route_are_405_with_its_allow() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    let (g, u) = (r.world.demo.group, r.world.demo.user);
    let removal = (["PUT", "GET", "POST", "PATCH"], "DELETE, OPTIONS");
    let read = (["PUT", "DELETE", "POST", "PATCH"], "GET, HEAD, OPTIONS");
    let base = "/v1.1/instances/demo";
    let routes = [
        (r.demo_path(), removal),
        (format!("{base}/users/{u}/groups/{g}/"), removal),
        (format!("{base}/users/{u}/"), read),
        (format!("{base}/groups/{g}/"), read),
        (format!("{base}/audit/memberships/"), read),
    ];
    for (route, (methods, allow)) in routes {
        for method in methods {
            let method = Method::from_bytes(method.as_bytes()).expect("a method");
            for path in [
                route.clone(),
                route.trim_end_matches('/').to_owned(),
                route.replacen("/v1.1/", "/v1/", 1),
            ] {
                let answer = r.call(method.clone(), &path, Some(&key)).await;
                let body = format!(r#"{{"detail":"Method \"{method}\" not allowed."}}"#);
                answer.assert(405, &body, &format!("{method} {path}"));
                assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
            }
        }
        // A plain OPTIONS (not a browser's preflight) lists the methods.
        let options = r.call(Method::OPTIONS, &route, None).await;
        options.assert(204, "", &format!("OPTIONS {route}"));
        assert_eq!(options.header("allow"), Some(allow), "OPTIONS {route}");
    }
    assert!(r.world.is_member(g, u));
}

/// HEAD is GET without the body.
#[tokio::test]
async fn head_answers_a_read_without_its_body() {
    let r = Rest::start();
    let demo = &r.world.demo;
    let key = demo.owner.key.clone();
    let user = format!("/v1.1/instances/demo/users/{}/", demo.user);
    for path in [
        user.clone(),
        format!("/v1.1/instances/demo/groups/{}/", demo.group),
        "/v1.1/instances/demo/audit/memberships/".to_owned(),
    ] {
        let got = r.call(Method::GET, &path, Some(&key)).await;
        let head = r.call(Method::HEAD, &path, Some(&key)).await;
        assert_eq!((got.status, head.status), (200, 200), "{path}: {head:?}");
        assert_eq!(head.body, "", "{path}");
        let content_type = head.header("content-type");
        assert_eq!(content_type, Some("application/json"), "{path}");
    }
    let refused = r.call(Method::HEAD, &user, None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.body, "");
}

#[tokio::test]
async fn unknown_paths_are_404_not_found() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    let demo = &r.world.demo;
    let (g, u) = (demo.group, demo.user);
    let paths = [
        "/".to_owned(),
        "/v1.1/".to_owned(),
        "/v1.1/instances/demo/".to_owned(),
        format!("/v1.1/instances/demo/groups/{g}/users/"),
        format!("/v1.1/instances/demo/groups/{g}/users/{u}/extra/"),
        format!("/v2/instances/demo/groups/{g}/users/{u}/"),
        format!("/v1.1/instances//groups/{g}/users/{u}/"),
        format!("/v1.1/instances/demo/groups//users/{u}/"),
        format!("/v1.1/instances/demo/groups/{g}/members/{u}/"),
        format!("/V1.1/instances/demo/groups/{g}/users/{u}/"),
    ];
    for path in &paths {
        for method in [Method::DELETE, Method::GET] {
            let answer = r.call(method.clone(), path, Some(&key)).await;
            answer.assert(404, NOT_FOUND, &format!("{method} {path}"));
        }
    }
    assert!(r.world.is_member(g, u));
}

#[tokio::test]
async fn cors_allows_any_origin_to_call_with_a_key_header() {
    let r = Rest::start();
    let origin = "https://dashboard.example.org";
    let user_path = format!("/v1.1/instances/demo/users/{}/", r.world.demo.user);
    for (path, method) in [(r.demo_path(), "DELETE"), (user_path.clone(), "GET")] {
        let requested = [
            "x-api-key",
            "X-API-KEY",
            "x-user-key",
            "x-api-key,x-user-key",
        ];
        for requested_headers in requested {
            let preflight = r
                .request(Method::OPTIONS, &path)
                .header("Origin", origin)
                .header("Access-Control-Request-Method", method)
                .header("Access-Control-Request-Headers", requested_headers);
            let preflight = send(preflight).await;
            let case = format!("{method} {requested_headers}: {preflight:?}");
            assert!((200..300).contains(&preflight.status), "{case}");
            let allowed_origin = preflight.header("access-control-allow-origin");
            let origin_allowed = allowed_origin == Some("*") || allowed_origin == Some(origin);
            assert!(origin_allowed, "{case}");
            let methods = preflight.header("access-control-allow-methods");
            let methods = methods.unwrap_or_default().to_ascii_uppercase();
            assert!(methods.contains(method), "{case}");
            let headers = preflight.header("access-control-allow-headers");
            let headers = headers.unwrap_or_default().to_ascii_lowercase();
            for wanted in requested_headers.to_ascii_lowercase().split(',') {
                let allowed = headers == "*" || headers.contains(wanted);
                assert!(allowed, "{wanted} not allowed: {case}");
            }
        }
    }
    assert!(r.world.is_member(r.world.demo.group, r.world.demo.user));

    // The actual request, and an error answer, carry the header too (a browser reads neither
    // otherwise).
    let owner = r.world.demo.owner.key.as_str();
    for (method, path, key, status) in [
        (Method::DELETE, r.demo_path(), UNKNOWN_ACCOUNT_KEY, 403),
        (Method::GET, user_path, owner, 200),
        (Method::DELETE, r.demo_path(), owner, 204),
    ] {
        let request = r.request(method.clone(), &path).header("Origin", origin);
        let answer = send(request.header("X-API-KEY", key)).await;
        assert_eq!(answer.status, status, "actual {method}: {answer:?}");
        match status {
            403 => answer.assert(status, NO_SUCH_KEY, "actual request"),
            204 => answer.assert(status, "", "actual request"),
            _ => {}
        }
        let allowed = answer.header("access-control-allow-origin").is_some();
        assert!(allowed, "{answer:?}");
    }
}
