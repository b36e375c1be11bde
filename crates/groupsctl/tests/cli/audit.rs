//! `audit`: an instance's newest events by filter and limit.

use super::*;

// ---- audit ---------------------------------------------------------------------------------

#[test]
fn audit_prints_an_instance_s_newest_events_by_filter_and_limit() {
    let db = TestDb::new();
    demo_instance(&db);
    owned_instance(&db, "other");
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
    let all = ok(&db, "audit demo");
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
    assert_eq!(request_ids(&ok(&db, "audit DEMO --user 7")), ["r-2", "r-1"]);
    assert_eq!(request_ids(&ok(&db, "audit demo --group 1")), ["r-1"]);
    assert_eq!(request_ids(&ok(&db, "audit demo --limit 1")), ["r-3"]);
    assert_eq!(request_ids(&ok(&db, "audit other")), ["r-x"]);
    fails(&db, "audit nosuch", 1);
    fails(&db, "audit demo --limit 0", 1);
    fails(&db, "audit demo --group 0", 1);
    fails(&db, "audit demo --limit x", 2);
}

/// The request ids of `audit`'s events, in the order printed.
fn request_ids(answer: &Value) -> Vec<&str> {
    let events = answer["events"].as_array().expect("events");
    events
        .iter()
        .map(|event| event["request_id"].as_str().expect("a request id"))
        .collect()
}
