//! `groups.v1.GroupMembers`: metadata → key, request → domain, domain error → `Status`.

use std::time::Instant;

use groups_core::{DomainError, RemovalRequest};
use groups_proto::{GroupMembers, RemoveGroupMemberRequest};
use groups_store::Store;
use tonic::{Request, Response, Status};

use crate::credential::credential_from;
use crate::deadline::deadline_from;
use crate::observe::DATABASE_ERRORS_TOTAL;
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
        // The blocking thread logs inside the request's span too (its request id).
        let span = tracing::Span::current();
        let work = tokio::task::spawn_blocking(move || {
            span.in_scope(|| store.remove_member(&removal, &credential, deadline))
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
        // What was asked and how it ended go on the request span, so the one line logged per
        // RPC (crate::observe) says it. The name is bounded; the key is never recorded.
        let span = tracing::Span::current();
        {
            let m = request.get_ref();
            let instance: String = m.instance_name.chars().take(64).collect();
            span.record("instance", instance.as_str());
            span.record("group", m.group_id);
            span.record("user", m.user_id);
        }
        match self.remove(request, started).await {
            Ok(()) => {
                span.record("outcome", "removed");
                Ok(Response::new(()))
            }
            Err(error) => {
                let reason = error.reason().map_or("INTERNAL", |r| r.as_str());
                span.record("outcome", reason);
                match &error {
                    DomainError::Unavailable(_) => {
                        metrics::counter!(DATABASE_ERRORS_TOTAL).increment(1);
                        tracing::error!(%error, "removal failed at the database");
                    }
                    DomainError::Internal(_) | DomainError::DeadlineExceeded => {
                        tracing::error!(%error, "removal failed");
                    }
                    _ => {}
                }
                Err(status_of(&error))
            }
        }
    }
}
