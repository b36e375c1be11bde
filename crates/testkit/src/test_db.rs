//! `TestDb`: a migrated database of a test's own, dropped when the value is.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use diesel::PgConnection;
use diesel::connection::SimpleConnection;
use groups_store::StoreResult;

use crate::db_server::DbServer;

/// A fresh database with the current schema, cloned from the template migrated once per test
/// process. Dropping it drops the database, disconnecting anyone still connected.
///
/// The server is `TEST_DATABASE_URL`'s when set, else a private PostgreSQL started on first use
/// (from `initdb`/`pg_ctl` on PATH or under `/usr/lib/postgresql/*/bin`).
pub struct TestDb {
    name: String,
    url: String,
    /// One connection reused by [`TestDb::with_conn`], for fixtures' many small statements.
    kept: Mutex<Option<PgConnection>>,
}

impl TestDb {
    /// Creates the database. Panics when there is no server to create it on, saying why.
    pub fn new() -> Self {
        Self::create(true)
    }

    /// An empty database, without the schema: what `migrate` starts from.
    pub fn empty() -> Self {
        Self::create(false)
    }

    fn create(migrated: bool) -> Self {
        let (name, url) = DbServer::get()
            .create_database(migrated)
            .unwrap_or_else(|e| panic!("groups-testkit: {e:#}"));
        let kept = Mutex::default();
        Self { name, url, kept }
    }

    /// The database's URL (for `--database-url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

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

    /// Runs `work` on the kept connection, reconnecting first if it died (a test may have
    /// terminated backends); panics with `what` on failure.
    pub(crate) fn with_conn<T>(
        &self,
        what: &str,
        work: impl FnOnce(&mut PgConnection) -> StoreResult<T>,
    ) -> T {
        let result = {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            let alive = kept
                .take()
                .and_then(|mut conn| conn.batch_execute("SELECT 1").is_ok().then_some(conn));
            work(kept.insert(alive.unwrap_or_else(|| self.conn())))
        };
        result.unwrap_or_else(|e| panic!("groups-testkit: {what}: {e}"))
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
        // Our kept connection closes before its database goes.
        *self.kept.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        // Never panic here: a panic while a failed test unwinds would abort the whole run.
        if let Err(e) = DbServer::get().drop_database(&self.name) {
            eprintln!("groups-testkit: {e:#}");
        }
    }
}
