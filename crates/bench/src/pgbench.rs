//! The physical limit: `pgbench -M prepared` running, at the same concurrency, exactly the
//! statement the server runs for one removal, on memberships of its own from the same seed.
//!
//! pgbench binds its variables as text, and cannot bind SQL NULL: the API key digest (`$3`),
//! NULL in the server's call for an admin's key, is bound to an empty bytea, which matches no key
//! either (one more probe of the tiny `api_keys` index; the same rows and the same answer).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use crate::database::Fixture;
use crate::measurement::{Length, Measurement, Plan, new_histogram};

/// pgbench variables for the statement's binds `$1..$6`, in order.
const BIND_VARIABLES: [&str; 7] = [
    "instance_name",
    "account_key",
    "api_key",
    "group_id",
    "user_id",
    "request_id",
    "permitted",
];

/// The binds the server sends as arrays of one value per removal; pgbench sends one removal.
const ARRAY_BINDS: usize = 6;

/// Turns the server's statement into a pgbench script: `$n` become the variables above, and the
/// lines before it compute, per client, the next membership exactly as the load generator does
/// (`SeedLayout::membership`): request `k = offset + n·clients + client_id` for the client's
/// n-th transaction (`n` persists per client; `-D n=0` starts it).
pub(crate) fn render_script(sql: &str) -> anyhow::Result<String> {
    let mut statement = substitute_binds(sql, &BIND_VARIABLES)?;
    for name in &BIND_VARIABLES[..ARRAY_BINDS] {
        statement = statement.replace(&format!(":{name}::"), &format!("ARRAY[:{name}]::"));
    }
    Ok(format!(
        "-- groups-bench: one removal, the statement of groups_store::removal_statement_sql()\n\
         \\set k :offset + :n * :clients + :client_id\n\
         \\set n :n + 1\n\
         \\set p (:k * :stride) % :memberships\n\
         \\set group_id :first_group + :p / :users\n\
         \\set user_id :first_user + :p % :users\n\
         {statement};\n"
    ))
}

/// Replaces each `$n` of `sql` with `:names[n-1]`; every name must be used.
fn substitute_binds(sql: &str, names: &[&str]) -> anyhow::Result<String> {
    // pgbench substitutes any `:word` naming a variable; a statement with one of its own
    // (other than a `::` cast) could be silently changed.
    let bytes = sql.as_bytes();
    for (i, _) in sql.match_indices(':') {
        let cast = bytes.get(i + 1) == Some(&b':') || (i > 0 && bytes[i - 1] == b':');
        ensure!(
            cast,
            "the statement has a ':' pgbench would read as a variable"
        );
    }
    let mut out = String::with_capacity(sql.len() + 64);
    let mut used = vec![false; names.len()];
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let digits: String = sql[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if digits.is_empty() {
            out.push(c);
            continue;
        }
        let n: usize = digits.parse()?;
        let Some(name) = n.checked_sub(1).and_then(|i| names.get(i)) else {
            bail!(
                "the statement has ${n}, but only {} binds are known",
                names.len()
            );
        };
        used[n - 1] = true;
        out.push(':');
        out.push_str(name);
        for _ in 0..digits.len() {
            chars.next();
        }
    }
    if let Some(missing) = used.iter().position(|u| !u) {
        bail!("the statement does not use ${}", missing + 1);
    }
    Ok(out)
}

/// One pgbench run.
#[derive(Debug)]
pub(crate) struct Pgbench<'a> {
    pub(crate) program: PathBuf,
    /// Holds the script and the per-transaction logs.
    pub(crate) dir: &'a Path,
    pub(crate) threads: usize,
    pub(crate) sql: &'a str,
    pub(crate) permitted: &'a str,
}

impl Pgbench<'_> {
    /// Runs `plan` and reads its per-transaction logs into a measurement.
    pub(crate) fn run(&self, plan: &Plan, fixture: &Fixture) -> anyhow::Result<Measurement> {
        fs::create_dir_all(self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let script = self.dir.join("removal.sql");
        fs::write(&script, render_script(self.sql)?)
            .with_context(|| format!("cannot write {}", script.display()))?;
        let clients = plan.concurrency as u64;
        let layout = fixture.layout;
        let mut command = Command::new(&self.program);
        command
            .args(["-n", "-M", "prepared", "-l"])
            .arg(format!("--log-prefix={}", self.dir.join("log").display()))
            .arg(format!("--client={clients}"))
            .arg(format!(
                "--jobs={}",
                self.threads.clamp(1, plan.concurrency)
            ))
            .arg("-f")
            .arg(&script);
        let warmup_per_client = match plan.length {
            Length::Timed { warmup, duration } => {
                command.arg(format!("--time={}", (warmup + duration).as_secs().max(1)));
                0
            }
            Length::Counted { warmup, requests } => {
                let per_client = (warmup + requests).div_ceil(clients);
                command.arg(format!("--transactions={per_client}"));
                warmup.div_ceil(clients)
            }
        };
        let variables = [
            ("offset", plan.range.start.to_string()),
            ("clients", clients.to_string()),
            ("n", "0".to_owned()),
            ("stride", layout.stride.to_string()),
            ("memberships", layout.memberships().to_string()),
            ("first_group", layout.first_group.to_string()),
            ("first_user", layout.first_user.to_string()),
            ("users", layout.users.to_string()),
            ("instance_name", fixture.instance.clone()),
            ("account_key", fixture.key_digest_bytea()),
            ("api_key", "\\x".to_owned()),
            ("request_id", "groups-bench".to_owned()),
            ("permitted", self.permitted.to_owned()),
        ];
        for (name, value) in variables {
            command.arg("-D").arg(format!("{name}={value}"));
        }
        // The URL is pgbench's "dbname": libpq expands a URI given there.
        command.arg(&fixture.database_url);
        let output = command
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        // 1: bad arguments or no connection, nothing ran; 2: some clients aborted mid-run,
        // which the log shows and the report counts.
        if output.status.code() == Some(1) || output.status.code().is_none() {
            bail!("pgbench failed ({}):\n{stderr}", output.status);
        }
        let entries = read_logs(self.dir)?;
        ensure!(
            !entries.is_empty(),
            "pgbench logged no transaction:\n{stderr}"
        );
        let mut measurement = summarise(&entries, plan, warmup_per_client);
        if !output.status.success() {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            measurement.add_errors(
                &format!("pgbench {}: {}", output.status, last.unwrap_or("").trim()),
                1,
            );
        }
        Ok(measurement)
    }
}

/// One line of pgbench's per-transaction log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogEntry {
    pub(crate) client: u64,
    /// The client's transaction number, from 0 (its `n` in the script).
    pub(crate) transaction: u64,
    /// `None`: the transaction failed.
    pub(crate) latency_us: Option<u64>,
    /// When it completed, µs since the Unix epoch.
    pub(crate) end_us: u64,
}

/// Parses `client_id transaction_no time script_no time_epoch time_us [...]`, where `time` is
/// the latency in µs or `failed`.
pub(crate) fn parse_log_line(line: &str) -> anyhow::Result<LogEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    ensure!(fields.len() >= 6, "short pgbench log line {line:?}");
    let number = |i: usize| -> anyhow::Result<u64> {
        fields[i]
            .parse()
            .with_context(|| format!("field {} of pgbench log line {line:?}", i + 1))
    };
    let latency_us = match fields[2] {
        "failed" | "skipped" => None,
        _ => Some(number(2)?),
    };
    Ok(LogEntry {
        client: number(0)?,
        transaction: number(1)?,
        latency_us,
        end_us: number(4)? * 1_000_000 + number(5)?,
    })
}

/// Every entry of the logs pgbench wrote in `dir` (one file per thread).
fn read_logs(dir: &Path) -> anyhow::Result<Vec<LogEntry>> {
    let mut entries = Vec::new();
    for file in fs::read_dir(dir)?.flatten() {
        if !file.file_name().to_string_lossy().starts_with("log.") {
            continue;
        }
        let text = fs::read_to_string(file.path())?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            entries.push(parse_log_line(line)?);
        }
    }
    Ok(entries)
}

/// The measurement of a run: in a timed run, the transactions that completed within the
/// window starting `warmup` after the first one started; in a counted one, each client's
/// transactions after its first `warmup_per_client`.
pub(crate) fn summarise(entries: &[LogEntry], plan: &Plan, warmup_per_client: u64) -> Measurement {
    let clients = plan.concurrency as u64;
    let started = entries
        .iter()
        .map(|e| e.end_us - e.latency_us.unwrap_or(0))
        .min()
        .unwrap_or(0);
    let last_end = entries.iter().map(|e| e.end_us).max().unwrap_or(0);
    let window_us = match plan.length {
        Length::Timed { warmup, duration } => {
            let from = started + micros(warmup);
            Some((from, (from + micros(duration)).min(last_end)))
        }
        Length::Counted { .. } => None,
    };
    let mut latency = new_histogram();
    let (mut measured_ok, mut ok, mut failed) = (0, 0, 0);
    let (mut first_measured_start, mut last_measured_end) = (u64::MAX, 0);
    let mut exhausted = false;
    let mut used_until = plan.range.start;
    for entry in entries {
        let k = plan.range.start + entry.transaction * clients + entry.client;
        exhausted |= k >= plan.range.end;
        // Each client's numbers interleave: all below its next one (+ the other clients') are taken.
        used_until = used_until.max(plan.range.start + (entry.transaction + 1) * clients);
        let measured = match window_us {
            Some((from, to)) => (from..=to).contains(&entry.end_us),
            None => entry.transaction >= warmup_per_client,
        };
        match entry.latency_us {
            Some(us) => {
                ok += 1;
                if measured {
                    measured_ok += 1;
                    latency.saturating_record(us.max(1));
                    first_measured_start = first_measured_start.min(entry.end_us - us);
                    last_measured_end = last_measured_end.max(entry.end_us);
                }
            }
            None => failed += 1,
        }
    }
    let window = match window_us {
        Some((from, to)) => Duration::from_micros(to.saturating_sub(from)),
        None => Duration::from_micros(last_measured_end.saturating_sub(first_measured_start)),
    };
    let mut measurement = Measurement {
        latency,
        measured_ok,
        window,
        sent: entries.len() as u64,
        ok,
        errors: Default::default(),
        exhausted,
        used_until: used_until.min(plan.range.end),
        primed: 0,
    };
    measurement.add_errors("pgbench: transaction failed", failed);
    measurement
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_become_variables() {
        let sql = "SELECT $1, $2 WHERE x = $10 AND y = $2 AND z::text = 'a$'";
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        assert!(substitute_binds(sql, &names).is_err(), "$3..$9 unused");
        let sql = "SELECT $1, $2 WHERE x = $3 AND y = $2 AND z::text = 'a$'";
        assert_eq!(
            substitute_binds(sql, &names[..3]).unwrap(),
            "SELECT :a, :b WHERE x = :c AND y = :b AND z::text = 'a$'"
        );
        assert!(substitute_binds("SELECT $4", &names[..3]).is_err());
        assert!(substitute_binds("SELECT :x, $1", &names[..1]).is_err());
    }

    #[test]
    fn the_server_statement_renders_into_a_script() {
        let sql = groups_store::removal_statement_sql();
        let script = render_script(sql).unwrap();
        assert!(!script.contains('$'), "{script}");
        for name in BIND_VARIABLES {
            assert!(script.contains(&format!(":{name}")), "{name} in {script}");
        }
        assert!(script.contains("DELETE FROM memberships"));
        assert!(script.trim_end().ends_with(';'));
    }

    #[test]
    fn reads_log_lines() {
        assert_eq!(
            parse_log_line("3 17 2450 0 1764340000 123456").unwrap(),
            LogEntry {
                client: 3,
                transaction: 17,
                latency_us: Some(2450),
                end_us: 1_764_340_000_123_456
            }
        );
        assert_eq!(
            parse_log_line("0 1 failed 0 1764340000 5")
                .unwrap()
                .latency_us,
            None
        );
        assert!(parse_log_line("0 1 2").is_err());
    }

    #[test]
    fn a_timed_run_measures_its_window_only() {
        let plan = Plan {
            prime: Duration::ZERO,
            length: Length::Timed {
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(2),
            },
            concurrency: 2,
            range: 0..100,
        };
        // Client 0 completes one transaction every 500 ms from t=0.5 s, for 4 s.
        let entries: Vec<LogEntry> = (0..8)
            .map(|n| LogEntry {
                client: 0,
                transaction: n,
                latency_us: Some(500_000),
                end_us: 500_000 * (n + 1),
            })
            .collect();
        let m = summarise(&entries, &plan, 0);
        // The window is 1 s..3 s: completions at 1.0, 1.5, 2.0, 2.5 and 3.0 s.
        assert_eq!(m.measured_ok, 5);
        assert_eq!(m.window, Duration::from_secs(2));
        assert_eq!((m.sent, m.ok, m.error_count()), (8, 8, 0));
        assert!(!m.exhausted);
    }
}
