//! The hot path: one SQL statement that resolves the principal and the group and deletes the
//! membership only when the domain's guard holds.
//!
//! Round trips: one per removal. The statement is a diesel query with a static query id, so each
//! pooled connection prepares it once and afterwards only binds and executes it. All look-ups and
//! the guarded `DELETE` run in that single statement (one snapshot, one implicit transaction), so
//! concurrent removals of one membership delete it exactly once: the row lock serialises them and
//! the losers find nothing left to delete.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Nullable, Text};
use diesel::{PgConnection, QueryResult, RunQueryDsl};
use groups_core::{DomainError, MembershipStore, Principal, RemovalAttempt, RemovalFacts};

use crate::pool::{Budget, Store};

/// SQL round trips one removal takes (after the connection's first use, which also prepares).
pub const REMOVAL_ROUND_TRIPS: u32 = 1;

/// The store as the domain's removal sees it: each attempt checks out a connection and runs
/// [`AttemptRemoval`] on it.
#[derive(Debug)]
pub(crate) struct PgMembershipStore<'a> {
    store: &'a Store,
    budget: Budget,
}

impl<'a> PgMembershipStore<'a> {
    pub(crate) fn new(store: &'a Store, budget: Budget) -> Self {
        Self { store, budget }
    }
}

impl MembershipStore for PgMembershipStore<'_> {
    fn attempt_removal(
        &mut self,
        attempt: &RemovalAttempt<'_>,
    ) -> Result<RemovalFacts, DomainError> {
        let mut pooled = self.store.checkout(self.budget)?;
        let query = AttemptRemoval {
            instance: attempt.instance.as_str(),
            account_key: attempt.account_key.as_ref().map(|d| &d.as_bytes()[..]),
            api_key: attempt.api_key.as_ref().map(|d| &d.as_bytes()[..]),
            group: attempt.group.get(),
            user: attempt.user.get(),
            permitted: attempt.permitted,
        };
        let row: Result<(Option<i64>, Option<String>, bool, bool), _> =
            query.get_result(pooled.conn());
        match row {
            Ok((instance_id, principal, group_found, removed)) => Ok(RemovalFacts {
                instance_found: instance_id.is_some(),
                principal: match principal {
                    None => None,
                    Some(label) => Some(Principal::from_label(&label).ok_or_else(|| {
                        DomainError::Internal(format!("unknown principal label {label:?}"))
                    })?),
                },
                group_found,
                removed,
            }),
            Err(error) => {
                // The statement is fixed and known good: a failure means the connection or the
                // server is in trouble. Drop the connection rather than hand it out again.
                pooled.mark_broken();
                Err(classify(error))
            }
        }
    }
}

/// The removal statement's SQL text exactly as the server sends it, with `$1..$6` for its binds:
/// instance name (text), account key digest (bytea, NULL when none), API key digest (bytea,
/// NULL when none), group id (bigint), user id (bigint), permitted principal labels (text[]).
///
/// For tools that must run the same statement outside the server (the benchmark's pgbench).
pub fn removal_statement_sql() -> diesel::QueryResult<String> {
    use diesel::query_builder::QueryBuilder;
    let query = AttemptRemoval {
        instance: "",
        account_key: None,
        api_key: None,
        group: 0,
        user: 0,
        permitted: &[],
    };
    let mut sql = diesel::pg::PgQueryBuilder::default();
    query.to_sql(&mut sql, &Pg)?;
    Ok(sql.finish())
}

/// Every database-side failure of the fixed statement (connection lost, server shutting down,
/// statement cancelled) is an outage to retry; anything else is a bug.
fn classify(error: DieselError) -> DomainError {
    match error {
        DieselError::DatabaseError(_, _) => DomainError::Unavailable(error.to_string()),
        other => DomainError::Internal(other.to_string()),
    }
}

/// The removal statement (see the module doc). `$6` lists the principal labels the domain
/// permits; the `DELETE` runs only for those and only when the group exists.
#[derive(Debug)]
struct AttemptRemoval<'a> {
    instance: &'a str,
    account_key: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
    group: i64,
    user: i64,
    permitted: &'a [&'static str],
}

/// Static id, so diesel caches the prepared statement per connection.
#[derive(Debug)]
struct AttemptRemovalId;

impl QueryId for AttemptRemoval<'_> {
    type QueryId = AttemptRemovalId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for AttemptRemoval<'_> {
    type SqlType = (Nullable<BigInt>, Nullable<Text>, Bool, Bool);
}

impl RunQueryDsl<PgConnection> for AttemptRemoval<'_> {}

impl QueryFragment<Pg> for AttemptRemoval<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH inst AS (SELECT id, owner_id FROM instances WHERE name = ");
        out.push_bind_param::<Text, _>(self.instance)?;
        out.push_sql(
            "), principal AS (\
               SELECT CASE WHEN a.id = inst.owner_id THEN 'owner' ELSE COALESCE(r.role, 'none') END AS label \
               FROM inst JOIN admins a ON a.is_active AND a.key_digest = ",
        );
        out.push_bind_param::<Nullable<Bytea>, _>(&self.account_key)?;
        out.push_sql(
            " LEFT JOIN admin_roles r ON r.instance_id = inst.id AND r.admin_id = a.id \
             UNION ALL \
               SELECT CASE WHEN k.ignore_acl THEN 'api_key_ignore_acl' ELSE 'api_key' END \
               FROM inst JOIN api_keys k ON k.instance_id = inst.id AND k.revoked_at IS NULL AND k.key_digest = ",
        );
        out.push_bind_param::<Nullable<Bytea>, _>(&self.api_key)?;
        out.push_sql(
            "), grp AS (\
               SELECT g.id FROM inst JOIN groups g ON g.instance_id = inst.id AND g.deleted_at IS NULL AND g.id = ",
        );
        out.push_bind_param::<BigInt, _>(&self.group)?;
        out.push_sql(
            "), removed AS (\
               DELETE FROM memberships m USING inst, grp \
               WHERE m.instance_id = inst.id AND m.group_id = grp.id AND m.user_id = ",
        );
        out.push_bind_param::<BigInt, _>(&self.user)?;
        out.push_sql(" AND EXISTS (SELECT 1 FROM principal WHERE label = ANY(");
        out.push_bind_param::<Array<Text>, _>(self.permitted)?;
        out.push_sql(
            ")) RETURNING 1) \
             SELECT (SELECT id FROM inst), (SELECT label FROM principal LIMIT 1), \
                    EXISTS (SELECT 1 FROM grp), EXISTS (SELECT 1 FROM removed)",
        );
        Ok(())
    }
}
