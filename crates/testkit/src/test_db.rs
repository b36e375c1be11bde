//! `TestDb`: a migrated database of a test's own, dropped when the value is.

use std::fmt;
use std::net::SocketAddr;

use diesel::PgConnection;

use crate::db_server::DbServer;

/// A fresh database with the current schema, cloned from the template migrated once per test
/// process. Dropping it drops the database, disconnecting anyone still connected.
///
/// The server is `TEST_DATABASE_URL`'s when set, else a private PostgreSQL started on first use
/// (from `initdb`/`pg_ctl` on PATH or under `/usr/lib/postgresql/*/bin`).
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// Creates the database. Panics when there is no server to create it on, saying why.
    pub fn new() -> Self {
        let (name, url) = DbServer::get()
            .create_database()
            .unwrap_or_else(|e| panic!("groups-testkit: {e:#}"));
        Self { name, url }
    }

    /// The database's URL (for `--database-url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to the database.
    pub fn conn(&self) -> PgConnection {
        groups_store::connect(&self.url)
            .unwrap_or_else(|e| panic!("groups-testkit: database {}: {e}", self.name))
    }

    /// The database server's TCP address: the upstream of a [`crate::FaultProxy`].
    pub fn server_addr(&self) -> SocketAddr {
        DbServer::get()
            .socket_addr()
            .unwrap_or_else(|e| panic!("groups-testkit: {e}"))
    }

    /// The database's URL with the server reached at `address` instead (a proxy's).
    pub fn url_via(&self, address: SocketAddr) -> String {
        DbServer::get().url_via(&self.name, address)
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry TEST_DATABASE_URL's password; the name says which database it is.
        f.debug_struct("TestDb")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Never panic here: a panic while a failed test unwinds would abort the whole run.
        if let Err(e) = DbServer::get().drop_database(&self.name) {
            eprintln!("groups-testkit: {e:#}");
        }
    }
}
