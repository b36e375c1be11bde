//! Provisioned keys against the real server, and `health` against a serving and a stopped one.

use super::*;

// ---- end to end ----------------------------------------------------------------------------

/// Removes `user` from `group` of "demo" with `key`; `Err` says the code and the reason.
async fn remove(
    client: &GroupMembersClient<tonic::transport::Channel>,
    group: i64,
    user: i64,
    key: &str,
) -> Result<(), (Code, String)> {
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
    let answer = client.clone().remove_group_member(request).await;
    answer.map(drop).map_err(|status| {
        let info = status.get_details_error_info();
        (
            status.code(),
            info.map(|info| info.reason).unwrap_or_default(),
        )
    })
}

#[tokio::test]
async fn provisioned_keys_work_against_the_real_server() {
    let db = TestDb::new();
    let owner_key = demo_instance(&db);
    let group = id(&ok(&db, "group create demo admins"), "id");
    let users: Vec<i64> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| {
            let user = id(&ok(&db, &format!("user create demo {name}")), "id");
            ok(&db, &format!("member add demo {group} {user}"));
            user
        })
        .collect();
    let helper_key = key_of(&ok(&db, "admin create helper@demo.test"));
    let api_key = key_of(&ok(&db, "apikey create demo --ignore-acl"));

    let server = spawn_server(db.url(), &[]);
    let channel = tonic::transport::Channel::from_shared(server.url())
        .expect("URL")
        .connect()
        .await
        .expect("connect");
    let client = GroupMembersClient::new(channel);
    let denied = || Err((Code::PermissionDenied, "PERMISSION_DENIED".to_owned()));
    let invalid = || Err((Code::Unauthenticated, "API_KEY_INVALID".to_owned()));

    // The owner's account key from `admin create` removes.
    assert_eq!(remove(&client, group, users[0], &owner_key).await, Ok(()));
    assert!(!is_member(&db, group, users[0]));

    // An API key from `apikey create` may not; an admin without a role may not either.
    for key in [&api_key, &helper_key] {
        assert_eq!(remove(&client, group, users[1], key).await, denied());
    }

    // `admin grant ... write` lets the helper remove; `admin deactivate` stops the key.
    ok(&db, "admin grant helper@demo.test demo write");
    assert_eq!(remove(&client, group, users[1], &helper_key).await, Ok(()));
    assert!(!is_member(&db, group, users[1]));
    ok(&db, "admin deactivate helper@demo.test");
    let helper_removes = remove(&client, group, users[2], &helper_key).await;
    assert_eq!(helper_removes, invalid(), "a deactivated admin's key");

    // `apikey revoke` makes the API key unknown.
    let api_key_id = count(&mut db.conn(), "SELECT max(id) FROM api_keys");
    ok(&db, &format!("apikey revoke demo {api_key_id}"));
    let api_key_removes = remove(&client, group, users[2], &api_key).await;
    assert_eq!(api_key_removes, invalid(), "a revoked key");
    assert!(is_member(&db, group, users[2]));
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
