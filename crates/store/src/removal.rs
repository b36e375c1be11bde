//! The hot path: removing a batch of members in one statement, one round trip and one commit,
//! with each removal's audit event written by the same statement.
//!
//! Every item of the batch is resolved on its own (instance, the key's principal, the group,
//! the user) and its membership deleted only when the principal may remove members and the
//! group is live, so each item ends exactly as it would alone. Two items for one membership
//! (in one batch, or in concurrent batches) delete it once: the row lock serialises them, and
//! the statement returns the deleting item's ordinal only. Items are locked in key order, so
//! concurrent batches cannot deadlock on each other.

use diesel::QueryResult;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Nullable, Text};
use groups_core::{Access, Principal, RemovalAttempt, RemovalFacts};

use crate::statement::{fixed_statement, principal_sql};

/// One removal of a batch: what the store must do, and the request id its event records.
#[derive(Debug, Clone, Copy)]
pub struct Removal<'a> {
    /// The removal.
    pub attempt: RemovalAttempt<'a>,
    /// The request id of the removal, for its audit event.
    pub request_id: &'a str,
}

/// Performs every removal of `batch` in one statement and returns each one's facts, in order.
///
/// Every item must need the same permission (it does: [`groups_core::Permission::RemoveMembers`]).
pub fn remove_members<'b>(
    conn: &mut diesel::PgConnection,
    batch: &'b [Removal<'_>],
) -> QueryResult<Vec<RemovalFacts>> {
    use diesel::RunQueryDsl;
    let Some(first) = batch.first() else {
        return Ok(Vec::new());
    };
    let digest = |d: &'b Option<groups_core::KeyDigest>| d.as_ref().map(|d| &d.as_bytes()[..]);
    let statement = RemoveMembers {
        instances: batch
            .iter()
            .map(|r| r.attempt.lookup.instance.as_str())
            .collect(),
        account_keys: batch
            .iter()
            .map(|r| digest(&r.attempt.lookup.account_key))
            .collect(),
        api_keys: batch
            .iter()
            .map(|r| digest(&r.attempt.lookup.api_key))
            .collect(),
        groups: batch.iter().map(|r| r.attempt.group.get()).collect(),
        users: batch.iter().map(|r| r.attempt.user.get()).collect(),
        request_ids: batch.iter().map(|r| r.request_id).collect(),
        permitted: first.attempt.lookup.permitted,
    };
    let rows: Vec<(i64, bool, Option<String>, bool, bool, bool)> = statement.load(conn)?;
    let mut facts = vec![RemovalFacts::default(); batch.len()];
    for (ordinal, instance_found, label, group_found, user_found, removed) in rows {
        let slot = usize::try_from(ordinal - 1)
            .ok()
            .and_then(|index| facts.get_mut(index))
            .ok_or_else(|| decode_error(format!("ordinal {ordinal} out of the batch")))?;
        *slot = RemovalFacts {
            access: Access {
                instance_found,
                principal: principal(label)?,
            },
            group_found,
            user_found,
            removed,
        };
    }
    Ok(facts)
}

/// Reads a principal label computed in SQL back.
pub(crate) fn principal(label: Option<String>) -> QueryResult<Option<Principal>> {
    label
        .map(|label| {
            Principal::from_label(&label)
                .ok_or_else(|| decode_error(format!("unknown principal label {label:?}")))
        })
        .transpose()
}

pub(crate) fn decode_error(message: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(message.into())
}

/// The batched removal's SQL text exactly as the server sends it, with `$1..$7` for its binds
/// (arrays of one element per removal): instance names (`text[]`), account key digests and API
/// key digests (`bytea[]`, NULL where none), group ids and user ids (`int8[]`), request ids
/// (`text[]`), and the permitted principal labels (`text[]`).
///
/// For tools that must run the same statement outside the server (the benchmark's pgbench).
pub fn removal_statement_sql() -> &'static str {
    RemoveMembers::SQL
}

fixed_statement! {
    /// See the module's documentation. Returns `(ordinal, instance found, principal label,
    /// group live, user found, removed)` for every item.
    RemoveMembers<'a> {
        instances: Vec<&'a str> => Array<Text>,
        account_keys: Vec<Option<&'a [u8]>> => Array<Nullable<Bytea>>,
        api_keys: Vec<Option<&'a [u8]>> => Array<Nullable<Bytea>>,
        groups: Vec<i64> => Array<BigInt>,
        users: Vec<i64> => Array<BigInt>,
        request_ids: Vec<&'a str> => Array<Text>,
        permitted: &'a [&'static str] => Array<Text>,
    } -> (BigInt, Bool, Nullable<Text>, Bool, Bool, Bool) = concat!(
        "WITH item AS MATERIALIZED (\
           SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::int8[], $5::int8[], $6::text[]) \
             WITH ORDINALITY AS t(instance, account_key, api_key, group_id, user_id, request_id, ordinal)\
         ), resolved AS MATERIALIZED (\
           SELECT item.ordinal, item.group_id, item.user_id, item.request_id, \
                  inst.id AS instance_id, who.label, who.admin_id, \
                  EXISTS (SELECT 1 FROM groups g WHERE g.instance_id = inst.id AND g.id = item.group_id \
                          AND g.deleted_at IS NULL) AS group_found, \
                  EXISTS (SELECT 1 FROM users u WHERE u.instance_id = inst.id AND u.id = item.user_id) AS user_found \
           FROM item \
           LEFT JOIN instances inst ON inst.name = item.instance \
           LEFT JOIN LATERAL (",
        principal_sql!("inst", "item.account_key", "item.api_key"),
        ") who ON inst.id IS NOT NULL \
           ORDER BY inst.id, item.group_id, item.user_id\
         ), removed AS (\
           DELETE FROM memberships m USING resolved r \
           WHERE m.instance_id = r.instance_id AND m.group_id = r.group_id AND m.user_id = r.user_id \
             AND r.group_found AND r.label = ANY($7::text[]) \
           RETURNING r.ordinal, m.instance_id, m.group_id, m.user_id, r.admin_id, r.label, r.request_id\
         ), logged AS (\
           INSERT INTO membership_events (instance_id, group_id, user_id, actor_admin_id, actor_role, request_id) \
           SELECT instance_id, group_id, user_id, admin_id, label, request_id FROM removed\
         ) \
         SELECT r.ordinal, r.instance_id IS NOT NULL, r.label, r.group_found, r.user_found, d.ordinal IS NOT NULL \
         FROM resolved r LEFT JOIN removed d ON d.ordinal = r.ordinal"
    )
}
