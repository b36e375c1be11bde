//! One benchmark session: the database and its seed, then for each durability and client count
//! (a point) fresh services and every workload in turn, each measured from `/proc` and the
//! server's metrics, checked by counting the memberships left, and its removals put back.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::PgConnection;
use groups_pgembed::{PgBinaries, RunAs};
use serde::Serialize;

use crate::batches::BatchSizes;
use crate::cli::{Args, Workload};
use crate::database::{self, Fixture, PrivatePostgres};
use crate::load::{self, GrpcRemover, RestRemover};
use crate::measurement::{Measurement, Plan};
use crate::pgbench::{self, Pgbench};
use crate::proc_stats;
use crate::report::{Cpu, PeakRss, Point, Row};
use crate::services::{self, Stack};

/// What stays the same across the points of a session.
#[derive(Debug)]
pub(crate) struct Session<'a> {
    args: &'a Args,
    runtime: tokio::runtime::Runtime,
    work_dir: PathBuf,
    postgres: PrivatePostgres,
    pgbench_program: Option<PathBuf>,
}

/// The machine and database the figures come from.
#[derive(Debug, Serialize)]
pub(crate) struct Environment {
    pub(crate) cpus: usize,
    pub(crate) postgres: String,
    pub(crate) memberships: u64,
    pub(crate) seed_seconds: f64,
    pub(crate) removal_statement: &'static str,
}

impl<'a> Session<'a> {
    /// Finds the binaries, starts the private PostgreSQL and the load generator's runtime.
    pub(crate) fn set_up(args: &'a Args) -> anyhow::Result<Self> {
        // Found before anything slow happens, so a missing build fails at once.
        services::sibling_binary("groups-server")?;
        services::sibling_binary("groups-gateway")?;
        let needs_pgbench = args.workload_list().iter().any(|w| !w.uses_server());
        let pgbench_program = needs_pgbench.then(find_pgbench).transpose()?;
        let work_dir = work_dir()?;
        let shown = work_dir.display();
        eprintln!("groups-bench: starting a private PostgreSQL in {shown}");
        // pgbench's clients and the server's pool at once, with room to spare.
        let most = args.client_counts().into_iter().max().unwrap_or(1);
        let postgres = PrivatePostgres::start(&work_dir, u32::from(most) + 100, args.keep_dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.client_threads))
            .enable_all()
            .build()
            .context("cannot start the load generator's runtime")?;
        Ok(Self {
            args,
            runtime,
            work_dir,
            postgres,
            pgbench_program,
        })
    }

    /// Stops the private PostgreSQL and, without `--keep-dir`, removes the work directory
    /// (stopping the server dismisses the watchdog that would otherwise have removed it).
    pub(crate) fn tear_down(self) {
        self.postgres.stop();
        if !self.args.keep_dir
            && let Err(error) = std::fs::remove_dir_all(&self.work_dir)
        {
            let shown = self.work_dir.display();
            eprintln!("groups-bench: cannot remove {shown}: {error}");
        }
    }

    /// Seeds, then runs every point: each durability in turn, each client count within it.
    pub(crate) fn run(&self) -> anyhow::Result<(Vec<Point>, Environment)> {
        let (groups, users) = (self.args.groups, self.args.users);
        let database_url = self.postgres.create_database("bench")?;
        let mut conn = database::connect(&database_url)?;
        let tag = format!("bench-{}", unix_seconds());
        let memberships = groups * users;
        eprintln!(
            "groups-bench: seeding {memberships} memberships ({groups} groups x {users} users)"
        );
        let fixture = Fixture::create(&mut conn, &database_url, &tag, (groups, users))?;
        let (seconds, instance) = (fixture.seed_seconds, &fixture.instance);
        eprintln!("groups-bench: seeded in {seconds:.1} s (instance {instance})");
        let environment = Environment {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            postgres: database::setting(&mut conn, "server_version"),
            memberships: fixture.layout.memberships(),
            seed_seconds: fixture.seed_seconds,
            removal_statement: groups_store::removal_statement_sql(),
        };
        let mut points = Vec::new();
        for durable in self.args.durability_modes() {
            database::set_durability(&mut conn, durable)?;
            for clients in self.args.client_counts() {
                points.push(self.run_point(&mut conn, &fixture, clients)?);
            }
        }
        Ok((points, environment))
    }

    /// Every workload at `clients`, on services started for this point alone (so each point's
    /// peak memory is its own).
    fn run_point(
        &self,
        conn: &mut PgConnection,
        fixture: &Fixture,
        clients: u16,
    ) -> anyhow::Result<Point> {
        let fsync = database::setting(conn, "fsync");
        let synchronous_commit = database::setting(conn, "synchronous_commit");
        let durable = fsync == "on" && synchronous_commit != "off";
        let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let recent: Vec<&str> = load_average.split_whitespace().take(3).collect();
        eprintln!(
            "groups-bench: {clients} clients, fsync={fsync}, \
             synchronous_commit={synchronous_commit}, load average {}",
            recent.join(" ")
        );
        let label = format!("{}-{clients}", if durable { "durable" } else { "fast" });
        let extra = (&self.args.server_args[..], &self.args.gateway_args[..]);
        let mut services = Stack::start(&self.work_dir, &label, &fixture.database_url, extra)?;
        let mut rows: Vec<Row> = Vec::new();
        for workload in self.args.workload_list() {
            let batches: BTreeSet<u32> = if workload.is_batched() {
                // The sizes the server formed in the workloads before (1 is the naive baseline).
                let formed = rows.iter().filter_map(|r| r.batches.as_ref()?.typical());
                formed.filter(|b| *b > 1).collect()
            } else {
                BTreeSet::from([1])
            };
            for batch in batches {
                let row = self.run_workload(conn, fixture, &services, workload, batch, clients)?;
                rows.push(row);
            }
            services.check_running(&format!("the {} workload", workload.name()))?;
        }
        services.stop();
        Ok(Point {
            durable,
            fsync,
            synchronous_commit,
            clients,
            load_average: load_average.trim().to_owned(),
            rows,
        })
    }

    /// Runs one workload from the full seed: measures the processes it involves, checks in the
    /// database that each success deleted one membership, then puts the seed back.
    fn run_workload(
        &self,
        conn: &mut PgConnection,
        fixture: &Fixture,
        services: &Stack,
        workload: Workload,
        batch: u32,
        clients: u16,
    ) -> anyhow::Result<Row> {
        fixture.settle(conn);
        let before = fixture.count(conn)?;
        let server = workload.uses_server().then(|| services.server.pid());
        let gateway = (workload == Workload::Rest).then(|| services.gateway.pid());
        for pid in [server, gateway].into_iter().flatten() {
            if !proc_stats::reset_peak_rss(pid) {
                eprintln!("groups-bench: cannot reset the peak memory of pid {pid}");
            }
        }
        // The server's batches, when the workload goes through it.
        let metrics = server.map(|_| services.metrics);
        let scrape = || metrics.map(BatchSizes::scrape).transpose();
        let postmaster = proc_stats::postmaster_pid(&self.postgres.data_dir).ok();
        let plan = Plan {
            warmup: Duration::from_secs(self.args.warmup),
            duration: Duration::from_secs(self.args.duration),
            clients: usize::from(clients),
            memberships: fixture.layout.memberships(),
        };
        let batches_before = scrape()?;
        let backends = postmaster
            .filter(|_| server.is_none())
            .and_then(|pm| Some(proc_stats::children(pm).ok()?.len()));
        let cpu_before = CpuSnapshot::take(server, gateway, postmaster);
        let (measurement, workload_clients) =
            self.drive(workload, batch, &plan, fixture, services)?;
        // pgbench's backends exit after it does: their time is counted once they are reaped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while let (Some(pm), Some(before)) = (postmaster, backends)
            && proc_stats::children(pm).is_ok_and(|c| c.len() > before)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let cpu_after = CpuSnapshot::take(server, gateway, postmaster);
        let (cpu, other_cores) = cpu_after.since(&cpu_before, workload, measurement.sent);
        let batches = scrape()?
            .zip(batches_before)
            .map(|(after, before)| after.since(&before));
        let deleted = before - fixture.count(conn)?;
        let used = measurement.used_until;
        let mib = |pid: Option<u32>| Some(proc_stats::peak_rss_kib(pid?).ok()? as f64 / 1024.0);
        let row = Row {
            batch: server.is_none().then_some(f64::from(batch)),
            batches,
            cpu_us_per_removal: cpu,
            other_cores,
            peak_rss_mib: PeakRss {
                server: mib(server),
                gateway: mib(gateway),
            },
            ..Row::new(workload, workload_clients, measurement, deleted)
        };
        eprintln!(
            "groups-bench:   {}: {:.0} removals/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            row.label(),
            row.removals_per_second,
            row.latency_us.p50 as f64 / 1000.0,
            row.latency_us.p99 as f64 / 1000.0,
            row.errors
        );
        fixture.restore(conn, used)?;
        Ok(row)
    }

    /// Sends the workload's removals; returns what it measured and how many clients it used.
    fn drive(
        &self,
        workload: Workload,
        batch: u32,
        plan: &Plan,
        fixture: &Fixture,
        services: &Stack,
    ) -> anyhow::Result<(Measurement, usize)> {
        let (instance, key, layout) = (&fixture.instance, &fixture.key, fixture.layout);
        let measurement = match workload {
            Workload::Rest => {
                let addr = services.gateway.addr;
                let removers = (0..plan.clients)
                    .map(|_| RestRemover::new(addr, instance, key))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                self.runtime.block_on(load::drive(removers, plan, layout))?
            }
            Workload::Grpc => self.runtime.block_on(async {
                let count = usize::from(self.args.grpc_channels);
                let channels = GrpcRemover::channels(services.server.addr, count).await?;
                let removers = (channels.iter().cycle().take(plan.clients))
                    .map(|channel| GrpcRemover::new(channel.clone(), instance, key))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                load::drive(removers, plan, layout).await
            })?,
            Workload::Pgbench | Workload::PgbenchBatched | Workload::PgbenchUnaudited => {
                let sql = groups_store::removal_statement_sql();
                let sql = match workload {
                    Workload::PgbenchUnaudited => pgbench::without_audit(sql)?,
                    _ => sql.to_owned(),
                };
                let pgbench = Pgbench {
                    program: self.pgbench_program.as_deref().context("no pgbench")?,
                    dir: &self.work_dir.join("pgbench"),
                    threads: usize::from(self.args.client_threads),
                    sql: &sql,
                    permitted: groups_core::Permission::RemoveMembers.labels(),
                    batch,
                };
                return Ok((pgbench.run(plan, fixture)?, pgbench.clients(plan)));
            }
        };
        Ok((measurement, plan.clients))
    }
}

/// CPU ticks, at one moment, of the processes a workload involves and of the whole machine.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    at: Instant,
    server: Option<u64>,
    gateway: Option<u64>,
    postgres: Option<u64>,
    /// This process (the load generator), and its reaped children (pgbench).
    own: Option<u64>,
    children: Option<u64>,
    machine: Option<u64>,
}

impl CpuSnapshot {
    fn take(server: Option<u32>, gateway: Option<u32>, postmaster: Option<u32>) -> Self {
        let own = proc_stats::cpu_times("self").ok();
        let of = |pid: Option<u32>| Some(proc_stats::cpu_times(pid?).ok()?.own);
        Self {
            at: Instant::now(),
            server: of(server),
            gateway: of(gateway),
            postgres: postmaster.and_then(|p| proc_stats::tree_cpu_ticks(p).ok()),
            own: own.map(|t| t.own),
            children: own.map(|t| t.reaped_children),
            machine: proc_stats::machine_busy_ticks().ok(),
        }
    }

    /// The CPU time of each process since `before`, in µs per removal, and the cores kept busy
    /// meanwhile by processes other than the ones measured.
    fn since(&self, before: &Self, workload: Workload, removals: u64) -> (Cpu, Option<f64>) {
        let delta = |ticks: fn(&Self) -> Option<u64>| ticks(self)?.checked_sub(ticks(before)?);
        let seconds = |ticks: u64| ticks as f64 / proc_stats::ticks_per_second() as f64;
        let per = |ticks: Option<u64>| {
            Some(seconds(ticks?) * 1e6 / removals as f64).filter(|_| removals > 0)
        };
        let (server, gateway) = (delta(|s| s.server), delta(|s| s.gateway));
        let (own, children) = (delta(|s| s.own), delta(|s| s.children));
        let postgres = delta(|s| s.postgres);
        let cpu = Cpu {
            server: per(server),
            gateway: per(gateway),
            postgres: per(postgres),
            client: per(if workload.uses_server() {
                own
            } else {
                children
            }),
        };
        let elapsed = self.at.duration_since(before.at).as_secs_f64();
        let other_cores = delta(|s| s.machine)
            .zip(postgres)
            .and_then(|(machine, postgres)| {
                let ours = postgres
                    + [own, children, server, gateway]
                        .iter()
                        .flatten()
                        .sum::<u64>();
                (elapsed > 0.0).then(|| seconds(machine.saturating_sub(ours)) / elapsed)
            });
        (cpu, other_cores)
    }
}

/// pgbench, next to PostgreSQL's server binaries (Debian keeps it there) or on `PATH`.
fn find_pgbench() -> anyhow::Result<PathBuf> {
    let next_to_server = PgBinaries::find()
        .map_err(|e| anyhow::anyhow!(e))?
        .program("pgbench");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).map(|dir| dir.join("pgbench"));
    std::iter::once(next_to_server)
        .chain(on_path)
        .find(|p| p.is_file())
        .context(
            "no pgbench next to PostgreSQL's server binaries or on PATH; install it (Debian: \
             postgresql-client) or leave out the pgbench workloads",
        )
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh directory for logs and the private PostgreSQL. Under /tmp when root, so the
/// `postgres` user can reach it; short, because the server's socket path must fit ~100 bytes.
fn work_dir() -> anyhow::Result<PathBuf> {
    let base = match RunAs::detect().map_err(|e| anyhow::anyhow!(e))? {
        RunAs::Me => std::env::temp_dir(),
        RunAs::Postgres { .. } => PathBuf::from("/tmp"),
    };
    let dir = base.join(format!(
        "groups-bench-{}-{}",
        std::process::id(),
        unix_seconds()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
