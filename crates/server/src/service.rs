//! `groups.v1.GroupMembers`: metadata → key, request → domain, domain error → `Status`.

use std::time::Instant;

use groups_core::{DomainError, RemovalRequest};
use groups_proto::{GroupMembers, RemoveGroupMemberRequest};
use groups_store::Store;
use tonic::{Request, Response, Status};

use crate::credential::credential_from;
use crate::deadline::deadline_from;
use crate::status::status_of;

/// The service implementation; cheap to clone (it holds the pool).
#[derive(Debug, Clone)]
pub struct GroupMembersService {
    store: Store,
}

impl GroupMembersService {
    /// A service answering from `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Validates and performs one removal; the blocking store call runs in one `spawn_blocking`.
    async fn remove(
        &self,
        request: Request<RemoveGroupMemberRequest>,
        received: Instant,
    ) -> Result<(), DomainError> {
        let credential = credential_from(request.metadata());
        let deadline = deadline_from(request.metadata(), received);
        let message = request.into_inner();
        let removal = RemovalRequest::new(
            &message.instance_name,
            message.group_id,
            message.user_id,
            message.allow_missing,
        )?;
        let store = self.store.clone();
        let work = tokio::task::spawn_blocking(move || {
            store.remove_member(&removal, &credential, deadline)
        });
        // Past the caller's deadline nobody waits for the answer: say so, as gRPC does. A
        // statement already running finishes (bounded by statement_timeout); none starts late.
        let joined = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
                .await
                .map_err(|_elapsed| DomainError::DeadlineExceeded)?,
            None => work.await,
        };
        joined.map_err(|join_error| {
            DomainError::Internal(format!("removal task failed: {join_error}"))
        })?
    }
}

#[tonic::async_trait]
impl GroupMembers for GroupMembersService {
    async fn remove_group_member(
        &self,
        request: Request<RemoveGroupMemberRequest>,
    ) -> Result<Response<()>, Status> {
        let started = Instant::now();
        let (instance, group, user) = {
            let m = request.get_ref();
            // Bounded, so a huge name cannot flood the log; never the key.
            (
                m.instance_name.chars().take(64).collect::<String>(),
                m.group_id,
                m.user_id,
            )
        };
        let outcome = self.remove(request, started).await;
        let micros = started.elapsed().as_micros();
        match outcome {
            Ok(()) => {
                tracing::info!(rpc = "RemoveGroupMember", %instance, group, user, outcome = "removed", micros);
                Ok(Response::new(()))
            }
            Err(error) => {
                let reason = error.reason().map_or("INTERNAL", |r| r.as_str());
                match &error {
                    DomainError::Unavailable(_)
                    | DomainError::Internal(_)
                    | DomainError::DeadlineExceeded => {
                        tracing::error!(rpc = "RemoveGroupMember", %instance, group, user, outcome = reason, %error, micros);
                    }
                    _ => {
                        tracing::info!(rpc = "RemoveGroupMember", %instance, group, user, outcome = reason, micros)
                    }
                }
                Err(status_of(&error))
            }
        }
    }
}
