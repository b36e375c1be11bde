//! PostgreSQL storage: the schema and its embedded migrations, the connection pool, one module
//! per operation of the service (each one SQL statement, one round trip), and the provisioning
//! queries `groupsctl` and the tests use.
//!
//! Errors: provisioning returns [`StoreError`]; the operations return diesel's `QueryResult`,
//! which [`PooledConn::run`] turns into the domain's terms ([`groups_core::DomainError`]), with
//! every problem at the database as `Unavailable`.

pub mod audit;
mod error;
mod pool;
pub mod provision;
pub mod reads;
pub mod removal;
pub mod schema;
mod seed;
mod statement;

use diesel::pg::PgConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use error::{StoreError, StoreResult};
pub use pool::{Checkout, ConnectionManager, Pool, PoolConfig, PooledConn, default_pool_size};
pub use removal::{Removal, removal_statement_sql};
pub use seed::{SeedSummary, seed};

/// The migrations, embedded in every binary that links the store.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Applies every pending migration and returns the versions applied (empty when up to date).
pub fn migrate(conn: &mut PgConnection) -> StoreResult<Vec<String>> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Opens one connection outside any pool (for `groupsctl` and test set-up).
pub fn connect(database_url: &str) -> StoreResult<PgConnection> {
    use diesel::Connection;
    PgConnection::establish(database_url).map_err(|e| StoreError::Connect(e.to_string()))
}
