//! The r2d2 pool of PostgreSQL connections, and the `Store` handle the server holds.
//!
//! The pool does not ping a connection on checkout (that would double the round trips of a
//! removal); instead a connection that failed at the database is marked broken and r2d2 drops it
//! when it comes back, so the pool heals by itself after an outage.

use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use groups_core::{Credential, DomainError, RemovalRequest};

use crate::removal::PgMembershipStore;

/// Pool settings. The defaults suit a 2-core machine (see the README's Performance section).
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

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 8,
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

impl PooledConn {
    /// The diesel connection.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Marks the connection as unusable: the pool closes it instead of reusing it.
    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }
}

/// Opens connections for r2d2 from a database URL.
#[derive(Debug)]
pub(crate) struct ConnectionManager {
    database_url: String,
    statement_timeout: Duration,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PooledConn;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<PooledConn, Self::Error> {
        let mut conn = PgConnection::establish(&with_network_timeouts(&self.database_url))?;
        let millis = self.statement_timeout.as_millis().max(1);
        diesel::sql_query(format!("SET statement_timeout = {millis}"))
            .execute(&mut conn)
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

/// How long one request may wait and work: fixed when it arrives.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The caller's deadline (gRPC `grpc-timeout`), if it sent one.
    pub deadline: Option<Instant>,
    /// When waiting for a connection ends with "unavailable".
    pub checkout_by: Instant,
}

impl Budget {
    /// The earlier of the two limits.
    pub fn give_up_at(&self) -> Instant {
        self.deadline
            .map_or(self.checkout_by, |deadline| deadline.min(self.checkout_by))
    }

    /// Whether the caller's deadline has passed.
    pub fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// The handle the server shares between requests: a pool of connections.
#[derive(Debug, Clone)]
pub struct Store {
    pool: r2d2::Pool<ConnectionManager>,
    checkout_timeout: Duration,
}

impl Store {
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
        Self {
            pool,
            checkout_timeout: config.checkout_timeout,
        }
    }

    /// The time a request that starts now may spend: at most the checkout timeout waiting for a
    /// connection, and nothing past the caller's `deadline`.
    pub fn budget(&self, deadline: Option<Instant>) -> Budget {
        Budget {
            deadline,
            checkout_by: Instant::now() + self.checkout_timeout,
        }
    }

    /// Checks out a connection within `budget` (a request waits for a connection once, however
    /// many queues it passes: the service's permits, then r2d2).
    pub(crate) fn checkout(
        &self,
        budget: Budget,
    ) -> Result<r2d2::PooledConnection<ConnectionManager>, DomainError> {
        let wait = budget
            .give_up_at()
            .saturating_duration_since(Instant::now());
        let outcome = if wait.is_zero() {
            Err(None)
        } else {
            self.pool.get_timeout(wait).map_err(Some)
        };
        match outcome {
            // The wait may have used up the caller's time: then do not start the statement.
            Ok(_) | Err(_) if budget.deadline_passed() => Err(DomainError::DeadlineExceeded),
            Ok(conn) => Ok(conn),
            Err(error) => Err(DomainError::Unavailable(match error {
                Some(error) => format!("no database connection: {error}"),
                None => "no database connection came free in time".to_owned(),
            })),
        }
    }

    /// Removes a user from a group (blocking: call it from `spawn_blocking`) within `budget`:
    /// `DeadlineExceeded` rather than starting work after the caller's deadline.
    ///
    /// One pool checkout and one SQL round trip; see [`crate::REMOVAL_ROUND_TRIPS`].
    pub fn remove_member(
        &self,
        request: &RemovalRequest,
        credential: &Credential,
        budget: Budget,
    ) -> Result<(), DomainError> {
        let mut store = PgMembershipStore::new(self, budget);
        groups_core::removal::remove_user_from_group(&mut store, request, credential)
    }

    /// Whether the database answers a trivial query now (for health checks).
    pub fn is_reachable(&self) -> bool {
        let Ok(mut pooled) = self.checkout(self.budget(None)) else {
            return false;
        };
        let answered = diesel::sql_query("SELECT 1").execute(pooled.conn()).is_ok();
        if !answered {
            pooled.mark_broken();
        }
        answered
    }

    /// The most connections the pool opens.
    pub fn max_connections(&self) -> u32 {
        self.pool.max_size()
    }

    /// How long a request may wait for a connection.
    pub fn checkout_timeout(&self) -> Duration {
        self.checkout_timeout
    }

    /// Connections open / idle, for metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
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
