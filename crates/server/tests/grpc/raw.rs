//! gRPC calls over a bare HTTP/2 connection: the request body exactly as given (so it may be
//! no valid gRPC message at all) and no client-side deadline, to see the server's own answers.

use std::net::SocketAddr;

use tonic::codegen::{Bytes, http};

const METHOD_PATH: &str = "/groups.v1.GroupMembers/RemoveGroupMember";

/// One call to `RemoveGroupMember`: the status from the trailers (or a trailers-only answer).
pub(crate) async fn raw_call(
    addr: SocketAddr,
    extra_headers: &[(&str, &str)],
    body: Vec<u8>,
) -> tonic::Status {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let mut builder = http::Request::post(format!("http://{addr}{METHOD_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra_headers {
        builder = builder.header(*name, *value);
    }
    let (response, mut stream) = client
        .send_request(builder.body(()).expect("request"), false)
        .expect("send request");
    stream
        .send_data(Bytes::from(body), true)
        .expect("send body");
    let response = response.await.expect("response");
    let (parts, mut body) = response.into_parts();
    // The status with its message and details (`grpc-status-details-bin`), as a client reads it.
    let status_of = |headers: &http::HeaderMap| tonic::Status::from_header_map(headers);
    if let Some(answer) = status_of(&parts.headers) {
        return answer;
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response body");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body
        .trailers()
        .await
        .expect("trailers")
        .expect("trailers present");
    status_of(&trailers).expect("grpc-status in the trailers")
}

/// A gRPC length-prefixed message frame (uncompressed) around `payload`.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(payload);
    framed
}

pub(crate) fn varint(mut value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}
