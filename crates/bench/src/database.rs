//! The database side of a run: a private PostgreSQL (or the one at `--database-url`), and in it a
//! fixture: an instance, its owner's key and G × U seeded memberships.

use std::path::{Path, PathBuf};

use std::sync::Mutex;

use anyhow::{Context, anyhow};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use groups_pgembed::{Config, Listen, Server, StopMode};
use groups_store::provision;

use crate::memberships::SeedLayout;

/// Settings of the private server. Durability is off unless `--durable`: with it on, every
/// removal waits for this machine's disk to flush the WAL, which hides the CPU and round-trip
/// costs the benchmark is after. Autovacuum is off because the benchmark vacuums between
/// workloads itself, so no workload pays for another's dead rows at a random moment.
const SETTINGS: &str = "
autovacuum = off
jit = off
max_parallel_workers_per_gather = 0
shared_buffers = 256MB
max_wal_size = 4GB
";

const FAST_SETTINGS: &str = "
fsync = off
synchronous_commit = off
full_page_writes = off
";

/// A private PostgreSQL in the benchmark's work directory, stopped (and the work directory
/// removed) by its watchdog once the benchmark ends, however it ends.
#[derive(Debug)]
pub(crate) struct PrivatePostgres {
    server: Mutex<Option<Server>>,
    url: String,
    data_dir: PathBuf,
}

impl PrivatePostgres {
    /// `initdb` into `work_dir/pg` and start on a free loopback port. Unless `keep`, the
    /// watchdog also removes the server's directory after the benchmark.
    pub(crate) fn start(
        work_dir: &Path,
        durable: bool,
        max_connections: u32,
        keep: bool,
    ) -> anyhow::Result<Self> {
        let settings = if durable {
            SETTINGS.to_owned()
        } else {
            format!("{SETTINGS}{FAST_SETTINGS}")
        };
        let config = Config {
            settings,
            durable,
            listen: Listen::Loopback,
            max_connections: vec![max_connections],
            on_exit: StopMode::Immediate,
            remove_on_exit: !keep,
        };
        let server = Server::start(&work_dir.join("pg"), &config)?;
        Ok(Self {
            url: server.url("postgres"),
            data_dir: server.data_dir(),
            server: Mutex::new(Some(server)),
        })
    }

    /// A URL of database `name` as the superuser.
    pub(crate) fn url(&self, name: &str) -> String {
        self.url.replace("/postgres", &format!("/{name}"))
    }

    /// Creates an empty database and returns its URL.
    pub(crate) fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let mut admin = connect(&self.url("postgres"))?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .with_context(|| format!("creating database {name}"))?;
        Ok(self.url(name))
    }

    /// The data directory (its `postmaster.pid` names the server process).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// Stops the server (the watchdog then finds nothing left to stop).
    pub(crate) fn stop(&self) {
        let server = self.server.lock().ok().and_then(|mut slot| slot.take());
        if let Some(Err(error)) = server.map(|server| server.stop(StopMode::Fast)) {
            eprintln!("groups-bench: stopping the private PostgreSQL: {error}");
        }
    }
}

/// One connection outside any pool.
pub(crate) fn connect(url: &str) -> anyhow::Result<PgConnection> {
    groups_store::connect(url).map_err(|e| anyhow!("{e}"))
}

/// An instance with an owner and seeded memberships, ready for removals.
#[derive(Debug)]
pub(crate) struct Fixture {
    pub(crate) database_url: String,
    pub(crate) instance: String,
    pub(crate) instance_id: i64,
    /// The owner's account key, in clear (the requests present it).
    pub(crate) key: String,
    /// SHA-256 of the key, as the server's statement binds it.
    pub(crate) key_digest: [u8; 32],
    pub(crate) layout: SeedLayout,
    pub(crate) seed_seconds: f64,
}

impl Fixture {
    /// Migrates, creates an owner and instance named after `tag`, and seeds `groups` × `users`
    /// memberships with `groupsctl seed`'s loader.
    pub(crate) fn create(
        database_url: &str,
        tag: &str,
        groups: i64,
        users: i64,
    ) -> anyhow::Result<Self> {
        let mut conn = connect(database_url)?;
        groups_store::migrate(&mut conn).map_err(|e| anyhow!("{e}"))?;
        let email = format!("owner@{tag}.bench.invalid");
        let admin = provision::create_admin(&mut conn, &email).map_err(|e| anyhow!("{e}"))?;
        let (instance_id, instance) =
            provision::create_instance(&mut conn, tag, &email).map_err(|e| anyhow!("{e}"))?;
        let started = std::time::Instant::now();
        let seed = groups_store::seed(&mut conn, &instance, groups, users)
            .map_err(|e| anyhow!("seeding {groups} groups x {users} users: {e}"))?;
        let seed_seconds = started.elapsed().as_secs_f64();
        let fixture = Self {
            database_url: database_url.to_owned(),
            instance,
            instance_id,
            key: admin.key.expose().to_owned(),
            key_digest: *admin.key.digest().as_bytes(),
            layout: SeedLayout::new(&seed),
            seed_seconds,
        };
        fixture.settle(&mut conn);
        Ok(fixture)
    }

    /// Removes the dead rows of the previous workload and writes dirty pages out, so each
    /// workload starts from the same clean state. Best effort: on a shared database the
    /// benchmark's role may not be allowed to, and the run is still valid without.
    pub(crate) fn settle(&self, conn: &mut PgConnection) {
        for statement in ["VACUUM (ANALYZE) memberships", "CHECKPOINT"] {
            if let Err(error) = conn.batch_execute(statement) {
                eprintln!("groups-bench: {statement} failed (continuing): {error}");
            }
        }
    }

    /// Puts back the memberships that request numbers `0..used` removed (see
    /// `SeedLayout::membership`), so the next round starts from the full seed.
    pub(crate) fn restore(&self, conn: &mut PgConnection, used: u64) -> anyhow::Result<()> {
        let l = self.layout;
        let restored = diesel::sql_query(
            "INSERT INTO memberships (instance_id, group_id, user_id) \
             SELECT $1, $2 + (k * $4 % $5) / $6, $3 + (k * $4 % $5) % $6 \
             FROM generate_series(0::bigint, $7::bigint - 1) AS k ON CONFLICT DO NOTHING",
        )
        .bind::<BigInt, _>(self.instance_id)
        .bind::<BigInt, _>(l.first_group)
        .bind::<BigInt, _>(l.first_user)
        .bind::<BigInt, _>(l.stride)
        .bind::<BigInt, _>(l.groups * l.users)
        .bind::<BigInt, _>(l.users)
        .bind::<BigInt, _>(i64::try_from(used)?)
        .execute(conn)
        .context("putting the removed memberships back")?;
        let count = self.count(conn)?;
        anyhow::ensure!(
            u64::try_from(count) == Ok(l.memberships()),
            "after putting {restored} memberships back the seed holds {count}, not {}",
            l.memberships()
        );
        Ok(())
    }

    /// Memberships left in the fixture's instance.
    pub(crate) fn count(&self, conn: &mut PgConnection) -> anyhow::Result<i64> {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let count: Count =
            diesel::sql_query("SELECT count(*) AS n FROM memberships WHERE instance_id = $1")
                .bind::<BigInt, _>(self.instance_id)
                .get_result(conn)
                .context("counting memberships")?;
        Ok(count.n)
    }

    /// `\x...`: the key digest as bytea text input (how pgbench binds it).
    pub(crate) fn key_digest_bytea(&self) -> String {
        let mut text = String::from("\\x");
        for byte in self.key_digest {
            text.push_str(&format!("{byte:02x}"));
        }
        text
    }
}

/// A `SHOW` setting, for the report.
pub(crate) fn setting(conn: &mut PgConnection, name: &str) -> String {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        value: String,
    }
    diesel::sql_query("SELECT current_setting($1) AS value")
        .bind::<Text, _>(name)
        .get_result::<Setting>(conn)
        .map_or_else(|_| "?".to_owned(), |s| s.value)
}
