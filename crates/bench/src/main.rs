//! `groups-bench`: the benchmark of the service, a tool rather than a test.
//!
//! On one seed of G × U memberships it runs three workloads one after another, each removing
//! memberships no other request touches, so every answer must be a success and a real delete:
//! REST through `groups-gateway`, gRPC straight to `groups-server`, and `pgbench -M prepared`
//! running the server's own statement (the physical limit). It prints throughput, latency
//! percentiles, errors, CPU time per request and peak memory of each process, and each
//! workload's ratio to pgbench; `--json PATH` writes the same. `--scale` runs it at 10^4 and
//! 10^6 memberships to show the cost stays flat as data grows.

mod database;
mod load;
mod measurement;
mod memberships;
mod pgbench;
mod proc_stats;
mod report;
mod services;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Parser;
use serde::Serialize;

use crate::measurement::Length;
use crate::report::{RunReport, Workload};
use crate::session::{Environment, Session};

/// Benchmarks membership removal: REST via the gateway, gRPC to the server, and pgbench running
/// the server's SQL, on the same seeded data.
#[derive(Debug, Parser, Serialize)]
#[command(name = "groups-bench", version, about)]
struct Args {
    /// PostgreSQL to seed and run on: it is migrated, and gets an owner and instance of its own
    /// with the seed (left there afterwards). Default: a private server from the machine's
    /// PostgreSQL binaries in a temporary directory, removed afterwards.
    #[arg(long)]
    #[serde(skip)]
    database_url: Option<String>,
    /// Requests in flight at once (clients of each workload).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1000))]
    concurrency: u16,
    /// Seconds each workload is measured for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Seconds each workload runs before it is measured (connections, threads, caches and plans
    /// warm up). With --scale, the REST and gRPC workloads spend them asking to remove a
    /// membership that does not exist, which uses up no seed.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup: u64,
    /// Groups to seed (every user joins every group).
    #[arg(long, default_value_t = 100, conflicts_with = "scale")]
    groups: i64,
    /// Users to seed. With 100 groups, 1,000,000 memberships: each workload starts where the
    /// previous one stopped, and two 12-s runs at 10,000 a second leave pgbench 760,000.
    #[arg(long, default_value_t = 10_000, conflicts_with = "scale")]
    users: i64,
    /// Workloads to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rest,grpc,pgbench"
    )]
    workloads: Vec<Workload>,
    /// A running groups-server to send gRPC to (instead of starting one); it must serve
    /// --database-url's database.
    #[arg(long, requires = "database_url")]
    server_url: Option<String>,
    /// A running groups-gateway to send REST to (instead of starting one); it must reach a server
    /// of --database-url's database, with its rate limit off.
    #[arg(long, requires = "database_url")]
    gateway_url: Option<String>,
    /// Process id of the running server given by --server-url, to measure its CPU and memory.
    #[arg(long, requires = "server_url")]
    server_pid: Option<u32>,
    /// Process id of the running gateway given by --gateway-url, to measure its CPU and memory.
    #[arg(long, requires = "gateway_url")]
    gateway_pid: Option<u32>,
    /// --pool-size of the groups-server started (its default when not given).
    #[arg(long)]
    pool_size: Option<u32>,
    /// An extra argument for the groups-server started (repeat for several).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// An extra argument for the groups-gateway started (repeat for several).
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
    /// HTTP/2 connections the gRPC workload spreads its requests over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    grpc_channels: u16,
    /// Threads of the load generator, and pgbench's --jobs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    client_threads: u16,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run at 10^4 and at 10^6 memberships (fresh seeds) and compare; each workload then runs
    /// --scale-requests requests after --scale-warmup unmeasured ones, since 10^4 memberships
    /// last well under a second.
    #[arg(long)]
    scale: bool,
    /// Measured requests per workload in --scale mode.
    #[arg(long, default_value_t = 2700)]
    scale_requests: u64,
    /// Unmeasured warm-up requests per workload in --scale mode.
    #[arg(long, default_value_t = 300)]
    scale_warmup: u64,
    /// Private PostgreSQL with fsync and synchronous commit on (default off: the figures then
    /// measure CPU and round trips, not this machine's disk).
    #[arg(long, conflicts_with = "database_url")]
    durable: bool,
    /// Rounds of the workloads on each seed, their memberships put back in between; the table
    /// pools them (JSON lists each). Default 1, or 3 with --scale, whose rounds are short.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: Option<u32>,
    /// Keep the work directory (services' logs, pgbench's logs, the private PostgreSQL's data).
    #[arg(long)]
    keep_dir: bool,
}

impl Args {
    fn targets_given(&self) -> bool {
        self.server_url.is_some() || self.gateway_url.is_some()
    }

    /// Seeds to run on: (label, groups, users).
    fn seeds(&self) -> Vec<(String, i64, i64)> {
        if self.scale {
            vec![("1e4".into(), 100, 100), ("1e6".into(), 1000, 1000)]
        } else {
            let (groups, users) = (self.groups, self.users);
            vec![(format!("{}", groups * users), groups, users)]
        }
    }

    fn rounds(&self) -> u32 {
        self.rounds.unwrap_or(if self.scale { 3 } else { 1 })
    }

    fn length(&self) -> Length {
        if self.scale {
            Length::Counted {
                warmup: self.scale_warmup,
                requests: self.scale_requests,
            }
        } else {
            Length::Timed {
                warmup: Duration::from_secs(self.warmup),
                duration: Duration::from_secs(self.duration),
            }
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(Verdict::Clean) => ExitCode::SUCCESS,
        Ok(Verdict::Errors(n)) => {
            eprintln!("groups-bench: {n} requests failed or did not delete (see the table)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("groups-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether every request succeeded and deleted exactly one membership.
#[derive(Debug)]
enum Verdict {
    Clean,
    Errors(u64),
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    config: &'a Args,
    length: Length,
    rounds: u32,
    environment: Environment,
    runs: &'a [RunReport],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scale: Vec<report::ScaleRow>,
    goals: Vec<report::Goal>,
}

fn run(args: &Args) -> anyhow::Result<Verdict> {
    ensure!(!args.workloads.is_empty(), "--workloads: name at least one");
    let mut workloads = args.workloads.clone();
    workloads.dedup();
    if args.targets_given() {
        for (workload, given) in [
            (Workload::Rest, args.gateway_url.is_some()),
            (Workload::Grpc, args.server_url.is_some()),
        ] {
            ensure!(
                given || !workloads.contains(&workload),
                "with services already running, the {} workload needs --{}-url",
                workload.name(),
                if workload == Workload::Rest {
                    "gateway"
                } else {
                    "server"
                }
            );
        }
    }
    let session = Session::set_up(args)?;
    let result = session.run(&workloads);
    session.tear_down();
    let (runs, environment) = result?;

    for run in &runs {
        println!(
            "\n{} memberships, concurrency {}, {}{}:",
            run.memberships,
            args.concurrency,
            describe(args.length()),
            match args.rounds() {
                1 => String::new(),
                n => format!(", {n} rounds pooled"),
            }
        );
        print!("{}", report::table(run));
    }
    let scale = match runs.as_slice() {
        [small, .., large] => report::scale_rows(small, large),
        _ => Vec::new(),
    };
    if !scale.is_empty() {
        println!("\np50 as the data grows:");
        print!("{}", report::scale_table(&scale));
    }
    let goals = runs
        .last()
        .map(|largest| report::goals(largest, &scale))
        .unwrap_or_default();
    println!("\ngoals (issue #4):");
    print!("{}", report::goals_text(&goals));
    if let Some(path) = &args.json {
        let json = JsonReport {
            config: args,
            length: args.length(),
            rounds: args.rounds(),
            environment,
            runs: &runs,
            scale,
            goals,
        };
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("groups-bench: wrote {}", path.display());
    }
    let errors: u64 = runs
        .iter()
        .flat_map(|r| &r.workloads)
        .map(|w| w.errors + u64::from(w.seed_exhausted))
        .sum();
    Ok(if errors == 0 {
        Verdict::Clean
    } else {
        Verdict::Errors(errors)
    })
}

fn describe(length: Length) -> String {
    match length {
        Length::Timed { warmup, duration } => format!(
            "{} s warm-up + {} s measured",
            warmup.as_secs(),
            duration.as_secs()
        ),
        Length::Counted { warmup, requests } => {
            format!("{warmup} warm-up + {requests} measured requests per round")
        }
    }
}
