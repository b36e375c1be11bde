//! Health (SERVING while the database answers) and server reflection.

use std::time::Duration;

use groups_testkit::{World, spawn_server};
use tonic::codegen::tokio_stream;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

use crate::{channel, eventually, server_behind_proxy};

const SERVICE_NAME: &str = "groups.v1.GroupMembers";

async fn health_of(
    health: &mut HealthClient<Channel>,
    service: &str,
) -> Result<ServingStatus, Status> {
    health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status())
}

async fn wait_for_health(
    health: &HealthClient<Channel>,
    wanted: ServingStatus,
    limit: Duration,
) -> bool {
    eventually(limit, || {
        let mut health = health.clone();
        async move {
            let mut all = true;
            for service in ["", SERVICE_NAME] {
                all &= health_of(&mut health, service).await.ok() == Some(wanted);
            }
            all.then_some(())
        }
    })
    .await
    .is_some()
}

#[tokio::test]
async fn health_is_serving_while_the_database_answers() {
    let world = World::new();
    let (proxy, server) = server_behind_proxy(
        &world,
        &["--health-interval-ms", "100", "--pool-timeout-ms", "500"],
    );
    let health = HealthClient::new(channel(&server).await);
    assert!(
        wait_for_health(&health, ServingStatus::Serving, Duration::from_secs(5)).await,
        "not SERVING within 5 s: {}",
        server.logs()
    );
    let unknown = health_of(&mut health.clone(), "no.such.Service")
        .await
        .expect_err("an unknown service");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    proxy.cut();
    assert!(
        wait_for_health(&health, ServingStatus::NotServing, Duration::from_secs(5)).await,
        "still SERVING 5 s after the database went away"
    );
    proxy.restore();
    assert!(
        wait_for_health(&health, ServingStatus::Serving, Duration::from_secs(10)).await,
        "not SERVING again within 10 s of the database coming back"
    );
}

async fn next_answer(
    answers: &mut tonic::Streaming<ServerReflectionResponse>,
) -> ServerReflectionResponse {
    answers
        .message()
        .await
        .expect("a reflection answer")
        .expect("not the end of the stream")
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let world = World::new();
    let server = spawn_server(world.url(), &[]);
    let mut reflection = ServerReflectionClient::new(channel(&server).await);
    let ask = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            SERVICE_NAME.to_owned(),
        )),
    ];
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        next_answer(&mut answers).await.message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        SERVICE_NAME,
        "groups.v1.Directory",
        "groups.v1.Audit",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&service), "{service}: {names:?}");
    }

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        next_answer(&mut answers).await.message_response
    else {
        panic!("expected the file defining {SERVICE_NAME}");
    };
    let described = files
        .file_descriptor_proto
        .iter()
        .any(|file| file.windows(17).any(|w| w == b"RemoveGroupMember"));
    assert!(described, "the descriptor defines RemoveGroupMember");
}
