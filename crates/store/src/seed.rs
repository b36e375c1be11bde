//! Bulk seeding: G groups × U users, every user in every group, generated inside PostgreSQL.
//!
//! `INSERT ... SELECT FROM generate_series` builds the rows server-side, so nothing crosses the
//! wire but the counts: as fast as COPY, without streaming a million rows from the client.
//!
//! Checking two foreign keys row by row and growing a secondary index costs most of a bulk
//! load (1M memberships: 11.6 s against 2.6 s without). So `seed` sets the memberships table's
//! foreign keys and secondary indexes aside, loads, then rebuilds the indexes in one pass and
//! re-adds the foreign keys, validated in one pass each. The definitions are read back from the
//! catalog (never written twice), and all of it is one transaction: a failed seed changes nothing.
//! The table is locked for the duration: seed an idle database (benchmarks, demos), not a busy one.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::error::{StoreError, StoreResult};
use crate::provision::instance_id;

/// What `seed` made. Ids are contiguous: `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSummary {
    /// First and last group id.
    pub groups: (i64, i64),
    /// First and last user id.
    pub users: (i64, i64),
    /// Memberships made: groups × users.
    pub memberships: i64,
}

#[derive(QueryableByName)]
struct IdRange {
    #[diesel(sql_type = Nullable<BigInt>)]
    first: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last: Option<i64>,
}

/// Seeds `groups` × `users` into an instance in one transaction.
///
/// The tables are locked against concurrent inserts for the duration, which keeps each batch of
/// ids contiguous (identity values are handed out in order within one statement).
pub fn seed(
    conn: &mut PgConnection,
    instance: &str,
    groups: i64,
    users: i64,
) -> StoreResult<SeedSummary> {
    if !(1..=10_000_000).contains(&groups) || !(1..=10_000_000).contains(&users) {
        return Err(StoreError::Invalid(
            "seed sizes: groups and users must be 1..=10000000".into(),
        ));
    }
    let memberships = groups
        .checked_mul(users)
        .filter(|m| *m <= 100_000_000)
        .ok_or_else(|| StoreError::Invalid("seed size: at most 100000000 memberships".into()))?;
    conn.transaction(|conn| {
        let instance_id = instance_id(conn, instance)?;
        diesel::sql_query("LOCK TABLE groups, users IN SHARE ROW EXCLUSIVE MODE").execute(conn)?;
        let group_ids: IdRange = diesel::sql_query(
            "WITH made AS (\
               INSERT INTO groups (instance_id, label) \
               SELECT $1, 'group-' || n FROM generate_series(1, $2) AS n RETURNING id) \
             SELECT min(id) AS first, max(id) AS last FROM made",
        )
        .bind::<BigInt, _>(instance_id)
        .bind::<BigInt, _>(groups)
        .get_result(conn)?;
        // Usernames embed the id, so seeding the same instance twice never collides.
        let user_ids: IdRange = diesel::sql_query(
            "WITH ids AS (SELECT nextval(pg_get_serial_sequence('users', 'id')) AS id \
                          FROM generate_series(1, $2)), \
                  made AS (INSERT INTO users (id, instance_id, username) \
                           SELECT id, $1, 'user-' || id FROM ids RETURNING id) \
             SELECT min(id) AS first, max(id) AS last FROM made",
        )
        .bind::<BigInt, _>(instance_id)
        .bind::<BigInt, _>(users)
        .get_result(conn)?;
        let (Some(g1), Some(g2), Some(u1), Some(u2)) = (
            group_ids.first,
            group_ids.last,
            user_ids.first,
            user_ids.last,
        ) else {
            return Err(StoreError::Invalid("seed produced no rows".into()));
        };
        if g2 - g1 + 1 != groups || u2 - u1 + 1 != users {
            return Err(StoreError::Invalid("seed ids are not contiguous".into()));
        }
        with_memberships_checks_deferred(conn, |conn| {
            diesel::sql_query(
                "INSERT INTO memberships (instance_id, group_id, user_id) \
                 SELECT $1, g, u FROM generate_series($2::bigint, $3::bigint) AS g \
                                CROSS JOIN generate_series($4::bigint, $5::bigint) AS u",
            )
            .bind::<BigInt, _>(instance_id)
            .bind::<BigInt, _>(g1)
            .bind::<BigInt, _>(g2)
            .bind::<BigInt, _>(u1)
            .bind::<BigInt, _>(u2)
            .execute(conn)
        })?;
        Ok(SeedSummary {
            groups: (g1, g2),
            users: (u1, u2),
            memberships,
        })
    })
}

#[derive(QueryableByName)]
struct Definition {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

/// Runs `load` with the memberships table's foreign keys and non-unique indexes dropped, then
/// puts them back from their catalog definitions and validates every foreign key.
/// Must run inside a transaction (it is, in [`seed`]).
fn with_memberships_checks_deferred(
    conn: &mut PgConnection,
    load: impl FnOnce(&mut PgConnection) -> QueryResult<usize>,
) -> StoreResult<usize> {
    let foreign_keys: Vec<Definition> = diesel::sql_query(
        "SELECT conname::text AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint \
         WHERE conrelid = 'memberships'::regclass AND contype = 'f' ORDER BY conname",
    )
    .load(conn)?;
    let indexes: Vec<Definition> = diesel::sql_query(
        "SELECT c.relname::text AS name, pg_get_indexdef(i.indexrelid) AS definition \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'memberships'::regclass AND NOT i.indisunique ORDER BY c.relname",
    )
    .load(conn)?;
    for fk in &foreign_keys {
        diesel::sql_query(format!(
            "ALTER TABLE memberships DROP CONSTRAINT {}",
            quote_ident(&fk.name)
        ))
        .execute(conn)?;
    }
    for index in &indexes {
        diesel::sql_query(format!("DROP INDEX {}", quote_ident(&index.name))).execute(conn)?;
    }
    let loaded = load(conn)?;
    for index in &indexes {
        diesel::sql_query(&index.definition).execute(conn)?;
    }
    for fk in &foreign_keys {
        let name = quote_ident(&fk.name);
        diesel::sql_query(format!(
            "ALTER TABLE memberships ADD CONSTRAINT {name} {} NOT VALID",
            fk.definition
        ))
        .execute(conn)?;
        diesel::sql_query(format!(
            "ALTER TABLE memberships VALIDATE CONSTRAINT {name}"
        ))
        .execute(conn)?;
    }
    Ok(loaded)
}

/// Quotes an identifier read from the catalog.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
