//! Generated code for the `groups.v1` wire contract (`proto/groups/v1`), re-exported as is.
//!
//! The one hand-written piece is [`codec`]: the generated services decode with it.

pub mod codec;

/// Messages, client and server of package `groups.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod groups_v1 {
    tonic::include_proto!("groups.v1");
}

/// The encoded `FileDescriptorSet` of `groups.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("groups_v1_descriptor");

pub use groups_v1::RemoveGroupMemberRequest;
pub use groups_v1::group_members_client::GroupMembersClient;
pub use groups_v1::group_members_server::{GroupMembers, GroupMembersServer};
