//! SPEC's invariant: no input makes the server answer INTERNAL, UNKNOWN or DATA_LOSS. A
//! request message that cannot be decoded (malformed, missing, cut short, too large) is
//! INVALID_ARGUMENT; metadata past HTTP/2's limits fails the call, not the server.

use tonic::Code;
use tonic_types::StatusExt;

use crate::raw::{frame, raw_call};
use crate::{Grpc, expect_error, request};

/// Asserts INVALID_ARGUMENT with `ErrorInfo` (reason INVALID_ARGUMENT, domain groups.v1) and a
/// `BadRequest` naming exactly `fields`, like every other invalid argument.
#[track_caller]
fn invalid_argument(status: &tonic::Status, fields: &[&str], case: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{case}: no ErrorInfo"));
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("INVALID_ARGUMENT", "groups.v1"),
        "{case}"
    );
    let violations = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("{case}: no BadRequest"));
    let named: Vec<&str> = violations
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(named, fields, "{case}");
}

#[tokio::test]
async fn an_undecodable_request_message_is_invalid_argument() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
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
        let status = raw_call(g.server.addr(), &[("x-api-key", &key)], frame(payload)).await;
        invalid_argument(&status, &["request"], case);
    }
    // An empty message decodes to all defaults: every field is then invalid.
    let status = raw_call(g.server.addr(), &[("x-api-key", &key)], frame(b"")).await;
    invalid_argument(
        &status,
        &["instance_name", "group_id", "user_id"],
        "empty message",
    );
    assert_eq!(g.world.counts(), before);
    g.remove_demo(Some(&key))
        .await
        .expect("the server still serves");
}

/// SPEC, Invariants: "a request message that cannot be decoded is INVALID_ARGUMENT", never
/// INTERNAL. No message at all, or a frame cut short, cannot be decoded either.
#[tokio::test]
async fn a_missing_or_truncated_request_message_is_invalid_argument() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    let mut truncated = frame(b"\x0a\x04demo\x10\x01\x18\x01");
    truncated.truncate(8);
    for (case, body) in [("no message", Vec::new()), ("frame cut short", truncated)] {
        let status = raw_call(g.server.addr(), &[("x-api-key", &key)], body).await;
        invalid_argument(&status, &["request"], case);
    }
}

#[tokio::test]
async fn oversized_requests_are_refused_without_a_server_error() {
    let g = Grpc::start().await;
    let key = g.world.demo.owner.key.clone();
    let demo = &g.world.demo;
    // Below the 4 MB message limit: just a name that cannot be an instance.
    let long_name = "a".repeat(1 << 20);
    expect_error(
        g.remove(&long_name, demo.group.get(), demo.user.get(), Some(&key))
            .await,
        Code::NotFound,
        "INSTANCE_NOT_FOUND",
        "1 MiB instance name",
    );
    // Past it: a message the server will not decode is the caller's error, with the reason
    // and field violation of any invalid argument (tonic alone answers OUT_OF_RANGE).
    let huge_name = "a".repeat(5 << 20);
    let status = expect_error(
        g.remove(&huge_name, demo.group.get(), demo.user.get(), Some(&key))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "5 MiB message",
    );
    let violations = status
        .get_details_bad_request()
        .expect("BadRequest")
        .field_violations;
    assert_eq!(violations.len(), 1, "{status:?}");
    assert_eq!(violations[0].field, "request", "{status:?}");
    // Metadata past HTTP/2's header list limit (hyper's 16 KiB) never reaches the service: the
    // HTTP/2 layer answers 431 (which gRPC clients read as UNKNOWN: see README) or, far past
    // it, closes the connection. The call fails, never as INTERNAL; the server does not.
    for len in [20 << 10, 1 << 20] {
        let metadata = [("x-api-key", "k".repeat(len))];
        let metadata: Vec<(&str, &str)> = metadata.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let refused = g
            .send(request("demo", 1, 1), &metadata)
            .await
            .expect_err("oversized metadata is refused");
        assert!(
            !matches!(refused.code(), Code::Internal | Code::DataLoss),
            "{len} bytes of metadata: {refused:?}"
        );
    }
    // And the server still serves.
    g.remove_demo(Some(&key)).await.expect("still serving");
}
