//! Every REST answer the gateway gives other than a success, and the one table from the
//! server's `ErrorInfo.reason` (or, lacking one, its gRPC code) and the route to HTTP status and
//! Syncano detail.

use std::borrow::Cow;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use groups_core::Reason;
use tonic::Code;
use tonic_types::StatusExt;

// SPEC.md's texts come from the domain, which the server's messages use too.
const INSTANCE_NOT_FOUND: &str = Reason::InstanceNotFound.detail();
const NO_PERMISSION: &str = Reason::PermissionDenied.detail();
const NO_SUCH_KEY: &str = Reason::ApiKeyInvalid.detail();
const GROUP_NOT_FOUND: &str = Reason::GroupNotFound.detail();
const USER_NOT_FOUND: &str = Reason::UserNotFound.detail();
/// Also SPEC's answer for unknown paths, ids that cannot be one and missing read objects.
const NOT_FOUND: &str = Reason::MembershipNotFound.detail();
const BAD_PAGE: &str = "Incorrect page parameter provided.";
const UNAVAILABLE: &str = Reason::DatabaseUnavailable.detail();
const TIMED_OUT: &str = "Request timed out.";
const SERVER_ERROR: &str = groups_core::SERVER_ERROR_DETAIL;

/// Set on a response that answers checks 2–4 (no such instance, no key, bad key): it counts
/// against the caller's address (`crate::shield`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthFailure;

/// A JSON `{"detail": ...}` answer with its status and optional headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    status: StatusCode,
    detail: Cow<'static, str>,
    /// Whole seconds for `Retry-After`.
    retry_after: Option<u64>,
    /// The `Allow` header (405 only).
    allow: Option<&'static str>,
    /// Answers checks 2–4.
    auth_failure: bool,
}

impl Answer {
    const fn fixed(status: StatusCode, detail: &'static str) -> Self {
        Self {
            status,
            detail: Cow::Borrowed(detail),
            retry_after: None,
            allow: None,
            auth_failure: false,
        }
    }

    /// A fixed answer counted as a failed authentication.
    const fn failed_authentication(status: StatusCode, detail: &'static str) -> Self {
        Self {
            status,
            detail: Cow::Borrowed(detail),
            retry_after: None,
            allow: None,
            auth_failure: true,
        }
    }

    /// 404 for a group id that cannot be one, or a group the server did not find.
    pub(crate) const fn group_not_found() -> Self {
        Self::fixed(StatusCode::NOT_FOUND, GROUP_NOT_FOUND)
    }

    /// 404 for a user id that cannot be one on the user side, or a user the server did not find
    /// there.
    pub(crate) const fn user_not_found() -> Self {
        Self::fixed(StatusCode::NOT_FOUND, USER_NOT_FOUND)
    }

    /// 400 for a listing's query value that cannot be one (a page size, a filter, a token).
    pub(crate) const fn bad_page() -> Self {
        Self::fixed(StatusCode::BAD_REQUEST, BAD_PAGE)
    }

    /// 404 for an unknown path, a member's second id that cannot be one, a missing membership,
    /// or an object a read did not find.
    pub(crate) const fn not_found() -> Self {
        Self::fixed(StatusCode::NOT_FOUND, NOT_FOUND)
    }

    /// 404 for an instance name that cannot be one, or an instance the server did not find.
    pub(crate) const fn instance_not_found() -> Self {
        Self::failed_authentication(StatusCode::NOT_FOUND, INSTANCE_NOT_FOUND)
    }

    /// 503: the server (or its database) cannot be reached; retry after `seconds`.
    pub(crate) fn unavailable(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::fixed(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
        }
    }

    /// 504: the server did not answer within the deadline.
    pub(crate) const fn timed_out() -> Self {
        Self::fixed(StatusCode::GATEWAY_TIMEOUT, TIMED_OUT)
    }

    /// 500 without internals; the cause is logged where it is known.
    pub(crate) const fn server_error() -> Self {
        Self::fixed(StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR)
    }

    /// 429 with DRF's wording; `seconds` is at least 1.
    pub(crate) fn throttled(seconds: u64) -> Self {
        let seconds = seconds.max(1);
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            detail: Cow::Owned(format!(
                "Request was throttled. Expected available in {seconds} seconds."
            )),
            retry_after: Some(seconds),
            allow: None,
            auth_failure: false,
        }
    }

    /// 405 naming the method, as DRF does, with the route's own `Allow`.
    pub(crate) fn method_not_allowed(method: &str, allow: &'static str) -> Self {
        // serde_json escapes quotes and control characters in an odd (extension) method name.
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            detail: Cow::Owned(format!("Method \"{method}\" not allowed.")),
            retry_after: None,
            allow: Some(allow),
            auth_failure: false,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "detail": self.detail })),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.auth_failure {
            response.extensions_mut().insert(AuthFailure);
        }
        response
    }
}

/// The REST operations, for the answers that differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `DELETE .../groups/{group_id}/users/{user_id}/`
    RemoveFromGroup,
    /// `DELETE .../users/{user_id}/groups/{group_id}/`
    RemoveFromUser,
    /// `GET .../users/{user_id}/`
    GetUser,
    /// `GET .../groups/{group_id}/`
    GetGroup,
    /// `GET .../audit/memberships/`
    ListEvents,
}

/// THE table: the server's reason to the REST answer of SPEC.md, for each operation.
///
/// `retry_delay` is the server's `RetryInfo`, used for `Retry-After` on 503.
pub(crate) fn for_reason(
    reason: Reason,
    operation: Operation,
    retry_delay: Option<Duration>,
) -> Answer {
    use Operation::{ListEvents, RemoveFromGroup, RemoveFromUser};
    match (reason, operation) {
        (Reason::InstanceNotFound, _) => Answer::instance_not_found(),
        (Reason::ApiKeyMissing, _) => {
            Answer::failed_authentication(StatusCode::FORBIDDEN, NO_PERMISSION)
        }
        (Reason::PermissionDenied, _) => Answer::fixed(StatusCode::FORBIDDEN, NO_PERMISSION),
        (Reason::ApiKeyInvalid, _) => {
            Answer::failed_authentication(StatusCode::FORBIDDEN, NO_SUCH_KEY)
        }
        (Reason::GroupNotFound, RemoveFromGroup) => Answer::group_not_found(),
        (Reason::UserNotFound, RemoveFromUser) => Answer::user_not_found(),
        // A read's missing object, and a missing membership.
        (Reason::GroupNotFound | Reason::UserNotFound | Reason::MembershipNotFound, _) => {
            Answer::not_found()
        }
        (Reason::DatabaseUnavailable, _) => Answer::unavailable(whole_seconds(retry_delay)),
        // A page token the server does not accept (the gateway checks every other value).
        (Reason::InvalidArgument, ListEvents) => Answer::bad_page(),
        // The gateway validates ids and names before calling, so this is a gateway bug.
        (Reason::InvalidArgument, _) => Answer::server_error(),
    }
}

/// The answer for a failed call. `deadline_passed` tells whether the gateway's own deadline
/// had run out when the status arrived: the tonic server answers CANCELLED when the
/// `grpc-timeout` it was sent expires, which is a timeout, not an outage.
pub(crate) fn for_status(
    status: &tonic::Status,
    operation: Operation,
    deadline_passed: bool,
) -> Answer {
    let details = status.get_error_details();
    let reason = details
        .error_info()
        .filter(|info| info.domain == Reason::DOMAIN)
        .and_then(|info| Reason::parse(&info.reason));
    if let Some(reason) = reason {
        let retry_delay = details.retry_info().and_then(|r| r.retry_delay);
        let answer = for_reason(reason, operation, retry_delay);
        if answer.status == StatusCode::INTERNAL_SERVER_ERROR {
            log_unexpected(status);
        }
        return answer;
    }
    // A status that carries a source error was made by our own client from a transport failure
    // (connection refused or reset, GOAWAY while the server shuts down): the server never sent
    // it, so whatever its code, the server is unavailable, not broken.
    let from_transport = std::error::Error::source(status).is_some();
    match status.code() {
        Code::DeadlineExceeded => Answer::timed_out(),
        Code::Cancelled if deadline_passed => Answer::timed_out(),
        _ if from_transport && deadline_passed => Answer::timed_out(),
        code if from_transport || matches!(code, Code::Unavailable | Code::Cancelled) => {
            // Transport-level: the server is down, restarting or shedding; worth a warning.
            tracing::warn!(
                code = ?status.code(),
                message = status.message(),
                "groups server unavailable"
            );
            Answer::unavailable(1)
        }
        _ => {
            log_unexpected(status);
            Answer::server_error()
        }
    }
}

fn log_unexpected(status: &tonic::Status) {
    tracing::error!(
        code = ?status.code(),
        message = status.message(),
        "unexpected answer from the groups server"
    );
}

/// A retry delay as whole seconds for `Retry-After`: rounded up, at least 1.
fn whole_seconds(delay: Option<Duration>) -> u64 {
    let Some(delay) = delay else { return 1 };
    let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(None), 1);
        assert_eq!(whole_seconds(Some(Duration::ZERO)), 1);
        assert_eq!(whole_seconds(Some(Duration::from_millis(1))), 1);
        assert_eq!(whole_seconds(Some(Duration::from_millis(1000))), 1);
        assert_eq!(whole_seconds(Some(Duration::from_millis(1001))), 2);
        assert_eq!(whole_seconds(Some(Duration::from_secs(7))), 7);
    }

    const OPERATIONS: [Operation; 5] = [
        Operation::RemoveFromGroup,
        Operation::RemoveFromUser,
        Operation::GetUser,
        Operation::GetGroup,
        Operation::ListEvents,
    ];

    #[test]
    fn every_reason_has_an_answer_on_every_route() {
        for reason in Reason::ALL {
            for operation in OPERATIONS {
                let answer = for_reason(reason, operation, None);
                assert!(answer.status.is_client_error() || answer.status.is_server_error());
            }
        }
        assert_eq!(
            for_reason(
                Reason::DatabaseUnavailable,
                Operation::GetUser,
                Some(Duration::from_millis(2500))
            )
            .retry_after,
            Some(3)
        );
    }

    #[test]
    fn each_route_answers_its_own_not_found() {
        use Operation::*;
        let detail = |reason, operation| for_reason(reason, operation, None).detail;
        assert_eq!(
            detail(Reason::GroupNotFound, RemoveFromGroup),
            GROUP_NOT_FOUND
        );
        assert_eq!(detail(Reason::GroupNotFound, GetGroup), NOT_FOUND);
        assert_eq!(detail(Reason::UserNotFound, RemoveFromUser), USER_NOT_FOUND);
        assert_eq!(detail(Reason::UserNotFound, GetUser), NOT_FOUND);
        assert_eq!(
            detail(Reason::MembershipNotFound, RemoveFromUser),
            NOT_FOUND
        );
        assert_eq!(detail(Reason::InvalidArgument, ListEvents), BAD_PAGE);
        assert_eq!(
            for_reason(Reason::InvalidArgument, GetUser, None).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn statuses_without_error_info_map_on_code() {
        let s =
            |code| for_status(&tonic::Status::new(code, "x"), Operation::GetGroup, false).status;
        assert_eq!(s(Code::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(s(Code::Cancelled), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(s(Code::DeadlineExceeded), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(s(Code::Internal), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(s(Code::NotFound), StatusCode::INTERNAL_SERVER_ERROR);
        let late = for_status(
            &tonic::Status::cancelled("Timeout expired"),
            Operation::RemoveFromGroup,
            true,
        );
        assert_eq!(late.status, StatusCode::GATEWAY_TIMEOUT);
    }
}
