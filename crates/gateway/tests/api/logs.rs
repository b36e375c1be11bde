//! Keys never appear in either process's logs, in either log format, whatever the key, wherever
//! it travels, on every route, at the most verbose log level; nor in an answer.

use groups_testkit::{ServiceCommand, World};

use crate::{NO_SUCH_ID, http_client, member_path, send, stop};

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
    let gateway = ServiceCommand::gateway(&server.url())
        .args(["--rate-limit", "0"])
        .verbose_logs(format)
        .spawn();
    let http = http_client();
    let demo = &world.demo;
    let keys = world.keys_of_every_kind();
    let base = format!("{}/v1.1/instances/demo", gateway.url());
    let (get, delete) = (reqwest::Method::GET, reqwest::Method::DELETE);
    let routes = [
        (
            delete.clone(),
            format!(
                "{}{}",
                gateway.url(),
                member_path("demo", demo.group, NO_SUCH_ID)
            ),
        ),
        (
            delete,
            format!("{base}/users/{NO_SUCH_ID}/groups/{}/", demo.group),
        ),
        (get.clone(), format!("{base}/users/{}/", demo.user)),
        (get.clone(), format!("{base}/groups/{}/", demo.group)),
        (get, format!("{base}/audit/memberships/?page_size=1")),
    ];
    for key in &keys {
        for (method, url) in &routes {
            for request in [
                http.request(method.clone(), url).header("X-API-KEY", key),
                http.request(method.clone(), url).query(&[("api_key", key)]),
                http.request(method.clone(), url).query(&[("apikey", key)]),
                http.request(method.clone(), url)
                    .header("Authorization", format!("Token {key}")),
                http.put(url).header("X-API-KEY", key),
            ] {
                let answer = send(request).await;
                assert!(answer.status < 500, "{answer:?}");
                assert!(
                    !answer.body.contains(&key[..20]),
                    "a key in an answer: {answer:?}"
                );
            }
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
        if format == "json" {
            let json_lines = logs.lines().filter(|line| line.starts_with('{')).count();
            assert!(json_lines > 10, "{name} wrote JSON lines");
        }
        for key in &keys {
            assert!(!logs.contains(key.as_str()), "a key is in the {name} logs");
            assert!(
                !logs.contains(&key[..20]),
                "part of a key is in the {name} logs"
            );
        }
    }
}
