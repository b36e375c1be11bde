//! The PostgreSQL server of this test process (`TEST_DATABASE_URL`'s, or a private one started
//! with `groups_pgembed`) and its migrated template database, set up once and shared by every
//! test thread.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use groups_pgembed::{Config, Listen, RunAs, Server, StopMode};
use url::Url;

/// Names this crate gives databases on a shared server start with one of these, followed by
/// `<unix seconds>_<tag>`: the age lets a later run sweep what an aborted one left behind.
const TEMPLATE_PREFIX: &str = "groups_template_";
const TEST_PREFIX: &str = "groups_test_";

/// Databases this old on a shared server belong to a run that is over: a test process drops its
/// test databases but cannot drop its template (statics are never dropped), and an aborted one
/// drops nothing. No test process runs for hours.
const STALE_AFTER: Duration = Duration::from_secs(3 * 60 * 60);

/// Settings of a private server: durability off (a crash only loses test data), no background
/// work that competes with the tests, no parallel query workers (their dynamic shared memory
/// overflows the small `/dev/shm` of containers).
const SETTINGS: &str = "
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
jit = off
max_parallel_workers_per_gather = 0
";

/// Connection limits to try in turn: enough for many pools in parallel tests, then what a
/// small machine (macOS' default System V semaphore limits) can start with.
const MAX_CONNECTIONS: [u32; 2] = [400, 100];

/// The server and template every `TestDb` of this process clones.
#[derive(Debug)]
pub(crate) struct DbServer {
    /// A database to connect to for CREATE/DROP DATABASE.
    admin: Url,
    template: String,
    /// `<unix seconds>_<random>`: unique to this process, even across machines sharing a server.
    run: String,
    next_db: AtomicU64,
    /// PostgreSQL refuses to clone a template that another session is cloning at the same time.
    clone_lock: Mutex<()>,
    /// The server this process started, if it did; its watchdog stops it (and removes its
    /// directory) once the process is gone.
    private: Option<Server>,
}

impl DbServer {
    /// The process-wide server, set up on first use. Panics when it cannot be set up; every
    /// later caller panics with the same message rather than retrying a slow failure.
    pub(crate) fn get() -> &'static DbServer {
        static SERVER: OnceLock<Result<DbServer, String>> = OnceLock::new();
        match SERVER.get_or_init(|| DbServer::set_up().map_err(|e| format!("{e:#}"))) {
            Ok(server) => server,
            Err(message) => panic!("groups-testkit: no test database server: {message}"),
        }
    }

    fn set_up() -> anyhow::Result<Self> {
        let external = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty());
        let (admin, private) = match external {
            Some(url) => (Url::parse(&url).context("TEST_DATABASE_URL")?, None),
            None => {
                let server = start_private()?;
                (Url::parse(&server.url("postgres"))?, Some(server))
            }
        };
        let run = format!("{}_{}", unix_now().as_secs(), random_tag());
        let server = Self {
            template: format!("{TEMPLATE_PREFIX}{run}"),
            admin,
            run,
            next_db: AtomicU64::new(1),
            clone_lock: Mutex::new(()),
            private,
        };
        if server.private.is_none() {
            server.sweep_stale();
        }
        server.create_template()?;
        Ok(server)
    }

    fn create_template(&self) -> anyhow::Result<()> {
        let mut admin = self.admin_conn()?;
        // template0 takes no connections, so cloning it never meets "being accessed by other
        // users", whatever else runs on a shared server.
        admin
            .batch_execute(&format!(
                "CREATE DATABASE \"{}\" TEMPLATE template0",
                self.template
            ))
            .with_context(|| format!("cannot create the template database {}", self.template))?;
        let mut conn = groups_store::connect(&self.url_of(&self.template))?;
        groups_store::migrate(&mut conn).context("migrating the template")?;
        Ok(())
    }

    /// Creates a fresh database from the migrated template (else an empty one, from
    /// template0); returns its name and URL.
    pub(crate) fn create_database(&self, migrated: bool) -> anyhow::Result<(String, String)> {
        let name = format!(
            "{TEST_PREFIX}{}_{}",
            self.run,
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        let template = if migrated {
            &self.template
        } else {
            "template0"
        };
        let mut admin = self.admin_conn()?;
        {
            let _one_clone_at_a_time = self
                .clone_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            admin
                .batch_execute(&format!(
                    "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
                ))
                .with_context(|| format!("cannot create database {name}"))?;
        }
        let url = self.url_of(&name);
        Ok((name, url))
    }

    /// Drops a database, disconnecting whoever is still connected (a server under test).
    pub(crate) fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        let mut admin = self.admin_conn()?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .with_context(|| format!("cannot drop database {name}"))
    }

    pub(crate) fn url_of(&self, database: &str) -> String {
        let mut url = self.admin.clone();
        url.set_path(database);
        url.into()
    }

    /// The URL of a database of this server, reached through another address.
    pub(crate) fn url_via(&self, database: &str, address: SocketAddr) -> String {
        let mut url = Url::parse(&self.url_of(database)).expect("a URL made from a URL");
        let set = url
            .set_ip_host(address.ip())
            .and_then(|()| url.set_port(Some(address.port())));
        set.unwrap_or_else(|()| panic!("groups-testkit: cannot point {database} at {address}"));
        url.into()
    }

    pub(crate) fn socket_addr(&self) -> anyhow::Result<SocketAddr> {
        let host = self
            .admin
            .host_str()
            .ok_or_else(|| anyhow!("the database URL names no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = self.admin.port().unwrap_or(5432);
        (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{host} resolves to no address"))
    }

    fn admin_conn(&self) -> anyhow::Result<PgConnection> {
        let database = self.admin.path().trim_start_matches('/');
        Ok(groups_store::connect(&self.url_of(database))?)
    }

    /// Drops what earlier runs left on a shared server: their templates, and the test databases
    /// of runs that were killed.
    fn sweep_stale(&self) {
        let Ok(mut admin) = self.admin_conn() else {
            return;
        };
        // `<prefix><unix seconds>_<tag>[_<n>]`: the one group is the start time.
        let started = format!(
            "substring(datname from '^(?:{TEMPLATE_PREFIX}|{TEST_PREFIX})([0-9]+)_[0-9a-f]+(?:_[0-9]+)?$')"
        );
        let cutoff = unix_now().saturating_sub(STALE_AFTER).as_secs();
        let query =
            format!("SELECT datname::text FROM pg_database WHERE {started}::bigint < {cutoff}");
        let Ok(names) = sql::<Text>(&query).load::<String>(&mut admin) else {
            return;
        };
        for datname in names {
            // Best effort: another run may be sweeping the same database right now.
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"
            ));
        }
    }
}

/// Starts this process's private server: throw-away (its watchdog removes it), in a
/// temporary directory the `postgres` user can reach when root.
fn start_private() -> anyhow::Result<Server> {
    // As root, /tmp rather than $TMPDIR: a root-only TMPDIR would be out of the postgres
    // user's reach. Short: the socket path (dir + "/.s.PGSQL.NNNNN") must fit in ~100 bytes,
    // and macOS' TMPDIR is already long.
    let base = match RunAs::detect()? {
        RunAs::Me => std::env::temp_dir(),
        RunAs::Postgres { .. } => PathBuf::from("/tmp"),
    };
    let dir = base.join(format!("groups-pg-{}-{}", std::process::id(), random_tag()));
    let config = Config {
        settings: SETTINGS.to_owned(),
        durable: false,
        listen: Listen::Loopback,
        max_connections: MAX_CONNECTIONS.to_vec(),
        on_exit: StopMode::Immediate,
        remove_on_exit: true,
    };
    Ok(Server::start(&dir, &config)?)
}

/// Eight random hex digits (the standard library seeds `RandomState` from the OS).
fn random_tag() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(unix_now().as_nanos());
    format!("{:08x}", hasher.finish() as u32)
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
