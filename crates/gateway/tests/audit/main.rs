//! The audit trail, as operators and callers see it, against the real processes and database:
//! one event per membership removed (and none otherwise), written with the removal itself;
//! who may read it; pages that stay consistent while removals continue (`listing`); the request
//! id that joins an event to both processes' logs; retention.

mod listing;

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use groups_proto::{
    AuditClient, GroupMembersClient, ListMembershipEventsRequest, MembershipEvent,
    RemoveGroupMemberRequest,
};
use groups_testkit::{
    Role, ServiceCommand, ServiceProcess, UserId, World, spawn_json_logging_stack, spawn_stack,
};
use serde_json::{Value, json};
use tonic::Status;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(10);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// A GET of `url` with `key`.
pub(crate) async fn get(url: &str, key: &str) -> reqwest::Response {
    let request = http().get(url).header("X-API-KEY", key);
    request.send().await.expect("an answer")
}

/// The JSON body of a GET of `url` with `key`.
pub(crate) async fn get_json(url: &str, key: &str) -> Value {
    get(url, key).await.json().await.expect("JSON")
}

/// A DELETE of `url`, with `key` unless it is empty.
async fn delete(url: &str, key: &str) -> reqwest::Response {
    let mut request = http().delete(url);
    if !key.is_empty() {
        request = request.header("X-API-KEY", key);
    }
    request.send().await.expect("an answer")
}

/// A fresh user of "demo", member of the demo group.
pub(crate) fn new_member(world: &World, username: &str) -> UserId {
    let user = world.add_user("demo", username);
    world.add_member("demo", world.demo.group, user);
    user
}

pub(crate) async fn channel(server: &ServiceProcess) -> Channel {
    Channel::from_shared(server.url())
        .expect("a URL")
        .connect()
        .await
        .expect("the server accepts connections")
}

pub(crate) fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().expect("a metadata value"));
    request
}

/// A row of `membership_events`, read with SQL of this suite's own.
#[derive(diesel::QueryableByName)]
pub(crate) struct EventRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) group_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    user_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    actor_admin_id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    actor_role: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    request_id: String,
}

/// Every event row, oldest first.
pub(crate) fn event_rows(world: &World) -> Vec<EventRow> {
    diesel::sql_query(
        "SELECT id, group_id, user_id, actor_admin_id, actor_role, request_id \
         FROM membership_events ORDER BY id",
    )
    .load(&mut world.conn())
    .expect("the events")
}

pub(crate) async fn list(
    audit: &AuditClient<Channel>,
    key: &str,
    message: ListMembershipEventsRequest,
) -> Result<groups_proto::ListMembershipEventsResponse, Status> {
    audit
        .clone()
        .list_membership_events(with_key(message, key))
        .await
        .map(tonic::Response::into_inner)
}

pub(crate) fn listing(page_size: i32, page_token: &str) -> ListMembershipEventsRequest {
    ListMembershipEventsRequest {
        instance_name: "demo".into(),
        page_size,
        page_token: page_token.into(),
        ..Default::default()
    }
}

pub(crate) async fn remove(
    members: &GroupMembersClient<Channel>,
    key: &str,
    group: i64,
    user: i64,
    allow_missing: bool,
) -> Result<(), Status> {
    let message = RemoveGroupMemberRequest {
        instance_name: "demo".into(),
        group_id: group,
        user_id: user,
        allow_missing,
        parent: 0,
    };
    members
        .clone()
        .remove_group_member(with_key(message, key))
        .await
        .map(drop)
}

#[tokio::test]
async fn one_event_per_removal_and_none_for_anything_else() {
    let world = World::new();
    let stack = spawn_stack(&world.db, &[]);
    let members = GroupMembersClient::new(channel(&stack.server).await);
    let demo = &world.demo;
    let group = demo.group.get();
    let write = world.add_admin("demo", Some(Role::Write));
    let read = world.add_admin("demo", Some(Role::Read));
    let base = format!("{}/v1.1/instances/demo", stack.url());

    // A 204 through the group side, with the client's request id.
    let before = database_now_micros(&world);
    let owners = format!("{base}/groups/{group}/users/{}/", demo.user);
    let response = http()
        .delete(&owners)
        .header("X-API-KEY", &demo.owner.key)
        .header("X-Request-Id", "audit-owner-1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 204);
    let events = event_rows(&world);
    let [event] = &events[..] else {
        panic!("one event, not {}", events.len())
    };
    let ids = (event.group_id, event.user_id, event.actor_admin_id);
    assert_eq!(ids, (group, demo.user.get(), demo.owner.id));
    let (role, id) = (event.actor_role.as_str(), event.request_id.as_str());
    assert_eq!((role, id), ("owner", "audit-owner-1"));

    // Nothing for a 404 (already removed), an allow_missing no-op, or refused calls.
    assert_eq!(delete(&owners, &demo.owner.key).await.status(), 404);
    let missing = remove(&members, &demo.owner.key, group, demo.user.get(), true).await;
    missing.expect("allow_missing succeeds with nothing to remove");
    let kept = new_member(&world, "kept");
    let kepts = format!("{base}/users/{kept}/groups/{group}/");
    for key in [read.key.as_str(), ""] {
        assert_eq!(delete(&kepts, key).await.status(), 403);
    }
    let no_group = format!("{base}/groups/987654321/users/{kept}/");
    assert_eq!(delete(&no_group, &demo.owner.key).await.status(), 404);
    assert_eq!(event_rows(&world).len(), 1, "no event without a removal");

    // The user side and gRPC write events too, with the actor's role at the time.
    let response = delete(&kepts, &write.key).await;
    assert_eq!(response.status(), 204);
    let made_id = response.headers()["x-request-id"].to_str().expect("text");
    let third = new_member(&world, "third");
    let removed = remove(&members, &write.key, group, third.get(), false).await;
    removed.expect("a write admin removes");
    let events = event_rows(&world);
    assert_eq!(events.len(), 3);
    let (kept_event, third_event) = (&events[1], &events[2]);
    let role = kept_event.actor_role.as_str();
    assert_eq!(
        (kept_event.user_id, kept_event.actor_admin_id, role),
        (kept.get(), write.id, "write")
    );
    assert_eq!(
        kept_event.request_id, made_id,
        "a made id is the one the gateway answered with"
    );
    assert_eq!(
        (third_event.user_id, third_event.actor_role.as_str()),
        (third.get(), "write")
    );
    let increasing = events[0].id < kept_event.id && kept_event.id < third_event.id;
    assert!(increasing, "ids increase");
    let after = database_now_micros(&world);

    // The listing shows them newest first, in SPEC.md's shape.
    let page = get_json(&format!("{base}/audit/memberships/"), &demo.owner.key).await;
    assert!(page["next"].is_null() && page["prev"].is_null(), "{page}");
    let objects = page["objects"].as_array().expect("objects");
    assert_eq!(objects.len(), 3);
    // The oldest: exactly these fields, and a time.
    let mut first = objects[2].clone();
    let at = first.as_object_mut().and_then(|o| o.remove("at"));
    let at = at.as_ref().and_then(Value::as_str).expect("a timestamp");
    let actor = json!({ "admin": demo.owner.id, "role": "owner" });
    assert_eq!(
        first,
        json!({ "id": events[0].id, "action": "membership.removed", "group": group,
                "user": demo.user.get(), "actor": actor, "request_id": "audit-owner-1" })
    );
    assert_eq!(at.len(), "2026-11-30T12:00:00.123456Z".len(), "{at}");
    assert!(
        at.ends_with('Z') && at.as_bytes()[10] == b'T' && at.as_bytes()[19] == b'.',
        "{at}"
    );
    let at_micros = micros_of(&world, at);
    assert!(
        before <= at_micros && at_micros <= after,
        "{before} <= {at_micros} <= {after}"
    );
    // The same events over gRPC, newest first, with their timestamp to the microsecond.
    let audit = AuditClient::new(channel(&stack.server).await);
    let listed = list(&audit, &demo.owner.key, listing(0, "")).await;
    let listed = listed.expect("a page");
    let ids: Vec<i64> = listed.events.iter().map(|e| e.id).collect();
    assert_eq!(ids, [third_event.id, kept_event.id, events[0].id]);
    let oldest: &MembershipEvent = &listed.events[2];
    let timestamp = oldest.at.expect("a timestamp");
    assert_eq!(
        timestamp.seconds * 1_000_000 + i64::from(timestamp.nanos / 1000),
        at_micros
    );
    assert_eq!(listed.next_page_token, "");
}

/// The database's clock now, in microseconds since the epoch (the events' clock).
pub(crate) fn database_now_micros(world: &World) -> i64 {
    micros_of(world, "now")
}

fn micros_of(world: &World, timestamp: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Micros {
        #[diesel(sql_type = BigInt)]
        us: i64,
    }
    let micros: Micros = diesel::sql_query(
        "SELECT (extract(epoch FROM CASE WHEN $1 = 'now' THEN clock_timestamp() \
                ELSE $1::timestamptz END) * 1000000)::int8 AS us",
    )
    .bind::<Text, _>(timestamp)
    .get_result(&mut world.conn())
    .expect("a timestamp");
    micros.us
}

#[tokio::test]
async fn a_removal_whose_statement_fails_leaves_neither_the_delete_nor_the_event() {
    let world = World::new();
    let stack = spawn_stack(&world.db, &[]);
    let doomed = new_member(&world, "doomed");
    // Only this test's database: the event of this one user cannot be written.
    world
        .conn()
        .batch_execute(&format!(
            "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_event BEFORE INSERT ON membership_events FOR EACH ROW \
               WHEN (NEW.user_id = {doomed}) EXECUTE FUNCTION refuse_event();"
        ))
        .expect("the trigger");
    let (group, key) = (world.demo.group, &world.demo.owner.key);
    let removal = |user: UserId| {
        let url = format!(
            "{}/v1.1/instances/demo/groups/{group}/users/{user}/",
            stack.url()
        );
        async move { delete(&url, key).await.status() }
    };
    assert_eq!(removal(doomed).await, 503);
    assert!(
        world.is_member(group, doomed),
        "the delete was rolled back with the event"
    );
    assert!(event_rows(&world).is_empty());
    // The failure was the statement's, not the connection's: the next removal works.
    assert_eq!(removal(new_member(&world, "fine")).await, 204);
    assert_eq!(event_rows(&world).len(), 1);
}

#[tokio::test]
async fn the_request_id_of_an_event_is_in_both_processes_log_lines() {
    let world = World::new();
    let stack = spawn_json_logging_stack(world.url());
    let demo = &world.demo;
    let url = format!(
        "{}/v1.1/instances/demo/groups/{}/users/{}/",
        stack.url(),
        demo.group,
        demo.user
    );
    let response = delete(&url, &demo.owner.key).await;
    assert_eq!(response.status(), 204);
    let events = event_rows(&world);
    let id = &events[0].request_id;
    assert_eq!(response.headers()["x-request-id"], id.as_str());
    for (process, service) in [("gateway", &stack.gateway), ("server", &stack.server)] {
        let logged = |logs: &str| {
            logs.lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .any(|line| {
                    line["spans"]
                        .as_array()
                        .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == id.as_str()))
                })
        };
        let deadline = Instant::now() + WAIT;
        while !logged(&service.logs()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            logged(&service.logs()),
            "{process} logged no line with request id {id}"
        );
    }
}

#[tokio::test]
async fn retention_deletes_only_what_is_older_than_the_bound() {
    let world = World::new();
    // Events of every age: 10 days, 2 days and a minute old.
    world
        .conn()
        .batch_execute(&format!(
            "INSERT INTO membership_events (instance_id, group_id, user_id, actor_admin_id, actor_role, request_id, at) \
             VALUES ({i}, 1, 1, {a}, 'owner', 'old', now() - interval '10 days'), \
                    ({i}, 1, 2, {a}, 'owner', 'middle', now() - interval '2 days'), \
                    ({i}, 1, 3, {a}, 'owner', 'new', now() - interval '1 minute')",
            i = world.demo.id,
            a = world.demo.owner.id
        ))
        .expect("old events");
    let kept = |world: &World| -> Vec<String> {
        event_rows(world)
            .into_iter()
            .map(|e| e.request_id)
            .collect()
    };
    // A server that prunes events older than `days` every 100 ms (a fast interval).
    let pruning = |days: &str| {
        let args = [
            "--audit-retention-days",
            days,
            "--audit-prune-interval-ms",
            "100",
        ];
        ServiceCommand::server(world.url()).args(args).spawn()
    };
    // 0 keeps everything, even across many runs of the prune interval.
    let forever = pruning("0");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(kept(&world), ["old", "middle", "new"]);
    drop(forever);
    let _pruning = pruning("5");
    let deadline = Instant::now() + WAIT;
    while kept(&world).len() == 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept(&world), ["middle", "new"]);
}
