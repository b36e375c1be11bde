//! `DomainError` → gRPC `Status`, in one table. Every status carries `google.rpc.ErrorInfo`
//! (domain `groups.v1`) with the stable reason the gateway maps on.

use std::collections::HashMap;
use std::time::Duration;

use groups_core::{DomainError, Reason};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// How long a caller should wait before retrying after `UNAVAILABLE`.
pub(crate) const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The message of every INTERNAL this service answers itself.
const SERVER_ERROR: &str = groups_core::SERVER_ERROR_DETAIL;

/// tonic answers a request whose message is missing or cut short with INTERNAL before any codec
/// of ours runs, and one over its 4 MiB decoding limit with OUT_OF_RANGE (no `ErrorInfo`);
/// SPEC.md says a request that cannot be decoded is INVALID_ARGUMENT. Every INTERNAL that is
/// not our own [`SERVER_ERROR`], and every OUT_OF_RANGE, is such an answer (the handler never
/// makes another), so it is rewritten, with the reason and field violation of any invalid
/// argument. Not RESOURCE_EXHAUSTED: clients read that as a quota worth retrying.
pub(crate) async fn undecodable_is_invalid_argument(
    response: axum::response::Response,
) -> axum::response::Response {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let description = match status.code() {
        Code::Internal if status.message() != SERVER_ERROR => {
            "missing or undecodable request message"
        }
        Code::OutOfRange => "request message larger than the server accepts (4 MiB)",
        _ => return response,
    };
    tracing::debug!(message = status.message(), "undecodable request");
    let error = DomainError::InvalidArgument(vec![groups_core::FieldViolation {
        field: "request",
        description,
    }]);
    let (parts, ()) = status_of(&error).into_http::<()>().into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::empty())
}

/// The status a caller sees for a domain error. Internal details are logged, never sent.
pub(crate) fn status_of(error: &DomainError) -> Status {
    let code = match error {
        DomainError::InvalidArgument(_) => Code::InvalidArgument,
        DomainError::InstanceNotFound
        | DomainError::GroupNotFound
        | DomainError::UserNotFound
        | DomainError::MembershipNotFound => Code::NotFound,
        DomainError::ApiKeyMissing | DomainError::ApiKeyInvalid => Code::Unauthenticated,
        DomainError::PermissionDenied => Code::PermissionDenied,
        DomainError::Unavailable(_) => Code::Unavailable,
        DomainError::DeadlineExceeded => Code::DeadlineExceeded,
        DomainError::Internal(_) => Code::Internal,
    };
    let Some(reason) = error.reason() else {
        let message = match error {
            DomainError::DeadlineExceeded => "Deadline exceeded.",
            _ => SERVER_ERROR,
        };
        return Status::new(code, message);
    };
    let mut details =
        ErrorDetails::with_error_info(reason.as_str(), Reason::DOMAIN, HashMap::new());
    let message = match error {
        DomainError::InvalidArgument(violations) => {
            for violation in violations {
                details.add_bad_request_violation(violation.field, violation.description);
            }
            error.to_string()
        }
        DomainError::Unavailable(_) => {
            details.set_retry_info(Some(RETRY_DELAY));
            reason.detail().to_owned()
        }
        _ => error.to_string(),
    };
    Status::with_error_details(code, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use groups_core::FieldViolation;

    #[test]
    fn every_reason_travels_in_error_info() {
        let errors = [
            (DomainError::InvalidArgument(vec![]), Code::InvalidArgument),
            (DomainError::InstanceNotFound, Code::NotFound),
            (DomainError::ApiKeyMissing, Code::Unauthenticated),
            (DomainError::ApiKeyInvalid, Code::Unauthenticated),
            (DomainError::PermissionDenied, Code::PermissionDenied),
            (DomainError::GroupNotFound, Code::NotFound),
            (DomainError::UserNotFound, Code::NotFound),
            (DomainError::MembershipNotFound, Code::NotFound),
            (
                DomainError::Unavailable("db down at 10.0.0.1".into()),
                Code::Unavailable,
            ),
        ];
        for (error, code) in errors {
            let status = status_of(&error);
            assert_eq!(status.code(), code);
            let info = status.get_details_error_info().expect("ErrorInfo");
            assert_eq!(
                Some(info.reason.as_str()),
                error.reason().map(Reason::as_str)
            );
            assert_eq!(info.domain, "groups.v1");
            assert!(!status.message().contains("10.0.0.1"));
        }
    }

    #[test]
    fn invalid_argument_lists_field_violations() {
        let error = DomainError::InvalidArgument(vec![FieldViolation {
            field: "group_id",
            description: "must be positive",
        }]);
        let bad = status_of(&error)
            .get_details_bad_request()
            .expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "group_id");
    }

    #[test]
    fn unavailable_carries_retry_info_and_internal_hides_details() {
        let status = status_of(&DomainError::Unavailable("x".into()));
        assert_eq!(
            status.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(RETRY_DELAY)
        );
        let status = status_of(&DomainError::Internal("secret stack".into()));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "A server error occurred.");
    }
}
