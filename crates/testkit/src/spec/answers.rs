//! What a case must get on each edge: the gRPC and REST answers, SPEC.md's rows as pairs of
//! them, and whether the case removes its membership.

use tonic::Code::{self, NotFound, PermissionDenied, Unauthenticated};

/// What a gRPC caller must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grpc {
    /// OK (a removal's `Empty`).
    Ok,
    /// OK with the object the case reads: the user, the group, or the page of events of its
    /// filters (with no next page token).
    Found,
    /// This code, with `ErrorInfo { reason, domain: "groups.v1" }` and nothing else.
    Error(Code, &'static str),
    /// INVALID_ARGUMENT with `BadRequest` naming exactly these fields.
    Invalid(&'static [&'static str]),
}

/// What a REST client must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// 204 with an empty body.
    NoContent,
    /// 200 with the exact object the case reads (links under the request's prefix).
    Found,
    /// This status with exactly `{"detail":"<text>"}`.
    Detail(u16, &'static str),
}

/// SPEC.md's REST answers, word for word.
impl Rest {
    pub const INSTANCE_NOT_FOUND: Rest = Rest::Detail(404, "Instance was not found.");
    pub const NO_PERMISSION: Rest =
        Rest::Detail(403, "You do not have permission to perform this action.");
    pub const NO_SUCH_KEY: Rest = Rest::Detail(403, "No such API Key.");
    pub const GROUP_NOT_FOUND: Rest = Rest::Detail(404, "Group was not found.");
    pub const USER_NOT_FOUND: Rest = Rest::Detail(404, "User was not found.");
    pub const NOT_FOUND: Rest = Rest::Detail(404, "Not found");
    pub const BAD_PAGE: Rest = Rest::Detail(400, "Incorrect page parameter provided.");
}

/// What a case must get on each edge it runs on, and whether it removes its membership.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expect {
    /// The gRPC answer; `None`: the case is not sent over gRPC.
    pub grpc: Option<Grpc>,
    /// The REST answer; `None`: the case is not sent over REST.
    pub rest: Option<Rest>,
    /// The case's membership must be gone afterwards, with one event and nothing else changed.
    pub removes: bool,
}

const fn both(grpc: Grpc, rest: Rest) -> Expect {
    Expect {
        grpc: Some(grpc),
        rest: Some(rest),
        removes: false,
    }
}

const fn error(code: Code, reason: &'static str, rest: Rest) -> Expect {
    both(Grpc::Error(code, reason), rest)
}

/// Check 8 of the removals: OK / 204, the membership gone.
pub const REMOVED: Expect = Expect {
    removes: true,
    ..both(Grpc::Ok, Rest::NoContent)
};
/// The reads' and the listing's success: the object / page.
pub const FOUND: Expect = both(Grpc::Found, Rest::Found);
/// Check 2.
pub const INSTANCE_NOT_FOUND: Expect =
    error(NotFound, "INSTANCE_NOT_FOUND", Rest::INSTANCE_NOT_FOUND);
/// Check 3.
pub const NO_KEY: Expect = error(Unauthenticated, "API_KEY_MISSING", Rest::NO_PERMISSION);
/// Check 4.
pub const BAD_KEY: Expect = error(Unauthenticated, "API_KEY_INVALID", Rest::NO_SUCH_KEY);
/// Check 5.
pub const DENIED: Expect = error(PermissionDenied, "PERMISSION_DENIED", Rest::NO_PERMISSION);
/// The group-side removal's check 6.
pub const GROUP_NOT_FOUND: Expect = error(NotFound, "GROUP_NOT_FOUND", Rest::GROUP_NOT_FOUND);
/// The user-side removal's check 6.
pub const USER_NOT_FOUND: Expect = error(NotFound, "USER_NOT_FOUND", Rest::USER_NOT_FOUND);
/// The removals' check 7.
pub const NOT_A_MEMBER: Expect = error(NotFound, "MEMBERSHIP_NOT_FOUND", Rest::NOT_FOUND);
/// GET user's check 6.
pub const NO_SUCH_USER: Expect = error(NotFound, "USER_NOT_FOUND", Rest::NOT_FOUND);
/// GET group's check 6.
pub const NO_SUCH_GROUP: Expect = error(NotFound, "GROUP_NOT_FOUND", Rest::NOT_FOUND);
