//! What operators see of each REST request: a `request` span carrying the request id (the
//! client's `X-Request-Id`, else a new one) around everything the gateway does for it, the id
//! echoed on the answer and passed on to the server with the trace context, the request counter
//! and latency histogram (by route template, never the raw path), and the `/metrics` page.
//!
//! The access-log line itself is written by the edge layer (`routes`), inside this span.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use groups_runtime::{REQUEST_ID_HEADER, RequestId};
use tonic::metadata::AsciiMetadataValue;
use tracing::Instrument;

/// Counter of answered requests, by `route` (template), `method` and `status`.
pub const REQUESTS_TOTAL: &str = "groups_gateway_requests_total";
/// Histogram of request latency in seconds, by `route` (template) and `method`.
pub const REQUEST_DURATION_SECONDS: &str = "groups_gateway_request_duration_seconds";

/// The `route` label of a request no route matched (unknown paths, CORS preflights).
pub const UNMATCHED_ROUTE: &str = "unmatched";

tokio::task_local! {
    /// The id of the request this task is serving: the backend call reads it here rather than
    /// have it threaded through every handler's arguments.
    static REQUEST_ID: RequestId;
}

/// Registers the help text of the gateway's metrics.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        "REST requests answered, by route template, method and status."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "REST request latency, by route template and method."
    );
}

/// The outermost layer: see the module's documentation.
///
/// `known` are the route templates (statics, so the label allocates nothing per request).
pub(crate) async fn observe_request(
    State(known): State<&'static [&'static str]>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = RequestId::from_headers(request.headers());
    let method = groups_runtime::method_label(request.method());
    let span = groups_runtime::request_span!(request_id = %request_id);
    groups_runtime::continue_trace(&span, request.headers());
    let echoed = HeaderValue::from_str(request_id.as_str()).ok();
    let mut response = REQUEST_ID
        .scope(request_id, next.run(request).instrument(span.clone()))
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    // Label values borrowed from statics: no allocation per request.
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .and_then(|matched| known.iter().copied().find(|r| *r == matched.as_str()))
        .unwrap_or(UNMATCHED_ROUTE);
    groups_runtime::name_span(&span, || format!("{method} {route}"));
    let status = status_label(response.status());
    metrics::counter!(REQUESTS_TOTAL, "route" => route, "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(REQUEST_DURATION_SECONDS, "route" => route, "method" => method)
        .record(elapsed);
    if let Some(echoed) = echoed {
        response.headers_mut().insert(REQUEST_ID_HEADER, echoed);
    }
    response
}

/// The `status` label: the answers the gateway gives, without allocating; any other code (none
/// is expected) as its number.
fn status_label(status: axum::http::StatusCode) -> metrics::SharedString {
    const KNOWN: [(u16, &str); 13] = [
        (200, "200"),
        (204, "204"),
        (400, "400"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (414, "414"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (503, "503"),
        (504, "504"),
        (413, "413"),
    ];
    KNOWN
        .iter()
        .find(|(code, _)| *code == status.as_u16())
        .map_or_else(
            || status.as_str().to_owned().into(),
            |(_, label)| (*label).into(),
        )
}

/// Adds what follows the request to the server: its id as `x-request-id` and, when traces are
/// exported, `traceparent` (this span is the server span's parent). Nothing else the client
/// sent is passed on (no `tracestate`), so no client header can push the call over the
/// server's metadata limits.
pub(crate) fn annotate<T>(request: &mut tonic::Request<T>) {
    let metadata = request.metadata_mut();
    // Outside a request (none here yet) there is nothing to pass on.
    let _outside_a_request = REQUEST_ID.try_with(|id| {
        if let Ok(value) = AsciiMetadataValue::try_from(id.as_str()) {
            metadata.insert(REQUEST_ID_HEADER, value);
        }
    });
    groups_runtime::inject(&tracing::Span::current(), |key, value| {
        if key != TRACEPARENT {
            return;
        }
        if let Ok(value) = AsciiMetadataValue::try_from(value) {
            metadata.insert(TRACEPARENT, value);
        }
    });
}

/// The W3C trace context header, the only one forwarded.
const TRACEPARENT: &str = "traceparent";

/// `GET /metrics`: the process's metrics in Prometheus text format (in `groupsctl up`, the
/// server's too).
pub(crate) async fn metrics_page() -> Response {
    let content_type = HeaderValue::from_static(groups_runtime::PROMETHEUS_CONTENT_TYPE);
    (
        [(header::CONTENT_TYPE, content_type)],
        groups_runtime::metrics().render(),
    )
        .into_response()
}
