//! `groups-bench`: the benchmark of the service, a tool rather than a test. At each durability
//! and client count it runs the workloads (`cli::Workload`) one after another on one seed, each
//! removing memberships no other request touches, so every answer must be a success and a real
//! delete; it prints throughput, latency, errors, CPU per removal and peak memory next to both
//! pgbench baselines, then the goals; `--json` and `--plot` write the same.

mod batches;
mod cli;
mod database;
mod goals;
mod load;
mod measurement;
mod memberships;
mod pgbench;
mod plot;
mod proc_stats;
mod report;
mod services;
mod session;

use std::process::ExitCode;

use anyhow::{Context, ensure};
use clap::Parser;
use serde::Serialize;

use crate::cli::Args;
use crate::report::Point;
use crate::session::{Environment, Session};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!("groups-bench: {errors} removals failed or did not delete (see the tables)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("groups-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    config: &'a Args,
    environment: Environment,
    points: &'a [Point],
    goals: Vec<goals::Verdict>,
}

/// Runs the session and reports it; returns the number of failed removals.
fn run(args: &Args) -> anyhow::Result<u64> {
    ensure!(!args.workloads.is_empty(), "--workloads: name at least one");
    let session = Session::set_up(args)?;
    let result = session.run();
    session.tear_down();
    let (points, environment) = result?;

    for point in &points {
        println!(
            "\n{}: fsync={}, synchronous_commit={}; {} clients; {} s warm-up + {} s measured; \
             load average before: {}",
            report::durability_label(point.durable),
            point.fsync,
            point.synchronous_commit,
            point.clients,
            args.warmup,
            args.duration,
            point.load_average
        );
        print!("{}", report::point_table(point));
    }
    println!("\nside by side ({} memberships):", environment.memberships);
    print!("{}", report::summary_table(&points));
    let verdicts = goals::check(&points);
    println!("\ngoals (issue 10):");
    print!("{}", goals::render(&verdicts));

    if let Some(path) = &args.plot {
        plot::draw(&points, path)?;
        eprintln!("groups-bench: drew {}", path.display());
    }
    if let Some(path) = &args.json {
        let json = JsonReport {
            config: args,
            environment,
            points: &points,
            goals: verdicts,
        };
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("groups-bench: wrote {}", path.display());
    }
    let rows = points.iter().flat_map(|p| &p.rows);
    Ok(rows.map(|r| r.errors + u64::from(r.seed_exhausted)).sum())
}
