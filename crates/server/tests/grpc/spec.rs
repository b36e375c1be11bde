//! The SPEC table over gRPC: every case of `groups_testkit::spec` with a gRPC answer, sent to
//! one server over one fixture built once per run, each answer compared exactly (an error's
//! code, message and details; the object; the page) and the rows checked after each case.

use std::collections::HashMap;

use groups_core::Reason;
use groups_proto::{
    AuditClient, DirectoryClient, GetGroupRequest, GetUserRequest, GroupMembersClient,
    ListMembershipEventsRequest, ListMembershipEventsResponse, MembershipEvent,
    RemoveGroupMemberRequest, Timestamp,
};
use groups_testkit::spec::{
    self, Edge, ExpectedGroup, ExpectedGrpc, ExpectedUser, GrpcRequest, Operation, Suite,
};
use groups_testkit::{ServiceProcess, spawn_server};
use tokio::sync::OnceCell;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{channel, with_metadata};

static SUITE: OnceCell<Suite<ServiceProcess>> = OnceCell::const_new();

groups_testkit::spec_tests!(run);

/// Runs the operation's gRPC cases and reports every one that failed.
async fn run(operation: Operation) {
    let (_turn, suite) =
        spec::take_turn(&SUITE, |fixture| spawn_server(fixture.world().url(), &[])).await;
    let channel = channel(&suite.service).await;
    let send = async |prepared: &spec::Prepared<'_>| {
        let answer = call(&channel, operation, prepared.grpc()).await;
        judge(answer, &prepared.expected_grpc())
    };
    suite.run(Edge::Grpc, operation, send).await;
}

/// What a call returned.
#[derive(Debug)]
enum Answer {
    Empty,
    User(groups_proto::User),
    Group(groups_proto::Group),
    Events(ListMembershipEventsResponse),
}

async fn call(channel: &Channel, operation: Operation, r: GrpcRequest) -> Result<Answer, Status> {
    let metadata: Vec<(&str, &str)> = r.metadata.iter().map(|(n, v)| (*n, v.as_str())).collect();
    // `Client.method(Message { fields of the request }) => how the answer is wrapped`.
    macro_rules! call {
        ($client:ident.$method:ident($message:ident { $($field:ident),* }) => $answer:expr) => {{
            let message = $message { $($field: r.$field),* };
            let mut client = $client::new(channel.clone());
            let answer = client.$method(with_metadata(message, &metadata)).await;
            answer.map(|answer| $answer(answer.into_inner()))
        }};
    }
    match operation {
        Operation::RemoveFromGroup | Operation::RemoveFromUser => call!(
            GroupMembersClient.remove_group_member(RemoveGroupMemberRequest {
                instance_name, group_id, user_id, allow_missing, parent
            }) => |()| Answer::Empty
        ),
        Operation::GetUser => call!(
            DirectoryClient.get_user(GetUserRequest { instance_name, user_id }) => Answer::User
        ),
        Operation::GetGroup => call!(
            DirectoryClient.get_group(GetGroupRequest { instance_name, group_id }) => Answer::Group
        ),
        Operation::ListEvents => call!(
            AuditClient.list_membership_events(ListMembershipEventsRequest {
                instance_name, group_id, user_id, page_size, page_token
            }) => Answer::Events
        ),
    }
}

/// Whether the answer is exactly the one expected.
fn judge(answer: Result<Answer, Status>, expected: &ExpectedGrpc) -> Result<(), String> {
    let right = match (expected, &answer) {
        (ExpectedGrpc::Empty, Ok(Answer::Empty)) => true,
        (ExpectedGrpc::User(want), Ok(Answer::User(got))) => user(want) == *got,
        (ExpectedGrpc::Group(want), Ok(Answer::Group(got))) => group(want) == *got,
        (ExpectedGrpc::Events(want), Ok(Answer::Events(got))) => {
            let events = want.iter().map(event).collect();
            let next_page_token = String::new();
            *got == ListMembershipEventsResponse {
                events,
                next_page_token,
            }
        }
        (ExpectedGrpc::Error { code, reason }, Err(status)) => exactly(status, *code, reason),
        (ExpectedGrpc::Invalid(fields), Err(status)) => invalid(status, fields),
        _ => false,
    };
    match answer {
        _ if right => Ok(()),
        Ok(got) => Err(format!("expected {expected:?}, got {got:?}")),
        Err(status) => Err(format!(
            "expected {expected:?}, got {:?} {:?} with {:?}",
            status.code(),
            status.message(),
            status.get_error_details()
        )),
    }
}

/// The error, to the byte: code, the reason's text as message, and `ErrorInfo` alone in the
/// details. A foreign or deleted row is thereby answered exactly as a missing one.
fn exactly(status: &Status, code: Code, reason: &str) -> bool {
    let reason_text = Reason::parse(reason).unwrap_or_else(|| panic!("{reason} is no reason"));
    let (message, details) = (
        reason_text.detail(),
        ErrorDetails::with_error_info(reason, Reason::DOMAIN, HashMap::new()),
    );
    let wanted = Status::with_error_details(code, message, details);
    (status.code(), status.message(), status.details()) == (code, message, wanted.details())
}

/// INVALID_ARGUMENT with `ErrorInfo` and a `BadRequest` naming exactly these fields, each
/// with a description.
fn invalid(status: &Status, fields: &[&str]) -> bool {
    let info = status.get_details_error_info();
    let bad = status.get_details_bad_request();
    let violations = bad.map(|bad| bad.field_violations).unwrap_or_default();
    let mut reported: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    reported.sort_unstable();
    status.code() == Code::InvalidArgument
        && info.is_some_and(|i| i.reason == "INVALID_ARGUMENT" && i.domain == Reason::DOMAIN)
        && reported == fields
        && violations.iter().all(|v| !v.description.is_empty())
}

fn group(group: &ExpectedGroup) -> groups_proto::Group {
    groups_proto::Group {
        id: group.id,
        name: group.name.clone(),
        label: group.label.clone(),
        description: group.description.clone(),
    }
}

fn user(user: &ExpectedUser) -> groups_proto::User {
    groups_proto::User {
        id: user.id,
        username: user.username.clone(),
        groups: user.groups.iter().map(group).collect(),
    }
}

fn event(event: &groups_core::MembershipEvent) -> MembershipEvent {
    let (seconds, nanos) = event.at.seconds_and_nanos();
    MembershipEvent {
        id: event.id,
        action: "membership.removed".to_owned(),
        group_id: event.group,
        user_id: event.user,
        actor_admin_id: event.actor_admin,
        actor_role: event.actor_role.as_str().to_owned(),
        request_id: event.request_id.clone(),
        at: Some(Timestamp { seconds, nanos }),
    }
}
