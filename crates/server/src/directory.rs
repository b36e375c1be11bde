//! `groups.v1.Directory`: reading a user (with their groups) or a group.

use groups_core::{Permission, ReadRequest};
use groups_proto::{Directory, GetGroupRequest, GetUserRequest};
use groups_store::reads;
use tonic::{Request, Response, Status};

use crate::pipeline::{describe, finish};
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
        let user = async {
            let read = ReadRequest::user(&m.instance_name, m.user_id)?;
            read.lookup(&call.credential, Permission::ReadUsers)?;
            let credential = call.credential;
            let found = self
                .db
                .run(call.budget, move |conn| {
                    let lookup = read.lookup(&credential, Permission::ReadUsers)?;
                    conn.run(|conn| reads::get_user(conn, &lookup, read.id))
                })
                .await?;
            groups_core::reads::get_user(&call.credential, found)
        };
        finish(user.await, "found").map(|user| {
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
        let group = async {
            let read = ReadRequest::group(&m.instance_name, m.group_id)?;
            read.lookup(&call.credential, Permission::ReadGroups)?;
            let credential = call.credential;
            let found = self
                .db
                .run(call.budget, move |conn| {
                    let lookup = read.lookup(&credential, Permission::ReadGroups)?;
                    conn.run(|conn| reads::get_group(conn, &lookup, read.id))
                })
                .await?;
            groups_core::reads::get_group(&call.credential, found)
        };
        finish(group.await, "found").map(|group| Response::new(group_message(group)))
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
