//! `groups.v1.Directory`: reading a user (with their groups) or a group.

use groups_core::reads as core;
use groups_core::{DomainError, Found, Permission, ReadRequest};
use groups_proto::{Directory, GetGroupRequest, GetUserRequest};
use groups_store::reads;
use tonic::{Request, Response, Status};

use crate::pipeline::{Call, describe, finish};
use crate::service::Service;

#[tonic::async_trait]
impl Directory for Service {
    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<groups_proto::User>, Status> {
        let call = self.call(&request);
        let m = request.into_inner();
        describe(&m.instance_name, 0, m.user_id);
        let read = ReadRequest::user(&m.instance_name, m.user_id);
        let user = self.read(&call, read, Permission::ReadUsers, reads::get_user);
        let user = user
            .await
            .and_then(|found| core::get_user(&call.credential, found));
        finish(user, "found").map(|user| {
            Response::new(groups_proto::User {
                id: user.id.get(),
                username: user.username,
                groups: user.groups.into_iter().map(group_message).collect(),
            })
        })
    }

    async fn get_group(
        &self,
        request: Request<GetGroupRequest>,
    ) -> Result<Response<groups_proto::Group>, Status> {
        let call = self.call(&request);
        let m = request.into_inner();
        describe(&m.instance_name, m.group_id, 0);
        let read = ReadRequest::group(&m.instance_name, m.group_id);
        let group = self.read(&call, read, Permission::ReadGroups, reads::get_group);
        let group = group
            .await
            .and_then(|found| core::get_group(&call.credential, found));
        finish(group, "found").map(|group| Response::new(group_message(group)))
    }
}

impl Service {
    /// What the store found for a read of `read.id`, for a caller needing `permission`; an
    /// instance name that cannot exist is answered without the database.
    async fn read<Id, T>(
        &self,
        call: &Call,
        read: Result<ReadRequest<Id>, DomainError>,
        permission: Permission,
        statement: reads::Read<Id, T>,
    ) -> Result<Found<T>, DomainError>
    where
        Id: Copy + Send + 'static,
        T: Send + 'static,
    {
        let read = read?;
        read.lookup(&call.credential, permission)?;
        let credential = call.credential;
        self.db
            .run(call.budget, move |conn| {
                let lookup = read.lookup(&credential, permission)?;
                conn.run(|conn| statement(conn, &lookup, read.id))
            })
            .await
    }
}

fn group_message(group: groups_core::Group) -> groups_proto::Group {
    groups_proto::Group {
        id: group.id.get(),
        name: group.name,
        label: group.label,
        description: group.description,
    }
}
