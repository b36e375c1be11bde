//! The one error type of the domain, and the stable reasons both edges agree on.
//!
//! The gRPC server turns a [`DomainError`] into a `Status` carrying its [`Reason`] in
//! `google.rpc.ErrorInfo`; the gateway reads the reason back and answers REST. Neither edge
//! ever matches on message text.

/// What a caller is told of a failure of the service's own (a bug), by either edge: never any
/// internals.
pub const SERVER_ERROR_DETAIL: &str = "A server error occurred.";

/// Result of a domain operation.
pub type Result<T, E = DomainError> = std::result::Result<T, E>;

/// One field of a request that is not acceptable, for `google.rpc.BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field, as named in the proto.
    pub field: &'static str,
    /// What is wrong with it.
    pub description: &'static str,
}

/// Everything an operation can end with other than success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The request itself is malformed (ids not positive, empty instance name, a bad page
    /// size or token).
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The instance name is invalid, or no such instance exists.
    #[error("{}", Reason::InstanceNotFound.detail())]
    InstanceNotFound,
    /// No key was presented.
    #[error("{}", Reason::ApiKeyMissing.detail())]
    ApiKeyMissing,
    /// The key is unknown, revoked, malformed, another instance's, or an inactive admin's.
    #[error("{}", Reason::ApiKeyInvalid.detail())]
    ApiKeyInvalid,
    /// The principal does not hold the operation's permission.
    #[error("{}", Reason::PermissionDenied.detail())]
    PermissionDenied,
    /// No such group in this instance (or it was deleted).
    #[error("{}", Reason::GroupNotFound.detail())]
    GroupNotFound,
    /// No such user in this instance.
    #[error("{}", Reason::UserNotFound.detail())]
    UserNotFound,
    /// The user is not a member of the group (whether or not the user exists).
    #[error("{}", Reason::MembershipNotFound.detail())]
    MembershipNotFound,
    /// The database cannot be reached, or no pooled connection came free in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The caller's deadline passed before the work could start; nobody waits for an answer.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// A bug or an unexpected database answer. The text is for logs, never for callers.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The stable `ErrorInfo.reason` of each failure, shared by the server and the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// See [`DomainError::InvalidArgument`].
    InvalidArgument,
    /// See [`DomainError::InstanceNotFound`].
    InstanceNotFound,
    /// See [`DomainError::ApiKeyMissing`].
    ApiKeyMissing,
    /// See [`DomainError::ApiKeyInvalid`].
    ApiKeyInvalid,
    /// See [`DomainError::PermissionDenied`].
    PermissionDenied,
    /// See [`DomainError::GroupNotFound`].
    GroupNotFound,
    /// See [`DomainError::UserNotFound`].
    UserNotFound,
    /// See [`DomainError::MembershipNotFound`].
    MembershipNotFound,
    /// See [`DomainError::Unavailable`].
    DatabaseUnavailable,
}

impl Reason {
    /// The `ErrorInfo.domain` of every error this service returns.
    pub const DOMAIN: &'static str = "groups.v1";

    /// Every reason, for tables and tests.
    pub const ALL: [Reason; 9] = [
        Reason::InvalidArgument,
        Reason::InstanceNotFound,
        Reason::ApiKeyMissing,
        Reason::ApiKeyInvalid,
        Reason::PermissionDenied,
        Reason::GroupNotFound,
        Reason::UserNotFound,
        Reason::MembershipNotFound,
        Reason::DatabaseUnavailable,
    ];

    /// The wire spelling (`UPPER_SNAKE_CASE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::InstanceNotFound => "INSTANCE_NOT_FOUND",
            Reason::ApiKeyMissing => "API_KEY_MISSING",
            Reason::ApiKeyInvalid => "API_KEY_INVALID",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::GroupNotFound => "GROUP_NOT_FOUND",
            Reason::UserNotFound => "USER_NOT_FOUND",
            Reason::MembershipNotFound => "MEMBERSHIP_NOT_FOUND",
            Reason::DatabaseUnavailable => "DATABASE_UNAVAILABLE",
        }
    }

    /// What a caller is told, word for word as SPEC.md (and Syncano) has it: the REST `detail`
    /// and the gRPC status message. The one place these texts live.
    pub const fn detail(self) -> &'static str {
        match self {
            Reason::InvalidArgument => "Invalid request.",
            Reason::InstanceNotFound => "Instance was not found.",
            Reason::ApiKeyMissing | Reason::PermissionDenied => {
                "You do not have permission to perform this action."
            }
            Reason::ApiKeyInvalid => "No such API Key.",
            Reason::GroupNotFound => "Group was not found.",
            Reason::UserNotFound => "User was not found.",
            Reason::MembershipNotFound => "Not found",
            Reason::DatabaseUnavailable => "Service temporarily unavailable, try again later.",
        }
    }

    /// Reads a wire spelling back.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl DomainError {
    /// The stable reason; `None` for a passed deadline (the code says it all) and for internal
    /// errors, which have no contract.
    pub fn reason(&self) -> Option<Reason> {
        Some(match self {
            DomainError::InvalidArgument(_) => Reason::InvalidArgument,
            DomainError::InstanceNotFound => Reason::InstanceNotFound,
            DomainError::ApiKeyMissing => Reason::ApiKeyMissing,
            DomainError::ApiKeyInvalid => Reason::ApiKeyInvalid,
            DomainError::PermissionDenied => Reason::PermissionDenied,
            DomainError::GroupNotFound => Reason::GroupNotFound,
            DomainError::UserNotFound => Reason::UserNotFound,
            DomainError::MembershipNotFound => Reason::MembershipNotFound,
            DomainError::Unavailable(_) => Reason::DatabaseUnavailable,
            DomainError::DeadlineExceeded | DomainError::Internal(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("instance_not_found"), None);
    }
}
