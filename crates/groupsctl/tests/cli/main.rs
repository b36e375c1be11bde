//! `groupsctl` as the scripts of SPEC.md ("Operating it") drive it: the real binary against a
//! fresh PostgreSQL database per test. Each subcommand's exact JSON on stdout and its effect on
//! the tables; errors on stderr with a non-zero exit, nothing on stdout and nothing changed;
//! keys stored only as digests; and a provisioned key that works against the real server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::expression::{SqlLiteral, TypedExpressionType};
use diesel::prelude::*;
use diesel::query_dsl::LoadQuery;
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

/// The value `query` selects, of SQL type `ST`.
fn one<ST, T>(conn: &mut PgConnection, query: &str) -> T
where
    SqlLiteral<ST>: LoadQuery<'static, PgConnection, T>,
    ST: TypedExpressionType,
{
    sql::<ST>(query)
        .get_result(conn)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

fn count(conn: &mut PgConnection, query: &str) -> i64 {
    one::<BigInt, _>(conn, query)
}

fn flag(conn: &mut PgConnection, query: &str) -> Option<bool> {
    one::<Nullable<Bool>, _>(conn, query)
}

fn word(conn: &mut PgConnection, query: &str) -> Option<String> {
    one::<Nullable<Text>, _>(conn, query)
}

/// Every table of the schema.
fn tables(conn: &mut PgConnection) -> Vec<String> {
    sql::<Text>(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .load(conn)
    .expect("the table list")
}

/// Row counts of every table: what "nothing changed" compares.
fn all_counts(db: &TestDb) -> BTreeMap<String, i64> {
    let mut conn = db.conn();
    tables(&mut conn)
        .into_iter()
        .map(|table| {
            let n = count(&mut conn, &format!("SELECT count(*) FROM \"{table}\""));
            (table, n)
        })
        .collect()
}

/// The words of a command line without quoting: `"member add demo 1 2"`.
fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

/// `groupsctl LINE` (see [`words`]); asserts what [`ok_args`] asserts.
#[track_caller]
fn ok(db: &TestDb, line: &str) -> Value {
    ok_args(db, &words(line))
}

/// `groupsctl LINE` (see [`words`]); asserts what [`fails_args`] asserts.
#[track_caller]
fn fails(db: &TestDb, line: &str, code: i32) -> CtlOutput {
    fails_args(db, &words(line), code)
}

/// Runs `groupsctl ARGS`; asserts exit 0 and one JSON object, on one line, on stdout.
#[track_caller]
fn ok_args(db: &TestDb, args: &[&str]) -> Value {
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
fn fails_args(db: &TestDb, args: &[&str], code: i32) -> CtlOutput {
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

/// The keys of a JSON object, sorted (serde_json's map is ordered by key).
fn fields(value: &Value) -> Vec<&str> {
    let object = value.as_object().expect("an object");
    object.keys().map(String::as_str).collect()
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
    owned_instance(db, "demo")
}

/// An admin "owner@`name`.test" owning instance `name`; returns the admin's key.
fn owned_instance(db: &TestDb, name: &str) -> String {
    let owner = format!("owner@{name}.test");
    let key = key_of(&ok(db, &format!("admin create {owner}")));
    ok(db, &format!("instance create {name} --owner {owner}"));
    key
}

/// The `"key"` of `groupsctl`'s answer.
fn key_of(answer: &Value) -> String {
    answer["key"].as_str().expect("a key").to_owned()
}

/// Whether `user` is a member of `group`.
fn is_member(db: &TestDb, group: i64, user: i64) -> bool {
    let query =
        format!("SELECT count(*) FROM memberships WHERE group_id = {group} AND user_id = {user}");
    count(&mut db.conn(), &query) == 1
}
