//! The audit trail, as operators and callers see it, against the real processes and database:
//! one event per membership removed (and none otherwise), written with the removal itself;
//! who may read it; pages that stay consistent while removals continue (`listing`); the request
//! id that joins an event to both processes' logs; retention.

mod listing;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use groups_proto::{
    AuditClient, GroupMembersClient, ListMembershipEventsRequest, MembershipEvent,
    RemoveGroupMemberRequest,
};
use groups_testkit::{
    Role, ServiceCommand, ServiceProcess, UserId, World, spawn_json_logging_stack, spawn_stack,
};
use serde_json::Value;
use tonic::Status;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// The JSON body of a GET of `url` with `key`.
pub(crate) async fn get_json(url: &str, key: &str) -> Value {
    http()
        .get(url)
        .header("X-API-KEY", key)
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON")
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

/// Every event row, oldest first, as `(id, group, user, admin, role, request id)`.
pub(crate) fn event_rows(world: &World) -> Vec<(i64, i64, i64, i64, String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        group_id: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        user_id: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        actor_admin_id: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        actor_role: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        request_id: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT id, group_id, user_id, actor_admin_id, actor_role, request_id \
         FROM membership_events ORDER BY id",
    )
    .load(&mut world.conn())
    .expect("the events");
    rows.into_iter()
        .map(|r| {
            (
                r.id,
                r.group_id,
                r.user_id,
                r.actor_admin_id,
                r.actor_role,
                r.request_id,
            )
        })
        .collect()
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
    let response = http()
        .delete(format!("{base}/groups/{group}/users/{}/", demo.user))
        .header("X-API-KEY", &demo.owner.key)
        .header("X-Request-Id", "audit-owner-1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 204);
    let events = event_rows(&world);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.1, e.2, e.3, e.4.as_str(), e.5.as_str()))
            .collect::<Vec<_>>(),
        [(
            group,
            demo.user.get(),
            demo.owner.id,
            "owner",
            "audit-owner-1"
        )]
    );

    // Nothing for a 404 (already removed), an allow_missing no-op, or refused calls.
    let repeat = http()
        .delete(format!("{base}/groups/{group}/users/{}/", demo.user))
        .header("X-API-KEY", &demo.owner.key)
        .send()
        .await
        .expect("an answer");
    assert_eq!(repeat.status(), 404);
    remove(&members, &demo.owner.key, group, demo.user.get(), true)
        .await
        .expect("allow_missing succeeds with nothing to remove");
    let kept = new_member(&world, "kept");
    for (key, expected) in [(read.key.as_str(), 403), ("", 403)] {
        let mut request = http().delete(format!("{base}/users/{kept}/groups/{group}/"));
        if !key.is_empty() {
            request = request.header("X-API-KEY", key);
        }
        assert_eq!(request.send().await.expect("an answer").status(), expected);
    }
    let no_group = http()
        .delete(format!("{base}/groups/987654321/users/{kept}/"))
        .header("X-API-KEY", &demo.owner.key)
        .send()
        .await
        .expect("an answer");
    assert_eq!(no_group.status(), 404);
    assert_eq!(event_rows(&world).len(), 1, "no event without a removal");

    // The user side and gRPC write events too, with the actor's role at the time.
    let response = http()
        .delete(format!("{base}/users/{kept}/groups/{group}/"))
        .header("X-API-KEY", &write.key)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 204);
    let made_id = response.headers()["x-request-id"]
        .to_str()
        .expect("text")
        .to_owned();
    let third = new_member(&world, "third");
    remove(&members, &write.key, group, third.get(), false)
        .await
        .expect("a write admin removes");
    let events = event_rows(&world);
    assert_eq!(events.len(), 3);
    assert_eq!(
        (events[1].2, events[1].3, events[1].4.as_str()),
        (kept.get(), write.id, "write")
    );
    assert_eq!(
        events[1].5, made_id,
        "a made id is the one the gateway answered with"
    );
    assert_eq!((events[2].2, events[2].4.as_str()), (third.get(), "write"));
    assert!(
        events[0].0 < events[1].0 && events[1].0 < events[2].0,
        "ids increase"
    );
    let after = database_now_micros(&world);

    // The listing shows them newest first, in SPEC.md's shape.
    let page = get_json(&format!("{base}/audit/memberships/"), &demo.owner.key).await;
    assert_eq!(
        (page["next"].clone(), page["prev"].clone()),
        (Value::Null, Value::Null)
    );
    let objects = page["objects"].as_array().expect("objects");
    assert_eq!(objects.len(), 3);
    let first = &objects[2];
    assert_eq!(first["id"], events[0].0);
    assert_eq!(first["action"], "membership.removed");
    assert_eq!(first["group"], group);
    assert_eq!(first["user"], demo.user.get());
    assert_eq!(
        first["actor"],
        serde_json::json!({"admin": demo.owner.id, "role": "owner"})
    );
    assert_eq!(first["request_id"], "audit-owner-1");
    let keys: BTreeSet<&str> = first
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["id", "action", "group", "user", "actor", "request_id", "at"])
    );
    let at = first["at"].as_str().expect("a timestamp");
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
    let listed = list(&audit, &demo.owner.key, listing(0, ""))
        .await
        .expect("a page");
    let ids: Vec<i64> = listed.events.iter().map(|e| e.id).collect();
    assert_eq!(ids, [events[2].0, events[1].0, events[0].0]);
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
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        us: i64,
    }
    let micros: Micros = diesel::sql_query(
        "SELECT (extract(epoch FROM CASE WHEN $1 = 'now' THEN clock_timestamp() \
                ELSE $1::timestamptz END) * 1000000)::int8 AS us",
    )
    .bind::<diesel::sql_types::Text, _>(timestamp)
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
    let group = world.demo.group;
    let response = http()
        .delete(format!(
            "{}/v1.1/instances/demo/groups/{group}/users/{doomed}/",
            stack.url()
        ))
        .header("X-API-KEY", &world.demo.owner.key)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 503);
    assert!(
        world.is_member(group, doomed),
        "the delete was rolled back with the event"
    );
    assert!(event_rows(&world).is_empty());
    // The failure was the statement's, not the connection's: the next removal works.
    let fine = new_member(&world, "fine");
    let response = http()
        .delete(format!(
            "{}/v1.1/instances/demo/groups/{group}/users/{fine}/",
            stack.url()
        ))
        .header("X-API-KEY", &world.demo.owner.key)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 204);
    assert_eq!(event_rows(&world).len(), 1);
}

#[tokio::test]
async fn the_request_id_of_an_event_is_in_both_processes_log_lines() {
    let world = World::new();
    let stack = spawn_json_logging_stack(world.url());
    let demo = &world.demo;
    let response = http()
        .delete(format!(
            "{}/v1.1/instances/demo/groups/{}/users/{}/",
            stack.url(),
            demo.group,
            demo.user
        ))
        .header("X-API-KEY", &demo.owner.key)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 204);
    let events = event_rows(&world);
    let id = &events[0].5;
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
    let kept =
        |world: &World| -> Vec<String> { event_rows(world).into_iter().map(|e| e.5).collect() };
    // 0 keeps everything, even across many runs of the (fast) prune interval.
    let forever = ServiceCommand::server(world.url())
        .args([
            "--audit-retention-days",
            "0",
            "--audit-prune-interval-ms",
            "100",
        ])
        .spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(kept(&world), ["old", "middle", "new"]);
    drop(forever);
    let _pruning = ServiceCommand::server(world.url())
        .args([
            "--audit-retention-days",
            "5",
            "--audit-prune-interval-ms",
            "100",
        ])
        .spawn();
    let deadline = Instant::now() + WAIT;
    while kept(&world).len() == 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept(&world), ["middle", "new"]);
}
