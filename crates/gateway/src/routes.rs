//! The REST surface: one handler per operation, each with SPEC.md's local checks in its own
//! order, then one call to the server; JSON answers for everything else (405, 404, panics), and
//! the edge layers (CORS for browsers, one access-log line).

use std::any::Any;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get};
use groups_core::{GroupId, InstanceName, UserId};
use groups_proto::{
    GetGroupRequest, GetUserRequest, ListMembershipEventsRequest, MembershipParent,
    RemoveGroupMemberRequest,
};
use serde_json::json;
use tower::{Layer, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any as AnyOrigin, CorsLayer};

use crate::answer::{Answer, Operation};
use crate::api_key::{self, KeyText};
use crate::backend::Backend;
use crate::objects::{self, Base, EventList, ListQuery};
use crate::observe;
use crate::paths::PathVars;
use crate::rate_limit::TokenBuckets;
use crate::shield::{Shield, shield};

/// Each route under both API versions, with and without the trailing slash.
macro_rules! versions {
    ($path:literal) => {
        [
            concat!("/v1.1", $path, "/"),
            concat!("/v1.1", $path),
            concat!("/v1", $path, "/"),
            concat!("/v1", $path),
        ]
    };
}

const REMOVE_FROM_GROUP: [&str; 4] =
    versions!("/instances/{instance}/groups/{group_id}/users/{user_id}");
const REMOVE_FROM_USER: [&str; 4] =
    versions!("/instances/{instance}/users/{user_id}/groups/{group_id}");
const GET_USER: [&str; 4] = versions!("/instances/{instance}/users/{user_id}");
const GET_GROUP: [&str; 4] = versions!("/instances/{instance}/groups/{group_id}");
const LIST_EVENTS: [&str; 4] = versions!("/instances/{instance}/audit/memberships");

const HEALTHZ_ROUTE: &str = "/healthz";
const READYZ_ROUTE: &str = "/readyz";
const OPENAPI_ROUTE: &str = "/openapi.json";
const METRICS_ROUTE: &str = "/metrics";

/// The API's operations: each one's route templates and its handler.
const OPERATIONS: [[&str; 4]; 5] = [
    REMOVE_FROM_GROUP,
    REMOVE_FROM_USER,
    GET_USER,
    GET_GROUP,
    LIST_EVENTS,
];

/// Every route template the gateway serves. `openapi.json` describes each: a test checks both
/// ways, so a route added here without its description fails it.
pub fn routes() -> impl Iterator<Item = &'static str> {
    [HEALTHZ_ROUTE, READYZ_ROUTE, OPENAPI_ROUTE, METRICS_ROUTE]
        .into_iter()
        .chain(OPERATIONS.into_iter().flatten())
}

/// [`routes`], collected once: the observing layer's metric labels.
static ROUTE_TEMPLATES: LazyLock<Vec<&'static str>> = LazyLock::new(|| routes().collect());

/// `Allow` of the removal routes and of the read routes.
const DELETE_METHODS: &str = "DELETE, OPTIONS";
const GET_METHODS: &str = "GET, HEAD, OPTIONS";

/// The OpenAPI 3.1 document of the REST API, served at [`OPENAPI_ROUTE`].
const OPENAPI_DOCUMENT: &str = include_str!("../openapi.json");

/// Logged as the route of a request that matched none.
const UNMATCHED: &str = "-";

/// What every request shares: the server's client and the rate limiter (`None`: off).
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) backend: Backend,
    /// Requests a second per instance (lower-cased name).
    pub(crate) limiter: Option<TokenBuckets<String>>,
}

impl Gateway {
    /// The instance's rate limit: the last check before the server is asked.
    fn admit(&self, instance: &InstanceName) -> Result<(), Answer> {
        match &self.limiter {
            Some(limiter) => limiter.take(instance.as_str()).map_err(Answer::throttled),
            None => Ok(()),
        }
    }

    /// A removal from either side, once the path has been checked.
    async fn remove(
        &self,
        api: &Api,
        operation: Operation,
        (instance, group, user): (InstanceName, GroupId, UserId),
        parent: MembershipParent,
    ) -> Result<StatusCode, Answer> {
        self.admit(&instance)?;
        let message = RemoveGroupMemberRequest {
            instance_name: instance.as_str().to_owned(),
            group_id: group.get(),
            user_id: user.get(),
            allow_missing: false,
            parent: parent.into(),
        };
        self.backend
            .call(
                operation,
                message,
                api.key().as_ref(),
                |mut c, r| async move { c.members.remove_group_member(r).await },
            )
            .await?;
        Ok(StatusCode::NO_CONTENT)
    }
}

/// What a handler reads of its request: the matched route, the raw path and query, the headers.
#[derive(Debug)]
struct Api {
    route: MatchedPath,
    uri: Uri,
    headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Api {
    type Rejection = Answer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Answer> {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .cloned()
            .ok_or(Answer::not_found())?;
        Ok(Self {
            route,
            uri: parts.uri.clone(),
            headers: std::mem::take(&mut parts.headers),
        })
    }
}

impl Api {
    fn vars(&self) -> Result<PathVars<'_>, Answer> {
        PathVars::new(self.route.as_str(), self.uri.path()).ok_or(Answer::not_found())
    }

    fn key(&self) -> Option<KeyText<'_>> {
        api_key::find(&self.headers, self.uri.query())
    }
}

async fn remove_from_group(
    State(gateway): State<Arc<Gateway>>,
    api: Api,
) -> Result<StatusCode, Answer> {
    let path = api.vars()?;
    let group = path.id("group_id", GroupId::parse, Answer::group_not_found())?;
    let user = path.id("user_id", UserId::parse, Answer::not_found())?;
    let instance = path.instance()?;
    let operation = Operation::RemoveFromGroup;
    let ids = (instance, group, user);
    gateway
        .remove(&api, operation, ids, MembershipParent::Group)
        .await
}

async fn remove_from_user(
    State(gateway): State<Arc<Gateway>>,
    api: Api,
) -> Result<StatusCode, Answer> {
    let path = api.vars()?;
    let user = path.id("user_id", UserId::parse, Answer::user_not_found())?;
    let group = path.id("group_id", GroupId::parse, Answer::not_found())?;
    let instance = path.instance()?;
    let operation = Operation::RemoveFromUser;
    let ids = (instance, group, user);
    gateway
        .remove(&api, operation, ids, MembershipParent::User)
        .await
}

async fn get_user(
    State(gateway): State<Arc<Gateway>>,
    api: Api,
) -> Result<Json<objects::User>, Answer> {
    let path = api.vars()?;
    let user = path.id("user_id", UserId::parse, Answer::not_found())?;
    let instance = path.instance()?;
    gateway.admit(&instance)?;
    let message = GetUserRequest {
        instance_name: instance.as_str().to_owned(),
        user_id: user.get(),
    };
    let found = gateway
        .backend
        .call(
            Operation::GetUser,
            message,
            api.key().as_ref(),
            |mut c, r| async move { c.directory.get_user(r).await },
        )
        .await?;
    Ok(Json(objects::User::new(
        &Base::new(path.version(), &instance),
        found,
    )))
}

async fn get_group(
    State(gateway): State<Arc<Gateway>>,
    api: Api,
) -> Result<Json<objects::Group>, Answer> {
    let path = api.vars()?;
    let group = path.id("group_id", GroupId::parse, Answer::not_found())?;
    let instance = path.instance()?;
    gateway.admit(&instance)?;
    let message = GetGroupRequest {
        instance_name: instance.as_str().to_owned(),
        group_id: group.get(),
    };
    let found = gateway
        .backend
        .call(
            Operation::GetGroup,
            message,
            api.key().as_ref(),
            |mut c, r| async move { c.directory.get_group(r).await },
        )
        .await?;
    Ok(Json(objects::Group::new(
        &Base::new(path.version(), &instance),
        found,
    )))
}

async fn list_events(
    State(gateway): State<Arc<Gateway>>,
    api: Api,
) -> Result<Json<EventList>, Answer> {
    let path = api.vars()?;
    let query = ListQuery::parse(api.uri.query())?;
    let instance = path.instance()?;
    gateway.admit(&instance)?;
    let message = ListMembershipEventsRequest {
        instance_name: instance.as_str().to_owned(),
        group_id: query.group.map_or(0, GroupId::get),
        user_id: query.user.map_or(0, UserId::get),
        page_size: i32::try_from(query.page_size).unwrap_or(i32::MAX),
        page_token: query.page_token.clone(),
    };
    let page = gateway
        .backend
        .call(
            Operation::ListEvents,
            message,
            api.key().as_ref(),
            |mut c, r| async move { c.audit.list_membership_events(r).await },
        )
        .await?;
    Ok(Json(EventList::new(
        &Base::new(path.version(), &instance),
        &query,
        page,
    )))
}

/// Answers an empty-segment match as the unknown path it is, whatever the method.
async fn require_segments(request: Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .is_none_or(|route| PathVars::new(route.as_str(), request.uri().path()).is_some());
    if !matched {
        return Answer::not_found().into_response();
    }
    next.run(request).await
}

/// A plain `OPTIONS` (no `Origin`: not a browser's CORS preflight) lists the allowed methods.
fn allowed_methods(allow: &'static str) -> impl Fn() -> std::future::Ready<Response> + Clone {
    move || {
        let allow = HeaderValue::from_static(allow);
        std::future::ready((StatusCode::NO_CONTENT, [(header::ALLOW, allow)]).into_response())
    }
}

fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(Method) -> std::future::Ready<Answer> + Clone {
    move |method| std::future::ready(Answer::method_not_allowed(method.as_str(), allow))
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

/// Browsers on any origin may call the API with a key header.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AnyOrigin)
        .allow_methods([Method::GET, Method::HEAD, Method::DELETE, Method::OPTIONS])
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
    // empty-segment 404 of `require_segments` included: an unknown path has no `Allow`.
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

/// The whole REST application.
pub(crate) fn app(gateway: Arc<Gateway>, guard: Arc<Shield>) -> Router {
    let api = |router: MethodRouter<Arc<Gateway>>, allow: &'static str| {
        router
            .options(allowed_methods(allow))
            .fallback(method_not_allowed(allow))
            .layer(middleware::from_fn(require_segments))
    };
    let operations: [(_, MethodRouter<Arc<Gateway>>); OPERATIONS.len()] = [
        (
            REMOVE_FROM_GROUP,
            api(delete(remove_from_group), DELETE_METHODS),
        ),
        (
            REMOVE_FROM_USER,
            api(delete(remove_from_user), DELETE_METHODS),
        ),
        (GET_USER, api(get(get_user), GET_METHODS)),
        (GET_GROUP, api(get(get_group), GET_METHODS)),
        (LIST_EVENTS, api(get(list_events), GET_METHODS)),
    ];
    let get_only = method_not_allowed("GET, HEAD");
    let mut routes = Router::new()
        .route(HEALTHZ_ROUTE, get(healthz).fallback(get_only.clone()))
        .route(READYZ_ROUTE, get(readyz).fallback(get_only.clone()))
        .route(OPENAPI_ROUTE, get(openapi).fallback(get_only.clone()))
        .route(METRICS_ROUTE, get(observe::metrics_page).fallback(get_only));
    for (paths, router) in operations {
        for path in paths {
            routes = routes.route(path, router.clone());
        }
    }
    // The shield runs before any route's checks, inside the access-log line.
    let plain = with_edge_layers(routes.fallback(not_found).with_state(gateway))
        .layer(middleware::from_fn_with_state(guard, shield));
    let with_cors = cors().layer(plain.clone());
    let outer = middleware::from_fn_with_state(plain, edge).layer(with_cors);
    // Outermost: the request id's span wraps everything, the access-log line included.
    Router::new()
        .fallback_service(outer)
        .layer(middleware::from_fn_with_state(
            ROUTE_TEMPLATES.as_slice(),
            observe::observe_request,
        ))
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
    fn every_operation_is_routed_under_both_versions_with_and_without_the_slash() {
        let all: Vec<_> = routes().collect();
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!((all.len(), unique.len()), (24, 24));
        assert!(all.contains(&"/v1/instances/{instance}/users/{user_id}/groups/{group_id}"));
        assert!(all.contains(&"/v1.1/instances/{instance}/audit/memberships/"));
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
