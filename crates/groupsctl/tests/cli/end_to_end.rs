//! Provisioned keys against the real server, and `health` against a serving and a stopped one.

use super::*;

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
            add_member(&db, group, user);
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
