//! Health (SERVING while the database answers) and server reflection.

use std::time::Duration;

use tonic::codegen::tokio_stream;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::{Grpc, channel, eventually};

const SERVICE_NAME: &str = "groups.v1.GroupMembers";

async fn health_of(health: &HealthClient<Channel>, service: &str) -> Result<ServingStatus, Status> {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let answer = health.clone().check(request).await;
    answer.map(|r| r.into_inner().status())
}

/// Asserts that the server and `SERVICE_NAME` are both `wanted` within `limit`.
async fn wait_for_health(health: &HealthClient<Channel>, wanted: ServingStatus, limit: u64) {
    let both = eventually(Duration::from_secs(limit), || async {
        let server = health_of(health, "").await.ok();
        let service = health_of(health, SERVICE_NAME).await.ok();
        (server == Some(wanted) && service == Some(wanted)).then_some(())
    });
    assert!(both.await.is_some(), "not {wanted:?} within {limit} s");
}

#[tokio::test]
async fn health_is_serving_while_the_database_answers() {
    let args = ["--health-interval-ms", "100", "--pool-timeout-ms", "500"];
    let (proxy, g) = Grpc::behind_proxy(&args).await;
    let health = HealthClient::new(channel(&g.server).await);
    wait_for_health(&health, ServingStatus::Serving, 5).await;
    let unknown = health_of(&health, "no.such.Service").await;
    let unknown = unknown.expect_err("an unknown service");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    // Down while the database is away, up again once it is back.
    proxy.cut();
    wait_for_health(&health, ServingStatus::NotServing, 5).await;
    proxy.restore();
    wait_for_health(&health, ServingStatus::Serving, 10).await;
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let g = Grpc::start().await;
    let mut reflection = ServerReflectionClient::new(channel(&g.server).await);
    let ask = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let symbol = MessageRequest::FileContainingSymbol(SERVICE_NAME.to_owned());
    let requests = [MessageRequest::ListServices(String::new()), symbol].map(ask);
    let answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await;
    let mut answers = answers.expect("reflection").into_inner();
    let mut next = async || {
        let answer = answers.message().await.expect("a reflection answer");
        answer.expect("not the end of the stream").message_response
    };
    let Some(MessageResponse::ListServicesResponse(list)) = next().await else {
        panic!("expected a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    let services = [
        "groups.v1.Directory",
        "groups.v1.Audit",
        "grpc.health.v1.Health",
    ];
    for service in [SERVICE_NAME].into_iter().chain(services) {
        assert!(names.contains(&service), "{service}: {names:?}");
    }

    let Some(MessageResponse::FileDescriptorResponse(files)) = next().await else {
        panic!("expected the file defining {SERVICE_NAME}");
    };
    let mut files = files.file_descriptor_proto.iter();
    let described = files.any(|file| file.windows(17).any(|w| w == b"RemoveGroupMember"));
    assert!(described, "the descriptor defines RemoveGroupMember");
}
