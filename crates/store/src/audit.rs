//! Reading and pruning the audit trail. Events are written by the removal statement itself
//! (`removal.rs`); here they are listed newest first (keyset pagination within the snapshot of
//! the listing's first page, see `groups_core::audit`) and pruned by age.
//!
//! The listing is built for its filters (any, group, user, both) so each uses its own index;
//! it is not on the hot path, so it is planned per call rather than prepared.

use diesel::pg::Pg;
use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Integer, Nullable, Text};
use diesel::{PgConnection, QueryResult, QueryableByName, RunQueryDsl};
use groups_core::{
    Access, EventsPage, EventsRequest, Found, GroupId, Lookup, MembershipEvent, PageToken, Role,
    Snapshot, UserId, UtcMicros,
};

use crate::error::{StoreError, StoreResult};
use crate::reads::Digests;
use crate::removal::{decode_error, principal};
use crate::statement::principal_sql;

/// One page of the lookup's instance's events, if its principal may read them.
pub fn list_events(
    conn: &mut PgConnection,
    lookup: &Lookup<'_>,
    request: &EventsRequest,
) -> QueryResult<Found<EventsPage>> {
    let digests = Digests::of(lookup);
    let filters = Filters::of(request.group, request.user, request.after.as_ref());
    let sql = format!(
        "WITH inst AS (SELECT id, owner_id FROM instances WHERE name = $1), \
         who AS (SELECT p.label FROM inst CROSS JOIN LATERAL ({}) p), \
         ev AS ({} WHERE e.instance_id = (SELECT id FROM inst) \
                  AND EXISTS (SELECT 1 FROM who WHERE who.label = ANY($4::text[])){} \
                ORDER BY e.id DESC LIMIT $5) \
         SELECT EXISTS (SELECT 1 FROM inst) AS instance_found, (SELECT label FROM who) AS label, \
                pg_current_snapshot()::text AS snapshot, ev.* \
         FROM (SELECT 1) AS one LEFT JOIN ev ON true ORDER BY ev.id DESC",
        principal_sql!("inst", "$2", "$3"),
        EVENT_COLUMNS,
        filters.sql(6),
    );
    let query = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<Text, _>(lookup.instance.as_str())
        .bind::<Nullable<Bytea>, _>(digests.account)
        .bind::<Nullable<Bytea>, _>(digests.api)
        .bind::<Array<Text>, _>(lookup.permitted)
        .bind::<Integer, _>(page_limit(request.page_size));
    let rows: Vec<ListedRow> = filters.bind(query).load(conn)?;
    let Some(first) = rows.first() else {
        return Err(decode_error("the listing returned no row".to_owned()));
    };
    let access = Access {
        instance_found: first.instance_found,
        principal: principal(first.label.clone())?,
    };
    let snapshot = match &request.after {
        Some(token) => token.snapshot.clone(),
        None => Snapshot::parse(&first.snapshot)
            .ok_or_else(|| decode_error(format!("snapshot {:?}", first.snapshot)))?,
    };
    let mut events = rows
        .into_iter()
        .filter_map(|row| row.event)
        .collect::<QueryResult<Vec<_>>>()?;
    let object = access.principal.map(|_| {
        let more = events.len() > request.page_size as usize;
        events.truncate(request.page_size as usize);
        let next = more.then(|| PageToken {
            last_id: events.last().map_or(0, |event| event.id),
            group: request.group,
            user: request.user,
            snapshot,
        });
        EventsPage { events, next }
    });
    Ok(Found { access, object })
}

/// The newest `limit` events of an instance, for operators (`groupsctl audit`): no key needed.
pub fn recent_events(
    conn: &mut PgConnection,
    instance: &str,
    group: Option<GroupId>,
    user: Option<UserId>,
    limit: u32,
) -> StoreResult<Vec<MembershipEvent>> {
    if !(1..=10_000).contains(&limit) {
        return Err(StoreError::Invalid("limit: use 1-10000".into()));
    }
    let instance_id = crate::provision::instance_id(conn, instance)?;
    let filters = Filters::of(group, user, None);
    let sql = format!(
        "{} WHERE e.instance_id = $1{} ORDER BY e.id DESC LIMIT $2",
        EVENT_COLUMNS,
        filters.sql(3)
    );
    let query = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<BigInt, _>(instance_id)
        .bind::<Integer, _>(i32::try_from(limit).unwrap_or(i32::MAX));
    let rows: Vec<EventRow> = filters.bind(query).load(conn)?;
    rows.into_iter()
        .map(EventRow::event)
        .collect::<QueryResult<_>>()
        .map_err(StoreError::from)
}

/// Deletes up to `batch` events older than `days` days; returns how many it deleted. Small
/// batches keep each statement short, so pruning never holds up removals for long.
pub fn prune_events(conn: &mut PgConnection, days: u32, batch: u32) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM membership_events WHERE ctid = ANY (ARRAY (\
           SELECT ctid FROM membership_events \
           WHERE at < now() - make_interval(days => $1) LIMIT $2))",
    )
    .bind::<Integer, _>(i32::try_from(days).unwrap_or(i32::MAX))
    .bind::<Integer, _>(i32::try_from(batch).unwrap_or(i32::MAX))
    .execute(conn)
}

/// One more than the page: whether a row comes back past it tells if there is a next page.
fn page_limit(page_size: u32) -> i32 {
    i32::try_from(page_size).map_or(i32::MAX, |size| size.saturating_add(1))
}

/// The event columns, selected from `membership_events e`.
const EVENT_COLUMNS: &str = "SELECT e.id, e.group_id, e.user_id, e.actor_admin_id, e.actor_role, \
     e.request_id, (extract(epoch FROM e.at) * 1000000)::int8 AS at_us \
     FROM membership_events e";

/// The optional conditions of a listing, bound after the fixed binds.
struct Filters<'a> {
    group: Option<i64>,
    user: Option<i64>,
    after: Option<&'a PageToken>,
}

impl<'a> Filters<'a> {
    fn of(group: Option<GroupId>, user: Option<UserId>, after: Option<&'a PageToken>) -> Self {
        Self {
            group: group.map(GroupId::get),
            user: user.map(UserId::get),
            after,
        }
    }

    /// The conditions, with placeholders numbered from `$first`.
    fn sql(&self, first: usize) -> String {
        let mut n = first;
        let mut next = || {
            n += 1;
            n - 1
        };
        let mut sql = String::new();
        if self.group.is_some() {
            sql += &format!(" AND e.group_id = ${}", next());
        }
        if self.user.is_some() {
            sql += &format!(" AND e.user_id = ${}", next());
        }
        if self.after.is_some() {
            let (id, snapshot) = (next(), next());
            sql += &format!(
                " AND e.id < ${id} AND pg_visible_in_snapshot(e.xact, ${snapshot}::text::pg_snapshot)"
            );
        }
        sql
    }

    /// Binds the values of [`Filters::sql`], in its order.
    fn bind<'q>(
        &self,
        mut query: BoxedSqlQuery<'q, Pg, diesel::query_builder::SqlQuery>,
    ) -> BoxedSqlQuery<'q, Pg, diesel::query_builder::SqlQuery> {
        if let Some(group) = self.group {
            query = query.bind::<BigInt, _>(group);
        }
        if let Some(user) = self.user {
            query = query.bind::<BigInt, _>(user);
        }
        if let Some(token) = self.after {
            query = query
                .bind::<BigInt, _>(token.last_id)
                .bind::<Text, _>(token.snapshot.as_str().to_owned());
        }
        query
    }
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    group_id: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = BigInt)]
    actor_admin_id: i64,
    #[diesel(sql_type = Text)]
    actor_role: String,
    #[diesel(sql_type = Text)]
    request_id: String,
    #[diesel(sql_type = BigInt)]
    at_us: i64,
}

impl EventRow {
    fn event(self) -> QueryResult<MembershipEvent> {
        Ok(MembershipEvent {
            id: self.id,
            group: self.group_id,
            user: self.user_id,
            actor_admin: self.actor_admin_id,
            actor_role: Role::parse(&self.actor_role)
                .ok_or_else(|| decode_error(format!("role {:?}", self.actor_role)))?,
            request_id: self.request_id,
            at: UtcMicros(self.at_us),
        })
    }
}

/// A row of a listing: the access facts, and an event unless the page is empty.
struct ListedRow {
    instance_found: bool,
    label: Option<String>,
    snapshot: String,
    event: Option<QueryResult<MembershipEvent>>,
}

impl QueryableByName<Pg> for ListedRow {
    fn build<'a>(row: &impl diesel::row::NamedRow<'a, Pg>) -> diesel::deserialize::Result<Self> {
        use diesel::row::NamedRow;
        let id = NamedRow::get::<Nullable<BigInt>, Option<i64>>(row, "id")?;
        let event = match id {
            None => None,
            Some(_) => Some(<EventRow as QueryableByName<Pg>>::build(row)?.event()),
        };
        Ok(Self {
            instance_found: NamedRow::get::<Bool, bool>(row, "instance_found")?,
            label: NamedRow::get::<Nullable<Text>, Option<String>>(row, "label")?,
            snapshot: NamedRow::get::<Text, String>(row, "snapshot")?,
            event,
        })
    }
}
