//! `groups.v1.Audit`: listing an instance's membership events; and the retention that prunes
//! old ones in the background.

use std::time::Duration;

use groups_core::EventsRequest;
use groups_proto::{
    Audit, ListMembershipEventsRequest, ListMembershipEventsResponse, MembershipEvent, Timestamp,
};
use groups_store::Pool;
use tonic::{Request, Response, Status};

use crate::pipeline::{describe, finish};
use crate::service::Service;

#[tonic::async_trait]
impl Audit for Service {
    async fn list_membership_events(
        &self,
        request: Request<ListMembershipEventsRequest>,
    ) -> Result<Response<ListMembershipEventsResponse>, Status> {
        let call = self.call(&request);
        let m = request.into_inner();
        describe(&m.instance_name, m.group_id, m.user_id);
        let page = async {
            let listing = EventsRequest::new(
                &m.instance_name,
                m.group_id,
                m.user_id,
                m.page_size,
                &m.page_token,
            )?;
            listing.lookup(&call.credential)?;
            let credential = call.credential;
            let found = self
                .db
                .run(call.budget, move |conn| {
                    let lookup = listing.lookup(&credential)?;
                    conn.run(|conn| groups_store::audit::list_events(conn, &lookup, &listing))
                })
                .await?;
            groups_core::audit::list_membership_events(&call.credential, found)
        };
        finish(page.await, "listed").map(|page| {
            Response::new(ListMembershipEventsResponse {
                events: page.events.into_iter().map(event_message).collect(),
                next_page_token: page.next.map(|token| token.encode()).unwrap_or_default(),
            })
        })
    }
}

fn event_message(event: groups_core::MembershipEvent) -> MembershipEvent {
    let (seconds, nanos) = event.at.seconds_and_nanos();
    MembershipEvent {
        id: event.id,
        action: groups_core::audit::MEMBERSHIP_REMOVED.to_owned(),
        group_id: event.group,
        user_id: event.user,
        actor_admin_id: event.actor_admin,
        actor_role: event.actor_role.as_str().to_owned(),
        request_id: event.request_id,
        at: Some(Timestamp { seconds, nanos }),
    }
}

/// Events deleted by one retention statement: small, so it never holds removals up.
const PRUNE_BATCH: u32 = 1000;

/// Deletes events older than `days` days now and then every `every`, in small batches, until
/// the server stops. Runs on the pool's spare connection, beside the workers.
pub(crate) async fn retain(pool: Pool, days: u32, every: Duration) {
    loop {
        let pool = pool.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            let mut pruned = 0;
            loop {
                let deleted = pool.checkout(Duration::from_secs(5)).and_then(|mut conn| {
                    conn.run(|conn| groups_store::audit::prune_events(conn, days, PRUNE_BATCH))
                })?;
                pruned += deleted;
                if deleted < PRUNE_BATCH as usize {
                    return Ok::<_, groups_core::DomainError>(pruned);
                }
            }
        })
        .await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(pruned)) => tracing::info!(pruned, days, "audit events past retention deleted"),
            Ok(Err(error)) => tracing::warn!(%error, "audit retention failed; retrying later"),
            Err(error) => tracing::error!(%error, "audit retention task failed"),
        }
        tokio::time::sleep(every).await;
    }
}
