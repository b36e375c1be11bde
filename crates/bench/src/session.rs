//! One benchmark session: the database, a seed (or two, with `--scale`) with its services, and
//! the workloads run on each, round after round, measured and checked in the database.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use diesel::PgConnection;
use groups_pgembed::{PgBinaries, RunAs, watchdog};
use serde::Serialize;

use crate::Args;
use crate::database::{self, Fixture, PrivatePostgres};
use crate::load::{self, GrpcRemover, RestRemover};
use crate::measurement::{Length, Measurement, Plan};
use crate::pgbench::Pgbench;
use crate::proc_stats;
use crate::report::{CpuTicks, PeakRss, RunReport, Workload, WorkloadReport, WorkloadSample};
use crate::services::{self, Service, Targets};

/// What stays the same across the seeds and rounds of a session.
#[derive(Debug)]
pub(crate) struct Session<'a> {
    args: &'a Args,
    runtime: tokio::runtime::Runtime,
    work_dir: PathBuf,
    postgres: Option<PrivatePostgres>,
    server_program: Option<PathBuf>,
    gateway_program: Option<PathBuf>,
    pgbench_program: Option<PathBuf>,
    sql: String,
    permitted: String,
    ticks_per_second: u64,
}

/// The machine and database the figures come from.
#[derive(Debug, Serialize)]
pub(crate) struct Environment {
    cpus: usize,
    postgres: String,
    private_postgres: bool,
    fsync: String,
    synchronous_commit: String,
    removal_statement: String,
}

/// A seed, the services serving its database, and what its workloads measured so far.
struct Stage {
    label: String,
    fixture: Fixture,
    conn: PgConnection,
    services: Vec<Service>,
    targets: Targets,
    samples: BTreeMap<Workload, Vec<WorkloadSample>>,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("label", &self.label)
            .field("fixture", &self.fixture)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl<'a> Session<'a> {
    /// Finds the binaries, starts the private PostgreSQL (unless `--database-url`) and the load
    /// generator's runtime.
    pub(crate) fn set_up(args: &'a Args) -> anyhow::Result<Self> {
        // Found before anything slow happens, so a missing build fails at once.
        let (server_program, gateway_program) = if args.targets_given() {
            (None, None)
        } else {
            (
                Some(services::sibling_binary("groups-server")?),
                Some(services::sibling_binary("groups-gateway")?),
            )
        };
        let pgbench_program = if args.workloads.contains(&Workload::Pgbench) {
            Some(find_pgbench()?)
        } else {
            None
        };
        let work_dir = work_dir()?;
        let postgres = match &args.database_url {
            Some(_) => {
                if !args.keep_dir {
                    // Nothing to stop: the watchdog only removes the directory afterwards.
                    watchdog::stop_after_exit(&["true"], Some(work_dir.as_os_str()))
                        .context("cannot start the clean-up watchdog (sh)")?;
                }
                None
            }
            None => {
                eprintln!(
                    "groups-bench: starting a private PostgreSQL in {}",
                    work_dir.display()
                );
                // pgbench's clients and two servers' pools (--scale) at once, with room to spare.
                let max_connections = 2 * u32::from(args.concurrency) + 100;
                Some(PrivatePostgres::start(
                    &work_dir,
                    args.durable,
                    max_connections,
                    args.keep_dir,
                )?)
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.client_threads))
            .enable_all()
            .build()
            .context("cannot start the load generator's runtime")?;
        let permitted = groups_core::Permission::RemoveMembers.labels();
        Ok(Self {
            args,
            runtime,
            work_dir,
            postgres,
            server_program,
            gateway_program,
            pgbench_program,
            sql: groups_store::removal_statement_sql().to_owned(),
            permitted: format!("{{{}}}", permitted.join(",")),
            ticks_per_second: proc_stats::ticks_per_second(),
        })
    }

    /// Stops the private PostgreSQL, if any (the watchdog would, once this process is gone).
    pub(crate) fn tear_down(&self) {
        if let Some(postgres) = &self.postgres {
            postgres.stop();
        }
    }

    /// Seeds, starts the services, then runs every round: in each, every seed in turn runs the
    /// workloads in order, and gets its memberships back afterwards. Alternating the seeds
    /// spreads the machine's noise over both sizes alike.
    pub(crate) fn run(
        &self,
        workloads: &[Workload],
    ) -> anyhow::Result<(Vec<RunReport>, Environment)> {
        let args = self.args;
        let mut stages = Vec::new();
        let mut environment = None;
        for (index, (label, groups, users)) in args.seeds().into_iter().enumerate() {
            let database_url = match (&self.postgres, &args.database_url) {
                (Some(postgres), _) => postgres.create_database(&format!("bench_{index}"))?,
                (None, Some(url)) => url.clone(),
                (None, None) => bail!("no database"),
            };
            let tag = format!("bench-{}-{index}", unix_seconds());
            eprintln!(
                "groups-bench: seeding {} memberships ({groups} groups x {users} users)",
                groups * users
            );
            let fixture = Fixture::create(&database_url, &tag, groups, users)?;
            eprintln!(
                "groups-bench: seeded in {:.1} s (instance {})",
                fixture.seed_seconds, fixture.instance
            );
            let mut conn = database::connect(&database_url)?;
            if environment.is_none() {
                environment = Some(self.environment(&mut conn));
            }
            let (services, targets) = self.services(&label, &database_url)?;
            stages.push(Stage {
                label,
                fixture,
                conn,
                services,
                targets,
                samples: BTreeMap::new(),
            });
        }
        let rounds = args.rounds();
        for round in 1..=rounds {
            for stage in &mut stages {
                if rounds > 1 {
                    eprintln!(
                        "groups-bench: round {round} of {rounds}, {} memberships",
                        stage.fixture.layout.memberships()
                    );
                }
                let used = self.run_round(stage, workloads)?;
                if round < rounds {
                    stage.fixture.restore(&mut stage.conn, used)?;
                }
            }
        }
        let mut runs = Vec::new();
        for mut stage in stages {
            // Gateway first, so it never outlives its server.
            for mut service in stage.services.drain(..).rev() {
                service.stop();
            }
            let rows = workloads
                .iter()
                .map(|w| {
                    let samples = stage.samples.get(w).map_or(&[][..], Vec::as_slice);
                    WorkloadReport::new(*w, samples, self.ticks_per_second)
                })
                .collect();
            let mut run = RunReport {
                label: stage.label,
                memberships: stage.fixture.layout.memberships(),
                seed_seconds: stage.fixture.seed_seconds,
                workloads: rows,
            };
            run.compare_to_pgbench();
            runs.push(run);
        }
        Ok((runs, environment.context("no seed")?))
    }

    fn environment(&self, conn: &mut PgConnection) -> Environment {
        Environment {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            postgres: database::setting(conn, "server_version"),
            private_postgres: self.postgres.is_some(),
            fsync: database::setting(conn, "fsync"),
            synchronous_commit: database::setting(conn, "synchronous_commit"),
            removal_statement: self.sql.clone(),
        }
    }

    /// Runs each workload once on the stage's seed; returns how many request numbers were used
    /// (each workload starts where the previous one stopped).
    fn run_round(&self, stage: &mut Stage, workloads: &[Workload]) -> anyhow::Result<u64> {
        let args = self.args;
        let mut next_request = 0;
        for &workload in workloads {
            let plan = Plan {
                length: args.length(),
                prime: match (args.length(), workload) {
                    (Length::Counted { .. }, Workload::Rest | Workload::Grpc) => {
                        Duration::from_secs(args.warmup)
                    }
                    _ => Duration::ZERO,
                },
                concurrency: usize::from(args.concurrency),
                range: next_request..stage.fixture.layout.memberships(),
            };
            plan.check_capacity()?;
            eprintln!(
                "groups-bench: {}: {} clients, {}",
                workload.name(),
                plan.concurrency,
                crate::describe(plan.length)
            );
            let sample = self.run_workload(workload, &plan, stage)?;
            let m = &sample.measurement;
            eprintln!(
                "groups-bench: {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                workload.name(),
                m.throughput(),
                m.latency.value_at_quantile(0.5) as f64 / 1000.0,
                m.latency.value_at_quantile(0.99) as f64 / 1000.0,
                m.error_count()
            );
            next_request = m.used_until;
            stage.samples.entry(workload).or_default().push(sample);
            for service in &mut stage.services {
                ensure!(
                    service.is_running(),
                    "a service died during the {} workload; its log ends:\n{}",
                    workload.name(),
                    service.log_tail()
                );
            }
        }
        Ok(next_request)
    }

    /// The services to send requests to: started here on loopback port 0, or given.
    fn services(&self, label: &str, database_url: &str) -> anyhow::Result<(Vec<Service>, Targets)> {
        let args = self.args;
        if args.targets_given() {
            let targets = Targets {
                gateway: args
                    .gateway_url
                    .as_deref()
                    .map(services::parse_target)
                    .transpose()?,
                server: args
                    .server_url
                    .as_deref()
                    .map(services::parse_target)
                    .transpose()?,
                gateway_pid: args.gateway_pid,
                server_pid: args.server_pid,
            };
            return Ok((Vec::new(), targets));
        }
        let (Some(server_program), Some(gateway_program)) =
            (&self.server_program, &self.gateway_program)
        else {
            bail!("no service binaries");
        };
        let mut server_args: Vec<OsString> = vec![
            "--database-url".into(),
            database_url.into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        if let Some(pool_size) = args.pool_size {
            server_args.extend(["--pool-size".into(), pool_size.to_string().into()]);
        }
        server_args.extend(args.server_args.iter().map(OsString::from));
        let server = Service::spawn(
            "groups-server",
            server_program,
            &server_args,
            &self.work_dir.join(format!("server-{label}.log")),
        )?;
        let mut gateway_args: Vec<OsString> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--server-url".into(),
            format!("http://{}", server.addr()).into(),
            "--rate-limit".into(),
            "0".into(),
        ];
        gateway_args.extend(args.gateway_args.iter().map(OsString::from));
        let gateway = Service::spawn(
            "groups-gateway",
            gateway_program,
            &gateway_args,
            &self.work_dir.join(format!("gateway-{label}.log")),
        )?;
        eprintln!(
            "groups-bench: groups-server pid {} on {}, groups-gateway pid {} on {}",
            server.pid(),
            server.addr(),
            gateway.pid(),
            gateway.addr()
        );
        let targets = Targets {
            gateway: Some(gateway.addr()),
            server: Some(server.addr()),
            gateway_pid: Some(gateway.pid()),
            server_pid: Some(server.pid()),
        };
        Ok((vec![server, gateway], targets))
    }

    /// Runs one workload, measuring the processes it involves and checking in the database that
    /// each success deleted exactly one membership.
    fn run_workload(
        &self,
        workload: Workload,
        plan: &Plan,
        stage: &mut Stage,
    ) -> anyhow::Result<WorkloadSample> {
        let fixture = &stage.fixture;
        let conn = &mut stage.conn;
        let targets = &stage.targets;
        fixture.settle(conn);
        let before = fixture.count(conn)?;
        let (server_pid, gateway_pid) = match workload {
            Workload::Rest => (targets.server_pid, targets.gateway_pid),
            Workload::Grpc => (targets.server_pid, None),
            Workload::Pgbench => (None, None),
        };
        for pid in [server_pid, gateway_pid].into_iter().flatten() {
            if !proc_stats::reset_peak_rss(pid) {
                eprintln!(
                    "groups-bench: cannot reset the peak memory of pid {pid}: its peak covers \
                     its whole life"
                );
            }
        }
        let postmaster = self
            .postgres
            .as_ref()
            .and_then(|pg| proc_stats::postmaster_pid(&pg.data_dir()).ok());
        let cpu_before = cpu_snapshot(server_pid, gateway_pid, postmaster);
        let mut measurement = self.drive(workload, plan, fixture, targets, &stage.label)?;
        let cpu_after = cpu_snapshot(server_pid, gateway_pid, postmaster);
        let after = fixture.count(conn)?;

        let deleted = before - after;
        let succeeded = i64::try_from(measurement.ok).unwrap_or(i64::MAX);
        if deleted < succeeded {
            measurement.add_errors(
                "answered success, deleted nothing",
                u64::try_from(succeeded - deleted).unwrap_or(0),
            );
        }
        let spent = |before: Option<u64>, after: Option<u64>| after?.checked_sub(before?);
        let cpu_ticks = CpuTicks {
            server: spent(cpu_before.server, cpu_after.server),
            gateway: spent(cpu_before.gateway, cpu_after.gateway),
            postgres: spent(cpu_before.postgres, cpu_after.postgres),
            client: match workload {
                Workload::Pgbench => spent(cpu_before.children, cpu_after.children),
                _ => spent(cpu_before.own, cpu_after.own),
            },
        };
        let mib = |pid: Option<u32>| {
            pid.and_then(|p| proc_stats::peak_rss_kib(p).ok())
                .map(|kib| kib as f64 / 1024.0)
        };
        Ok(WorkloadSample {
            measurement,
            deleted,
            cpu_ticks,
            rss: PeakRss {
                server: mib(server_pid),
                gateway: mib(gateway_pid),
            },
        })
    }

    fn drive(
        &self,
        workload: Workload,
        plan: &Plan,
        fixture: &Fixture,
        targets: &Targets,
        label: &str,
    ) -> anyhow::Result<Measurement> {
        let layout = fixture.layout;
        match workload {
            Workload::Rest => {
                let addr = targets.gateway.context("no gateway")?;
                let removers = (0..plan.concurrency)
                    .map(|_| RestRemover::new(addr, &fixture.instance, &fixture.key))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                self.runtime.block_on(load::drive(removers, plan, layout))
            }
            Workload::Grpc => {
                let addr = targets.server.context("no server")?;
                self.runtime.block_on(async {
                    let channels =
                        GrpcRemover::channels(addr, usize::from(self.args.grpc_channels)).await?;
                    let removers = (0..plan.concurrency)
                        .map(|i| {
                            let channel = channels[i % channels.len()].clone();
                            GrpcRemover::new(channel, &fixture.instance, &fixture.key)
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    load::drive(removers, plan, layout).await
                })
            }
            Workload::Pgbench => {
                let program = self.pgbench_program.clone().context("no pgbench")?;
                let dir = self.work_dir.join(format!("pgbench-{label}"));
                // A fresh log directory per round: the logs of the last run are read back.
                let _ = std::fs::remove_dir_all(&dir);
                Pgbench {
                    program,
                    dir: &dir,
                    threads: usize::from(self.args.client_threads),
                    sql: &self.sql,
                    permitted: &self.permitted,
                }
                .run(plan, fixture)
            }
        }
    }
}

/// CPU ticks of the processes a workload involves, at one moment.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    server: Option<u64>,
    gateway: Option<u64>,
    postgres: Option<u64>,
    /// This process: the load generator.
    own: Option<u64>,
    /// This process's reaped children: pgbench.
    children: Option<u64>,
}

fn cpu_snapshot(server: Option<u32>, gateway: Option<u32>, postmaster: Option<u32>) -> CpuSnapshot {
    let own = proc_stats::own_cpu_times().ok();
    let of = |pid: Option<u32>| {
        pid.and_then(|p| proc_stats::cpu_times(p).ok())
            .map(|t| t.own)
    };
    CpuSnapshot {
        server: of(server),
        gateway: of(gateway),
        postgres: postmaster.and_then(|p| proc_stats::tree_cpu_ticks(p).ok()),
        own: own.map(|t| t.own),
        children: own.map(|t| t.reaped_children),
    }
}

/// pgbench, a sibling of PostgreSQL's server binaries: where `PgBinaries` found them, else
/// where they really live (a `PATH` directory may hold symlinks to only some of them), else on
/// `PATH`.
fn find_pgbench() -> anyhow::Result<PathBuf> {
    let binaries = PgBinaries::find().map_err(|e| anyhow::anyhow!(e))?;
    let mut candidates = vec![binaries.program("pgbench")];
    if let Ok(postgres) = binaries.program("postgres").canonicalize()
        && let Some(dir) = postgres.parent()
    {
        candidates.push(dir.join("pgbench"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("pgbench")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no pgbench next to PostgreSQL's server binaries ({}) or on PATH; install it \
             (Debian: postgresql-client) or leave out the pgbench workload",
                binaries.program("pgbench").display()
            )
        })
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
