//! Keys never appear in the server's logs, whatever the key, wherever it travels, at the most
//! verbose log level.

use groups_proto::GroupMembersClient;
use groups_testkit::{Role, ServiceCommand, World};

use crate::{NO_SUCH_ID, UNKNOWN_ACCOUNT_KEY, channel, request, send, stop};

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
