//! The command line: which workloads, at how many clients, with which durability, for how long.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// The client counts of `--sweep`.
pub(crate) const SWEEP: [u16; 5] = [1, 8, 32, 128, 512];

/// Benchmarks membership removal: REST via the gateway, gRPC to the server, and pgbench running
/// the server's statement one removal at a time (the naive limit) and in batches of the size the
/// server formed (the batched limit), on the same seeded data.
#[derive(Debug, Parser, Serialize)]
#[command(name = "groups-bench", version, about)]
pub(crate) struct Args {
    /// Clients of each workload (requests in flight at once); a comma-separated list runs each
    /// in turn.
    #[arg(long, value_delimiter = ',', default_value = "32",
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(crate) concurrency: Vec<u16>,
    /// Run at 1, 8, 32, 128 and 512 clients (instead of --concurrency).
    #[arg(long, conflicts_with = "concurrency")]
    pub(crate) sweep: bool,
    /// fsync and synchronous commit of the benchmark's PostgreSQL: off (the figures then measure
    /// CPU and round trips, not this machine's disk), on, or both (off first).
    #[arg(long, value_enum)]
    pub(crate) durability: Option<Durability>,
    /// The same as --durability on.
    #[arg(long, conflicts_with = "durability")]
    pub(crate) durable: bool,
    /// Seconds each workload is measured for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) duration: u64,
    /// Seconds each workload runs before it is measured (connections, threads, caches and plans
    /// warm up).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub(crate) warmup: u64,
    /// Groups to seed (every user joins every group).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) groups: i64,
    /// Users to seed. Every workload starts from the whole seed (what the previous one removed
    /// is put back), so it must hold what the fastest removes in warm-up + duration.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) users: i64,
    /// Workloads to run at each point, in this order (pgbench-batched and pgbench-unaudited need rest
    /// or grpc before them: they run at the batch sizes those made the server form).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rest,grpc,pgbench,pgbench-batched"
    )]
    pub(crate) workloads: Vec<Workload>,
    /// An extra argument for the groups-server started, such as --server-arg=--pool-size=8
    /// (repeat for several).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub(crate) server_args: Vec<String>,
    /// An extra argument for the groups-gateway started (repeat for several).
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    pub(crate) gateway_args: Vec<String>,
    /// HTTP/2 connections the gRPC workload spreads its requests over.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(crate) grpc_channels: u16,
    /// Threads of the load generator, and pgbench's --jobs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) client_threads: u16,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Draw removals/s and p99 against clients for each workload into this SVG file.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
    /// Keep the work directory (services' logs, pgbench's logs, the private PostgreSQL's data).
    #[arg(long)]
    pub(crate) keep_dir: bool,
}

impl Args {
    /// The client counts to run at, in order.
    pub(crate) fn client_counts(&self) -> Vec<u16> {
        let sweep = self.sweep.then(|| SWEEP.to_vec());
        let mut counts = sweep.unwrap_or_else(|| self.concurrency.clone());
        counts.dedup();
        counts
    }

    /// Durable or not, for each block of the run, in order.
    pub(crate) fn durability_modes(&self) -> Vec<bool> {
        match (self.durable, self.durability) {
            (true, _) | (false, Some(Durability::On)) => vec![true],
            (false, None | Some(Durability::Off)) => vec![false],
            (false, Some(Durability::Both)) => vec![false, true],
        }
    }

    /// The workloads in order, each once.
    pub(crate) fn workload_list(&self) -> Vec<Workload> {
        let mut seen = BTreeSet::new();
        let mut list = self.workloads.clone();
        list.retain(|w| seen.insert(*w));
        list
    }
}

/// fsync and synchronous commit of the private PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Durability {
    Off,
    On,
    Both,
}

/// What sends the removals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Workload {
    /// REST through the gateway.
    Rest,
    /// gRPC straight to the server.
    Grpc,
    /// pgbench running the server's statement for one removal per statement and commit.
    Pgbench,
    /// pgbench running the server's statement over B removals at once, B the mean batch the
    /// server formed in the REST or gRPC workload.
    PgbenchBatched,
    /// `pgbench-batched` with the audit insert taken out of the statement: what the audit trail
    /// costs, side by side (not in the default list; the service always writes the trail).
    PgbenchUnaudited,
}

impl Workload {
    /// Its name on the command line.
    pub(crate) fn name(self) -> String {
        let value = self.to_possible_value().expect("no workload is skipped");
        value.get_name().to_owned()
    }

    /// Whether it runs at the batch sizes the server formed in the workloads before it.
    pub(crate) fn is_batched(self) -> bool {
        matches!(self, Workload::PgbenchBatched | Workload::PgbenchUnaudited)
    }

    /// Whether its removals go through the server (and so form batches there).
    pub(crate) fn uses_server(self) -> bool {
        matches!(self, Workload::Rest | Workload::Grpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("groups-bench").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_run_one_point_at_32_clients_with_fsync_off() {
        let args = parse(&[]);
        assert_eq!(args.client_counts(), [32]);
        assert_eq!(args.durability_modes(), [false]);
        assert_eq!(
            args.workload_list(),
            [
                Workload::Rest,
                Workload::Grpc,
                Workload::Pgbench,
                Workload::PgbenchBatched
            ]
        );
    }

    #[test]
    fn sweep_and_durability_choices() {
        assert_eq!(parse(&["--sweep"]).client_counts(), SWEEP);
        assert_eq!(parse(&["--concurrency", "1,8"]).client_counts(), [1, 8]);
        assert_eq!(parse(&["--durable"]).durability_modes(), [true]);
        assert_eq!(
            parse(&["--durability", "both"]).durability_modes(),
            [false, true]
        );
        let both = ["groups-bench", "--sweep", "--concurrency", "8"];
        assert!(Args::try_parse_from(both).is_err());
        assert!(Args::try_parse_from(["groups-bench", "--concurrency", "0"]).is_err());
    }
}
