//! SPEC.md's table of `GET .../users/{user_id}/` (`Directory/GetUser`) and
//! `GET .../groups/{group_id}/` (`Directory/GetGroup`): an id that cannot be one is "Not found"
//! before anything else; who may read which; a missing object is "Not found" (a deleted or
//! foreign one too); the objects, exactly, with links under the request's prefix.

use super::Operation::{self, GetUser};
use super::Row::{
    AuditedGroup, DeletedGroup, DemoGroup, DemoUser, FormerMember, Loner, OtherGroup, OtherUser,
    SecondGroup,
};
use super::{
    BAD_KEY, Case, DENIED, FOUND, Grpc, INSTANCE_NOT_FOUND, Id, Key, MALFORMED_IDS, NO_KEY,
    NO_SUCH_GROUP, NO_SUCH_ID as NO_SUCH, NO_SUCH_USER, Rest, shared,
};

/// The cases of `GET user` / `GetUser` or `GET group` / `GetGroup`: the operation's own rows,
/// then check 1, the gRPC argument errors, check 6 and the order of checks, then checks 2–5.
#[rustfmt::skip]
pub(super) fn cases(operation: Operation) -> Vec<Case> {
    let r = |name: &str, id: Id| {
        let case = Case::new(operation, name);
        if operation == GetUser { case.user(id) } else { case.group(id) }
    };
    let (mut cases, missing, readers): (_, _, &[Key]) = match operation {
        GetUser => (vec![
            r("a user in three groups, the deleted one left out", DemoUser.into()).expect(FOUND),
            r("a user in no group", Loner.into()).expect(FOUND),
            r("a user removed from their group", FormerMember.into()).expect(FOUND),
            r("another instance's user", OtherUser.into()).expect(NO_SUCH_USER),
            // Who may read a user is checked before whether the user exists.
            r("API key without ignore_acl, no such user", NO_SUCH.into()).key(Key::ApiKey).expect(DENIED),
            r("read admin, no such user", NO_SUCH.into()).key(Key::Read).expect(NO_SUCH_USER),
            r("API key with ignore_acl, no such user", NO_SUCH.into()).key(Key::ApiKeyIgnoreAcl).expect(NO_SUCH_USER),
        ], NO_SUCH_USER, &[Key::Owner, Key::Full, Key::Write, Key::Read, Key::ApiKeyIgnoreAcl]),
        _ => (vec![
            r("a group", DemoGroup.into()).expect(FOUND),
            r("a group with a name and a description", SecondGroup.into()).expect(FOUND),
            r("a group with no members left", AuditedGroup.into()).expect(FOUND),
            r("a deleted group", DeletedGroup.into()).expect(NO_SUCH_GROUP),
            r("another instance's group", OtherGroup.into()).expect(NO_SUCH_GROUP),
            r("admin with no role, deleted group", DeletedGroup.into()).key(Key::NoRole).expect(DENIED),
            r("API key, deleted group", DeletedGroup.into()).key(Key::ApiKey).expect(NO_SUCH_GROUP),
            r("API key, a group with a name", SecondGroup.into()).key(Key::ApiKey).expect(FOUND),
        ], NO_SUCH_GROUP, &[Key::Owner, Key::Full, Key::Write, Key::Read, Key::ApiKey, Key::ApiKeyIgnoreAcl]),
    };
    let (fixture, field, with_name): (_, &'static [&'static str], &'static [&'static str]) = match operation {
        GetUser => (DemoUser, &["user_id"], &["instance_name", "user_id"]),
        _ => (DemoGroup, &["group_id"], &["instance_name", "group_id"]),
    };
    for id in MALFORMED_IDS {
        cases.push(r(&format!("id {id:?}"), id.into()).rest(Rest::NOT_FOUND));
        cases.push(r(&format!("id {id:?}, on nope, no key"), id.into()).on("nope").no_key().rest(Rest::NOT_FOUND));
    }
    cases.extend([
        r("id with leading zeros", Id::Padded(fixture)).expect(FOUND).rest_only(),
        r("percent-encoded id", Id::Encoded(fixture)).expect(FOUND).rest_only(),
        // An id <= 0 or an empty name: gRPC's argument errors; REST's malformed id or unknown path.
        r("id 0", 0.into()).grpc(Grpc::Invalid(field)).rest(Rest::NOT_FOUND),
        r("id -1", (-1).into()).grpc(Grpc::Invalid(field)).rest(Rest::NOT_FOUND),
        r("id i64::MIN", i64::MIN.into()).grpc(Grpc::Invalid(field)).rest(Rest::NOT_FOUND),
        r("id 0, on nope, no key", 0.into()).on("nope").no_key().grpc(Grpc::Invalid(field)).rest(Rest::NOT_FOUND),
        r("empty instance name", fixture.into()).on("").grpc(Grpc::Invalid(&["instance_name"])).rest(Rest::NOT_FOUND),
        r("empty instance name, id 0", 0.into()).on("").grpc(Grpc::Invalid(with_name)).rest(Rest::NOT_FOUND),
        // Check 6.
        r("no such id", NO_SUCH.into()).expect(missing),
        r("the largest id", i64::MAX.into()).expect(missing),
        // Several checks fail at once: the first answers.
        r("no instance, no key, no such id", NO_SUCH.into()).on("nope").no_key().expect(INSTANCE_NOT_FOUND),
        r("no key, no such id", NO_SUCH.into()).no_key().expect(NO_KEY),
        r("unknown key, no such id", NO_SUCH.into()).key(Key::UnknownApi).expect(BAD_KEY),
        r("admin with no role, no such id", NO_SUCH.into()).key(Key::NoRole).expect(DENIED),
    ]);
    cases.extend(shared::cases(operation, readers));
    cases
}
