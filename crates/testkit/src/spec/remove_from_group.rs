//! SPEC.md's table of `DELETE .../groups/{group_id}/users/{user_id}/` and of
//! `RemoveGroupMember` with parent GROUP: checks 1–8 in order, `allow_missing`, and the first
//! failing check answering when several fail.

use super::Operation::RemoveFromGroup;
use super::Row::{
    AuditedGroup, DeletedGroup, DemoGroup, FormerMember, Fresh, Loner, OtherGroup, OtherUser,
};
use super::{
    BAD_KEY, Case, DENIED, GROUP_NOT_FOUND, Grpc, INSTANCE_NOT_FOUND, Id, Key, NO_KEY,
    NO_SUCH_ID as NO_SUCH, NOT_A_MEMBER, REMOVED, Rest, shared,
};

fn c(name: &str) -> Case {
    Case::new(RemoveFromGroup, name)
}

/// The cases.
#[rustfmt::skip]
pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![
        // Check 8: removed; the parent may be left UNSPECIFIED.
        c("parent UNSPECIFIED is the group side").user(Fresh).parent(0).expect(REMOVED).grpc_only(),
        c("group id with leading zeros").group(Id::Padded(DemoGroup)).user(Id::Padded(Fresh)).expect(REMOVED).rest_only(),
        c("percent-encoded ids").group(Id::Encoded(DemoGroup)).user(Id::Encoded(Fresh)).expect(REMOVED).rest_only(),
        // Check 6: no such group in this instance; a deleted or foreign one answers the same.
        c("no such group").group(NO_SUCH).expect(GROUP_NOT_FOUND),
        c("the largest id").group(i64::MAX).expect(GROUP_NOT_FOUND),
        c("a deleted group, its membership row left behind").group(DeletedGroup).expect(GROUP_NOT_FOUND),
        c("another instance's group and member").group(OtherGroup).user(OtherUser).expect(GROUP_NOT_FOUND),
        c("no such group, with parent UNSPECIFIED").group(NO_SUCH).parent(0).expect(GROUP_NOT_FOUND).grpc_only(),
        // Check 7: not a member, whether or not the user exists.
        c("a user in no group").user(Loner).expect(NOT_A_MEMBER),
        c("no such user").user(NO_SUCH).expect(NOT_A_MEMBER),
        c("the largest user id").user(i64::MAX).expect(NOT_A_MEMBER),
        c("another instance's user").user(OtherUser).expect(NOT_A_MEMBER),
        c("a member removed before").group(AuditedGroup).user(FormerMember).expect(NOT_A_MEMBER),
        // AIP-135 `allow_missing` relaxes check 7 only.
        c("allow_missing, a user in no group").user(Loner).allow_missing().grpc(Grpc::Ok),
        c("allow_missing, no such user").user(NO_SUCH).allow_missing().grpc(Grpc::Ok),
        c("allow_missing, a member").user(Fresh).allow_missing().expect(REMOVED).grpc_only(),
        c("allow_missing, no such group").group(NO_SUCH).allow_missing().expect(GROUP_NOT_FOUND).grpc_only(),
        c("allow_missing, a read admin").key(Key::Read).allow_missing().expect(DENIED).grpc_only(),
        c("allow_missing, no key").no_key().allow_missing().expect(NO_KEY).grpc_only(),
        // An unknown parent is the caller's error.
        c("parent 3").parent(3).grpc(Grpc::Invalid(&["parent"])),
        c("parent -1").parent(-1).grpc(Grpc::Invalid(&["parent"])),
    ];
    cases.extend(malformed());
    cases.extend(first_failing_check());
    cases.extend(shared::cases(RemoveFromGroup, &[Key::Owner, Key::Full, Key::Write]));
    cases
}

/// Check 1: ids that cannot be one (REST: before anything else, the group's answer first;
/// gRPC: INVALID_ARGUMENT naming every bad field, before the instance is looked up).
#[rustfmt::skip]
fn malformed() -> Vec<Case> {
    let both = [("abc", "xyz"), ("0", "0"), ("-1", "1.5")];
    let mut cases = shared::malformed_ids(RemoveFromGroup, both, Rest::GROUP_NOT_FOUND);
    // 1 stands for the fixture's row. An empty instance segment is an unknown path on REST.
    let invalid: [(&str, i64, i64, &'static [&'static str], Rest); 9] = [
        ("demo", 0, 1, &["group_id"], Rest::GROUP_NOT_FOUND),
        ("demo", -1, 1, &["group_id"], Rest::GROUP_NOT_FOUND),
        ("demo", i64::MIN, 1, &["group_id"], Rest::GROUP_NOT_FOUND),
        ("demo", 1, 0, &["user_id"], Rest::NOT_FOUND),
        ("demo", 1, -7, &["user_id"], Rest::NOT_FOUND),
        ("", 1, 1, &["instance_name"], Rest::NOT_FOUND),
        ("demo", 0, 0, &["group_id", "user_id"], Rest::GROUP_NOT_FOUND),
        ("", 0, -1, &["instance_name", "group_id", "user_id"], Rest::NOT_FOUND),
        ("no-such-instance", -5, 1, &["group_id"], Rest::GROUP_NOT_FOUND),
    ];
    let name = |instance: &str, group, user, key| format!("ids {group}/{user} on {instance:?}, key: {key}");
    cases.extend(shared::invalid_ids(RemoveFromGroup, &invalid, true, name));
    cases
}

/// Several checks fail at once: the first answers.
#[rustfmt::skip]
fn first_failing_check() -> Vec<Case> {
    let garbage = Key::Text("garbage");
    vec![
        c("bad ids, no instance, no key").on("nope").group(0).user(-1).no_key()
            .grpc(Grpc::Invalid(&["group_id", "user_id"])).rest(Rest::GROUP_NOT_FOUND),
        c("bad group, no instance, no key").on("nope").group("x").no_key().rest(Rest::GROUP_NOT_FOUND),
        c("bad user, no instance, no key").on("nope").user("x").no_key().rest(Rest::NOT_FOUND),
        c("no instance, no key").on("nope").no_key().expect(INSTANCE_NOT_FOUND),
        c("no instance, malformed key, no group").on("nope").group(NO_SUCH).user(NO_SUCH).key(garbage).expect(INSTANCE_NOT_FOUND),
        c("invalid name, read admin").on("no such!").key(Key::Read).expect(INSTANCE_NOT_FOUND),
        c("invalid name no.such, read admin").on("no.such").key(Key::Read).expect(INSTANCE_NOT_FOUND),
        c("no key, no group, no user").group(NO_SUCH).user(NO_SUCH).no_key().expect(NO_KEY),
        c("malformed key, no group").group(NO_SUCH).key(garbage).expect(BAD_KEY),
        c("revoked key, deleted group").group(DeletedGroup).user(Loner).key(Key::Revoked).expect(BAD_KEY),
        c("unknown key, a member").key(Key::UnknownAccount).expect(BAD_KEY),
        c("read admin, no group").group(NO_SUCH).key(Key::Read).expect(DENIED),
        c("API key, deleted group, not a member").group(DeletedGroup).user(Loner).key(Key::ApiKeyIgnoreAcl).expect(DENIED),
        c("deleted group, not a member").group(DeletedGroup).user(Loner).expect(GROUP_NOT_FOUND),
        c("no group, no user").group(NO_SUCH).user(NO_SUCH).expect(GROUP_NOT_FOUND),
    ]
}
