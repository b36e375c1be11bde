//! Where the key travels: `x-api-key` is read before `authorization`, for every method (each
//! source alone, and what does not count as a key, are rows of the SPEC table).

use groups_proto::{DirectoryClient, GetUserRequest};
use tonic::Code;

use crate::{Grpc, UNKNOWN_ACCOUNT_KEY, channel, expect_error, request, with_metadata};

#[tokio::test]
async fn x_api_key_is_read_before_authorization() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    let group = g.world.demo.group;
    let user = g.new_member("user-precedence");
    let bad_authorization = format!("Token {UNKNOWN_ACCOUNT_KEY}");
    g.send(
        request("demo", group.get(), user.get()),
        &[("x-api-key", &key), ("authorization", &bad_authorization)],
    )
    .await
    .expect("x-api-key wins over authorization");
    assert!(!g.world.is_member(group, user));
    let good_authorization = format!("Token {key}");
    let good_authorization_bad_header = [
        ("x-api-key", UNKNOWN_ACCOUNT_KEY),
        ("authorization", good_authorization.as_str()),
    ];
    let result = g
        .send(
            request("demo", group.get(), g.world.demo.user.get()),
            &good_authorization_bad_header,
        )
        .await;
    expect_error(
        result,
        Code::Unauthenticated,
        "API_KEY_INVALID",
        "bad x-api-key, good authorization",
    );
    assert!(g.world.is_member(group, g.world.demo.user));

    // The same reading for a read: one pipeline for every method.
    let mut directory = DirectoryClient::new(channel(&g.server).await);
    let get = |metadata: &[(&str, &str)]| {
        let message = GetUserRequest {
            instance_name: "demo".to_owned(),
            user_id: g.world.demo.user.get(),
        };
        with_metadata(message, metadata)
    };
    let found = directory
        .get_user(get(&[
            ("x-api-key", &key),
            ("authorization", &bad_authorization),
        ]))
        .await
        .expect("x-api-key wins over authorization");
    assert_eq!(found.into_inner().id, g.world.demo.user.get());
    let refused = directory
        .get_user(get(&good_authorization_bad_header))
        .await
        .map(drop);
    expect_error(
        refused,
        Code::Unauthenticated,
        "API_KEY_INVALID",
        "a read: bad x-api-key, good authorization",
    );
}
