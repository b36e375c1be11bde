//! `groups.v1.GroupMembers`: removing a user from a group, from either side.

use groups_core::{Parent, RemovalRequest};
use groups_proto::{GroupMembers, MembershipParent, RemoveGroupMemberRequest};
use tonic::{Request, Response, Status};

use crate::pipeline::{describe, finish};
use crate::service::Service;

#[tonic::async_trait]
impl GroupMembers for Service {
    async fn remove_group_member(
        &self,
        request: Request<RemoveGroupMemberRequest>,
    ) -> Result<Response<()>, Status> {
        let call = self.call(&request);
        let m = request.into_inner();
        describe(&m.instance_name, m.group_id, m.user_id);
        let removed = async {
            let removal = RemovalRequest::new(
                &m.instance_name,
                m.group_id,
                m.user_id,
                m.allow_missing,
                parent(m.parent),
            )?;
            // An instance name that cannot exist is answered without the database.
            removal.attempt(&call.credential)?;
            let facts = self
                .db
                .remove(
                    call.budget,
                    removal.clone(),
                    call.credential,
                    call.request_id.as_str(),
                )
                .await?;
            groups_core::removal::remove_user_from_group(&removal, &call.credential, facts)
        };
        finish(removed.await, "removed").map(Response::new)
    }
}

/// The side a caller came from; `None` for a value the contract does not define.
fn parent(value: i32) -> Option<Parent> {
    match MembershipParent::try_from(value).ok()? {
        MembershipParent::Unspecified | MembershipParent::Group => Some(Parent::Group),
        MembershipParent::User => Some(Parent::User),
    }
}
