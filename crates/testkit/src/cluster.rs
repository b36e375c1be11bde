//! The PostgreSQL server of this test process (`TEST_DATABASE_URL`'s, or a private one) and its
//! migrated template database, set up once and shared by every test thread.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::database_url::DatabaseUrl;
use crate::private_server::PrivateServer;

/// Names this crate gives databases on a shared server start with one of these, followed by
/// `<unix seconds>_<tag>`: the age lets a later run sweep what an aborted one left behind.
const TEMPLATE_PREFIX: &str = "groups_template_";
const TEST_PREFIX: &str = "groups_test_";

/// Databases this old on a shared server belong to a run that is over: a test process drops its
/// test databases but cannot drop its template (statics are never dropped), and an aborted one
/// drops nothing. No test process runs for hours.
const STALE_AFTER: Duration = Duration::from_secs(3 * 60 * 60);

/// The server and template every `TestDb` of this process clones.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// A database to connect to for CREATE/DROP DATABASE.
    admin: DatabaseUrl,
    template: String,
    /// `<unix seconds>_<random>`: unique to this process, even across machines sharing a server.
    run: String,
    next_db: AtomicU64,
    /// PostgreSQL refuses to clone a template that another session is cloning at the same time.
    clone_lock: Mutex<()>,
    /// The server this process started, if it did; its watchdog stops it after the process.
    private: Option<PrivateServer>,
}

impl Cluster {
    /// The process-wide cluster, set up on first use. Panics when it cannot be set up; every
    /// later caller panics with the same message rather than retrying a slow failure.
    pub(crate) fn get() -> &'static Cluster {
        static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
        match CLUSTER.get_or_init(Cluster::set_up) {
            Ok(cluster) => cluster,
            Err(message) => panic!("groups-testkit: no test database server: {message}"),
        }
    }

    fn set_up() -> Result<Self, String> {
        let external = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty());
        let (admin, private) = match external {
            Some(url) => {
                let admin =
                    DatabaseUrl::parse(&url).map_err(|e| format!("TEST_DATABASE_URL: {e}"))?;
                (admin, None)
            }
            None => {
                let server = PrivateServer::start()?;
                (DatabaseUrl::parse(&server.admin_url())?, Some(server))
            }
        };
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let run = format!("{started}_{}", random_tag());
        let cluster = Self {
            template: format!("{TEMPLATE_PREFIX}{run}"),
            admin,
            run,
            next_db: AtomicU64::new(1),
            clone_lock: Mutex::new(()),
            private,
        };
        if cluster.private.is_none() {
            cluster.sweep_stale();
        }
        cluster.create_template()?;
        Ok(cluster)
    }

    fn create_template(&self) -> Result<(), String> {
        let mut admin = self.admin_conn()?;
        // template0 takes no connections, so cloning it never meets "being accessed by other
        // users", whatever else runs on a shared server.
        admin
            .batch_execute(&format!(
                "CREATE DATABASE \"{}\" TEMPLATE template0",
                self.template
            ))
            .map_err(|e| format!("cannot create the template database {}: {e}", self.template))?;
        let url = self.url_of(&self.template);
        let mut conn = groups_store::connect(&url).map_err(|e| e.to_string())?;
        groups_store::migrate(&mut conn).map_err(|e| format!("migrating the template: {e}"))?;
        Ok(())
    }

    /// Creates a fresh database from the migrated template; returns its name and URL.
    pub(crate) fn create_database(&self) -> Result<(String, String), String> {
        let name = format!(
            "{TEST_PREFIX}{}_{}",
            self.run,
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = self.admin_conn()?;
        {
            let _one_clone_at_a_time = self
                .clone_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            admin
                .batch_execute(&format!(
                    "CREATE DATABASE \"{name}\" TEMPLATE \"{}\"",
                    self.template
                ))
                .map_err(|e| format!("cannot create database {name}: {e}"))?;
        }
        let url = self.url_of(&name);
        Ok((name, url))
    }

    /// Drops a database, disconnecting whoever is still connected (a server under test).
    pub(crate) fn drop_database(&self, name: &str) -> Result<(), String> {
        let mut admin = self.admin_conn()?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .map_err(|e| format!("cannot drop database {name}: {e}"))
    }

    /// The URL of a database of this server.
    pub(crate) fn url_of(&self, database: &str) -> String {
        self.admin.with_database(database)
    }

    /// The URL of a database of this server, reached through another address.
    pub(crate) fn url_via(&self, database: &str, address: std::net::SocketAddr) -> String {
        DatabaseUrl::parse(&self.url_of(database))
            .map(|url| url.with_address(address))
            .unwrap_or_else(|e| panic!("groups-testkit: {e}"))
    }

    /// The server's TCP address.
    pub(crate) fn socket_addr(&self) -> Result<std::net::SocketAddr, String> {
        self.admin.socket_addr()
    }

    fn admin_conn(&self) -> Result<PgConnection, String> {
        let url = self.url_of(self.admin.database());
        groups_store::connect(&url).map_err(|e| e.to_string())
    }

    /// Drops what earlier runs left on a shared server: their templates, and the test databases
    /// of runs that were killed.
    fn sweep_stale(&self) {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            datname: String,
        }
        let Ok(mut admin) = self.admin_conn() else {
            return;
        };
        let pattern = format!("^({TEMPLATE_PREFIX}|{TEST_PREFIX})[0-9]+_[0-9a-f]+(_[0-9]+)?$");
        let Ok(names) = diesel::sql_query("SELECT datname FROM pg_database WHERE datname ~ $1")
            .bind::<Text, _>(pattern)
            .load::<Name>(&mut admin)
        else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        for Name { datname } in names {
            let started = datname
                .trim_start_matches(TEMPLATE_PREFIX)
                .trim_start_matches(TEST_PREFIX)
                .split('_')
                .next()
                .and_then(|secs| secs.parse::<u64>().ok());
            if started.is_some_and(|secs| now.saturating_sub(secs) > STALE_AFTER.as_secs()) {
                // Best effort: another run may be sweeping the same database right now.
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"
                ));
            }
        }
    }
}

/// Eight random hex digits (the standard library seeds `RandomState` from the OS).
pub(crate) fn random_tag() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:08x}", hasher.finish() as u32)
}
