//! Keys never appear in the server's logs (either format), whatever the key, wherever it
//! travels, at the most verbose log level; nor in a status message or its details.

use groups_proto::GroupMembersClient;
use groups_testkit::{ServiceCommand, World};

use crate::{NO_SUCH_ID, channel, request, send, stop};

#[tokio::test]
async fn keys_never_appear_in_the_logs() {
    for format in ["human", "json"] {
        let world = World::new();
        let (group, user) = (world.demo.group.get(), world.demo.user.get());
        // The most verbose logging there is.
        let mut server = ServiceCommand::server(world.url())
            .verbose_logs(format)
            .spawn();
        let client = GroupMembersClient::new(channel(&server).await);
        let keys = world.keys_of_every_kind();
        for key in &keys {
            let authorization = format!("Bearer {key}");
            for metadata in [
                ("x-api-key", key.as_str()),
                ("authorization", &authorization),
            ] {
                let message = request("demo", group, NO_SUCH_ID);
                let refused = send(&client, message, &[metadata]).await;
                let refused = refused.expect_err("nobody is removed");
                // Nothing of the key in what the caller gets back either.
                let answer = format!("{} {:?}", refused.message(), refused.details());
                assert!(!answer.contains(&key[..20]), "a key in a status: {answer}");
                assert!(!String::from_utf8_lossy(refused.details()).contains(&key[..20]));
            }
        }
        let owner = [("x-api-key", world.demo.owner.key.as_str())];
        let removed = send(&client, request("demo", group, user), &owner).await;
        removed.expect("removed");
        drop(client);
        stop(&mut server).await;
        let logs = server.logs();
        assert!(logs.contains("RemoveGroupMember"), "the run was logged");
        let json_lines = logs.lines().filter(|l| l.starts_with('{')).count();
        assert!(format != "json" || json_lines > 10, "JSON lines");
        for key in &keys {
            assert!(!logs.contains(key.as_str()), "a key is in the logs");
            // Not even half of one.
            assert!(!logs.contains(&key[..20]), "part of a key is in the logs");
        }
    }
}
