//! What operators see of each RPC: a `request` span carrying the request id (the caller's
//! `x-request-id`, else a new one, echoed in the response metadata) and, when traces are
//! exported, the caller's trace as parent; one log line when the RPC ends (method, code,
//! latency); the RPC counter and latency histogram; and the server's own `/metrics` page.
//!
//! A unary gRPC answer carries its status in trailers, after the body, so the line and the
//! metrics are written when the response body ends, not when the handler returns.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use groups_runtime::{REQUEST_ID_HEADER, RequestId};
use groups_store::Pool;
use http_body::{Frame, SizeHint};
use tonic::Code;
use tracing::Instrument;
use tracing::field::Empty;

/// Set on every request before its method runs: when it arrived and its request id (read by
/// `crate::pipeline`).
#[derive(Debug, Clone)]
pub(crate) struct Arrival {
    pub(crate) at: Instant,
    pub(crate) request_id: RequestId,
}

/// Counter of RPCs answered, by `method` and `code`.
pub const RPCS_TOTAL: &str = "groups_server_rpcs_total";
/// Histogram of RPC latency in seconds (to the last byte of the answer), by `method`.
pub const RPC_DURATION_SECONDS: &str = "groups_server_rpc_duration_seconds";
/// Gauge of pooled database connections, by `state` (`in_use`, `idle`).
pub const POOL_CONNECTIONS: &str = "groups_server_pool_connections";
/// Counter of calls that failed at the database (unreachable, statement failed, no worker or
/// connection free in time, queue full): each one answered UNAVAILABLE.
pub const DATABASE_ERRORS_TOTAL: &str = "groups_server_database_errors_total";
/// Histogram of removals per statement (the batches the database workers form).
pub const BATCH_SIZE: &str = "groups_server_batch_size";

/// The methods this server implements, as `method` label values. Any other path is labelled
/// [`UNKNOWN_METHOD`]: a caller cannot grow the label set.
pub(crate) const SERVED_METHODS: [&str; 7] = [
    "/groups.v1.GroupMembers/RemoveGroupMember",
    "/groups.v1.Directory/GetUser",
    "/groups.v1.Directory/GetGroup",
    "/groups.v1.Audit/ListMembershipEvents",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];
const UNKNOWN_METHOD: &str = "unknown";

/// Registers the help text of the server's metrics (with the process's recorder, if any).
pub fn describe_metrics() {
    metrics::describe_counter!(
        RPCS_TOTAL,
        "gRPC calls answered, by method and status code."
    );
    metrics::describe_histogram!(
        RPC_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "gRPC call latency, from the request to the end of the answer, by method."
    );
    metrics::describe_gauge!(
        POOL_CONNECTIONS,
        "Database connections of the pool, by state (in_use, idle)."
    );
    metrics::describe_counter!(
        DATABASE_ERRORS_TOTAL,
        "Calls that failed at the database (unreachable, statement failed, no worker free in time, queue full)."
    );
    metrics::describe_histogram!(
        BATCH_SIZE,
        metrics::Unit::Count,
        "Removals per statement: the batches the database workers form."
    );
}

/// Sets the pool gauges from the pool's current state.
pub(crate) fn record_pool_state(pool: &Pool) {
    let (open, idle) = pool.state();
    metrics::gauge!(POOL_CONNECTIONS, "state" => "in_use")
        .set(f64::from(open.saturating_sub(idle)));
    metrics::gauge!(POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
}

/// The `/metrics` page of `--metrics-listen`, with fresh pool gauges.
pub(crate) fn metrics_app(pool: Pool) -> axum::Router {
    let page = move || {
        let pool = pool.clone();
        async move {
            record_pool_state(&pool);
            (
                [(
                    header::CONTENT_TYPE,
                    groups_runtime::PROMETHEUS_CONTENT_TYPE,
                )],
                groups_runtime::metrics().render(),
            )
                .into_response()
        }
    };
    axum::Router::new().route("/metrics", axum::routing::get(page))
}

/// The middleware around every gRPC route: see the module's documentation.
pub(crate) async fn observe_rpc(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = RequestId::from_headers(request.headers());
    let method = method_label(request.uri().path());
    // `instance`, `group`, `user` and `outcome` (`removed`, `found`, `listed` or the error's
    // reason) are filled in by the method (crate::pipeline).
    let span = groups_runtime::request_span!(
        request_id = %request_id,
        rpc = method,
        instance = Empty,
        group = Empty,
        user = Empty,
        outcome = Empty,
    );
    // Parent first: naming starts the exported span, which fixes its parent.
    groups_runtime::continue_trace(&span, request.headers());
    groups_runtime::name_span(&span, || method.to_owned());
    let mut request = request;
    request.extensions_mut().insert(Arrival {
        at: started,
        request_id: request_id.clone(),
    });
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let header_code = grpc_code(response.headers());
    let (parts, body) = response.into_parts();
    let body = ObservedBody {
        inner: body,
        rpc: Some(Rpc {
            span,
            method,
            started,
            header_code,
        }),
    };
    Response::from_parts(parts, Body::new(body))
}

/// The `method` label of a request path.
fn method_label(path: &str) -> &'static str {
    SERVED_METHODS
        .into_iter()
        .find(|served| *served == path)
        .unwrap_or(UNKNOWN_METHOD)
}

/// The `grpc-status` of a header block (a trailers-only answer's headers, or trailers).
fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?;
    let code = std::str::from_utf8(value.as_bytes())
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(code))
}

/// An RPC whose answer is still being sent.
#[derive(Debug)]
struct Rpc {
    span: tracing::Span,
    method: &'static str,
    started: Instant,
    /// The status, when it came in the headers (a trailers-only answer: every error).
    header_code: Option<Code>,
}

impl Rpc {
    fn finish(self, code: Code) {
        let elapsed = self.started.elapsed();
        let code = code_label(code);
        metrics::counter!(RPCS_TOTAL, "method" => self.method, "code" => code).increment(1);
        metrics::histogram!(RPC_DURATION_SECONDS, "method" => self.method)
            .record(elapsed.as_secs_f64());
        self.span.in_scope(|| {
            tracing::info!(code, latency_ms = elapsed.as_secs_f64() * 1000.0, "rpc");
        });
    }
}

/// The answer's body, passed through unchanged, reporting the RPC once its status is known.
#[derive(Debug)]
struct ObservedBody {
    inner: Body,
    rpc: Option<Rpc>,
}

impl ObservedBody {
    fn finish(&mut self, trailer_code: Option<Code>) {
        if let Some(rpc) = self.rpc.take() {
            let code = trailer_code.or(rpc.header_code).unwrap_or(Code::Unknown);
            rpc.finish(code);
        }
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers);
                    self.finish(code);
                }
            }
            Poll::Ready(None) => self.finish(None),
            Poll::Ready(Some(Err(_))) => self.finish(Some(Code::Unknown)),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // Dropped unfinished: a trailers-only answer sent whole (its status is in the headers),
        // or a caller that went away mid-answer.
        if let Some(rpc) = self.rpc.take() {
            let code = rpc.header_code.unwrap_or(Code::Cancelled);
            rpc.finish(code);
        }
    }
}

/// gRPC's spelling of a status code, as SPEC.md writes it.
fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::server::NamedService;

    #[test]
    fn only_served_methods_are_labels() {
        assert_eq!(
            method_label("/groups.v1.GroupMembers/RemoveGroupMember"),
            "/groups.v1.GroupMembers/RemoveGroupMember"
        );
        assert_eq!(
            method_label("/groups.v1.GroupMembers/Other"),
            UNKNOWN_METHOD
        );
        assert_eq!(method_label("/x/y?z"), UNKNOWN_METHOD);
    }

    #[test]
    fn served_methods_name_the_registered_services() {
        type Members = groups_proto::GroupMembersServer<crate::Service>;
        type Directory = groups_proto::DirectoryServer<crate::Service>;
        type Audit = groups_proto::AuditServer<crate::Service>;
        type Health =
            tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>;
        for service in [
            Members::NAME,
            Directory::NAME,
            Audit::NAME,
            Health::NAME,
            "grpc.reflection.v1.ServerReflection",
        ] {
            assert!(
                SERVED_METHODS
                    .iter()
                    .any(|method| method.starts_with(&format!("/{service}/"))),
                "{service}"
            );
        }
    }

    #[test]
    fn reads_grpc_status_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_code(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        assert_eq!(grpc_code(&headers), Some(Code::NotFound));
        headers.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(grpc_code(&headers), None);
        assert_eq!(code_label(Code::NotFound), "NOT_FOUND");
    }
}
