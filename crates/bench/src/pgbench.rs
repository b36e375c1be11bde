//! The database's own limits: `pgbench -M prepared` running exactly the server's statement on
//! the same seed, with the same removals in flight, one per statement and commit (the naive
//! limit) or B, the batch size the server formed (the batched limit). The API key digests are
//! NULL, as in the server's call for an admin's account key.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use crate::database::Fixture;
use crate::measurement::{Measurement, Plan};

/// Turns the server's statement into a pgbench script removing `batch` memberships per
/// transaction. Every bind is an array, one element per removal, as the server binds them: the
/// constant ones are variables holding the whole array; the group and user ids are built from
/// one variable per removal (pgbench variables hold numbers or fixed text), the only difference
/// from the server's call. The lines before the statement compute, per client, the memberships
/// exactly as the load generator does (`SeedLayout::membership`): removals
/// `k = (n·clients + client_id)·batch + j`, `j < batch`, in the client's n-th transaction (`n`
/// persists per client; `-D n=0` starts it).
pub(crate) fn render_script(sql: &str, batch: u32) -> anyhow::Result<String> {
    let array = |scalar: &str| {
        let elements: Vec<String> = (0..batch).map(|j| format!(":{scalar}{j}")).collect();
        format!("ARRAY[{}]", elements.join(", "))
    };
    let (group_ids, user_ids) = (array("group_id"), array("user_id"));
    let binds = [
        ":instance_names",
        ":account_keys",
        ":api_keys",
        &group_ids,
        &user_ids,
        ":request_ids",
        ":permitted",
    ];
    let mut script = format!(
        "-- groups-bench: {batch} removal(s) per statement and commit\n\
         \\set base (:n * :clients + :client_id) * {batch}\n\
         \\set n :n + 1\n\
         \\if :base + {batch} <= :memberships\n"
    );
    for j in 0..batch {
        script.push_str(&format!(
            "\\set p{j} ((:base + {j}) * :stride) % :memberships\n\
             \\set group_id{j} :first_group + :p{j} / :users\n\
             \\set user_id{j} :first_user + :p{j} % :users\n"
        ));
    }
    script.push_str(&substitute_binds(sql, &binds)?);
    // Past the seed a transaction runs nothing (and is not counted), so the time pgbench runs
    // on after the measured window never removes a membership twice.
    script.push_str(";\n\\endif\n");
    Ok(script)
}

/// The server's statement without its audit insert (the `logged` data-modifying CTE): the same
/// checks, locks and deletes, no event rows. Fails if the statement no longer has that shape.
pub(crate) fn without_audit(sql: &str) -> anyhow::Result<String> {
    const CTE: &str = ", logged AS (";
    let start = sql.find(CTE).context("the statement has no `logged` CTE")?;
    let body = &sql[start + CTE.len()..];
    // The CTE's closing parenthesis: the first one where the depth returns to zero.
    let mut depth = 1;
    let close = body.find(|c: char| {
        depth += i32::from(c == '(') - i32::from(c == ')');
        depth == 0
    });
    let close = close.context("the `logged` CTE is not closed")?;
    let out = format!("{}{}", &sql[..start], &body[close + 1..]);
    ensure!(
        !out.contains("membership_events") && out.contains("DELETE FROM"),
        "the statement without its audit insert is not the removal: {out}"
    );
    Ok(out)
}

/// A PostgreSQL array literal of `items` (`None` is NULL), each element quoted.
fn array_literal<'a>(items: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let elements: Vec<String> = items
        .into_iter()
        .map(|item| match item {
            Some(text) => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
            None => "NULL".to_owned(),
        })
        .collect();
    format!("{{{}}}", elements.join(","))
}

/// Replaces each `$n` of `sql` with `binds[n-1]`; every one must be used, and no other bind or
/// `:word` may be there (pgbench would substitute a `:word` naming one of its variables).
fn substitute_binds(sql: &str, binds: &[&str]) -> anyhow::Result<String> {
    let bytes = sql.as_bytes();
    let bind = |w: &[u8]| w[0] == b'$' && w[1].is_ascii_digit();
    ensure!(
        binds.len() < 10 && !bytes.windows(3).any(|w| bind(w) && w[2].is_ascii_digit()),
        "more than 9 binds"
    );
    ensure!(
        !sql.replace("::", "").contains(':'),
        "the statement has a ':' pgbench would read"
    );
    let mut out = sql.to_owned();
    for (i, text) in binds.iter().enumerate() {
        let bind = format!("${}", i + 1);
        ensure!(out.contains(&bind), "the statement does not use {bind}");
        out = out.replace(&bind, text);
    }
    ensure!(
        !out.as_bytes().windows(2).any(bind),
        "the statement has more than {} binds",
        binds.len()
    );
    Ok(out)
}

/// Time allowed per pgbench client to connect and prepare before its first transaction.
const CONNECT_TIME: Duration = Duration::from_millis(40);

/// One pgbench run.
#[derive(Debug)]
pub(crate) struct Pgbench<'a> {
    pub(crate) program: &'a Path,
    /// Holds the script and the per-transaction logs.
    pub(crate) dir: &'a Path,
    pub(crate) threads: usize,
    pub(crate) sql: &'a str,
    /// The labels of the principals that may remove members (`$7`).
    pub(crate) permitted: &'a [&'a str],
    /// Removals per statement (and per transaction).
    pub(crate) batch: u32,
}

impl Pgbench<'_> {
    /// Runs `plan` with `plan.clients` removals in flight, `batch` per client, and reads its
    /// per-transaction logs into a measurement.
    pub(crate) fn run(&self, plan: &Plan, fixture: &Fixture) -> anyhow::Result<Measurement> {
        // A fresh directory per run: the logs of this run are read back.
        let _ = fs::remove_dir_all(self.dir);
        fs::create_dir_all(self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let script = self.dir.join("removal.sql");
        fs::write(&script, render_script(self.sql, self.batch)?)
            .with_context(|| format!("cannot write {}", script.display()))?;
        let (clients, layout) = (self.clients(plan), fixture.layout);
        let digest: String = fixture
            .key_digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let same =
            |value: Option<&str>| array_literal(std::iter::repeat_n(value, self.batch as usize));
        let variables = [
            ("clients", clients.to_string()),
            ("n", "0".to_owned()),
            ("stride", layout.stride.to_string()),
            ("memberships", layout.memberships().to_string()),
            ("first_group", layout.first_group.to_string()),
            ("first_user", layout.first_user.to_string()),
            ("users", layout.users.to_string()),
            ("instance_names", same(Some(&fixture.instance))),
            ("account_keys", same(Some(&format!("\\x{digest}")))),
            ("api_keys", same(None)),
            ("request_ids", same(Some("groups-bench"))),
            (
                "permitted",
                array_literal(self.permitted.iter().copied().map(Some)),
            ),
        ];
        // pgbench's clock includes connecting (and preparing) all its clients, which the window
        // leaves out; hundreds of them on a busy machine take seconds.
        let connecting = Duration::from_secs(2) + CONNECT_TIME * u32::try_from(clients)?;
        let seconds = (plan.warmup + plan.duration + connecting).as_secs();
        let defines = variables.map(|(name, value)| format!("{name}={value}"));
        let output = Command::new(self.program)
            .args(["-n", "-M", "prepared", "-l"])
            .arg(format!("--log-prefix={}", self.dir.join("log").display()))
            .arg(format!("--client={clients}"))
            .arg(format!("--jobs={}", self.threads.clamp(1, clients)))
            .arg(format!("--time={seconds}"))
            .arg("-f")
            .arg(&script)
            .args(defines.iter().flat_map(|define| ["-D", define.as_str()]))
            // The URL is pgbench's "dbname": libpq expands a URI given there. Its sessions plan
            // the statement once, as the server's pooled connections do (groups_store's pool).
            .arg(&fixture.database_url)
            .env("PGOPTIONS", "-c plan_cache_mode=force_generic_plan")
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        // 1: bad arguments or no connection, nothing ran; 2: some clients aborted mid-run,
        // which the log shows and the report counts.
        if matches!(output.status.code(), Some(1) | None) {
            bail!("pgbench failed ({}):\n{stderr}", output.status);
        }
        let entries = read_logs(self.dir)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        ensure!(
            !entries.is_empty(),
            "pgbench logged no transaction:\n{stdout}{stderr}"
        );
        let mut measurement = summarise(&entries, plan, clients as u64, u64::from(self.batch));
        if !output.status.success() {
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            let kind = format!("pgbench {}: {}", output.status, last.unwrap_or("").trim());
            measurement.add_errors(&kind, 1);
        }
        Ok(measurement)
    }

    /// pgbench clients: as many as keep `plan.clients` removals in flight, `batch` each.
    pub(crate) fn clients(&self, plan: &Plan) -> usize {
        plan.clients.div_ceil(self.batch.max(1) as usize).max(1)
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
        if file.file_name().to_string_lossy().starts_with("log.") {
            let text = fs::read_to_string(file.path())?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                entries.push(parse_log_line(line)?);
            }
        }
    }
    Ok(entries)
}

/// The measurement of a run: the transactions that completed within the window starting
/// `plan.warmup` after the first one completed, each counting `batch` removals. Transactions past
/// the seed removed nothing: they only mark the seed used up if they ended within the window.
pub(crate) fn summarise(
    entries: &[LogEntry],
    plan: &Plan,
    clients: u64,
    batch: u64,
) -> Measurement {
    // The transaction's first removal; each client's numbers interleave with the others'.
    let first = |e: &LogEntry| (e.transaction * clients + e.client) * batch;
    let (real, past): (Vec<&LogEntry>, Vec<&LogEntry>) = entries
        .iter()
        .partition(|e| first(e) + batch <= plan.memberships);
    // From the first completion: pgbench starts every client's clock before it has connected
    // them all, so the first transactions' latencies include that wait.
    let from = entries.iter().map(|e| e.end_us).min().unwrap_or(0) + micros(plan.warmup);
    let end = from + micros(plan.duration);
    let to = end.min(real.iter().map(|e| e.end_us).max().unwrap_or(0));
    // All numbers below a client's next one (and the other clients' below theirs) are taken.
    let used_until = real
        .iter()
        .map(|e| (e.transaction + 1) * clients * batch)
        .max();
    let mut m = Measurement {
        window: Duration::from_micros(to.saturating_sub(from)),
        sent: real.len() as u64 * batch,
        exhausted: past.iter().any(|e| e.end_us <= end),
        used_until: used_until.unwrap_or(0).min(plan.memberships),
        ..Measurement::default()
    };
    for entry in &real {
        let Some(us) = entry.latency_us else {
            m.add_errors("pgbench: transaction failed", batch);
            continue;
        };
        m.ok += batch;
        if (from..=to).contains(&entry.end_us) {
            m.measured_ok += batch;
            m.latency.saturating_record(us.max(1));
        }
    }
    m
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_audit_drops_only_the_event_insert() {
        let sql = groups_store::removal_statement_sql();
        let out = without_audit(sql).unwrap();
        // Cut from the CTE's comma to its own closing parenthesis, not the INSERT's column list.
        let start = sql.find(", logged AS (").unwrap();
        let end = sql.rfind(") SELECT r.ordinal").unwrap();
        assert_eq!(out, format!("{}{}", &sql[..start], &sql[end + 1..]));
        assert!(without_audit("SELECT 1").is_err());
    }

    #[test]
    fn binds_become_variables() {
        let names = [":a", ":b", ":c"];
        let sql = "SELECT $1, $2 WHERE x = $3 AND y = $2 AND z::text = 'a$'";
        assert_eq!(
            substitute_binds(sql, &names).unwrap(),
            "SELECT :a, :b WHERE x = :c AND y = :b AND z::text = 'a$'"
        );
        assert!(
            substitute_binds("SELECT $1, $3", &names).is_err(),
            "$2 unused"
        );
        assert!(substitute_binds("SELECT $1, $2, $3, $4", &names).is_err());
        assert!(substitute_binds("SELECT $1, $2, $3, $10", &names).is_err());
        assert!(substitute_binds("SELECT :x, $1, $2, $3", &names).is_err());
    }

    #[test]
    fn the_server_statement_renders_into_a_script() {
        let sql = groups_store::removal_statement_sql();
        for batch in [1, 3] {
            let script = render_script(sql, batch).unwrap();
            assert!(!script.contains('$'), "{script}");
            for name in [
                "instance_names",
                "account_keys",
                "api_keys",
                "request_ids",
                "permitted",
            ] {
                assert!(script.contains(&format!(":{name}::")), "{name} in {script}");
            }
            assert!(script.contains("DELETE FROM memberships"));
            assert!(script.ends_with(";\n\\endif\n"), "{script}");
            assert!(script.contains(&format!("\\if :base + {batch} <= :memberships\n")));
            let sets = script.lines().filter(|l| l.starts_with("\\set ")).count();
            assert_eq!(sets, 2 + 3 * batch as usize, "{script}");
        }
        let script = render_script(sql, 3).unwrap();
        assert!(script.contains("ARRAY[:group_id0, :group_id1, :group_id2]::int8[]"));
        assert!(script.contains("ARRAY[:user_id0, :user_id1, :user_id2]::int8[]"));
        assert!(script.contains("\\set p2 ((:base + 2) * :stride) % :memberships"));
    }

    #[test]
    fn constant_binds_are_array_literals() {
        assert_eq!(
            array_literal([Some("demo"), Some("demo")]),
            "{\"demo\",\"demo\"}"
        );
        assert_eq!(array_literal([None, None]), "{NULL,NULL}");
        assert_eq!(array_literal([Some("\\x0a\"")]), "{\"\\\\x0a\\\"\"}");
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
    fn a_run_measures_its_window_only() {
        let plan = Plan {
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            clients: 2,
            memberships: 100,
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
        let m = summarise(&entries, &plan, 2, 1);
        // The window is 1.5 s..3.5 s: completions at 1.5, 2.0, 2.5, 3.0 and 3.5 s.
        assert_eq!(m.measured_ok, 5);
        assert_eq!(m.window, Duration::from_secs(2));
        assert_eq!((m.sent, m.ok, m.error_count()), (8, 8, 0));
        assert_eq!(m.used_until, 16);
        assert!(!m.exhausted);
        // The same transactions removing 4 memberships each: 4 times the removals, the same
        // latencies.
        let m = summarise(&entries, &plan, 2, 4);
        assert_eq!((m.measured_ok, m.sent, m.used_until), (20, 32, 64));
        assert_eq!(m.latency.len(), 5);
        // A seed of 30 lasts 4 transactions (to 2.0 s); the 5th, within the window, finds it
        // used up and removes nothing: the window ends at 2.0 s.
        let small = Plan {
            memberships: 30,
            ..plan
        };
        let m = summarise(&entries, &small, 2, 4);
        assert!(m.exhausted);
        assert_eq!((m.measured_ok, m.sent), (8, 16));
        assert_eq!(m.window, Duration::from_millis(500));
    }
}
