//! The rows every operation shares, written once: checks 2–5 (instance, no key, bad key, who
//! may), tenant isolation, and the spellings of one successful call (case-insensitive names,
//! key sources, both API versions, no trailing slash).

use super::Credential::{Authorization, Empty, Header, Nothing, Query};
use super::{
    BAD_KEY, Case, DENIED, FOUND, Grpc, INSTANCE_NOT_FOUND, Id, Key, MALFORMED_IDS, NO_KEY,
    NO_SUCH_ID, Operation, REMOVED, Rest, Row, TOO_LONG_NAME,
};

/// The case succeeding: a removal of a fresh membership, or the object read.
pub(super) fn success(case: Case) -> Case {
    if case.operation.is_removal() {
        case.user(Row::Fresh).expect(REMOVED)
    } else {
        case.expect(FOUND)
    }
}

/// Every row these generators make for `operation`, whose principals `allowed` succeed.
pub(super) fn cases(operation: Operation, allowed: &[Key]) -> Vec<Case> {
    [
        instances(operation),
        keys(operation),
        who_may(operation, allowed),
        isolation(operation),
        spellings(operation),
    ]
    .concat()
}

/// A removal's check 1 on REST: each malformed path id alone, the parent's (`parent_answer`)
/// and the other's ("Not found"), then both, parent first, with and without instance and key.
pub(super) fn malformed_ids(
    operation: Operation,
    both: [(&'static str, &'static str); 3],
    parent_answer: Rest,
) -> Vec<Case> {
    let (parent, other) = match operation {
        Operation::RemoveFromUser => ("user", "group"),
        _ => ("group", "user"),
    };
    let mut cases = Vec::new();
    for id in MALFORMED_IDS {
        let case = |side| Case::new(operation, format!("{side} {id:?}"));
        cases.push(case(parent).ids(Some(id.into()), None).rest(parent_answer));
        cases.push(case(other).ids(None, Some(id.into())).rest(Rest::NOT_FOUND));
    }
    for (parent_id, other_id) in both {
        let name = format!("{parent} {parent_id:?} and {other} {other_id:?}");
        let case = |name| {
            let case = Case::new(operation, name);
            case.ids(Some(parent_id.into()), Some(other_id.into()))
                .rest(parent_answer)
        };
        cases.push(case(name.clone()));
        cases.push(case(format!("{name}, on nope, no key")).on("nope").no_key());
    }
    cases
}

/// A removal's gRPC check 1, and REST's answer to the same request: `(instance, parent id, other
/// id, the fields named, REST's answer)`, 1 standing for the fixture's row; each row sent with
/// the owner's key and, when `keyless`, without one too.
pub(super) fn invalid_ids(
    operation: Operation,
    rows: &[(&'static str, i64, i64, &'static [&'static str], Rest)],
    keyless: bool,
    name: impl Fn(&str, i64, i64, bool) -> String,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for &(instance, parent, other, fields, rest) in rows {
        let keys: &[bool] = if keyless { &[true, false] } else { &[true] };
        for &with_key in keys {
            let id = |id: i64| (id != 1).then_some(Id::Number(id));
            let case = Case::new(operation, name(instance, parent, other, with_key));
            let case = case.on(instance).ids(id(parent), id(other));
            let case = if with_key { case } else { case.no_key() };
            cases.push(case.grpc(Grpc::Invalid(fields)).rest(rest));
        }
    }
    cases
}

/// Check 2: names that are not an instance name, or name none; with and without a key.
fn instances(operation: Operation) -> Vec<Case> {
    let texts = [
        "nope",
        "no.such",
        "no such!",
        "demo.",
        " demo",
        "dëmo",
        "demo/../demo",
        TOO_LONG_NAME,
    ];
    let mut cases = Vec::new();
    for credential in [Header(Key::Owner), Nothing] {
        let c = |name: &str| Case::new(operation, format!("instance {name:?}, {credential:?}"));
        for name in texts {
            let case = c(name).on(name).send(credential);
            cases.push(case.expect(INSTANCE_NOT_FOUND));
        }
        for segment in ["no%20such", "%C3%A4", "demo%00", "%FF"] {
            let case = c(segment).on_raw(segment).send(credential);
            cases.push(case.rest(Rest::INSTANCE_NOT_FOUND));
        }
    }
    cases
}

/// Checks 3 and 4: no key (or nothing that counts as one), and keys unknown, revoked,
/// malformed, of another instance, or of an inactive admin.
#[rustfmt::skip]
fn keys(operation: Operation) -> Vec<Case> {
    let c = |name: &str| Case::new(operation, name);
    let mut cases = vec![
        c("no key").no_key().expect(NO_KEY),
        c("empty key values").send(Empty).expect(NO_KEY),
        // Authorization must be exactly two words.
        c("authorization of one word").send(Authorization("{key}", Key::Owner)).expect(NO_KEY),
        c("authorization of three words").send(Authorization("Token {key} extra", Key::Owner)).expect(NO_KEY),
        c("bad key in authorization").send(Authorization("Bearer {key}", Key::UnknownAccount)).expect(BAD_KEY),
        // An inactive owner's key no longer works on their own instance.
        c("an inactive owner's key").on("dormant").group(Row::DormantGroup).user(Row::DormantUser)
            .key(Key::DormantOwner).expect(BAD_KEY),
    ];
    for key in [
        Key::UnknownAccount, Key::UnknownApi, Key::Revoked, Key::RevokedIgnoreAcl,
        Key::OwnerTruncated, Key::OwnerExtended, Key::OwnerUpperCase, Key::OwnerNotHex,
        Key::Text("let me in"), Key::OtherApiKey,
        Key::InactiveWrite, Key::InactiveFull, Key::InactiveRead,
    ] {
        cases.push(c(&format!("bad key: {key:?}")).key(key).expect(BAD_KEY));
    }
    cases
}

/// Check 5: every kind of principal, allowed or denied.
fn who_may(operation: Operation, allowed: &[Key]) -> Vec<Case> {
    let principals = [
        Key::Owner,
        Key::Full,
        Key::Write,
        Key::Read,
        Key::NoRole,
        Key::RoleElsewhere,
        Key::OtherOwner,
        Key::ApiKey,
        Key::ApiKeyIgnoreAcl,
    ];
    let principal = |key: Key| {
        let case = Case::new(operation, format!("principal: {key:?}")).key(key);
        if allowed.contains(&key) {
            success(case)
        } else {
            case.expect(DENIED)
        }
    };
    principals.into_iter().map(principal).collect()
}

/// A key of one instance on another: the same answer whether the other's rows exist or not.
fn isolation(operation: Operation) -> Vec<Case> {
    // 0: other's row. A read names one id, so two pairs say it all.
    let rows: &[(i64, i64)] = if operation.is_removal() {
        &[
            (0, 0),
            (0, NO_SUCH_ID),
            (NO_SUCH_ID, 0),
            (NO_SUCH_ID, NO_SUCH_ID),
        ]
    } else {
        &[(0, 0), (NO_SUCH_ID, NO_SUCH_ID)]
    };
    let mut cases = Vec::new();
    for (key, expect) in [(Key::ApiKeyIgnoreAcl, BAD_KEY), (Key::Owner, DENIED)] {
        for &(group, user) in rows {
            let name = format!("on other with demo's {key:?}, ids {group}/{user}");
            let case = Case::new(operation, name).on("other").key(key);
            let case = match group {
                0 => case.group(Row::OtherGroup),
                id => case.group(id),
            };
            let case = match user {
                0 => case.user(Row::OtherUser),
                id => case.user(id),
            };
            cases.push(case.expect(expect));
        }
    }
    cases
}

/// One successful call, spelled every way the contract allows.
#[rustfmt::skip]
fn spellings(operation: Operation) -> Vec<Case> {
    let c = |name: &str| success(Case::new(operation, name));
    vec![
        c("instance DEMO").on("DEMO"),
        c("instance Demo").on("Demo"),
        c("instance dEmO").on("dEmO"),
        c("instance de%6Do").on_raw("de%6Do").rest_only(),
        c("under /v1/").v1().rest_only(),
        c("no trailing slash").no_slash().rest_only(),
        c("under /v1, no trailing slash").v1().no_slash().rest_only(),
        c("Authorization: Token").send(Authorization("Token {key}", Key::Owner)),
        c("Authorization: Bearer").send(Authorization("Bearer {key}", Key::Owner)),
        c("Authorization: ApiKey").send(Authorization("ApiKey {key}", Key::Owner)),
        c("?api_key=").send(Query("api_key", Key::Owner)).rest_only(),
        c("?apikey=").send(Query("apikey", Key::Owner)).rest_only(),
    ]
}
