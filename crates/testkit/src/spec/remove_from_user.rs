//! SPEC.md's table of `DELETE .../users/{user_id}/groups/{group_id}/` and of
//! `RemoveGroupMember` with parent USER: the user is the parent, so check 1 answers for the
//! user first, check 6 is "no such user", and a missing or deleted group only means the user
//! is not a member of it.

use super::Operation::RemoveFromUser;
use super::Row::{
    AuditedGroup, DeletedGroup, DemoGroup, FormerMember, Fresh, Loner, OtherGroup, OtherUser,
};
use super::{
    BAD_KEY, Case, DENIED, Grpc, INSTANCE_NOT_FOUND, Id, Key, NO_KEY, NO_SUCH_ID as NO_SUCH,
    NOT_A_MEMBER, REMOVED, Rest, USER_NOT_FOUND, shared,
};

fn c(name: &str) -> Case {
    Case::new(RemoveFromUser, name)
}

/// The cases.
#[rustfmt::skip]
pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![
        // Check 8.
        c("user id with leading zeros").user(Id::Padded(Fresh)).group(Id::Padded(DemoGroup)).expect(REMOVED).rest_only(),
        c("percent-encoded ids").user(Id::Encoded(Fresh)).group(Id::Encoded(DemoGroup)).expect(REMOVED).rest_only(),
        // Check 6: no such user in this instance; a foreign one answers the same.
        c("no such user").user(NO_SUCH).expect(USER_NOT_FOUND),
        c("the largest user id").user(i64::MAX).expect(USER_NOT_FOUND),
        c("another instance's user").user(OtherUser).expect(USER_NOT_FOUND),
        c("another instance's user and group").user(OtherUser).group(OtherGroup).expect(USER_NOT_FOUND),
        // Check 7: not a member, the group missing, deleted or foreign included.
        c("a user in no group").user(Loner).expect(NOT_A_MEMBER),
        c("no such group").group(NO_SUCH).expect(NOT_A_MEMBER),
        c("the largest group id").group(i64::MAX).expect(NOT_A_MEMBER),
        c("a deleted group, its membership row left behind").group(DeletedGroup).expect(NOT_A_MEMBER),
        c("another instance's group").group(OtherGroup).expect(NOT_A_MEMBER),
        c("a member removed before").user(FormerMember).group(AuditedGroup).expect(NOT_A_MEMBER),
        // `allow_missing` relaxes check 7 only: here a missing group is "not a member".
        c("allow_missing, a user in no group").user(Loner).allow_missing().grpc(Grpc::Ok),
        c("allow_missing, no such group").group(NO_SUCH).allow_missing().grpc(Grpc::Ok),
        c("allow_missing, a member").user(Fresh).allow_missing().expect(REMOVED).grpc_only(),
        c("allow_missing, no such user").user(NO_SUCH).allow_missing().expect(USER_NOT_FOUND).grpc_only(),
        c("allow_missing, an API key").key(Key::ApiKeyIgnoreAcl).allow_missing().expect(DENIED).grpc_only(),
        c("parent 7").parent(7).grpc(Grpc::Invalid(&["parent"])),
    ];
    cases.extend(malformed());
    cases.extend(first_failing_check());
    cases.extend(shared::cases(RemoveFromUser, &[Key::Owner, Key::Full, Key::Write]));
    cases
}

/// Check 1: the user's answer first ("User was not found."), then the group's ("Not found").
#[rustfmt::skip]
fn malformed() -> Vec<Case> {
    let both = [("abc", "xyz"), ("0", "0"), ("1.5", "-1")];
    let mut cases = shared::malformed_ids(RemoveFromUser, both, Rest::USER_NOT_FOUND);
    // 1 stands for the fixture's row. An empty instance segment is an unknown path on REST.
    let invalid: [(&str, i64, i64, &'static [&'static str], Rest); 7] = [
        ("demo", 0, 1, &["user_id"], Rest::USER_NOT_FOUND),
        ("demo", -1, 1, &["user_id"], Rest::USER_NOT_FOUND),
        ("demo", i64::MIN, 1, &["user_id"], Rest::USER_NOT_FOUND),
        ("demo", 1, 0, &["group_id"], Rest::NOT_FOUND),
        ("", 1, 1, &["instance_name"], Rest::NOT_FOUND),
        ("demo", 0, 0, &["group_id", "user_id"], Rest::USER_NOT_FOUND),
        ("nope", -3, 1, &["user_id"], Rest::USER_NOT_FOUND),
    ];
    let name = |instance: &str, user, group, _| format!("ids user {user}, group {group} on {instance:?}");
    cases.extend(shared::invalid_ids(RemoveFromUser, &invalid, false, name));
    cases
}

/// Several checks fail at once: the first answers.
#[rustfmt::skip]
fn first_failing_check() -> Vec<Case> {
    vec![
        c("bad ids, no instance, no key").on("nope").user(-1).group(0).no_key()
            .grpc(Grpc::Invalid(&["group_id", "user_id"])).rest(Rest::USER_NOT_FOUND),
        c("bad group, no instance, no key").on("nope").group("x").no_key().rest(Rest::NOT_FOUND),
        c("no instance, no key").on("nope").no_key().expect(INSTANCE_NOT_FOUND),
        c("invalid name, malformed key, no user").on("no.such").user(NO_SUCH).key(Key::Text("garbage")).expect(INSTANCE_NOT_FOUND),
        c("no key, no user, no group").user(NO_SUCH).group(NO_SUCH).no_key().expect(NO_KEY),
        c("revoked key, no user").user(NO_SUCH).key(Key::Revoked).expect(BAD_KEY),
        c("read admin, no user").user(NO_SUCH).key(Key::Read).expect(DENIED),
        c("API key, no user, deleted group").user(NO_SUCH).group(DeletedGroup).key(Key::ApiKey).expect(DENIED),
        c("no user, no group").user(NO_SUCH).group(NO_SUCH).expect(USER_NOT_FOUND),
        c("no user, deleted group").user(NO_SUCH).group(DeletedGroup).expect(USER_NOT_FOUND),
        c("not a member, deleted group").user(Loner).group(DeletedGroup).expect(NOT_A_MEMBER),
    ]
}
