//! `groups-server` as a gRPC caller sees it: the real binary on port 0 over a fresh PostgreSQL
//! database per test, every row of SPEC.md's gRPC table (code, `ErrorInfo` reason and domain,
//! `BadRequest`, `RetryInfo`), the order of checks, the invariants (concurrent removals,
//! undecodable requests, tenant isolation, keys out of logs, outages), health and reflection.
//!
//! Each test starts its own `World` (database) and server; assertions are on what a caller sees
//! and on the rows left in the tables.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use groups_proto::{GroupMembersClient, RemoveGroupMemberRequest};
use groups_testkit::{
    FaultProxy, Role, RowCounts, ServiceCommand, ServiceProcess, UserId, World, spawn_server,
};
use tonic::codegen::http;
use tonic::codegen::{Bytes, tokio_stream};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
use tonic_types::StatusExt;

const METHOD_PATH: &str = "/groups.v1.GroupMembers/RemoveGroupMember";
const SERVICE_NAME: &str = "groups.v1.GroupMembers";

/// Well-formed keys nobody holds: an account-shaped one (even) and an API-key-shaped one (odd).
const UNKNOWN_ACCOUNT_KEY: &str = "0123456789abcdef0123456789abcdef01234560";
const UNKNOWN_API_KEY: &str = "0123456789abcdef0123456789abcdef01234561";

/// A group and a user id no row has.
const NO_SUCH_ID: i64 = 987_654_321;

/// A world, a server on its database, and a client of that server.
struct Grpc {
    world: World,
    server: ServiceProcess,
    client: GroupMembersClient<Channel>,
}

impl Grpc {
    async fn start() -> Self {
        let world = World::new();
        let server = spawn_server(world.url(), &[]);
        let client = GroupMembersClient::new(channel(&server).await);
        Self {
            world,
            server,
            client,
        }
    }

    /// `RemoveGroupMember` with the key (if any) in `x-api-key`.
    async fn remove(
        &self,
        instance: &str,
        group: i64,
        user: i64,
        key: Option<&str>,
    ) -> Result<(), Status> {
        let metadata: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        self.send(request(instance, group, user), &metadata).await
    }

    /// `RemoveGroupMember` of the demo user from the demo group.
    async fn remove_demo(&self, key: Option<&str>) -> Result<(), Status> {
        let demo = &self.world.demo;
        self.remove("demo", demo.group.get(), demo.user.get(), key)
            .await
    }

    async fn send(
        &self,
        message: RemoveGroupMemberRequest,
        metadata: &[(&str, &str)],
    ) -> Result<(), Status> {
        send(&self.client, message, metadata).await
    }

    /// A fresh user of "demo" made a member of the demo group.
    fn new_member(&self, username: &str) -> UserId {
        let user = self.world.add_user("demo", username);
        self.world.add_member("demo", self.world.demo.group, user);
        user
    }
}

async fn channel(server: &ServiceProcess) -> Channel {
    Channel::from_shared(server.url())
        .expect("a valid URL")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", server.url()))
}

fn request(instance: &str, group: i64, user: i64) -> RemoveGroupMemberRequest {
    RemoveGroupMemberRequest {
        instance_name: instance.to_owned(),
        group_id: group,
        user_id: user,
        allow_missing: false,
        parent: 0,
    }
}

async fn send(
    client: &GroupMembersClient<Channel>,
    message: RemoveGroupMemberRequest,
    metadata: &[(&str, &str)],
) -> Result<(), Status> {
    let mut request = tonic::Request::new(message);
    for (name, value) in metadata {
        let value: MetadataValue<_> = value.parse().expect("a valid metadata value");
        let name: tonic::metadata::MetadataKey<tonic::metadata::Ascii> =
            name.parse().expect("a valid metadata name");
        request.metadata_mut().insert(name, value);
    }
    let mut client = client.clone();
    client.remove_group_member(request).await.map(drop)
}

/// Asserts an error with `code` and `ErrorInfo { reason, domain: "groups.v1" }`; returns it.
#[track_caller]
fn expect_error(result: Result<(), Status>, code: Code, reason: &str, case: &str) -> Status {
    let status = match result {
        Ok(()) => panic!("{case}: succeeded, expected {code:?} {reason}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{case}: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{case}: no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "{case}: {status:?}");
    assert_eq!(info.domain, "groups.v1", "{case}: {status:?}");
    status
}

/// Asserts two statuses are indistinguishable to a caller: code, message and details.
#[track_caller]
fn assert_same_answer(one: &Status, other: &Status, case: &str) {
    assert_eq!(one.code(), other.code(), "{case}");
    assert_eq!(one.message(), other.message(), "{case}");
    assert_eq!(one.details(), other.details(), "{case}");
}

// ---- success -------------------------------------------------------------------------------

#[tokio::test]
async fn removed_is_ok_and_deletes_only_the_membership() {
    let g = Grpc::start().await;
    let demo = &g.world.demo;
    // Neighbours of the membership: the same group with another user, the same user in
    // another group. Both must survive.
    let bob = g.new_member("bob");
    let other_group = g.world.add_group("demo", "other-group");
    g.world.add_member("demo", other_group, demo.user);
    let before = g.world.counts();

    g.remove_demo(Some(&demo.owner.key))
        .await
        .expect("the owner removes a member");

    assert!(!g.world.is_member(demo.group, demo.user));
    assert!(g.world.is_member(demo.group, bob));
    assert!(g.world.is_member(other_group, demo.user));
    assert_eq!(
        g.world.counts(),
        RowCounts {
            memberships: before.memberships - 1,
            ..before
        },
        "users and groups untouched, one membership fewer"
    );
}

#[tokio::test]
async fn owner_full_and_write_admins_may_remove_members() {
    let g = Grpc::start().await;
    let owner = g.world.demo.owner.key.clone();
    let full = g.world.add_admin("demo", Some(Role::Full)).key;
    let write = g.world.add_admin("demo", Some(Role::Write)).key;
    for (who, key) in [("owner", owner), ("full", full), ("write", write)] {
        let user = g.new_member(&format!("member-of-{who}"));
        g.remove("demo", g.world.demo.group.get(), user.get(), Some(&key))
            .await
            .unwrap_or_else(|s| panic!("{who}: {s:?}"));
        assert!(!g.world.is_member(g.world.demo.group, user), "{who}");
    }
}

#[tokio::test]
async fn instance_names_are_case_insensitive() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    let group = g.world.demo.group;
    for name in ["DEMO", "Demo", "dEmO"] {
        let user = g.new_member(&format!("user-{name}"));
        g.remove(name, group.get(), user.get(), Some(&key))
            .await
            .unwrap_or_else(|s| panic!("{name}: {s:?}"));
        assert!(!g.world.is_member(group, user), "{name}");
    }
}

#[tokio::test]
async fn the_key_may_travel_in_authorization_with_any_scheme() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    let group = g.world.demo.group;
    for scheme in ["Bearer", "Token", "ApiKey"] {
        let user = g.new_member(&format!("user-{scheme}"));
        let authorization = format!("{scheme} {key}");
        g.send(
            request("demo", group.get(), user.get()),
            &[("authorization", &authorization)],
        )
        .await
        .unwrap_or_else(|s| panic!("{scheme}: {s:?}"));
        assert!(!g.world.is_member(group, user), "{scheme}");
    }

    // `x-api-key` is read first.
    let user = g.new_member("user-precedence");
    let bad_authorization = format!("Token {UNKNOWN_ACCOUNT_KEY}");
    g.send(
        request("demo", group.get(), user.get()),
        &[("x-api-key", &key), ("authorization", &bad_authorization)],
    )
    .await
    .expect("x-api-key wins over authorization");
    let good_authorization = format!("Token {key}");
    let result = g
        .send(
            request("demo", group.get(), g.world.demo.user.get()),
            &[
                ("x-api-key", UNKNOWN_ACCOUNT_KEY),
                ("authorization", &good_authorization),
            ],
        )
        .await;
    expect_error(
        result,
        Code::Unauthenticated,
        "API_KEY_INVALID",
        "bad x-api-key, good authorization",
    );
    assert!(g.world.is_member(group, g.world.demo.user));
}

// ---- INVALID_ARGUMENT ----------------------------------------------------------------------

#[tokio::test]
async fn invalid_argument_lists_every_field_violation_and_changes_nothing() {
    let g = Grpc::start().await;
    let demo = &g.world.demo;
    let (group, user) = (demo.group.get(), demo.user.get());
    let before = g.world.counts();
    let cases: [(&str, i64, i64, &[&str]); 9] = [
        ("demo", 0, user, &["group_id"]),
        ("demo", -1, user, &["group_id"]),
        ("demo", i64::MIN, user, &["group_id"]),
        ("demo", group, 0, &["user_id"]),
        ("demo", group, -7, &["user_id"]),
        ("", group, user, &["instance_name"]),
        ("demo", 0, 0, &["group_id", "user_id"]),
        ("", 0, -1, &["instance_name", "group_id", "user_id"]),
        // Argument errors come before the instance look-up, like REST's id checks.
        ("no-such-instance", -5, user, &["group_id"]),
    ];
    for (instance, group, user, fields) in cases {
        for key in [Some(demo.owner.key.as_str()), None] {
            let case = format!("{instance:?}/{group}/{user} key={}", key.is_some());
            let status = expect_error(
                g.remove(instance, group, user, key).await,
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                &case,
            );
            let bad = status
                .get_details_bad_request()
                .unwrap_or_else(|| panic!("{case}: no BadRequest in {status:?}"));
            let mut reported: Vec<&str> = bad
                .field_violations
                .iter()
                .map(|v| v.field.as_str())
                .collect();
            reported.sort_unstable();
            let mut expected = fields.to_vec();
            expected.sort_unstable();
            assert_eq!(reported, expected, "{case}");
            assert!(
                bad.field_violations
                    .iter()
                    .all(|v| !v.description.is_empty()),
                "{case}: every violation says what is wrong: {bad:?}"
            );
        }
    }
    assert_eq!(g.world.counts(), before);
    assert!(g.world.is_member(demo.group, demo.user));
}

// ---- INSTANCE_NOT_FOUND --------------------------------------------------------------------

#[tokio::test]
async fn unknown_or_invalid_instance_is_instance_not_found() {
    let g = Grpc::start().await;
    let demo = &g.world.demo;
    let before = g.world.counts();
    let too_long = "a".repeat(65);
    for name in [
        "nope",
        "no such!",
        "demo.",
        " demo",
        "dëmo",
        "demo/../demo",
        too_long.as_str(),
    ] {
        expect_error(
            g.remove(
                name,
                demo.group.get(),
                demo.user.get(),
                Some(&demo.owner.key),
            )
            .await,
            Code::NotFound,
            "INSTANCE_NOT_FOUND",
            name,
        );
    }
    assert_eq!(g.world.counts(), before);
}

// ---- API_KEY_MISSING / API_KEY_INVALID -----------------------------------------------------

#[tokio::test]
async fn no_key_is_api_key_missing() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    expect_error(
        g.remove_demo(None).await,
        Code::Unauthenticated,
        "API_KEY_MISSING",
        "no metadata",
    );
    // An authorization value that is not exactly two words carries no key.
    for authorization in [key.clone(), format!("Token {key} extra")] {
        let result = g
            .send(
                request("demo", g.world.demo.group.get(), g.world.demo.user.get()),
                &[("authorization", &authorization)],
            )
            .await;
        expect_error(
            result,
            Code::Unauthenticated,
            "API_KEY_MISSING",
            "authorization not two words",
        );
    }
    assert!(g.world.is_member(g.world.demo.group, g.world.demo.user));
}

/// README ("Decisions"): an empty key value counts as not given, as the gateway treats it.
#[tokio::test]
async fn an_empty_key_counts_as_not_given() {
    let g = Grpc::start().await;
    let result = g
        .send(
            request("demo", g.world.demo.group.get(), g.world.demo.user.get()),
            &[("x-api-key", "")],
        )
        .await;
    expect_error(
        result,
        Code::Unauthenticated,
        "API_KEY_MISSING",
        "empty x-api-key",
    );
}

#[tokio::test]
async fn unknown_revoked_malformed_foreign_or_inactive_keys_are_api_key_invalid() {
    let g = Grpc::start().await;
    let w = &g.world;
    let owner = w.demo.owner.key.clone();
    let revoked = w.add_revoked_api_key("demo", false).key;
    let revoked_ignore_acl = w.add_revoked_api_key("demo", true).key;
    let other = w.add_instance("other");
    let foreign_api_key = w.add_api_key("other", true).key;
    let inactive_writer = w.add_inactive_admin("demo", Some(Role::Write)).key;
    let inactive_full = w.add_inactive_admin("demo", Some(Role::Full)).key;
    let upper = owner.to_uppercase();
    assert_ne!(upper, owner, "the owner's key has a hex letter");
    let before = w.counts();

    let cases: Vec<(&str, String)> = vec![
        ("unknown account-shaped key", UNKNOWN_ACCOUNT_KEY.to_owned()),
        ("unknown API-key-shaped key", UNKNOWN_API_KEY.to_owned()),
        ("revoked API key", revoked),
        ("revoked ignore_acl API key", revoked_ignore_acl),
        ("39 characters", owner[..39].to_owned()),
        ("41 characters", format!("{owner}0")),
        ("upper-case hex", upper),
        ("not hex", format!("{}g", &owner[..39])),
        ("not a key at all", "let me in".to_owned()),
        ("another instance's API key", foreign_api_key),
        ("an inactive write admin's key", inactive_writer),
        ("an inactive full admin's key", inactive_full),
    ];
    for (case, key) in &cases {
        expect_error(
            g.remove_demo(Some(key)).await,
            Code::Unauthenticated,
            "API_KEY_INVALID",
            case,
        );
    }

    // An inactive owner's key no longer works on their own instance.
    w.deactivate_admin(&other.owner.email);
    expect_error(
        g.remove(
            "other",
            other.group.get(),
            other.user.get(),
            Some(&other.owner.key),
        )
        .await,
        Code::Unauthenticated,
        "API_KEY_INVALID",
        "an inactive owner's key",
    );
    assert_eq!(w.counts(), before);
    assert!(w.is_member(other.group, other.user));
}

// ---- PERMISSION_DENIED ---------------------------------------------------------------------

#[tokio::test]
async fn api_keys_read_admins_and_admins_without_a_role_are_permission_denied() {
    let g = Grpc::start().await;
    let w = &g.world;
    let other = w.add_instance("other");
    let cases = [
        ("API key", w.add_api_key("demo", false).key),
        ("API key with ignore_acl", w.add_api_key("demo", true).key),
        ("read admin", w.add_admin("demo", Some(Role::Read)).key),
        ("admin with no role", w.add_admin("demo", None).key),
        (
            "admin with a role elsewhere",
            w.add_admin("other", Some(Role::Full)).key,
        ),
        ("another instance's owner", other.owner.key.clone()),
    ];
    let before = w.counts();
    for (case, key) in &cases {
        expect_error(
            g.remove_demo(Some(key)).await,
            Code::PermissionDenied,
            "PERMISSION_DENIED",
            case,
        );
    }
    assert_eq!(w.counts(), before);
    assert!(w.is_member(w.demo.group, w.demo.user));
}

// ---- GROUP_NOT_FOUND -----------------------------------------------------------------------

#[tokio::test]
async fn missing_deleted_and_foreign_groups_are_group_not_found() {
    let g = Grpc::start().await;
    let w = &g.world;
    let demo = &w.demo;
    let key = demo.owner.key.as_str();

    // A deleted group whose membership row stays behind.
    let deleted = w.add_group("demo", "deleted");
    w.add_member("demo", deleted, demo.user);
    w.delete_group("demo", deleted);
    // Another instance's group, with its own member.
    let other = w.add_instance("other");
    let before = w.counts();

    let missing = expect_error(
        g.remove("demo", NO_SUCH_ID, demo.user.get(), Some(key))
            .await,
        Code::NotFound,
        "GROUP_NOT_FOUND",
        "no such group",
    );
    expect_error(
        g.remove("demo", i64::MAX, demo.user.get(), Some(key)).await,
        Code::NotFound,
        "GROUP_NOT_FOUND",
        "largest id",
    );
    let deleted_answer = expect_error(
        g.remove("demo", deleted.get(), demo.user.get(), Some(key))
            .await,
        Code::NotFound,
        "GROUP_NOT_FOUND",
        "deleted group",
    );
    let foreign = expect_error(
        g.remove("demo", other.group.get(), other.user.get(), Some(key))
            .await,
        Code::NotFound,
        "GROUP_NOT_FOUND",
        "another instance's group",
    );
    // No leak: a foreign or deleted group answers exactly as one that never existed.
    assert_same_answer(&foreign, &missing, "foreign vs missing group");
    assert_same_answer(&deleted_answer, &missing, "deleted vs missing group");

    assert_eq!(w.counts(), before);
    assert!(w.is_member(other.group, other.user));
    assert!(w.is_member(deleted, demo.user));
}

// ---- MEMBERSHIP_NOT_FOUND and allow_missing -------------------------------------------------

#[tokio::test]
async fn non_members_are_membership_not_found_whether_or_not_the_user_exists() {
    let g = Grpc::start().await;
    let w = &g.world;
    let demo = &w.demo;
    let key = demo.owner.key.as_str();
    let loner = w.add_user("demo", "loner");
    let other = w.add_instance("other");
    let before = w.counts();

    let existing = expect_error(
        g.remove("demo", demo.group.get(), loner.get(), Some(key))
            .await,
        Code::NotFound,
        "MEMBERSHIP_NOT_FOUND",
        "existing user, not a member",
    );
    let missing = expect_error(
        g.remove("demo", demo.group.get(), NO_SUCH_ID, Some(key))
            .await,
        Code::NotFound,
        "MEMBERSHIP_NOT_FOUND",
        "no such user",
    );
    let foreign = expect_error(
        g.remove("demo", demo.group.get(), other.user.get(), Some(key))
            .await,
        Code::NotFound,
        "MEMBERSHIP_NOT_FOUND",
        "another instance's user",
    );
    assert_same_answer(&existing, &missing, "existing vs missing user");
    assert_same_answer(&foreign, &missing, "foreign vs missing user");
    assert_eq!(w.counts(), before);
}

#[tokio::test]
async fn allow_missing_turns_not_a_member_into_ok_but_not_a_missing_group() {
    let g = Grpc::start().await;
    let w = &g.world;
    let demo = &w.demo;
    let key = demo.owner.key.as_str();
    let loner = w.add_user("demo", "loner");
    let allow_missing = |group: i64, user: i64| RemoveGroupMemberRequest {
        allow_missing: true,
        ..request("demo", group, user)
    };
    let before = w.counts();

    for (case, user) in [("existing user", loner.get()), ("no such user", NO_SUCH_ID)] {
        g.send(allow_missing(demo.group.get(), user), &[("x-api-key", key)])
            .await
            .unwrap_or_else(|s| panic!("{case}: {s:?}"));
    }
    assert_eq!(w.counts(), before, "nothing to remove, nothing removed");

    expect_error(
        g.send(
            allow_missing(NO_SUCH_ID, demo.user.get()),
            &[("x-api-key", key)],
        )
        .await,
        Code::NotFound,
        "GROUP_NOT_FOUND",
        "allow_missing with a missing group",
    );
    // allow_missing relaxes only the membership check, never authentication or permission.
    let reader = w.add_admin("demo", Some(Role::Read)).key;
    expect_error(
        g.send(
            allow_missing(demo.group.get(), demo.user.get()),
            &[("x-api-key", &reader)],
        )
        .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "allow_missing with a read admin",
    );
    expect_error(
        g.send(allow_missing(demo.group.get(), demo.user.get()), &[])
            .await,
        Code::Unauthenticated,
        "API_KEY_MISSING",
        "allow_missing without a key",
    );
    assert!(w.is_member(demo.group, demo.user));

    // And an existing membership is still removed.
    g.send(
        allow_missing(demo.group.get(), demo.user.get()),
        &[("x-api-key", key)],
    )
    .await
    .expect("removes an existing membership");
    assert!(!w.is_member(demo.group, demo.user));
}

// ---- order of checks -----------------------------------------------------------------------

/// A row of the order-of-checks table: case, instance, group, user, key, code, reason.
type OrderCase<'a> = (&'a str, &'a str, i64, i64, Option<&'a str>, Code, &'a str);

#[tokio::test]
async fn the_first_failing_check_answers() {
    let g = Grpc::start().await;
    let w = &g.world;
    let demo = &w.demo;
    let (group, user) = (demo.group.get(), demo.user.get());
    let owner = demo.owner.key.clone();
    let reader = w.add_admin("demo", Some(Role::Read)).key;
    let api_key = w.add_api_key("demo", true).key;
    let revoked = w.add_revoked_api_key("demo", false).key;
    let deleted = w.add_group("demo", "deleted");
    w.delete_group("demo", deleted);
    let loner = w.add_user("demo", "loner").get();
    let before = w.counts();

    use Code::{InvalidArgument, NotFound, PermissionDenied, Unauthenticated};
    // (case, instance, group, user, key, code, reason)
    #[rustfmt::skip]
    let cases: [OrderCase<'_>; 12] = [
        ("bad ids + no instance + no key", "nope", 0, -1, None, InvalidArgument, "INVALID_ARGUMENT"),
        ("no instance + no key", "nope", group, user, None, NotFound, "INSTANCE_NOT_FOUND"),
        ("no instance + malformed key + no group", "nope", NO_SUCH_ID, NO_SUCH_ID, Some("garbage"), NotFound, "INSTANCE_NOT_FOUND"),
        ("invalid name + read admin", "no such!", group, user, Some(&reader), NotFound, "INSTANCE_NOT_FOUND"),
        ("no key + no group + no user", "demo", NO_SUCH_ID, NO_SUCH_ID, None, Unauthenticated, "API_KEY_MISSING"),
        ("malformed key + no group", "demo", NO_SUCH_ID, user, Some("garbage"), Unauthenticated, "API_KEY_INVALID"),
        ("revoked key + deleted group", "demo", deleted.get(), loner, Some(&revoked), Unauthenticated, "API_KEY_INVALID"),
        ("unknown key + member", "demo", group, user, Some(UNKNOWN_ACCOUNT_KEY), Unauthenticated, "API_KEY_INVALID"),
        ("read admin + no group", "demo", NO_SUCH_ID, user, Some(&reader), PermissionDenied, "PERMISSION_DENIED"),
        ("API key + deleted group + not a member", "demo", deleted.get(), loner, Some(&api_key), PermissionDenied, "PERMISSION_DENIED"),
        ("deleted group + not a member", "demo", deleted.get(), loner, Some(&owner), NotFound, "GROUP_NOT_FOUND"),
        ("no group + no user", "demo", NO_SUCH_ID, NO_SUCH_ID, Some(&owner), NotFound, "GROUP_NOT_FOUND"),
    ];
    for (case, instance, group, user, key, code, reason) in cases {
        expect_error(
            g.remove(instance, group, user, key).await,
            code,
            reason,
            case,
        );
    }
    assert_eq!(w.counts(), before);
    assert!(w.is_member(demo.group, demo.user));
}

// ---- tenant isolation ----------------------------------------------------------------------

#[tokio::test]
async fn a_key_of_one_instance_never_reveals_or_touches_another_instances_rows() {
    let g = Grpc::start().await;
    let w = &g.world;
    let other = w.add_instance("other");
    let demo_api_key = w.add_api_key("demo", true).key;
    let demo_owner = w.demo.owner.key.clone();
    let before = w.counts();

    // On "other", with demo's keys: the answer is the same whether other's group/user exist.
    for (case, key, code, reason) in [
        (
            "demo's API key",
            demo_api_key.as_str(),
            Code::Unauthenticated,
            "API_KEY_INVALID",
        ),
        (
            "demo's owner (no role on other)",
            demo_owner.as_str(),
            Code::PermissionDenied,
            "PERMISSION_DENIED",
        ),
    ] {
        let real = expect_error(
            g.remove("other", other.group.get(), other.user.get(), Some(key))
                .await,
            code,
            reason,
            case,
        );
        let made_up = expect_error(
            g.remove("other", NO_SUCH_ID, NO_SUCH_ID, Some(key)).await,
            code,
            reason,
            case,
        );
        assert_same_answer(&real, &made_up, case);
    }
    assert_eq!(w.counts(), before);
    assert!(w.is_member(other.group, other.user));
}

// ---- invariants: concurrency, malformed input ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removals_of_one_membership_succeed_exactly_once() {
    let g = Grpc::start().await;
    let demo = &g.world.demo;
    let before = g.world.counts();
    // Two connections, so the requests also race across HTTP/2 connections.
    let clients = [
        g.client.clone(),
        GroupMembersClient::new(channel(&g.server).await),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let client = clients[i % 2].clone();
        let message = request("demo", demo.group.get(), demo.user.get());
        let key = demo.owner.key.clone();
        tasks.spawn(async move { send(&client, message, &[("x-api-key", &key)]).await });
    }
    let (mut ok, mut not_member, mut other) = (0, 0, Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            Ok(()) => ok += 1,
            Err(status)
                if status.code() == Code::NotFound
                    && status
                        .get_details_error_info()
                        .is_some_and(|i| i.reason == "MEMBERSHIP_NOT_FOUND") =>
            {
                not_member += 1;
            }
            Err(status) => other.push(status),
        }
    }
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert_eq!((ok, not_member), (1, 63));
    assert!(!g.world.is_member(demo.group, demo.user));
    assert_eq!(
        g.world.counts(),
        RowCounts {
            memberships: before.memberships - 1,
            ..before
        }
    );
}

/// One gRPC call over a bare HTTP/2 connection: the request body is sent exactly as given
/// (so it may be no valid gRPC message at all), and no client-side deadline is enforced.
/// Returns `grpc-status` and `grpc-message` from the trailers (or a trailers-only response).
async fn raw_call(
    addr: SocketAddr,
    extra_headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (i32, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let mut builder = http::Request::post(format!("http://{addr}{METHOD_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra_headers {
        builder = builder.header(*name, *value);
    }
    let (response, mut stream) = client
        .send_request(builder.body(()).expect("request"), false)
        .expect("send request");
    stream
        .send_data(Bytes::from(body), true)
        .expect("send body");
    let response = response.await.expect("response");
    let (parts, mut body) = response.into_parts();
    let status_of = |headers: &http::HeaderMap| {
        let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .map(percent_decoded)
            .unwrap_or_default();
        Some((code, message))
    };
    if let Some(answer) = status_of(&parts.headers) {
        return answer;
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response body");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body
        .trailers()
        .await
        .expect("trailers")
        .expect("trailers present");
    status_of(&trailers).expect("grpc-status in the trailers")
}

/// `grpc-message` is percent-encoded on the wire.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A gRPC length-prefixed message frame (uncompressed) around `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(payload);
    framed
}

const INVALID_ARGUMENT: i32 = Code::InvalidArgument as i32;

#[tokio::test]
async fn an_undecodable_request_message_is_invalid_argument() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    let before = g.world.counts();
    let cases: [(&str, &[u8]); 7] = [
        ("field number 0", b"\x00"),
        ("varint longer than ten bytes", &[0xff; 11]),
        ("group_id sent as bytes", b"\x12\x03abc"),
        ("instance_name not UTF-8", b"\x0a\x02\xff\xfe"),
        ("length past the end", b"\x0a\x10ab"),
        ("text, not protobuf", b"this is not a protobuf message"),
        ("truncated varint", b"\x10\x80"),
    ];
    for (case, payload) in cases {
        let (code, message) =
            raw_call(g.server.addr(), &[("x-api-key", &key)], frame(payload)).await;
        assert_eq!(code, INVALID_ARGUMENT, "{case}: {message}");
    }
    // An empty message decodes to all defaults: every field is then invalid.
    let (code, message) = raw_call(g.server.addr(), &[("x-api-key", &key)], frame(b"")).await;
    assert_eq!(code, INVALID_ARGUMENT, "empty message: {message}");
    assert_eq!(g.world.counts(), before);
    g.remove_demo(Some(&key))
        .await
        .expect("the server still serves");
}

/// SPEC, Invariants: "a request message that cannot be decoded is INVALID_ARGUMENT", never
/// INTERNAL. No message at all, or a frame cut short, cannot be decoded either.
#[tokio::test]
async fn a_missing_or_truncated_request_message_is_invalid_argument() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    let mut truncated = frame(b"\x0a\x04demo\x10\x01\x18\x01");
    truncated.truncate(8);
    let mut wrong = Vec::new();
    for (case, body) in [("no message", Vec::new()), ("frame cut short", truncated)] {
        let (code, message) = raw_call(g.server.addr(), &[("x-api-key", &key)], body).await;
        if code != INVALID_ARGUMENT {
            wrong.push(format!("{case}: {:?} {message:?}", Code::from_i32(code)));
        }
    }
    assert!(wrong.is_empty(), "expected INVALID_ARGUMENT: {wrong:#?}");
}

#[tokio::test]
async fn oversized_requests_are_refused_without_a_server_error() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    let demo = &g.world.demo;
    // Below the 4 MB message limit: just a name that cannot be an instance.
    let long_name = "a".repeat(1 << 20);
    expect_error(
        g.remove(&long_name, demo.group.get(), demo.user.get(), Some(&key))
            .await,
        Code::NotFound,
        "INSTANCE_NOT_FOUND",
        "1 MiB instance name",
    );
    // Past it: a message the server will not decode is the caller's error, with the reason
    // and field violation of any invalid argument (tonic alone answers OUT_OF_RANGE).
    let huge_name = "a".repeat(5 << 20);
    let status = expect_error(
        g.remove(&huge_name, demo.group.get(), demo.user.get(), Some(&key))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "5 MiB message",
    );
    let violations = status
        .get_details_bad_request()
        .expect("BadRequest")
        .field_violations;
    assert_eq!(violations.len(), 1, "{status:?}");
    assert_eq!(violations[0].field, "request", "{status:?}");
    // Metadata past HTTP/2's header list limit (hyper's 16 KiB) never reaches the service: the
    // HTTP/2 layer answers 431 (which gRPC clients read as UNKNOWN: see README) or, far past
    // it, closes the connection. The call fails; the server does not.
    for len in [20 << 10, 1 << 20] {
        let metadata = [("x-api-key", "k".repeat(len))];
        let metadata: Vec<(&str, &str)> = metadata.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let refused = g.send(request("demo", 1, 1), &metadata).await;
        assert!(refused.is_err(), "{len} bytes of metadata: {refused:?}");
    }
    // And the server still serves.
    g.remove_demo(Some(&key)).await.expect("still serving");
}

// ---- outages and deadlines -----------------------------------------------------------------

/// A server whose database connections go through a fault proxy.
fn server_behind_proxy(world: &World, args: &[&str]) -> (FaultProxy, ServiceProcess) {
    let proxy = FaultProxy::start(world.db.server_addr());
    let server = ServiceCommand::server(&world.db.url_via(proxy.addr()))
        .args(args)
        .spawn();
    (proxy, server)
}

/// Retries `attempt` until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn database_unreachable_is_unavailable_with_retry_info_then_recovers() {
    let world = World::new();
    let (proxy, server) = server_behind_proxy(&world, &["--pool-timeout-ms", "500"]);
    let client = GroupMembersClient::new(channel(&server).await);
    let demo = &world.demo;
    let key = demo.owner.key.clone();
    let user = world.add_user("demo", "warm-up");
    world.add_member("demo", demo.group, user);
    send(
        &client,
        request("demo", demo.group.get(), user.get()),
        &[("x-api-key", &key)],
    )
    .await
    .expect("served while the database is up");

    proxy.cut();
    for attempt in 0..3 {
        let started = Instant::now();
        let status = expect_error(
            send(
                &client,
                request("demo", demo.group.get(), demo.user.get()),
                &[("x-api-key", &key)],
            )
            .await,
            Code::Unavailable,
            "DATABASE_UNAVAILABLE",
            &format!("database cut, attempt {attempt}"),
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(3),
            "answered after {elapsed:?}, bound is the 500 ms pool timeout"
        );
        let retry = status
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .unwrap_or_else(|| panic!("no RetryInfo delay in {status:?}"));
        assert!(retry > Duration::ZERO, "{retry:?}");
        assert!(
            !status.message().contains(&proxy.addr().to_string()),
            "no internals: {status:?}"
        );
    }
    assert!(world.is_member(demo.group, demo.user));

    proxy.restore();
    let recovered = eventually(Duration::from_secs(10), || async {
        match send(
            &client,
            request("demo", demo.group.get(), demo.user.get()),
            &[("x-api-key", &key)],
        )
        .await
        {
            Ok(()) => Some(()),
            Err(status) if status.code() == Code::Unavailable => None,
            Err(status) => panic!("after restore: {status:?}"),
        }
    })
    .await;
    assert!(
        recovered.is_some(),
        "no recovery within 10 s without a restart"
    );
    assert!(!world.is_member(demo.group, demo.user));
}

#[tokio::test]
async fn an_exhausted_pool_is_unavailable_with_retry_info_within_the_pool_timeout() {
    let world = World::new();
    let (proxy, server) =
        server_behind_proxy(&world, &["--pool-size", "1", "--pool-timeout-ms", "300"]);
    let client = GroupMembersClient::new(channel(&server).await);
    let demo = &world.demo;
    let key = demo.owner.key.clone();
    send(
        &client,
        request("demo", demo.group.get(), NO_SUCH_ID),
        &[("x-api-key", &key)],
    )
    .await
    .expect_err("warm-up: not a member");

    // The one connection is busy with a slow statement...
    proxy.set_latency(Duration::from_secs(2));
    let slow = tokio::spawn({
        let (client, key) = (client.clone(), key.clone());
        let message = request("demo", demo.group.get(), NO_SUCH_ID);
        async move { send(&client, message, &[("x-api-key", &key)]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // ...so the next request waits the pool timeout, then answers UNAVAILABLE.
    let started = Instant::now();
    let status = expect_error(
        send(
            &client,
            request("demo", demo.group.get(), demo.user.get()),
            &[("x-api-key", &key)],
        )
        .await,
        Code::Unavailable,
        "DATABASE_UNAVAILABLE",
        "pool exhausted",
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}, the pool timeout is 300 ms"
    );
    assert!(
        status
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .is_some(),
        "RetryInfo: {status:?}"
    );
    slow.abort();
    assert!(world.is_member(demo.group, demo.user));
}

/// SPEC gRPC table: "deadline passed → DEADLINE_EXCEEDED". The caller's `grpc-timeout` is sent
/// on a bare HTTP/2 connection, so the code seen is the server's, not a client library's.
#[tokio::test]
async fn a_passed_deadline_is_deadline_exceeded() {
    let world = World::new();
    let (proxy, server) = server_behind_proxy(&world, &[]);
    let client = GroupMembersClient::new(channel(&server).await);
    let demo = &world.demo;
    let key = demo.owner.key.clone();
    // Warm the pool, so the slow part is the statement, not the connection set-up.
    send(
        &client,
        request("demo", demo.group.get(), NO_SUCH_ID),
        &[("x-api-key", &key)],
    )
    .await
    .expect_err("not a member");
    proxy.set_latency(Duration::from_secs(1));

    let payload = {
        // RemoveGroupMemberRequest { instance_name: "demo", group_id, user_id } by hand.
        let mut p = vec![0x0a, 4];
        p.extend_from_slice(b"demo");
        p.push(0x10);
        p.extend(varint(demo.group.get()));
        p.push(0x18);
        p.extend(varint(demo.user.get()));
        p
    };
    let started = Instant::now();
    let (code, message) = raw_call(
        server.addr(),
        &[("x-api-key", &key), ("grpc-timeout", "300m")],
        frame(&payload),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}"
    );
    assert_eq!(
        code,
        Code::DeadlineExceeded as i32,
        "expected DEADLINE_EXCEEDED, got {:?}: {message}",
        Code::from_i32(code)
    );
}

fn varint(mut value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

// ---- health and reflection -----------------------------------------------------------------

async fn health_of(
    health: &mut HealthClient<Channel>,
    service: &str,
) -> Result<ServingStatus, Status> {
    health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status())
}

async fn wait_for_health(
    health: &HealthClient<Channel>,
    wanted: ServingStatus,
    limit: Duration,
) -> bool {
    eventually(limit, || {
        let mut health = health.clone();
        async move {
            let mut all = true;
            for service in ["", SERVICE_NAME] {
                all &= health_of(&mut health, service).await.ok() == Some(wanted);
            }
            all.then_some(())
        }
    })
    .await
    .is_some()
}

#[tokio::test]
async fn health_is_serving_while_the_database_answers() {
    let world = World::new();
    let (proxy, server) = server_behind_proxy(
        &world,
        &["--health-interval-ms", "100", "--pool-timeout-ms", "500"],
    );
    let health = HealthClient::new(channel(&server).await);
    assert!(
        wait_for_health(&health, ServingStatus::Serving, Duration::from_secs(5)).await,
        "not SERVING within 5 s: {}",
        server.logs()
    );
    let unknown = health_of(&mut health.clone(), "no.such.Service")
        .await
        .expect_err("an unknown service");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    proxy.cut();
    assert!(
        wait_for_health(&health, ServingStatus::NotServing, Duration::from_secs(5)).await,
        "still SERVING 5 s after the database went away"
    );
    proxy.restore();
    assert!(
        wait_for_health(&health, ServingStatus::Serving, Duration::from_secs(10)).await,
        "not SERVING again within 10 s of the database coming back"
    );
}

async fn next_answer(
    answers: &mut tonic::Streaming<ServerReflectionResponse>,
) -> ServerReflectionResponse {
    answers
        .message()
        .await
        .expect("a reflection answer")
        .expect("not the end of the stream")
}

#[tokio::test]
async fn reflection_lists_the_service() {
    let world = World::new();
    let server = spawn_server(world.url(), &[]);
    let mut reflection = ServerReflectionClient::new(channel(&server).await);
    let ask = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            SERVICE_NAME.to_owned(),
        )),
    ];
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        next_answer(&mut answers).await.message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&SERVICE_NAME), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        next_answer(&mut answers).await.message_response
    else {
        panic!("expected the file defining {SERVICE_NAME}");
    };
    let described = files
        .file_descriptor_proto
        .iter()
        .any(|file| file.windows(17).any(|w| w == b"RemoveGroupMember"));
    assert!(described, "the descriptor defines RemoveGroupMember");
}

/// SIGTERM, then waits (without blocking the runtime, which still has to close this test's
/// connections) for the exit, so the logs are complete.
async fn stop(service: &mut ServiceProcess) {
    service.terminate();
    let deadline = Instant::now() + Duration::from_secs(15);
    while service.try_wait().is_none() {
        assert!(Instant::now() < deadline, "{service:?} did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- keys never in logs --------------------------------------------------------------------

#[tokio::test]
async fn keys_never_appear_in_the_logs() {
    let world = World::new();
    // The most verbose logging there is, in both formats' worst case.
    let server = ServiceCommand::server(world.url())
        .env("RUST_LOG", "trace")
        .spawn();
    let client = GroupMembersClient::new(channel(&server).await);
    let demo = &world.demo;
    let api_key = world.add_api_key("demo", false).key;
    let revoked = world.add_revoked_api_key("demo", true).key;
    let reader = world.add_admin("demo", Some(Role::Read)).key;
    let keys = [
        demo.owner.key.clone(),
        api_key,
        revoked,
        reader,
        UNKNOWN_ACCOUNT_KEY.to_owned(),
    ];
    for key in &keys {
        for metadata in [
            ("x-api-key", key.clone()),
            ("authorization", format!("Bearer {key}")),
        ] {
            let _ = send(
                &client,
                request("demo", demo.group.get(), NO_SUCH_ID),
                &[(metadata.0, &metadata.1)],
            )
            .await;
        }
    }
    send(
        &client,
        request("demo", demo.group.get(), demo.user.get()),
        &[("x-api-key", &demo.owner.key)],
    )
    .await
    .expect("removed");
    drop(client);
    let mut server = server;
    stop(&mut server).await;
    let logs = server.logs();
    assert!(logs.contains("RemoveGroupMember"), "the run was logged");
    for key in &keys {
        assert!(!logs.contains(key.as_str()), "a key is in the logs");
        // Not even half of one.
        assert!(!logs.contains(&key[..20]), "part of a key is in the logs");
    }
}
