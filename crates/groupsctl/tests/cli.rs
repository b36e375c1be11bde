//! `groupsctl` as the scripts of SPEC.md ("Operating it") drive it: the real binary against a
//! fresh PostgreSQL database per test. Each subcommand's exact JSON on stdout and its effect on
//! the tables; errors on stderr with a non-zero exit, nothing on stdout and nothing changed;
//! keys stored only as digests; and a provisioned key that works against the real server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use groups_proto::{GroupMembersClient, RemoveGroupMemberRequest};
use groups_testkit::{CtlOutput, TestDb, groupsctl, groupsctl_command, spawn_server};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Nullable<Bool>)]
    value: Option<bool>,
}

#[derive(QueryableByName)]
struct Word {
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

fn flag(conn: &mut PgConnection, sql: &str) -> Option<bool> {
    diesel::sql_query(sql)
        .get_result::<Flag>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .value
}

fn word(conn: &mut PgConnection, sql: &str) -> Option<String> {
    diesel::sql_query(sql)
        .get_result::<Word>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .value
}

/// Every table of the schema.
fn tables(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .load::<Name>(conn)
    .expect("the table list")
    .into_iter()
    .map(|t| t.name)
    .collect()
}

/// Row counts of every table: what "nothing changed" compares.
fn all_counts(db: &TestDb) -> BTreeMap<String, i64> {
    let mut conn = db.conn();
    tables(&mut conn)
        .into_iter()
        .map(|table| {
            let n = count(&mut conn, &format!("SELECT count(*) AS n FROM \"{table}\""));
            (table, n)
        })
        .collect()
}

/// Runs `groupsctl ARGS`; asserts exit 0, one JSON object on stdout and nothing on stderr.
#[track_caller]
fn ok(db: &TestDb, args: &[&str]) -> Value {
    let out = groupsctl(db.url(), args);
    assert!(
        out.success(),
        "groupsctl {args:?} failed ({}): {}",
        out.status,
        out.stderr
    );
    assert_eq!(
        out.stdout.trim().lines().count(),
        1,
        "one line on stdout: {out:?}"
    );
    let value = out.json();
    assert!(value.is_object(), "a JSON object: {out:?}");
    value
}

/// Runs `groupsctl ARGS`; asserts it fails with `code`, says why on stderr, prints nothing on
/// stdout, and leaves every table as it was.
#[track_caller]
fn fails(db: &TestDb, args: &[&str], code: i32) -> CtlOutput {
    let before = all_counts(db);
    let out = groupsctl(db.url(), args);
    assert_eq!(out.status.code(), Some(code), "groupsctl {args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "groupsctl {args:?}: stdout {out:?}");
    assert!(
        !out.stderr.trim().is_empty(),
        "groupsctl {args:?}: says why"
    );
    assert_eq!(all_counts(db), before, "groupsctl {args:?} changed rows");
    out
}

/// The keys of a JSON object, sorted.
fn fields(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn id(value: &Value, field: &str) -> i64 {
    let id = value[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is an integer: {value}"));
    assert!(id > 0, "{field} is positive: {value}");
    id
}

/// Asserts the wire format of a key: 40 lower-case hex digits, the last one even (account key)
/// or odd (instance API key).
#[track_caller]
fn assert_key(key: &str, even: bool) {
    assert_eq!(key.len(), 40, "{} characters", key.len());
    assert!(
        key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "lower-case hex"
    );
    let last = u8::from_str_radix(&key[39..], 16).expect("a hex digit");
    assert_eq!(last.is_multiple_of(2), even, "parity of the last digit");
}

/// An admin "owner@demo.test" owning instance "demo"; returns the admin's key.
fn demo_instance(db: &TestDb) -> String {
    let admin = ok(db, &["admin", "create", "owner@demo.test"]);
    ok(
        db,
        &["instance", "create", "demo", "--owner", "owner@demo.test"],
    );
    admin["key"].as_str().expect("a key").to_owned()
}

// ---- migrate -------------------------------------------------------------------------------

#[test]
fn migrate_on_a_migrated_database_applies_nothing() {
    let db = TestDb::new();
    assert_eq!(ok(&db, &["migrate"]), json!({ "applied": [] }));
}

/// An empty database of its own next to the test database, dropped when done.
struct EmptyDatabase<'a> {
    db: &'a TestDb,
    name: String,
    url: String,
}

impl<'a> EmptyDatabase<'a> {
    fn create(db: &'a TestDb) -> Self {
        let name = format!("{}_empty", db.name());
        db.conn()
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("CREATE DATABASE");
        let url = db
            .url()
            .replacen(&format!("/{}", db.name()), &format!("/{name}"), 1);
        Self { db, name, url }
    }
}

impl Drop for EmptyDatabase<'_> {
    fn drop(&mut self) {
        let _ = self.db.conn().batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

#[test]
fn migrate_creates_the_schema_of_an_empty_database_once() {
    let db = TestDb::new();
    let empty = EmptyDatabase::create(&db);
    let first = groupsctl(&empty.url, &["migrate"]);
    let first = first.json();
    assert_eq!(fields(&first), ["applied"]);
    let applied = first["applied"].as_array().expect("a list");
    assert!(!applied.is_empty(), "{first}");
    assert!(applied.iter().all(Value::is_string), "{first}");
    assert_eq!(
        groupsctl(&empty.url, &["migrate"]).json(),
        json!({ "applied": [] })
    );
    let mut conn = groups_store::connect(&empty.url).expect("connect");
    assert_eq!(
        tables(&mut conn),
        tables(&mut db.conn()),
        "the same schema as a test database"
    );
}

// ---- admin ---------------------------------------------------------------------------------

#[test]
fn admin_create_prints_id_email_and_an_account_key() {
    let db = TestDb::new();
    let first = ok(&db, &["admin", "create", "Owner@Example.com"]);
    assert_eq!(fields(&first), ["email", "id", "key"]);
    assert_eq!(first["email"], "Owner@Example.com");
    let first_id = id(&first, "id");
    assert_key(first["key"].as_str().expect("a key"), true);

    let second = ok(&db, &["admin", "create", "second@example.com"]);
    assert!(id(&second, "id") > first_id);
    assert_key(second["key"].as_str().expect("a key"), true);
    assert_ne!(first["key"], second["key"], "every key is new");
    assert_eq!(all_counts(&db)["admins"], 2);
}

#[test]
fn admin_grant_sets_or_replaces_a_role_and_deactivate_turns_an_admin_off() {
    let db = TestDb::new();
    demo_instance(&db);
    ok(&db, &["admin", "create", "helper@demo.test"]);
    let role = |db: &TestDb| {
        word(
            &mut db.conn(),
            "SELECT r.role AS value FROM admin_roles r JOIN admins a ON a.id = r.admin_id \
             WHERE a.email = 'helper@demo.test'",
        )
    };

    ok(
        &db,
        &["admin", "grant", "helper@demo.test", "demo", "write"],
    );
    assert_eq!(role(&db).as_deref(), Some("write"));
    // Again, another role: replaced, not added. Instance names are case-insensitive.
    ok(&db, &["admin", "grant", "HELPER@demo.test", "DEMO", "read"]);
    assert_eq!(role(&db).as_deref(), Some("read"));
    ok(&db, &["admin", "grant", "helper@demo.test", "demo", "full"]);
    assert_eq!(role(&db).as_deref(), Some("full"));
    assert_eq!(all_counts(&db)["admin_roles"], 1);

    let active = |db: &TestDb| {
        flag(
            &mut db.conn(),
            "SELECT is_active AS value FROM admins WHERE email = 'helper@demo.test'",
        )
    };
    assert_eq!(active(&db), Some(true));
    ok(&db, &["admin", "deactivate", "helper@demo.test"]);
    assert_eq!(active(&db), Some(false));
}

// ---- instance, API keys, users, groups, members --------------------------------------------

#[test]
fn instance_create_prints_id_and_the_lower_cased_name() {
    let db = TestDb::new();
    ok(&db, &["admin", "create", "owner@acme.test"]);
    let made = ok(
        &db,
        &[
            "instance",
            "create",
            "ACME-Corp_1",
            "--owner",
            "owner@acme.test",
        ],
    );
    assert_eq!(
        made,
        json!({ "id": id(&made, "id"), "name": "acme-corp_1" })
    );
    assert_eq!(
        word(&mut db.conn(), "SELECT name AS value FROM instances").as_deref(),
        Some("acme-corp_1")
    );
}

#[test]
fn apikey_create_prints_an_instance_key_and_revoke_revokes_it() {
    let db = TestDb::new();
    demo_instance(&db);
    let plain = ok(&db, &["apikey", "create", "demo"]);
    assert_eq!(fields(&plain), ["id", "key"]);
    assert_key(plain["key"].as_str().expect("a key"), false);
    let ignoring = ok(&db, &["apikey", "create", "DEMO", "--ignore-acl"]);
    assert_key(ignoring["key"].as_str().expect("a key"), false);
    assert_ne!(plain["key"], ignoring["key"]);

    let mut conn = db.conn();
    let ignore_acl = |conn: &mut PgConnection, id: i64| {
        flag(
            conn,
            &format!("SELECT ignore_acl AS value FROM api_keys WHERE id = {id}"),
        )
    };
    assert_eq!(ignore_acl(&mut conn, id(&plain, "id")), Some(false));
    assert_eq!(ignore_acl(&mut conn, id(&ignoring, "id")), Some(true));

    let plain_id = id(&plain, "id").to_string();
    ok(&db, &["apikey", "revoke", "demo", &plain_id]);
    let revoked = |conn: &mut PgConnection, id: i64| {
        flag(
            conn,
            &format!("SELECT revoked_at IS NOT NULL AS value FROM api_keys WHERE id = {id}"),
        )
    };
    assert_eq!(revoked(&mut conn, id(&plain, "id")), Some(true));
    assert_eq!(revoked(&mut conn, id(&ignoring, "id")), Some(false));
}

#[test]
fn user_and_group_create_print_their_ids_and_group_delete_hides_the_group() {
    let db = TestDb::new();
    demo_instance(&db);
    let user = ok(&db, &["user", "create", "demo", "Alice"]);
    assert_eq!(user, json!({ "id": id(&user, "id"), "username": "Alice" }));
    let group = ok(&db, &["group", "create", "Demo", "Admins & friends"]);
    assert_eq!(
        group,
        json!({ "id": id(&group, "id"), "label": "Admins & friends" })
    );

    let group_id = id(&group, "id").to_string();
    ok(&db, &["group", "delete", "demo", &group_id]);
    let mut conn = db.conn();
    assert_eq!(
        flag(
            &mut conn,
            &format!("SELECT deleted_at IS NOT NULL AS value FROM groups WHERE id = {group_id}")
        ),
        Some(true),
        "the row stays, marked deleted"
    );
    // Deleted: no members can join it, and it cannot be deleted twice.
    let user_id = id(&user, "id").to_string();
    fails(&db, &["member", "add", "demo", &group_id, &user_id], 1);
    fails(&db, &["group", "delete", "demo", &group_id], 1);
}

#[test]
fn member_add_prints_group_and_user() {
    let db = TestDb::new();
    demo_instance(&db);
    let user = id(&ok(&db, &["user", "create", "demo", "alice"]), "id");
    let group = id(&ok(&db, &["group", "create", "demo", "admins"]), "id");
    let added = ok(
        &db,
        &[
            "member",
            "add",
            "demo",
            &group.to_string(),
            &user.to_string(),
        ],
    );
    assert_eq!(added, json!({ "group": group, "user": user }));
    assert_eq!(
        count(
            &mut db.conn(),
            &format!(
                "SELECT count(*) AS n FROM memberships WHERE group_id = {group} AND user_id = {user}"
            )
        ),
        1
    );
}

#[test]
fn seed_makes_contiguous_ids_and_every_membership() {
    let db = TestDb::new();
    demo_instance(&db);
    // Something already there, so the ids do not start at 1.
    ok(&db, &["user", "create", "demo", "early-bird"]);
    ok(&db, &["group", "create", "demo", "early-group"]);

    let mut previous_last = (1, 1);
    for (groups, users) in [(3, 4), (2, 5)] {
        let seeded = ok(
            &db,
            &[
                "seed",
                "demo",
                "--groups",
                &groups.to_string(),
                "--users",
                &users.to_string(),
            ],
        );
        let first_group = seeded["groups"][0].as_i64().expect("first group id");
        let first_user = seeded["users"][0].as_i64().expect("first user id");
        assert_eq!(
            seeded,
            json!({
                "groups": [first_group, first_group + groups - 1],
                "users": [first_user, first_user + users - 1],
                "memberships": groups * users,
            })
        );
        assert!(first_group > previous_last.0 && first_user > previous_last.1);
        previous_last = (first_group + groups - 1, first_user + users - 1);

        let (g0, g1, u0, u1) = (first_group, previous_last.0, first_user, previous_last.1);
        let mut conn = db.conn();
        let demo_rows = |table: &str, lo: i64, hi: i64| {
            format!(
                "SELECT count(*) AS n FROM {table} t JOIN instances i ON i.id = t.instance_id \
                 WHERE i.name = 'demo' AND t.id BETWEEN {lo} AND {hi}"
            )
        };
        assert_eq!(count(&mut conn, &demo_rows("groups", g0, g1)), groups);
        assert_eq!(count(&mut conn, &demo_rows("users", u0, u1)), users);
        assert_eq!(
            count(
                &mut conn,
                &format!(
                    "SELECT count(*) AS n FROM memberships \
                     WHERE group_id BETWEEN {g0} AND {g1} AND user_id BETWEEN {u0} AND {u1}"
                )
            ),
            groups * users,
            "every user in every group"
        );
    }
    let counts = all_counts(&db);
    assert_eq!(counts["groups"], 1 + 3 + 2);
    assert_eq!(counts["users"], 1 + 4 + 5);
    assert_eq!(counts["memberships"], 3 * 4 + 2 * 5);
}

// ---- errors --------------------------------------------------------------------------------

#[test]
fn errors_go_to_stderr_with_exit_1_and_change_nothing() {
    let db = TestDb::new();
    demo_instance(&db);
    ok(&db, &["admin", "create", "owner@other.test"]);
    ok(
        &db,
        &["instance", "create", "other", "--owner", "owner@other.test"],
    );
    let demo_user = id(&ok(&db, &["user", "create", "demo", "alice"]), "id").to_string();
    let demo_group = id(&ok(&db, &["group", "create", "demo", "admins"]), "id").to_string();
    let other_user = id(&ok(&db, &["user", "create", "other", "bob"]), "id").to_string();
    let other_group = id(&ok(&db, &["group", "create", "other", "staff"]), "id").to_string();
    ok(&db, &["member", "add", "demo", &demo_group, &demo_user]);
    let too_long = "a".repeat(65);

    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "duplicate admin",
            vec!["admin", "create", "owner@demo.test"],
        ),
        (
            "duplicate admin, other case",
            vec!["admin", "create", "OWNER@DEMO.TEST"],
        ),
        ("not an e-mail", vec!["admin", "create", "not-an-email"]),
        (
            "grant to an unknown admin",
            vec!["admin", "grant", "nobody@demo.test", "demo", "write"],
        ),
        (
            "grant on an unknown instance",
            vec!["admin", "grant", "owner@other.test", "nope", "write"],
        ),
        (
            "grant the owner a role on their instance",
            vec!["admin", "grant", "owner@demo.test", "demo", "read"],
        ),
        (
            "deactivate an unknown admin",
            vec!["admin", "deactivate", "nobody@demo.test"],
        ),
        (
            "instance of an unknown owner",
            vec!["instance", "create", "fresh", "--owner", "nobody@x.test"],
        ),
        (
            "duplicate instance, other case",
            vec!["instance", "create", "DEMO", "--owner", "owner@demo.test"],
        ),
        (
            "invalid instance name",
            vec![
                "instance",
                "create",
                "no such!",
                "--owner",
                "owner@demo.test",
            ],
        ),
        (
            "instance name with a dot",
            vec![
                "instance",
                "create",
                "bad.name",
                "--owner",
                "owner@demo.test",
            ],
        ),
        (
            "instance name too long",
            vec![
                "instance",
                "create",
                &too_long,
                "--owner",
                "owner@demo.test",
            ],
        ),
        (
            "API key of an unknown instance",
            vec!["apikey", "create", "nope"],
        ),
        (
            "revoke an unknown API key",
            vec!["apikey", "revoke", "demo", "999999"],
        ),
        (
            "user of an unknown instance",
            vec!["user", "create", "nope", "carol"],
        ),
        (
            "duplicate username",
            vec!["user", "create", "demo", "alice"],
        ),
        (
            "group of an unknown instance",
            vec!["group", "create", "nope", "g"],
        ),
        ("label too long", vec!["group", "create", "demo", &too_long]),
        (
            "delete an unknown group",
            vec!["group", "delete", "demo", "999999"],
        ),
        (
            "delete another instance's group",
            vec!["group", "delete", "demo", &other_group],
        ),
        (
            "member add of another instance's user",
            vec!["member", "add", "demo", &demo_group, &other_user],
        ),
        (
            "member add to another instance's group",
            vec!["member", "add", "demo", &other_group, &demo_user],
        ),
        (
            "duplicate membership",
            vec!["member", "add", "demo", &demo_group, &demo_user],
        ),
        (
            "member add with user id 0",
            vec!["member", "add", "demo", &demo_group, "0"],
        ),
        (
            "seed an unknown instance",
            vec!["seed", "nope", "--groups", "1", "--users", "1"],
        ),
    ];
    for (case, args) in &cases {
        let out = fails(&db, args, 1);
        assert!(
            !out.stderr.contains("panicked"),
            "{case}: an error, not a crash: {}",
            out.stderr
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let db = TestDb::new();
    demo_instance(&db);
    ok(&db, &["admin", "create", "helper@demo.test"]);
    for args in [
        vec!["admin", "grant", "helper@demo.test", "demo", "admin"],
        vec!["admin", "grant", "helper@demo.test", "demo", "owner"],
        vec!["admin", "grant", "helper@demo.test", "demo"],
        vec!["admin", "create"],
        vec!["group", "delete", "demo", "abc"],
        vec!["member", "add", "demo", "1"],
        vec!["seed", "demo", "--groups", "many", "--users", "1"],
        vec!["no-such-command"],
    ] {
        fails(&db, &args, 2);
    }
}

#[test]
fn without_a_database_url_it_says_so() {
    let db = TestDb::new();
    let output = groupsctl_command(db.url())
        .env_remove("DATABASE_URL")
        .args(["user", "create", "demo", "alice"])
        .output()
        .expect("runs");
    let output = CtlOutput::from(output);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(
        output.stderr.to_lowercase().contains("database"),
        "{output:?}"
    );
}

// ---- keys ----------------------------------------------------------------------------------

#[test]
fn keys_are_stored_only_as_sha256_digests() {
    let db = TestDb::new();
    let admin_out = groupsctl(db.url(), &["admin", "create", "owner@demo.test"]);
    let account_key = admin_out.json()["key"].as_str().expect("a key").to_owned();
    ok(
        &db,
        &["instance", "create", "demo", "--owner", "owner@demo.test"],
    );
    let api_out = groupsctl(db.url(), &["apikey", "create", "demo", "--ignore-acl"]);
    let api_key = api_out.json()["key"].as_str().expect("a key").to_owned();
    // Shown once, on stdout only.
    assert!(!admin_out.stderr.contains(&account_key));
    assert!(!api_out.stderr.contains(&api_key));

    let mut conn = db.conn();
    for key in [&account_key, &api_key] {
        for table in tables(&mut conn) {
            // A row as text shows every column, bytea as hex: a key stored in clear, or as
            // its raw bytes, would show up here.
            let found = count(
                &mut conn,
                &format!(
                    "SELECT count(*) AS n FROM \"{table}\" t WHERE lower(t::text) LIKE '%{key}%'"
                ),
            );
            assert_eq!(found, 0, "a key is stored in {table}");
        }
    }
    let digest_of = |key: &str| format!("sha256(convert_to('{key}', 'UTF8'))");
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM admins WHERE key_digest = {}",
                digest_of(&account_key)
            )
        ),
        1,
        "the account key's SHA-256 digest is stored"
    );
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM api_keys WHERE key_digest = {}",
                digest_of(&api_key)
            )
        ),
        1,
        "the API key's SHA-256 digest is stored"
    );
}

// ---- end to end ----------------------------------------------------------------------------

async fn remove(
    client: &GroupMembersClient<tonic::transport::Channel>,
    group: i64,
    user: i64,
    key: &str,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(RemoveGroupMemberRequest {
        instance_name: "demo".to_owned(),
        group_id: group,
        user_id: user,
        allow_missing: false,
        parent: 0,
    });
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().expect("metadata"));
    client.clone().remove_group_member(request).await.map(drop)
}

fn reason(status: &tonic::Status) -> (Code, String) {
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default();
    (status.code(), reason)
}

#[tokio::test]
async fn provisioned_keys_work_against_the_real_server() {
    let db = TestDb::new();
    let owner_key = demo_instance(&db);
    let group = id(&ok(&db, &["group", "create", "demo", "admins"]), "id");
    let users: Vec<i64> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| {
            let user = id(&ok(&db, &["user", "create", "demo", name]), "id");
            ok(
                &db,
                &[
                    "member",
                    "add",
                    "demo",
                    &group.to_string(),
                    &user.to_string(),
                ],
            );
            user
        })
        .collect();
    let helper_key = ok(&db, &["admin", "create", "helper@demo.test"])["key"]
        .as_str()
        .expect("a key")
        .to_owned();
    let api_key = ok(&db, &["apikey", "create", "demo", "--ignore-acl"])["key"]
        .as_str()
        .expect("a key")
        .to_owned();

    let server = spawn_server(db.url(), &[]);
    let channel = tonic::transport::Channel::from_shared(server.url())
        .expect("URL")
        .connect()
        .await
        .expect("connect");
    let client = GroupMembersClient::new(channel);
    let is_member = |user: i64| {
        count(
            &mut db.conn(),
            &format!(
                "SELECT count(*) AS n FROM memberships WHERE group_id = {group} AND user_id = {user}"
            ),
        ) == 1
    };

    // The owner's account key from `admin create` removes.
    remove(&client, group, users[0], &owner_key)
        .await
        .expect("the owner removes");
    assert!(!is_member(users[0]));

    // An API key from `apikey create` may not; an admin without a role may not either.
    let denied = remove(&client, group, users[1], &api_key)
        .await
        .expect_err("API keys may not remove");
    assert_eq!(
        reason(&denied),
        (Code::PermissionDenied, "PERMISSION_DENIED".to_owned())
    );
    let denied = remove(&client, group, users[1], &helper_key)
        .await
        .expect_err("no role yet");
    assert_eq!(
        reason(&denied),
        (Code::PermissionDenied, "PERMISSION_DENIED".to_owned())
    );

    // `admin grant ... write` lets the helper remove; `admin deactivate` stops the key.
    ok(
        &db,
        &["admin", "grant", "helper@demo.test", "demo", "write"],
    );
    remove(&client, group, users[1], &helper_key)
        .await
        .expect("a write admin removes");
    assert!(!is_member(users[1]));
    ok(&db, &["admin", "deactivate", "helper@demo.test"]);
    let invalid = remove(&client, group, users[2], &helper_key)
        .await
        .expect_err("a deactivated admin's key");
    assert_eq!(
        reason(&invalid),
        (Code::Unauthenticated, "API_KEY_INVALID".to_owned())
    );

    // `apikey revoke` makes the API key unknown.
    let api_key_id = count(&mut db.conn(), "SELECT max(id) AS n FROM api_keys").to_string();
    ok(&db, &["apikey", "revoke", "demo", &api_key_id]);
    let invalid = remove(&client, group, users[2], &api_key)
        .await
        .expect_err("a revoked key");
    assert_eq!(
        reason(&invalid),
        (Code::Unauthenticated, "API_KEY_INVALID".to_owned())
    );
    assert!(is_member(users[2]));
}

#[test]
fn health_exits_0_only_while_the_server_is_serving() {
    let db = TestDb::new();
    let server = spawn_server(db.url(), &["--health-interval-ms", "100"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let serving = loop {
        let out = groupsctl(db.url(), &["health", &server.url()]);
        if out.success() {
            break out;
        }
        assert!(Instant::now() < deadline, "never SERVING: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(serving.json(), json!({ "status": "SERVING" }));

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("address")
    };
    let out = groupsctl(db.url(), &["health", &format!("http://{closed}")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

// ---- audit ---------------------------------------------------------------------------------

#[test]
fn audit_prints_an_instance_s_newest_events_by_filter_and_limit() {
    let db = TestDb::new();
    demo_instance(&db);
    ok(&db, &["admin", "create", "owner@other.test"]);
    ok(
        &db,
        &["instance", "create", "other", "--owner", "owner@other.test"],
    );
    let mut conn = db.conn();
    // Events as the removal statement writes them (the removals themselves are tested against
    // the services): three of demo, one of another instance.
    conn.batch_execute(
        "INSERT INTO membership_events (instance_id, group_id, user_id, actor_admin_id, actor_role, request_id, at) \
         SELECT i.id, e.g, e.u, i.owner_id, e.role, e.rid, timestamptz '2026-11-30 12:00:00.123456+00' + e.g * interval '1 second' \
         FROM instances i, (VALUES ('demo', 1, 7, 'owner', 'r-1'), ('demo', 2, 7, 'full', 'r-2'), \
                                   ('demo', 3, 8, 'write', 'r-3'), ('other', 1, 7, 'owner', 'r-x')) \
                           AS e(instance, g, u, role, rid) \
         WHERE i.name = e.instance ORDER BY e.g, e.instance",
    )
    .expect("events");
    let request_ids = |value: &Value| -> Vec<String> {
        value["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| {
                event["request_id"]
                    .as_str()
                    .expect("a request id")
                    .to_owned()
            })
            .collect()
    };
    let all = ok(&db, &["audit", "demo"]);
    assert_eq!(fields(&all), ["events"]);
    assert_eq!(request_ids(&all), ["r-3", "r-2", "r-1"]);
    let newest = &all["events"][0];
    assert_eq!(
        fields(newest),
        ["action", "actor", "at", "group", "id", "request_id", "user"]
    );
    assert_eq!(newest["action"], "membership.removed");
    assert_eq!(
        (newest["group"].clone(), newest["user"].clone()),
        (json!(3), json!(8))
    );
    assert_eq!(newest["actor"]["role"], "write");
    assert_eq!(newest["at"], "2026-11-30T12:00:03.123456Z");
    assert!(newest["id"].as_i64() > all["events"][1]["id"].as_i64());
    assert_eq!(
        request_ids(&ok(&db, &["audit", "DEMO", "--user", "7"])),
        ["r-2", "r-1"]
    );
    assert_eq!(
        request_ids(&ok(&db, &["audit", "demo", "--group", "1"])),
        ["r-1"]
    );
    assert_eq!(
        request_ids(&ok(&db, &["audit", "demo", "--limit", "1"])),
        ["r-3"]
    );
    assert_eq!(request_ids(&ok(&db, &["audit", "other"])), ["r-x"]);
    fails(&db, &["audit", "nosuch"], 1);
    fails(&db, &["audit", "demo", "--limit", "0"], 1);
    fails(&db, &["audit", "demo", "--group", "0"], 1);
    fails(&db, &["audit", "demo", "--limit", "x"], 2);
}
