//! A private PostgreSQL server for one test process: initdb'd into a temporary directory, tuned
//! for tests, listening on a free loopback port, and stopped by a watchdog when the process ends.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::watchdog;

/// Settings of a throw-away server: durability off (a crash only loses test data), no
/// background work that competes with the tests, no parallel query workers (their dynamic
/// shared memory overflows the small `/dev/shm` of containers).
const SETTINGS: &str = "
listen_addresses = '127.0.0.1'
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
        let bin = PgBinaries::find()?;
        let run_as = RunAs::detect()?;
        let dir = make_temp_dir(&run_as)?;
        let data = dir.join("data");
        let log = dir.join("postgres.log");

        let mut stop: Vec<OsString> = run_as.prefix();
        stop.extend([
            bin.pg_ctl.clone().into_os_string(),
            "-D".into(),
            data.clone().into_os_string(),
            "stop".into(),
            "-m".into(),
            "immediate".into(),
        ]);
        watchdog::stop_and_remove_after_exit(dir.as_os_str(), &stop)
            .map_err(|e| format!("cannot start the clean-up watchdog (sh): {e}"))?;

        let output = run_as
            .command(&bin.initdb, &dir)
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output();
        check(output, "initdb")?;

        let socket_dir = dir.to_string_lossy().replace('\'', "''");
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| format!("cannot open postgresql.conf: {e}"))?;
        writeln!(conf, "{SETTINGS}unix_socket_directories = '{socket_dir}'")
            .map_err(|e| format!("cannot write postgresql.conf: {e}"))?;

        let mut last_error = String::new();
        for max_connections in MAX_CONNECTIONS {
            for _ in 0..START_ATTEMPTS {
                let port = free_port()?;
                let log_start = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
                let output = run_as
                    .command(&bin.pg_ctl, &dir)
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "-o"])
                    .arg(format!("-p {port} -c max_connections={max_connections}"))
                    .arg("start")
                    .output();
                match check(output, "pg_ctl start") {
                    Ok(()) => return Ok(Self { port }),
                    Err(error) => {
                        let log_text = read_from(&log, log_start);
                        last_error = format!("{error}\n--- postgres.log ---\n{log_text}");
                        let port_taken = log_text.contains("could not bind")
                            || log_text.contains("already in use");
                        if !port_taken {
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

/// Where `initdb`, `pg_ctl` and `postgres` are.
#[derive(Debug)]
struct PgBinaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl PgBinaries {
    /// PATH first; else the newest of the usual per-version install directories.
    fn find() -> Result<Self, String> {
        let on_path = |name: &str| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        };
        if let (Some(initdb), Some(pg_ctl), Some(_)) =
            (on_path("initdb"), on_path("pg_ctl"), on_path("postgres"))
        {
            return Ok(Self { initdb, pg_ctl });
        }
        // Debian/Ubuntu, RHEL and Homebrew (keg-only) layouts keep one directory per version.
        let patterns: [(&str, &str, &str); 4] = [
            ("/usr/lib/postgresql", "", "bin"),
            ("/usr", "pgsql-", "bin"),
            ("/opt/homebrew/opt", "postgresql@", "bin"),
            ("/usr/local/opt", "postgresql@", "bin"),
        ];
        let mut found: Vec<(Vec<u32>, PathBuf)> = Vec::new();
        for (parent, prefix, bin) in patterns {
            let Ok(entries) = fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(version) = name.strip_prefix(prefix) else {
                    continue;
                };
                let version: Option<Vec<u32>> =
                    version.split('.').map(|p| p.parse().ok()).collect();
                let dir = entry.path().join(bin);
                if let Some(version) = version
                    && ["initdb", "pg_ctl", "postgres"]
                        .iter()
                        .all(|b| dir.join(b).is_file())
                {
                    found.push((version, dir));
                }
            }
        }
        let (_, dir) = found.into_iter().max().ok_or_else(|| {
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or under \
             /usr/lib/postgresql/*/bin; install PostgreSQL or set TEST_DATABASE_URL"
                .to_owned()
        })?;
        Ok(Self {
            initdb: dir.join("initdb"),
            pg_ctl: dir.join("pg_ctl"),
        })
    }
}

/// Who runs the PostgreSQL binaries: PostgreSQL refuses to run as root, so root hands them to
/// the `postgres` OS user.
#[derive(Debug, Clone, Copy)]
enum RunAs {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> Result<Self, String> {
        if id(&["-u"])? != 0 {
            return Ok(Self::Me);
        }
        let uid = id(&["-u", "postgres"]).map_err(|e| {
            format!("running as root, and PostgreSQL will not: need an OS user `postgres` ({e})")
        })?;
        let gid = id(&["-g", "postgres"])?;
        Ok(Self::Postgres { uid, gid })
    }

    /// The words to put before a command to run it as this user.
    fn prefix(self) -> Vec<OsString> {
        match self {
            Self::Me => Vec::new(),
            Self::Postgres { .. } => ["runuser", "-u", "postgres", "--"]
                .map(OsString::from)
                .to_vec(),
        }
    }

    fn command(self, program: &Path, dir: &Path) -> Command {
        let mut words = self.prefix();
        words.push(program.as_os_str().to_owned());
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]);
        // The `postgres` user may not be able to read the test's working directory.
        command.current_dir(dir);
        command
    }
}

fn id(args: &[&str]) -> Result<u32, String> {
    let output = Command::new("id")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run id: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "id {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    text.trim()
        .parse()
        .map_err(|_| format!("id {} printed {text:?}", args.join(" ")))
}

fn make_temp_dir(run_as: &RunAs) -> Result<PathBuf, String> {
    // As root, /tmp rather than $TMPDIR: a root-only TMPDIR would be out of the postgres
    // user's reach.
    let base = match run_as {
        RunAs::Me => std::env::temp_dir(),
        RunAs::Postgres { .. } => PathBuf::from("/tmp"),
    };
    // Short: the socket path (dir + "/.s.PGSQL.NNNNN") must fit in ~100 bytes, and macOS'
    // TMPDIR is already long.
    let dir = base.join(format!(
        "groups-pg-{}-{}",
        std::process::id(),
        crate::cluster::random_tag()
    ));
    fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let RunAs::Postgres { uid, gid } = run_as {
        std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
            .map_err(|e| format!("cannot give {} to postgres: {e}", dir.display()))?;
    }
    Ok(dir)
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn check(output: std::io::Result<Output>, what: &str) -> Result<(), String> {
    let output = output.map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
