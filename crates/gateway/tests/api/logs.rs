//! Keys never appear in either process's logs, whatever the key, wherever it travels, at the
//! most verbose log level.

use groups_testkit::{Role, ServiceCommand, World};

use crate::{NO_SUCH_ID, UNKNOWN_ACCOUNT_KEY, http_client, member_path, send, stop};

#[tokio::test]
async fn keys_never_appear_in_the_logs() {
    let world = World::new();
    // The most verbose logging there is.
    let server = ServiceCommand::server(world.url())
        .env("RUST_LOG", "trace")
        .spawn();
    let gateway = ServiceCommand::gateway(&server.url())
        .args(["--rate-limit", "0"])
        .env("RUST_LOG", "trace")
        .spawn();
    let http = http_client();
    let demo = &world.demo;
    let keys = [
        demo.owner.key.clone(),
        world.add_api_key("demo", false).key,
        world.add_revoked_api_key("demo", true).key,
        world.add_admin("demo", Some(Role::Read)).key,
        UNKNOWN_ACCOUNT_KEY.to_owned(),
    ];
    let url = format!(
        "{}{}",
        gateway.url(),
        member_path("demo", demo.group, NO_SUCH_ID)
    );
    for key in &keys {
        for request in [
            http.delete(&url).header("X-API-KEY", key),
            http.delete(&url).query(&[("api_key", key)]),
            http.delete(&url).query(&[("apikey", key)]),
            http.delete(&url)
                .header("Authorization", format!("Token {key}")),
            http.get(&url).header("X-API-KEY", key),
        ] {
            let answer = send(request).await;
            assert!(answer.status < 500, "{answer:?}");
        }
    }
    let removed = send(
        http.delete(format!(
            "{}{}",
            gateway.url(),
            member_path("demo", demo.group, demo.user)
        ))
        .query(&[("api_key", &demo.owner.key)]),
    )
    .await;
    removed.assert(204, "", "removal with the key in the query");

    let (mut gateway, mut server) = (gateway, server);
    stop(&mut gateway).await;
    stop(&mut server).await;
    for (name, logs) in [("gateway", gateway.logs()), ("server", server.logs())] {
        assert!(!logs.is_empty(), "{name} logged nothing");
        for key in &keys {
            assert!(!logs.contains(key.as_str()), "a key is in the {name} logs");
            assert!(
                !logs.contains(&key[..20]),
                "part of a key is in the {name} logs"
            );
        }
    }
}
