//! The database side of a run: a private PostgreSQL, and in it a fixture: an instance, its
//! owner's key and G × U seeded memberships, put back after each workload so every workload
//! starts from the same seed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use groups_pgembed::{Config, Listen, Server, StopMode};
use groups_store::provision;

use crate::memberships::SeedLayout;

/// Settings of the private server. Autovacuum is off because the benchmark vacuums between
/// workloads itself, so no workload pays for another's dead rows at a random moment.
/// Durability is set per block of the run (see [`set_durability`]).
const SETTINGS: &str = "
autovacuum = off
jit = off
max_parallel_workers_per_gather = 0
shared_buffers = 256MB
max_wal_size = 4GB
";

/// The settings `--durability` switches, all reloadable without a restart.
const DURABILITY_SETTINGS: [&str; 3] = ["fsync", "synchronous_commit", "full_page_writes"];

/// A private PostgreSQL in the benchmark's work directory, stopped (and, unless kept, its
/// directory removed) by its watchdog once the benchmark ends, however it ends.
#[derive(Debug)]
pub(crate) struct PrivatePostgres {
    server: Server,
    url: String,
    /// Its `postmaster.pid` names the server process.
    pub(crate) data_dir: PathBuf,
}

impl PrivatePostgres {
    /// `initdb` into `work_dir/pg` and start on a free loopback port.
    pub(crate) fn start(work_dir: &Path, max_connections: u32, keep: bool) -> anyhow::Result<Self> {
        let config = Config {
            settings: SETTINGS.to_owned(),
            durable: false,
            listen: Listen::Loopback,
            max_connections: vec![max_connections],
            on_exit: StopMode::Immediate,
            remove_on_exit: !keep,
        };
        let server = Server::start(&work_dir.join("pg"), &config)?;
        Ok(Self {
            url: server.url("postgres"),
            data_dir: server.data_dir(),
            server,
        })
    }

    /// Creates an empty database and returns its URL (as the superuser).
    pub(crate) fn create_database(&self, name: &str) -> anyhow::Result<String> {
        connect(&self.url)?
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .with_context(|| format!("creating database {name}"))?;
        let (server, _postgres) = self.url.rsplit_once('/').unwrap_or((&self.url, ""));
        Ok(format!("{server}/{name}"))
    }

    /// Stops the server (the watchdog then finds nothing left to stop).
    pub(crate) fn stop(self) {
        if let Err(error) = self.server.stop(StopMode::Fast) {
            eprintln!("groups-bench: stopping the private PostgreSQL: {error}");
        }
    }
}

/// Turns fsync, synchronous commit and full-page writes on or off for every session, and waits
/// until the server has reloaded them. Off, a removal does not wait for this machine's disk,
/// so the figures measure CPU and round trips; on, they include the WAL flush of each commit.
pub(crate) fn set_durability(conn: &mut PgConnection, durable: bool) -> anyhow::Result<()> {
    let value = if durable { "on" } else { "off" };
    for name in DURABILITY_SETTINGS {
        conn.batch_execute(&format!("ALTER SYSTEM SET {name} = {value}"))
            .with_context(|| format!("setting {name} = {value}"))?;
    }
    conn.batch_execute("SELECT pg_reload_conf()")?;
    // The postmaster signals the backends; each reads the file before its next command.
    let deadline = Instant::now() + Duration::from_secs(10);
    while DURABILITY_SETTINGS
        .iter()
        .any(|name| setting(conn, name) != value)
    {
        if Instant::now() > deadline {
            bail!("PostgreSQL did not reload {DURABILITY_SETTINGS:?} = {value}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
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
        conn: &mut PgConnection,
        database_url: &str,
        tag: &str,
        (groups, users): (i64, i64),
    ) -> anyhow::Result<Self> {
        groups_store::migrate(conn).map_err(|e| anyhow!("{e}"))?;
        let email = format!("owner@{tag}.bench.invalid");
        let admin = provision::create_admin(conn, &email).map_err(|e| anyhow!("{e}"))?;
        let (instance_id, instance) =
            provision::create_instance(conn, tag, &email).map_err(|e| anyhow!("{e}"))?;
        let started = Instant::now();
        let seed = groups_store::seed(conn, &instance, groups, users)
            .map_err(|e| anyhow!("seeding {groups} groups x {users} users: {e}"))?;
        Ok(Self {
            database_url: database_url.to_owned(),
            instance,
            instance_id,
            key: admin.key.expose().to_owned(),
            key_digest: *admin.key.digest().as_bytes(),
            layout: SeedLayout::new(&seed),
            seed_seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Removes the previous workload's audit rows and dead rows, and writes dirty pages out, so
    /// each workload starts from the same clean state. Best effort: the run is valid without.
    pub(crate) fn settle(&self, conn: &mut PgConnection) {
        let audit = diesel::sql_query("DELETE FROM membership_events WHERE instance_id = $1")
            .bind::<BigInt, _>(self.instance_id)
            .execute(conn);
        if let Err(error) = audit {
            eprintln!("groups-bench: clearing the audit rows failed (continuing): {error}");
        }
        for statement in [
            "VACUUM (ANALYZE) memberships, membership_events",
            "CHECKPOINT",
        ] {
            if let Err(error) = conn.batch_execute(statement) {
                eprintln!("groups-bench: {statement} failed (continuing): {error}");
            }
        }
    }

    /// Puts back the memberships that request numbers `0..used` removed (see
    /// `SeedLayout::membership`), so the next workload starts from the full seed.
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
        .bind::<BigInt, _>(i64::try_from(used.min(l.memberships()))?)
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
        sql::<BigInt>("SELECT count(*) FROM memberships WHERE instance_id = ")
            .bind::<BigInt, _>(self.instance_id)
            .get_result(conn)
            .context("counting memberships")
    }
}

/// A setting's current value (`?` when it cannot be read), for the report.
pub(crate) fn setting(conn: &mut PgConnection, name: &str) -> String {
    sql::<Text>("SELECT current_setting(")
        .bind::<Text, _>(name)
        .sql(")")
        .get_result(conn)
        .unwrap_or_else(|_| "?".to_owned())
}
