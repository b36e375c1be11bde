//! Reading the trail: only an instance's owner and full admins, only their instance's events,
//! in pages that are one snapshot while removals continue.

use groups_proto::{
    AuditClient, GroupMembersClient, ListMembershipEventsRequest, RemoveGroupMemberRequest,
};
use groups_testkit::{Role, World, spawn_stack};
use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    channel, database_now_micros, event_rows, get, get_json, list, listing, remove, with_key,
};

/// The trail of "demo", after the gateway's address.
const AUDIT: &str = "/v1.1/instances/demo/audit/memberships/";

#[tokio::test]
async fn only_owners_and_full_admins_read_their_own_instance_s_trail() {
    let world = World::new();
    let stack = spawn_stack(&world.db, &[]);
    let other = world.add_instance("other");
    let members = GroupMembersClient::new(channel(&stack.server).await);
    let demo = &world.demo;
    let (group, user) = (demo.group.get(), demo.user.get());
    let removed = remove(&members, &demo.owner.key, group, user, false).await;
    removed.expect("removed in demo");
    let in_other = RemoveGroupMemberRequest {
        instance_name: "other".into(),
        group_id: other.group.get(),
        user_id: other.user.get(),
        ..Default::default()
    };
    let in_other = with_key(in_other, &other.owner.key);
    let removed = members.clone().remove_group_member(in_other).await;
    removed.expect("removed in other");
    assert_eq!(event_rows(&world).len(), 2);

    let full = world.add_admin("demo", Some(Role::Full));
    let write = world.add_admin("demo", Some(Role::Write));
    let read = world.add_admin("demo", Some(Role::Read));
    let api_key = world.add_api_key("demo", true);
    let url = stack.url() + AUDIT;
    let audit = AuditClient::new(channel(&stack.server).await);
    for (who, key) in [("owner", &demo.owner.key), ("full", &full.key)] {
        let page = get_json(&url, key).await;
        let objects = page["objects"].as_array().expect("objects");
        let groups: Vec<&Value> = objects.iter().map(|o| &o["group"]).collect();
        let demos = [&Value::from(group)];
        assert_eq!(groups, demos, "{who} sees only demo's event");
        let listed = list(&audit, key, listing(0, "")).await.expect("a page");
        assert_eq!(listed.events.len(), 1, "{who}");
    }
    for (who, key) in [
        ("write", &write.key),
        ("read", &read.key),
        ("API key", &api_key.key),
        ("other's owner", &other.owner.key),
    ] {
        let response = get(&url, key).await;
        assert_eq!(response.status(), 403, "{who}");
        assert_eq!(
            response.text().await.expect("a body"),
            r#"{"detail":"You do not have permission to perform this action."}"#,
            "{who}"
        );
        let status = list(&audit, key, listing(0, "")).await.expect_err(who);
        assert_eq!(status.code(), Code::PermissionDenied, "{who}");
    }
    // Another instance's group filter on demo shows nothing of the other instance.
    let filtered = ListMembershipEventsRequest {
        group_id: other.group.get(),
        ..listing(0, "")
    };
    let filtered = list(&audit, &demo.owner.key, filtered).await;
    assert!(filtered.expect("a page").events.is_empty());
}

#[tokio::test]
async fn pages_are_one_snapshot_while_removals_continue() {
    let world = World::new();
    let stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
    let seeded = world.seed("demo", 2, 60);
    let key = world.demo.owner.key.clone();
    let members = GroupMembersClient::new(channel(&stack.server).await);
    let (first_group, first_user) = (seeded.groups.0, seeded.users.0);
    // 40 removals before the listing starts.
    for user in first_user..first_user + 40 {
        let removed = remove(&members, &key, first_group, user, false).await;
        removed.expect("removed");
    }
    let audit = AuditClient::new(channel(&stack.server).await);
    let page = list(&audit, &key, listing(7, "")).await;
    let page = page.expect("the first page");
    let listed_at = database_now_micros(&world);
    assert_eq!(page.events.len(), 7);
    // Removals continue while the listing pages on, through both edges.
    let more = tokio::spawn({
        let members = members.clone();
        let key = key.clone();
        async move {
            for user in first_user..first_user + 60 {
                let removed = remove(&members, &key, first_group + 1, user, false).await;
                removed.expect("removed");
            }
        }
    });
    let mut seen: Vec<i64> = page.events.iter().map(|e| e.id).collect();
    let mut token = page.next_page_token;
    while !token.is_empty() {
        let page = list(&audit, &key, listing(7, &token))
            .await
            .expect("a page");
        seen.extend(page.events.iter().map(|e| e.id));
        token = page.next_page_token;
    }
    more.await.expect("the removals");
    // Newest first, nothing repeated, nothing skipped: exactly the 40 events that were there.
    let before: Vec<i64> = event_rows(&world)
        .into_iter()
        .filter(|e| e.group_id == first_group)
        .map(|e| e.id)
        .rev()
        .collect();
    assert_eq!(seen, before);
    assert_eq!(event_rows(&world).len(), 100);
    // A new listing shows the events that arrived meanwhile, all after the first page.
    let fresh = list(&audit, &key, listing(1000, "")).await.expect("a page");
    assert_eq!(fresh.events.len(), 100);
    let newest = fresh.events[0].at.expect("a timestamp");
    assert!(newest.seconds * 1_000_000 + i64::from(newest.nanos / 1000) > listed_at);

    // REST pages the same way, through `next`, and keeps the filters in it.
    let mut url = format!(
        "{}/v1/instances/demo/audit/memberships/?group={first_group}&page_size=9",
        stack.url()
    );
    let mut rest_seen = Vec::new();
    loop {
        let page = get_json(&url, &key).await;
        let objects = page["objects"].as_array().expect("objects");
        rest_seen.extend(objects.iter().map(|o| o["id"].as_i64().expect("an id")));
        match page["next"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with("/v1/instances/demo/audit/memberships/?page_size=9&group="),
                    "{next}"
                );
                assert!(!next.contains("api_key"));
                url = format!("{}{next}", stack.url());
            }
            None => break,
        }
    }
    assert_eq!(rest_seen, before);

    // A token is bound to its filters; anything else is the caller's error.
    let token = list(&audit, &key, listing(7, "")).await.expect("a page");
    let mismatched = ListMembershipEventsRequest {
        user_id: first_user,
        ..listing(7, &token.next_page_token)
    };
    let status = list(&audit, &key, mismatched).await;
    let status = status.expect_err("a mismatched token");
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_details_bad_request().expect("BadRequest");
    assert_eq!(details.field_violations[0].field, "page_token");
    for query in [
        "page_token=nonsense",
        "page_size=101",
        "page_size=0",
        "group=-3",
        "user=abc",
    ] {
        let response = get(&format!("{}?{query}", stack.url() + AUDIT), &key).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(
            response.text().await.expect("a body"),
            r#"{"detail":"Incorrect page parameter provided."}"#
        );
    }
    let negative = list(&audit, &key, listing(-1, "")).await;
    let status = negative.expect_err("a negative size");
    assert_eq!(status.code(), Code::InvalidArgument);
    let large = list(&audit, &key, listing(5000, "")).await;
    assert_eq!(large.expect("read as 1000").events.len(), 100);
}
