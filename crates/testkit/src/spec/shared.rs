//! The rows every operation shares, written once: checks 2–5 (instance, no key, bad key, who
//! may), tenant isolation, and the spellings of one successful call (case-insensitive names,
//! key sources, both API versions, no trailing slash).

use super::{
    BAD_KEY, Case, Credential, DENIED, FOUND, INSTANCE_NOT_FOUND, Key, NO_KEY, NO_SUCH_ID,
    Operation, REMOVED, Rest, Row, TOO_LONG_NAME,
};

/// The case succeeding: a removal of a fresh membership, or the object read.
pub(super) fn success(case: Case) -> Case {
    if case.operation.is_removal() {
        case.user(Row::Fresh).expect(REMOVED)
    } else {
        case.expect(FOUND)
    }
}

/// Every row these generators make for `operation`.
pub(super) fn cases(operation: Operation, allowed: &[Key]) -> Vec<Case> {
    [
        instances(operation),
        missing_keys(operation),
        bad_keys(operation),
        who_may(operation, allowed),
        isolation(operation),
        spellings(operation),
    ]
    .concat()
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
    let raw = ["no%20such", "%C3%A4", "demo%00", "%FF"];
    let mut cases = Vec::new();
    for credential in [Credential::Header(Key::Owner), Credential::Nothing] {
        let base = |name: &str| Case::new(operation, format!("instance {name:?}, {credential:?}"));
        for name in texts {
            cases.push(
                base(name)
                    .on(name)
                    .send(credential)
                    .expect(INSTANCE_NOT_FOUND),
            );
        }
        for segment in raw {
            cases.push(
                base(segment)
                    .on_raw(segment)
                    .send(credential)
                    .rest(Rest::INSTANCE_NOT_FOUND),
            );
        }
    }
    cases
}

/// Check 3: no key, or nothing that counts as one.
fn missing_keys(operation: Operation) -> Vec<Case> {
    let c = |name: &str| Case::new(operation, name);
    vec![
        c("no key").no_key().expect(NO_KEY),
        c("empty key values").send(Credential::Empty).expect(NO_KEY),
        // Authorization must be exactly two words.
        c("authorization of one word")
            .send(Credential::Authorization("{key}", Key::Owner))
            .expect(NO_KEY),
        c("authorization of three words")
            .send(Credential::Authorization("Token {key} extra", Key::Owner))
            .expect(NO_KEY),
    ]
}

/// Check 4: keys unknown, revoked, malformed, of another instance, or of an inactive admin.
fn bad_keys(operation: Operation) -> Vec<Case> {
    let keys = [
        Key::UnknownAccount,
        Key::UnknownApi,
        Key::Revoked,
        Key::RevokedIgnoreAcl,
        Key::OwnerTruncated,
        Key::OwnerExtended,
        Key::OwnerUpperCase,
        Key::OwnerNotHex,
        Key::Text("let me in"),
        Key::OtherApiKey,
        Key::InactiveWrite,
        Key::InactiveFull,
        Key::InactiveRead,
    ];
    let c = |name: String| Case::new(operation, name);
    let mut cases: Vec<Case> = keys
        .into_iter()
        .map(|key| c(format!("bad key: {key:?}")).key(key).expect(BAD_KEY))
        .collect();
    cases.push(
        c("bad key in authorization".into())
            .send(Credential::Authorization(
                "Bearer {key}",
                Key::UnknownAccount,
            ))
            .expect(BAD_KEY),
    );
    // An inactive owner's key no longer works on their own instance.
    cases.push(
        c("an inactive owner's key".into())
            .on("dormant")
            .group(Row::DormantGroup)
            .user(Row::DormantUser)
            .key(Key::DormantOwner)
            .expect(BAD_KEY),
    );
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
    principals
        .into_iter()
        .map(|key| {
            let case = Case::new(operation, format!("principal: {key:?}")).key(key);
            if allowed.contains(&key) {
                success(case)
            } else {
                case.expect(DENIED)
            }
        })
        .collect()
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
fn spellings(operation: Operation) -> Vec<Case> {
    let c = |name: &str| success(Case::new(operation, name));
    let mut cases = vec![
        c("instance DEMO").on("DEMO"),
        c("instance Demo").on("Demo"),
        c("instance dEmO").on("dEmO"),
        c("instance de%6Do").on_raw("de%6Do").rest_only(),
        c("under /v1/").v1().rest_only(),
        c("no trailing slash").no_slash().rest_only(),
        c("under /v1, no trailing slash")
            .v1()
            .no_slash()
            .rest_only(),
    ];
    for (source, credential) in [
        (
            "Authorization: Token",
            Credential::Authorization("Token {key}", Key::Owner),
        ),
        (
            "Authorization: Bearer",
            Credential::Authorization("Bearer {key}", Key::Owner),
        ),
        (
            "Authorization: ApiKey",
            Credential::Authorization("ApiKey {key}", Key::Owner),
        ),
    ] {
        cases.push(c(source).send(credential));
    }
    for name in ["api_key", "apikey"] {
        let case = c(&format!("?{name}=")).send(Credential::Query(name, Key::Owner));
        cases.push(case.rest_only());
    }
    cases
}
