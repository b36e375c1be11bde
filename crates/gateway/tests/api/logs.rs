//! Keys never appear in either process's logs, in either log format, whatever the key, wherever
//! it travels, on every route, at the most verbose log level; nor in an answer.

use groups_testkit::{ServiceCommand, World};
use reqwest::Method;

use crate::{NO_SUCH_ID, http_client, member_path, send, stop};

#[tokio::test]
async fn keys_never_appear_in_the_logs() {
    for format in ["human", "json"] {
        let world = World::new();
        // The most verbose logging there is, in both processes.
        let verbose = |command: ServiceCommand| command.verbose_logs(format).spawn();
        let mut server = verbose(ServiceCommand::server(world.url()));
        let gateway = ServiceCommand::gateway(&server.url()).args(["--rate-limit", "0"]);
        let mut gateway = verbose(gateway);
        let (http, demo) = (http_client(), &world.demo);
        let keys = world.keys_of_every_kind();
        let base = format!("{}/v1.1/instances/demo", gateway.url());
        let (group, user) = (demo.group, demo.user);
        let (get, delete) = (Method::GET, Method::DELETE);
        let routes = [
            (
                delete.clone(),
                format!("groups/{group}/users/{NO_SUCH_ID}/"),
            ),
            (delete, format!("users/{NO_SUCH_ID}/groups/{group}/")),
            (get.clone(), format!("users/{user}/")),
            (get.clone(), format!("groups/{group}/")),
            (get, "audit/memberships/?page_size=1".to_owned()),
        ];
        for key in &keys {
            for (method, path) in &routes {
                let url = format!("{base}/{path}");
                let request = || http.request(method.clone(), &url);
                for request in [
                    request().header("X-API-KEY", key),
                    request().query(&[("api_key", key)]),
                    request().query(&[("apikey", key)]),
                    request().header("Authorization", format!("Token {key}")),
                    http.put(&url).header("X-API-KEY", key),
                ] {
                    let answer = send(request).await;
                    assert!(answer.status < 500, "{answer:?}");
                    let leaked = answer.body.contains(&key[..20]);
                    assert!(!leaked, "a key in an answer: {answer:?}");
                }
            }
        }
        let path = member_path("demo", demo.group, demo.user);
        let removal = http.delete(format!("{}{path}", gateway.url()));
        let removed = send(removal.query(&[("api_key", &demo.owner.key)])).await;
        removed.assert(204, "", "removal with the key in the query");

        stop(&mut gateway).await;
        stop(&mut server).await;
        for (name, logs) in [("gateway", gateway.logs()), ("server", server.logs())] {
            assert!(!logs.is_empty(), "{name} logged nothing");
            let json_lines = logs.lines().filter(|line| line.starts_with('{')).count();
            assert!(
                format != "json" || json_lines > 10,
                "{name} wrote JSON lines"
            );
            for key in &keys {
                assert!(!logs.contains(key.as_str()), "a key is in the {name} logs");
                let part = &key[..20];
                assert!(!logs.contains(part), "part of a key is in the {name} logs");
            }
        }
    }
}
