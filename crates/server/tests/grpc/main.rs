//! `groups-server` as a gRPC caller sees it (the real binary on port 0 over a real PostgreSQL),
//! by topic: the SPEC table (`groups_testkit::spec`) in `spec`, and around it what a table
//! cannot say. Assertions are on what a caller sees and on the rows left in the tables.

mod concurrency;
mod health;
mod input;
mod keys;
mod logs;
mod outages;
mod raw;
mod spec;

use groups_proto::{GroupMembersClient, RemoveGroupMemberRequest};
use groups_testkit::{
    FaultProxy, ServiceCommand, ServiceProcess, UNKNOWN_ACCOUNT_KEY, UserId, World, eventually,
    spawn_server, stop,
};
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A group and a user id no row has.
const NO_SUCH_ID: i64 = 987_654_321;

/// A world, a server on its database, and a client of that server.
struct Grpc {
    world: World,
    server: ServiceProcess,
    client: GroupMembersClient<Channel>,
}

impl Grpc {
    async fn start() -> Self {
        let world = World::new();
        let server = spawn_server(world.url(), &[]);
        Self::of(world, server).await
    }

    /// With the server's database connections going through a fault proxy.
    async fn behind_proxy(args: &[&str]) -> (FaultProxy, Self) {
        let world = World::new();
        let proxy = FaultProxy::start(world.db.server_addr());
        let server = ServiceCommand::server(&world.db.url_via(proxy.addr()))
            .args(args)
            .spawn();
        (proxy, Self::of(world, server).await)
    }

    async fn of(world: World, server: ServiceProcess) -> Self {
        let client = GroupMembersClient::new(channel(&server).await);
        Self {
            world,
            server,
            client,
        }
    }

    /// `RemoveGroupMember` with the key (if any) in `x-api-key`.
    async fn remove(
        &self,
        instance: &str,
        group: i64,
        user: i64,
        key: Option<&str>,
    ) -> Result<(), Status> {
        let metadata: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        send(&self.client, request(instance, group, user), &metadata).await
    }

    /// `RemoveGroupMember` of the demo user from the demo group.
    async fn remove_demo(&self, key: Option<&str>) -> Result<(), Status> {
        let demo = &self.world.demo;
        self.remove("demo", demo.group.get(), demo.user.get(), key)
            .await
    }

    /// A fresh user of "demo" made a member of the demo group.
    fn new_member(&self, username: &str) -> UserId {
        let user = self.world.add_user("demo", username);
        self.world.add_member("demo", self.world.demo.group, user);
        user
    }
}

async fn channel(server: &ServiceProcess) -> Channel {
    Channel::from_shared(server.url())
        .expect("a valid URL")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", server.url()))
}

fn request(instance: &str, group: i64, user: i64) -> RemoveGroupMemberRequest {
    RemoveGroupMemberRequest {
        instance_name: instance.to_owned(),
        group_id: group,
        user_id: user,
        ..Default::default()
    }
}

/// A request with this metadata added.
fn with_metadata<T>(message: T, metadata: &[(&str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (name, value) in metadata {
        let value: MetadataValue<Ascii> = value.parse().expect("a valid metadata value");
        let name: MetadataKey<Ascii> = name.parse().expect("a valid metadata name");
        request.metadata_mut().insert(name, value);
    }
    request
}

async fn send(
    client: &GroupMembersClient<Channel>,
    message: RemoveGroupMemberRequest,
    metadata: &[(&str, &str)],
) -> Result<(), Status> {
    let mut client = client.clone();
    let answer = client.remove_group_member(with_metadata(message, metadata));
    answer.await.map(drop)
}

/// Asserts an error with `code` and `ErrorInfo { reason, domain: "groups.v1" }`; returns it.
#[track_caller]
fn expect_error(result: Result<(), Status>, code: Code, reason: &str, case: &str) -> Status {
    let Err(status) = result else {
        panic!("{case}: succeeded, expected {code:?} {reason}")
    };
    assert_eq!(status.code(), code, "{case}: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{case}: no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "{case}: {status:?}");
    assert_eq!(info.domain, "groups.v1", "{case}: {status:?}");
    status
}
