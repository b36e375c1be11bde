//! A private PostgreSQL server for one test process: initdb'd into a temporary directory, tuned
//! for tests, listening on a free loopback port, and stopped by a watchdog when the process ends.

use std::path::PathBuf;

use groups_pgembed::{Cluster, RunAs, free_port, is_port_taken, watchdog};

/// Settings of a throw-away server: durability off (a crash only loses test data), no
/// background work that competes with the tests, no parallel query workers (their dynamic
/// shared memory overflows the small `/dev/shm` of containers).
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

/// Port collisions (another process binding the port we picked) are retried this often.
const START_ATTEMPTS: usize = 5;

/// A running private server.
#[derive(Debug)]
pub(crate) struct PrivateServer {
    port: u16,
}

impl PrivateServer {
    /// Starts a server. The watchdog is armed before `initdb`, so even a failed start leaves
    /// nothing behind once the test process ends.
    pub(crate) fn start() -> Result<Self, String> {
        // As root, /tmp rather than $TMPDIR: a root-only TMPDIR would be out of the postgres
        // user's reach. Short: the socket path (dir + "/.s.PGSQL.NNNNN") must fit in ~100
        // bytes, and macOS' TMPDIR is already long.
        let base = match RunAs::detect()? {
            RunAs::Me => std::env::temp_dir(),
            RunAs::Postgres { .. } => PathBuf::from("/tmp"),
        };
        let dir = base.join(format!(
            "groups-pg-{}-{}",
            std::process::id(),
            crate::cluster::random_tag()
        ));
        let cluster = Cluster::new(&dir)?;
        watchdog::stop_after_exit(
            &cluster.stop_command("immediate"),
            Some(cluster.dir().as_os_str()),
        )
        .map_err(|e| format!("cannot start the clean-up watchdog (sh): {e}"))?;
        cluster.init(SETTINGS, false)?;

        let mut last_error = String::new();
        for max_connections in MAX_CONNECTIONS {
            for _ in 0..START_ATTEMPTS {
                let port = free_port()?;
                match cluster.start(port, &format!("-c max_connections={max_connections}")) {
                    Ok(()) => return Ok(Self { port }),
                    Err(error) => {
                        let retry = is_port_taken(&error);
                        last_error = error;
                        if !retry {
                            break;
                        }
                    }
                }
            }
        }
        Err(last_error)
    }

    /// A URL of the server's `postgres` database, as the superuser `postgres`.
    pub(crate) fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}
