//! The REST surface: the member route with SPEC.md's local checks, JSON answers for everything
//! else (405, 404, panics), and the edge layers (CORS for browsers, one access-log line).

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get};
use groups_core::{GroupId, InstanceName, UserId};
use percent_encoding::percent_decode_str;
use serde_json::json;
use tower::{Layer, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any as AnyOrigin, CorsLayer};

use crate::answer::{ALLOWED_METHODS, Answer};
use crate::api_key;
use crate::backend::Backend;
use crate::observe;
use crate::rate_limit::RateLimiter;

/// The member route, under both API versions, with and without the trailing slash.
const MEMBER_ROUTES: [&str; 4] = [
    "/v1.1/instances/{instance}/groups/{group_id}/users/{user_id}/",
    "/v1.1/instances/{instance}/groups/{group_id}/users/{user_id}",
    "/v1/instances/{instance}/groups/{group_id}/users/{user_id}/",
    "/v1/instances/{instance}/groups/{group_id}/users/{user_id}",
];

const HEALTHZ_ROUTE: &str = "/healthz";
const READYZ_ROUTE: &str = "/readyz";
const OPENAPI_ROUTE: &str = "/openapi.json";
const METRICS_ROUTE: &str = "/metrics";

/// Every route template the gateway serves. `openapi.json` describes each: a test checks both
/// ways, so a route added here without its description fails it.
pub const ROUTES: [&str; 8] = [
    MEMBER_ROUTES[0],
    MEMBER_ROUTES[1],
    MEMBER_ROUTES[2],
    MEMBER_ROUTES[3],
    HEALTHZ_ROUTE,
    READYZ_ROUTE,
    OPENAPI_ROUTE,
    METRICS_ROUTE,
];

/// The OpenAPI 3.1 document of the REST API, served at [`OPENAPI_ROUTE`].
const OPENAPI_DOCUMENT: &str = include_str!("../openapi.json");

/// Logged as the route of a request that matched none.
const UNMATCHED: &str = "-";

/// What every request shares: the server's client and the rate limiter (`None`: off).
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) backend: Backend,
    pub(crate) limiter: Option<RateLimiter>,
}

impl Gateway {
    /// SPEC.md's checks that need no server, in its order, then the call.
    async fn remove_member(
        &self,
        path: MemberPath<'_>,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), Answer> {
        let group = decode_segment(path.group_id)
            .and_then(|text| GroupId::parse(&text))
            .ok_or(Answer::group_not_found())?;
        let user = decode_segment(path.user_id)
            .and_then(|text| UserId::parse(&text))
            .ok_or(Answer::not_found())?;
        // An invalid name cannot be an instance; no need to ask the server.
        let instance = decode_segment(path.instance)
            .and_then(|text| InstanceName::parse(&text))
            .ok_or(Answer::instance_not_found())?;
        if let Some(limiter) = &self.limiter {
            limiter
                .check(instance.as_str())
                .map_err(Answer::throttled)?;
        }
        let key = api_key::find(headers, query);
        self.backend
            .remove_member(&instance, group, user, key.as_ref())
            .await
    }
}

/// The three raw (still percent-encoded) variable segments of a member route.
#[derive(Debug, Clone, Copy)]
struct MemberPath<'a> {
    instance: &'a str,
    group_id: &'a str,
    user_id: &'a str,
}

impl<'a> MemberPath<'a> {
    /// Reads the segments by position from a path the router matched to [`MEMBER_ROUTES`];
    /// `None` when one is empty. The router (matchit) matches an empty `{param}` before a
    /// static segment (`/instances//groups/…`); the original's `[^/]+` did not, so such a path
    /// is an unknown one.
    ///
    /// Not `RawPathParams`: it answers 400 in plain text when a segment is not UTF-8 once
    /// decoded, which must be a JSON 404 here, and in the order of SPEC.md's checks.
    fn from_matched(path: &'a str) -> Option<Self> {
        let mut segments = path.split('/');
        // "", version, "instances", {instance}, "groups", {group_id}, "users", {user_id}
        let matched = Self {
            instance: segments.nth(3)?,
            group_id: segments.nth(1)?,
            user_id: segments.nth(1)?,
        };
        let all_given = [matched.instance, matched.group_id, matched.user_id]
            .iter()
            .all(|segment| !segment.is_empty());
        all_given.then_some(matched)
    }
}

/// Percent-decodes a path segment; `None` when the result is not UTF-8 (never lossy: a name
/// with replacement characters must not reach the checks as if it were something else).
fn decode_segment(raw: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(raw).decode_utf8().ok()
}

/// Answers an empty-segment match as the unknown path it is, whatever the method.
async fn require_member_path(request: Request, next: Next) -> Response {
    if MemberPath::from_matched(request.uri().path()).is_none() {
        return Answer::not_found().into_response();
    }
    next.run(request).await
}

async fn remove_member(
    State(gateway): State<Arc<Gateway>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(path) = MemberPath::from_matched(uri.path()) else {
        return Answer::not_found().into_response();
    };
    match gateway.remove_member(path, &headers, uri.query()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(answer) => answer.into_response(),
    }
}

/// A plain `OPTIONS` (no `Origin`: not a browser's CORS preflight) lists the allowed methods.
async fn allowed_methods() -> Response {
    let allow = HeaderValue::from_static(ALLOWED_METHODS);
    (StatusCode::NO_CONTENT, [(header::ALLOW, allow)]).into_response()
}

async fn method_not_allowed(method: Method) -> Answer {
    Answer::method_not_allowed(method.as_str())
}

async fn not_found() -> Answer {
    Answer::not_found()
}

/// A panic is a bug: log it, answer 500 without internals.
fn answer_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-text panic payload)");
    tracing::error!(panic = message, "request handler panicked");
    Answer::server_error().into_response()
}

/// Browsers on any origin may call DELETE with a key header.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AnyOrigin)
        .allow_methods([Method::DELETE, Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-user-key"),
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static(groups_runtime::REQUEST_ID_HEADER),
        ])
}

/// Copies the matched route template onto the response, for the access log outside the router.
async fn tag_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// The outermost layer: sends plain `OPTIONS` past CORS (tower-http's layer would answer every
/// `OPTIONS` as a preflight), and logs one line per request with the route template, never the
/// raw path or query (a key may be in it).
async fn edge(State(plain): State<Router>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let started = Instant::now();
    let is_plain_options =
        method == Method::OPTIONS && !request.headers().contains_key(header::ORIGIN);
    let mut response = if is_plain_options {
        match plain.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    } else {
        next.run(request).await
    };
    // axum's method router adds `Allow` to every answer for a method it does not route, the
    // empty-segment 404 of `require_member_path` included: an unknown path has no `Allow`.
    if response.status() == StatusCode::NOT_FOUND {
        response.headers_mut().remove(header::ALLOW);
    }
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str);
    tracing::info!(
        method = %method,
        route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Liveness: the process answers.
async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

/// Readiness: the gRPC server is reachable and SERVING (so its database answers).
async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.backend.readiness().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
        Err(detail) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "detail": detail })),
        )
            .into_response(),
    }
}

/// The OpenAPI document, as written.
async fn openapi() -> Response {
    let json = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, json)], OPENAPI_DOCUMENT).into_response()
}

async fn get_only(method: Method) -> Answer {
    Answer::method_not_allowed_with(method.as_str(), "GET, HEAD")
}

/// The whole REST application.
pub(crate) fn app(gateway: Arc<Gateway>) -> Router {
    let member: MethodRouter<Arc<Gateway>> = delete(remove_member)
        .options(allowed_methods)
        .fallback(method_not_allowed)
        .layer(middleware::from_fn(require_member_path));
    let mut routes = Router::new()
        .route(HEALTHZ_ROUTE, get(healthz).fallback(get_only))
        .route(READYZ_ROUTE, get(readyz).fallback(get_only))
        .route(OPENAPI_ROUTE, get(openapi).fallback(get_only))
        .route(METRICS_ROUTE, get(observe::metrics_page).fallback(get_only));
    for path in MEMBER_ROUTES {
        routes = routes.route(path, member.clone());
    }
    let plain = with_edge_layers(routes.fallback(not_found).with_state(gateway));
    let with_cors = cors().layer(plain.clone());
    let outer = middleware::from_fn_with_state(plain, edge).layer(with_cors);
    // Outermost: the request id's span wraps everything, the access-log line included.
    Router::new()
        .fallback_service(outer)
        .layer(middleware::from_fn(observe::observe_request))
}

/// Panic recovery and route tagging, for the application's routes (and tests' extra ones).
fn with_edge_layers(routes: Router) -> Router {
    routes
        .layer(CatchPanicLayer::custom(answer_panic))
        .layer(middleware::from_fn(tag_route))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};

    #[test]
    fn member_path_segments_by_position() {
        let p = MemberPath::from_matched("/v1.1/instances/de%6Do/groups/1/users/2/").unwrap();
        assert_eq!((p.instance, p.group_id, p.user_id), ("de%6Do", "1", "2"));
        let p = MemberPath::from_matched("/v1/instances/a/groups/b/users/c").unwrap();
        assert_eq!((p.instance, p.group_id, p.user_id), ("a", "b", "c"));
        assert!(MemberPath::from_matched("/v1/instances/a").is_none());
        assert!(MemberPath::from_matched("/v1/instances//groups/1/users/2/").is_none());
        assert!(MemberPath::from_matched("/v1/instances/a/groups/1/users//").is_none());
    }

    #[test]
    fn segments_decode_strictly() {
        assert_eq!(decode_segment("de%6Do").as_deref(), Some("demo"));
        assert_eq!(decode_segment("%31").as_deref(), Some("1"));
        assert_eq!(decode_segment("a%zz").as_deref(), Some("a%zz"));
        assert_eq!(decode_segment("%FF"), None);
    }

    #[tokio::test]
    async fn panics_answer_json_500() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let app = with_edge_layers(Router::new().route("/boom", get(boom)));
        let response = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"detail":"A server error occurred."}"#);
    }
}
