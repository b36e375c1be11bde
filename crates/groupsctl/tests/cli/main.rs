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

mod audit;
mod end_to_end;
mod errors;
mod provisioning;

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

/// `member add demo GROUP USER`, which must succeed; returns its output.
fn add_member(db: &TestDb, group: i64, user: i64) -> Value {
    ok(
        db,
        &[
            "member",
            "add",
            "demo",
            &group.to_string(),
            &user.to_string(),
        ],
    )
}

/// An admin "owner@demo.test" owning instance "demo"; returns the admin's key.
fn demo_instance(db: &TestDb) -> String {
    owned_instance(db, "demo")
}

/// An admin "owner@`name`.test" owning instance `name`; returns the admin's key.
fn owned_instance(db: &TestDb, name: &str) -> String {
    let owner = format!("owner@{name}.test");
    let admin = ok(db, &["admin", "create", &owner]);
    ok(db, &["instance", "create", name, "--owner", &owner]);
    admin["key"].as_str().expect("a key").to_owned()
}
