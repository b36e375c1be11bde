//! The r2d2 pool of PostgreSQL connections.
//!
//! The pool does not ping a connection on checkout (that would double the round trips of a
//! statement); instead a connection that failed at the connection level is marked broken and
//! r2d2 drops it when it comes back, so the pool heals by itself after an outage. A statement
//! that merely failed (a statement timeout) leaves its connection in the pool.

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, QueryResult, RunQueryDsl};
use groups_core::DomainError;

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most connections open at once.
    pub max_size: u32,
    /// Connections kept open while idle (`None`: as many as `max_size`).
    pub min_idle: Option<u32>,
    /// How long a request waits for a free connection before answering "unavailable".
    /// SPEC: 5 s or less by default, never r2d2's 30 s.
    pub checkout_timeout: Duration,
    /// Longest a statement may run at the database before it cancels it (`statement_timeout`,
    /// set once per connection): bounds work nobody waits for any more, such as lock waits.
    pub statement_timeout: Duration,
}

/// One database worker (and connection) per CPU core: with removals batched, more workers only
/// add wake-ups and connections (see the README's Performance section).
pub fn default_pool_size() -> u32 {
    std::thread::available_parallelism()
        .map_or(2, |cores| u32::try_from(cores.get()).unwrap_or(u32::MAX))
        .clamp(1, 64)
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: default_pool_size(),
            min_idle: None,
            checkout_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// A pooled connection, with a flag the store sets when the connection failed.
pub struct PooledConn {
    conn: PgConnection,
    broken: bool,
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("broken", &self.broken)
            .finish()
    }
}

/// Opens connections for r2d2 from a database URL, with the service's session settings.
#[derive(Debug)]
pub struct ConnectionManager {
    database_url: String,
    statement_timeout: Duration,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PooledConn;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<PooledConn, Self::Error> {
        use diesel::connection::SimpleConnection;
        let mut conn = PgConnection::establish(&with_network_timeouts(&self.database_url))?;
        // Pinned here, whatever the database's or role's defaults say: every statement of the
        // service is written for READ COMMITTED (a concurrent delete is seen, never an error).
        // Generic plans: the statements are fixed and their parameters arrays and ids whose
        // values never change the best plan, while planning the removal afresh for each call
        // (PostgreSQL's default for the first executions, and whenever it guesses a custom
        // plan is cheaper) costs several times its execution.
        let millis = self.statement_timeout.as_millis().max(1);
        conn.batch_execute(&format!(
            "SET statement_timeout = {millis}; \
             SET default_transaction_isolation = 'read committed'; \
             SET plan_cache_mode = force_generic_plan"
        ))
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
        Ok(PooledConn {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut PooledConn) -> Result<(), Self::Error> {
        diesel::sql_query("SELECT 1")
            .execute(&mut conn.conn)
            .map(drop)
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut PooledConn) -> bool {
        conn.broken
    }
}

/// libpq settings that make a silent network (packets dropped, not refused) an error within
/// seconds instead of minutes of TCP retransmission: connecting, idle keepalives, and unacknowledged
/// data. Settings the URL already has are kept.
const NETWORK_TIMEOUTS: [(&str, &str); 5] = [
    ("connect_timeout", "5"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "2"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
];

/// `database_url` with [`NETWORK_TIMEOUTS`] added, as URI query parameters or as `key=value`
/// words, whichever form the URL has.
fn with_network_timeouts(database_url: &str) -> String {
    let is_uri =
        database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
    let mut url = database_url.to_owned();
    for (key, value) in NETWORK_TIMEOUTS {
        if url.contains(&format!("{key}=")) {
            continue;
        }
        let separator = match (is_uri, url.contains('?')) {
            (true, true) => "&",
            (true, false) => "?",
            (false, _) => " ",
        };
        url.push_str(&format!("{separator}{key}={value}"));
    }
    url
}

/// Logs pool errors (failed connection attempts) through tracing instead of stderr.
#[derive(Debug)]
struct TracingErrorHandler;

impl r2d2::HandleError<diesel::ConnectionError> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::ConnectionError) {
        tracing::warn!(%error, "database connection attempt failed");
    }
}

/// The pool the server shares between its database workers and its maintenance tasks.
#[derive(Debug, Clone)]
pub struct Pool {
    pool: r2d2::Pool<ConnectionManager>,
}

/// A connection checked out of the [`Pool`]; it goes back when dropped.
pub type Checkout = r2d2::PooledConnection<ConnectionManager>;

impl Pool {
    /// Builds the pool without waiting for the database: the service starts (and answers 503)
    /// while the database is down, and serves as soon as it is up.
    pub fn new(database_url: &str, config: &PoolConfig) -> Self {
        let manager = ConnectionManager {
            database_url: database_url.to_owned(),
            statement_timeout: config.statement_timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(config.max_size)
            .min_idle(config.min_idle)
            .connection_timeout(config.checkout_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(TracingErrorHandler))
            .build_unchecked(manager);
        Self { pool }
    }

    /// Checks out a connection, waiting at most `wait` for one (nothing when it is zero).
    pub fn checkout(&self, wait: Duration) -> Result<Checkout, DomainError> {
        if wait.is_zero() {
            return Err(DomainError::Unavailable(
                "no database connection came free in time".to_owned(),
            ));
        }
        self.pool
            .get_timeout(wait)
            .map_err(|error| DomainError::Unavailable(format!("no database connection: {error}")))
    }

    /// Whether the database answers a trivial query within `wait` (for health checks).
    pub fn is_reachable(&self, wait: Duration) -> bool {
        self.checkout(wait).is_ok_and(|mut pooled| {
            pooled
                .run(|conn| diesel::sql_query("SELECT 1").execute(conn))
                .is_ok()
        })
    }

    /// The most connections the pool opens.
    pub fn max_size(&self) -> u32 {
        self.pool.max_size()
    }

    /// Connections open / idle, for metrics.
    pub fn state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }
}

/// Tries of a statement that fails with a serialization failure: the statement did nothing,
/// so running it again is safe, and the caller must not see a 5xx for a conflict.
const SERIALIZATION_TRIES: u32 = 3;

impl PooledConn {
    /// Runs one statement of the service (autocommit: all or nothing) and classifies a failure:
    /// a serialization failure is retried; one that leaves the connection unusable marks it
    /// broken, so the pool replaces it; a failure at the database (unreachable, statement
    /// timeout, shutting down) is `Unavailable`; anything else (a row that does not decode) is
    /// a bug, `Internal`.
    pub fn run<T>(
        &mut self,
        mut statement: impl FnMut(&mut PgConnection) -> QueryResult<T>,
    ) -> Result<T, DomainError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match statement(&mut self.conn) {
                Ok(value) => return Ok(value),
                Err(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _))
                    if tries < SERIALIZATION_TRIES => {}
                Err(error @ DieselError::DatabaseError(kind, _)) => {
                    if matches!(
                        kind,
                        DatabaseErrorKind::ClosedConnection
                            | DatabaseErrorKind::UnableToSendCommand
                    ) {
                        self.broken = true;
                    }
                    return Err(DomainError::Unavailable(error.to_string()));
                }
                Err(error) => return Err(DomainError::Internal(error.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_timeouts_are_added_in_the_url_s_own_form() {
        assert_eq!(
            with_network_timeouts("postgres://u@h/db"),
            "postgres://u@h/db?connect_timeout=5&keepalives_idle=5&keepalives_interval=2\
             &keepalives_count=3&tcp_user_timeout=10000"
        );
        assert!(
            with_network_timeouts("postgresql://h/db?sslmode=require")
                .starts_with("postgresql://h/db?sslmode=require&connect_timeout=5&")
        );
        assert!(
            with_network_timeouts("host=h dbname=db connect_timeout=9")
                .starts_with("host=h dbname=db connect_timeout=9 keepalives_idle=5 ")
        );
    }
}
