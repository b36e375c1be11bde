//! SPEC's invariant: no input makes the server answer INTERNAL, UNKNOWN or DATA_LOSS. A
//! request message that cannot be decoded (malformed, missing, cut short, too large) is
//! INVALID_ARGUMENT; metadata past HTTP/2's limits fails the call, not the server.

use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::raw::{frame, raw_call};
use crate::{Grpc, expect_error, request, send};

/// Asserts INVALID_ARGUMENT with `ErrorInfo` (reason INVALID_ARGUMENT, domain groups.v1) and a
/// `BadRequest` naming exactly `fields`, like every other invalid argument.
#[track_caller]
fn invalid_argument(answer: Result<(), Status>, fields: &[&str], case: &str) {
    let status = expect_error(answer, Code::InvalidArgument, "INVALID_ARGUMENT", case);
    let bad = status.get_details_bad_request();
    let bad = bad.unwrap_or_else(|| panic!("{case}: no BadRequest in {status:?}"));
    let named: Vec<&str> = bad
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(named, fields, "{case}");
}

impl Grpc {
    /// `body` sent as is to `RemoveGroupMember` with the owner's key: the status answered.
    async fn raw(&self, body: Vec<u8>) -> Result<(), Status> {
        let key = [("x-api-key", self.world.demo.owner.key.as_str())];
        Err(raw_call(self.server.addr(), &key, body).await)
    }
}

#[tokio::test]
async fn an_undecodable_request_message_is_invalid_argument() {
    let g = Grpc::start().await;
    let before = g.world.counts();
    let cases: [(&str, &[u8]); 7] = [
        ("field number 0", b"\x00"),
        ("varint longer than ten bytes", &[0xff; 11]),
        ("group_id sent as bytes", b"\x12\x03abc"),
        ("instance_name not UTF-8", b"\x0a\x02\xff\xfe"),
        ("length past the end", b"\x0a\x10ab"),
        ("text, not protobuf", b"this is not a protobuf message"),
        ("truncated varint", b"\x10\x80"),
    ];
    for (case, payload) in cases {
        invalid_argument(g.raw(frame(payload)).await, &["request"], case);
    }
    // An empty message decodes to all defaults: every field is then invalid.
    let every_field = ["instance_name", "group_id", "user_id"];
    invalid_argument(g.raw(frame(b"")).await, &every_field, "empty message");
    assert_eq!(g.world.counts(), before);
    let key = Some(g.world.demo.owner.key.as_str());
    g.remove_demo(key).await.expect("the server still serves");
}

/// SPEC, Invariants: "a request message that cannot be decoded is INVALID_ARGUMENT", never
/// INTERNAL. No message at all, or a frame cut short, cannot be decoded either.
#[tokio::test]
async fn a_missing_or_truncated_request_message_is_invalid_argument() {
    let g = Grpc::start().await;
    let mut truncated = frame(b"\x0a\x04demo\x10\x01\x18\x01");
    truncated.truncate(8);
    for (case, body) in [("no message", Vec::new()), ("frame cut short", truncated)] {
        invalid_argument(g.raw(body).await, &["request"], case);
    }
}

#[tokio::test]
async fn oversized_requests_are_refused_without_a_server_error() {
    let g = Grpc::start().await;
    let (demo, key) = (&g.world.demo, Some(g.world.demo.owner.key.as_str()));
    let remove_on = async |instance: &str| {
        g.remove(instance, demo.group.get(), demo.user.get(), key)
            .await
    };
    // Below the 4 MB message limit: just a name that cannot be an instance.
    let long_name = remove_on(&"a".repeat(1 << 20)).await;
    expect_error(
        long_name,
        Code::NotFound,
        "INSTANCE_NOT_FOUND",
        "1 MiB name",
    );
    // Past it: a message the server will not decode is the caller's error, with the reason
    // and field violation of any invalid argument (tonic alone answers OUT_OF_RANGE).
    let huge = remove_on(&"a".repeat(5 << 20)).await;
    invalid_argument(huge, &["request"], "5 MiB message");
    // Metadata past HTTP/2's header list limit (hyper's 16 KiB) never reaches the service: the
    // HTTP/2 layer answers 431 (which gRPC clients read as UNKNOWN: see README) or, far past
    // it, closes the connection. The call fails, never as INTERNAL; the server does not.
    for len in [20 << 10, 1 << 20] {
        let oversized = "k".repeat(len);
        let refused = send(
            &g.client,
            request("demo", 1, 1),
            &[("x-api-key", &oversized)],
        )
        .await;
        let refused = refused.expect_err("oversized metadata is refused");
        let failed_inside = matches!(refused.code(), Code::Internal | Code::DataLoss);
        assert!(!failed_inside, "{len} bytes of metadata: {refused:?}");
    }
    // And the server still serves.
    g.remove_demo(key).await.expect("still serving");
}
