//! Keys never appear in the server's logs (either format), whatever the key, wherever it
//! travels, at the most verbose log level; nor in a status message or its details.

use groups_proto::GroupMembersClient;
use groups_testkit::{ServiceCommand, World};

use crate::{NO_SUCH_ID, channel, request, send, stop};

#[tokio::test]
async fn keys_never_appear_in_the_logs() {
    for format in ["human", "json"] {
        keys_never_appear_in_logs_of_format(format).await;
    }
}

async fn keys_never_appear_in_logs_of_format(format: &str) {
    let world = World::new();
    // The most verbose logging there is.
    let server = ServiceCommand::server(world.url())
        .verbose_logs(format)
        .spawn();
    let client = GroupMembersClient::new(channel(&server).await);
    let demo = &world.demo;
    let keys = world.keys_of_every_kind();
    for key in &keys {
        for metadata in [
            ("x-api-key", key.clone()),
            ("authorization", format!("Bearer {key}")),
        ] {
            let refused = send(
                &client,
                request("demo", demo.group.get(), NO_SUCH_ID),
                &[(metadata.0, &metadata.1)],
            )
            .await
            .expect_err("nobody is removed");
            // Nothing of the key in what the caller gets back either.
            let answer = format!("{} {:?}", refused.message(), refused.details());
            assert!(!answer.contains(&key[..20]), "a key in a status: {answer}");
            assert!(!String::from_utf8_lossy(refused.details()).contains(&key[..20]));
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
    if format == "json" {
        assert!(
            logs.lines().filter(|l| l.starts_with('{')).count() > 10,
            "JSON lines"
        );
    }
    for key in &keys {
        assert!(!logs.contains(key.as_str()), "a key is in the logs");
        // Not even half of one.
        assert!(!logs.contains(&key[..20]), "part of a key is in the logs");
    }
}
