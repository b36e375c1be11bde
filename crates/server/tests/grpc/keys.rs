//! Where the key travels: `x-api-key` is read before `authorization`, for every method (each
//! source alone, and what does not count as a key, are rows of the SPEC table).

use groups_proto::{DirectoryClient, GetUserRequest};
use tonic::Code;

use crate::{Grpc, UNKNOWN_ACCOUNT_KEY, channel, expect_error, request, send, with_metadata};

#[tokio::test]
async fn x_api_key_is_read_before_authorization() {
    let g = Grpc::start().await;
    let (key, group, demo_user) = (
        &g.world.demo.owner.key,
        g.world.demo.group,
        g.world.demo.user,
    );
    let user = g.new_member("user-precedence");
    let (bad, good) = (
        format!("Token {UNKNOWN_ACCOUNT_KEY}"),
        format!("Token {key}"),
    );
    let good_header = [("x-api-key", key.as_str()), ("authorization", &bad)];
    let bad_header = [("x-api-key", UNKNOWN_ACCOUNT_KEY), ("authorization", &good)];
    let case = "bad x-api-key, good authorization";
    let removed = send(
        &g.client,
        request("demo", group.get(), user.get()),
        &good_header,
    )
    .await;
    removed.expect("x-api-key wins over authorization");
    assert!(!g.world.is_member(group, user));
    let refused = send(
        &g.client,
        request("demo", group.get(), demo_user.get()),
        &bad_header,
    )
    .await;
    expect_error(refused, Code::Unauthenticated, "API_KEY_INVALID", case);
    assert!(g.world.is_member(group, demo_user));

    // The same reading for a read: one pipeline for every method.
    let mut directory = DirectoryClient::new(channel(&g.server).await);
    let get = |metadata: &[(&str, &str)]| {
        let message = GetUserRequest {
            instance_name: "demo".to_owned(),
            user_id: demo_user.get(),
        };
        with_metadata(message, metadata)
    };
    let found = directory.get_user(get(&good_header)).await;
    let found = found.expect("x-api-key wins over authorization");
    assert_eq!(found.into_inner().id, demo_user.get());
    let refused = directory.get_user(get(&bad_header)).await.map(drop);
    let case = format!("a read: {case}");
    expect_error(refused, Code::Unauthenticated, "API_KEY_INVALID", &case);
}
