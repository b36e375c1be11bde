//! The seed's example as the vendor's Python SDK (`syncano` 5.4.6) sends it: `Authorization:
//! token <key>`, `Content-Type: application/json`, a `{}` body on DELETE, every path ending in
//! `/`. Read the user and the group, remove through one route, then through the other: the
//! repeat is "Not found".

use reqwest::Method;

use crate::{NOT_FOUND, Rest, send};

#[tokio::test]
async fn the_sdks_example_runs_with_both_endings() {
    let r = Rest::start();
    let demo = &r.world.demo;
    let (group, user) = (demo.group, demo.user);
    let sdk = |method: Method, path: &str| {
        let request = r
            .request(method.clone(), path)
            .header("Authorization", format!("token {}", demo.owner.key))
            .header("Content-Type", "application/json");
        if method == Method::DELETE {
            request.body("{}")
        } else {
            request
        }
    };

    let users = format!("/v1.1/instances/demo/users/{user}/");
    let got = send(sdk(Method::GET, &users)).await;
    assert_eq!(got.status, 200, "{got:?}");
    let body: serde_json::Value = serde_json::from_str(&got.body).expect("JSON");
    assert_eq!(body["id"], user.get());
    let sdk_shape = body.get("next").is_none() && body.get("profile").is_none();
    assert!(sdk_shape, "{body}");
    let got = send(sdk(
        Method::GET,
        &format!("/v1.1/instances/demo/groups/{group}/"),
    ))
    .await;
    assert_eq!(got.status, 200, "{got:?}");

    // `user.remove_from_group(group_id=group.id)`, then `group.delete_user(user_id=user.id)`;
    // then, the user a member again, the other way round.
    let from_user = (format!("{users}groups/{group}/"), "user.remove_from_group");
    let from_group = (
        format!("/v1.1/instances/demo/groups/{group}/users/{user}/"),
        "group.delete_user",
    );
    for (rejoin, (path, call), (again, repeat)) in [
        (false, &from_user, &from_group),
        (true, &from_group, &from_user),
    ] {
        if rejoin {
            r.world.add_member("demo", group, user);
        }
        send(sdk(Method::DELETE, path)).await.assert(204, "", call);
        assert!(!r.world.is_member(group, user), "{call}");
        let repeated = send(sdk(Method::DELETE, again)).await;
        repeated.assert(404, NOT_FOUND, &format!("{repeat}, already removed"));
    }
    assert_eq!(r.world.count_events_of(group, user), 2, "one event per 204");
}
