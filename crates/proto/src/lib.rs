//! Generated code for the `groups.v1` wire contract (`proto/groups/v1`), re-exported as is.

/// Messages, clients and servers of package `groups.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod groups_v1 {
    tonic::include_proto!("groups.v1");
}

/// The encoded `FileDescriptorSet` of `groups.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("groups_v1_descriptor");

pub use groups_v1::audit_client::AuditClient;
pub use groups_v1::audit_server::SERVICE_NAME as AUDIT_SERVICE;
pub use groups_v1::audit_server::{Audit, AuditServer};
pub use groups_v1::directory_client::DirectoryClient;
pub use groups_v1::directory_server::SERVICE_NAME as DIRECTORY_SERVICE;
pub use groups_v1::directory_server::{Directory, DirectoryServer};
pub use groups_v1::group_members_client::GroupMembersClient;
pub use groups_v1::group_members_server::SERVICE_NAME as GROUP_MEMBERS_SERVICE;
pub use groups_v1::group_members_server::{GroupMembers, GroupMembersServer};
pub use groups_v1::{
    GetGroupRequest, GetUserRequest, Group, ListMembershipEventsRequest,
    ListMembershipEventsResponse, MembershipEvent, MembershipParent, RemoveGroupMemberRequest,
    User,
};
pub use prost_types::Timestamp;
