//! A private PostgreSQL run from the machine's own server binaries, for `groupsctl up`, the
//! benchmark and the tests.
//!
//! [`PgBinaries::find`] looks on `PATH`, then in the usual per-version directories
//! (`/usr/lib/postgresql/*/bin`, ...). PostgreSQL refuses to run as root, so [`RunAs`] hands the
//! binaries to the `postgres` OS user when this process is root; a developer's laptop runs them
//! directly. [`Cluster`] is one data directory: `init`, `start`, `stop`. [`watchdog`] stops what
//! this process started when it is gone, even if it was killed.

pub mod watchdog;

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Errors are sentences for a person: what failed and what to do about it.
pub type Result<T, E = String> = std::result::Result<T, E>;

/// Where `initdb`, `pg_ctl` and `postgres` (and their siblings, such as `pgbench`) are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// `PATH` first; else the newest of the usual per-version install directories.
    pub fn find() -> Result<Self> {
        const NEEDED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if NEEDED.iter().all(|b| dir.join(b).is_file()) {
                    return Ok(Self { dir });
                }
            }
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
                    && NEEDED.iter().all(|b| dir.join(b).is_file())
                {
                    found.push((version, dir));
                }
            }
        }
        let (_, dir) = found.into_iter().max().ok_or_else(|| {
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or under \
             /usr/lib/postgresql/*/bin; install PostgreSQL (Debian: apt install postgresql) \
             or give a database URL"
                .to_owned()
        })?;
        Ok(Self { dir })
    }

    /// The path of one of the server's programs (`initdb`, `pg_ctl`, `pgbench`, ...).
    pub fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Who runs the PostgreSQL binaries: PostgreSQL refuses to run as root, so root hands them to
/// the `postgres` OS user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// This process's user.
    Me,
    /// The `postgres` OS user (this process is root).
    Postgres {
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
    },
}

impl RunAs {
    /// `Me`, unless this process is root.
    pub fn detect() -> Result<Self> {
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
    pub fn prefix(self) -> Vec<OsString> {
        match self {
            Self::Me => Vec::new(),
            Self::Postgres { .. } => ["runuser", "-u", "postgres", "--"]
                .map(OsString::from)
                .to_vec(),
        }
    }

    /// A command running `program` as this user, in `dir` (the `postgres` user may not be able
    /// to read this process's working directory).
    pub fn command(self, program: &Path, dir: &Path) -> Command {
        let mut words = self.prefix();
        words.push(program.as_os_str().to_owned());
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]);
        command.current_dir(dir);
        command
    }

    /// Creates `dir` (and its parents) and makes it this user's.
    pub fn create_dir(self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if let Self::Postgres { uid, gid } = self {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(|e| format!("cannot give {} to postgres: {e}", dir.display()))?;
        }
        Ok(())
    }
}

/// One PostgreSQL data directory, and the server running on it.
#[derive(Debug, Clone)]
pub struct Cluster {
    bin: PgBinaries,
    run_as: RunAs,
    /// Holds `data/`, the log and the Unix socket.
    dir: PathBuf,
}

impl Cluster {
    /// A cluster living in `dir` (created if needed). Nothing is started.
    pub fn new(dir: &Path) -> Result<Self> {
        let bin = PgBinaries::find()?;
        let run_as = RunAs::detect()?;
        run_as.create_dir(dir)?;
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
        Ok(Self { bin, run_as, dir })
    }

    /// The server's binaries.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bin
    }

    /// Who runs them.
    pub fn run_as(&self) -> RunAs {
        self.run_as
    }

    /// The directory holding the cluster.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server log.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Whether `initdb` has run here.
    pub fn is_initialized(&self) -> bool {
        self.data_dir().join("PG_VERSION").is_file()
    }

    /// `initdb` with trust authentication for the local `postgres` superuser, UTF-8, locale C,
    /// and `settings` appended to `postgresql.conf` (the socket lives in the cluster directory,
    /// and the server listens on loopback only).
    pub fn init(&self, settings: &str, durable: bool) -> Result<()> {
        let mut initdb = self.run_as.command(&self.bin.program("initdb"), &self.dir);
        initdb.arg("-D").arg(self.data_dir()).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        if !durable {
            initdb.arg("--no-sync");
        }
        check(initdb.output(), "initdb")?;
        let socket_dir = self.dir.to_string_lossy().replace('\'', "''");
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .map_err(|e| format!("cannot open postgresql.conf: {e}"))?;
        writeln!(
            conf,
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n{settings}"
        )
        .map_err(|e| format!("cannot write postgresql.conf: {e}"))
    }

    /// Starts the server on `port` and waits until it accepts connections. `options` are extra
    /// server options (`-c name=value ...`). On failure the error holds the new part of the log.
    pub fn start(&self, port: u16, options: &str) -> Result<()> {
        let log = self.log_file();
        let log_start = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let output = self
            .run_as
            .command(&self.bin.program("pg_ctl"), &self.dir)
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {port} {options}"))
            .arg("start")
            .output();
        check(output, "pg_ctl start")
            .map_err(|e| format!("{e}\n--- postgres.log ---\n{}", read_from(&log, log_start)))
    }

    /// Whether a server runs on this data directory (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.pg_ctl(&["status"])
            .is_ok_and(|output| output.status.success())
    }

    /// Stops the server: `mode` is `smart`, `fast` (disconnect clients, clean shut-down) or
    /// `immediate`.
    pub fn stop(&self, mode: &str) -> Result<()> {
        check(self.pg_ctl(&["stop", "-w", "-m", mode]), "pg_ctl stop")
    }

    /// The command that stops the server (`fast`), for a [`watchdog`].
    pub fn stop_command(&self, mode: &str) -> Vec<OsString> {
        let mut words = self.run_as.prefix();
        words.extend([
            self.bin.program("pg_ctl").into_os_string(),
            "-D".into(),
            self.data_dir().into_os_string(),
            "stop".into(),
            "-m".into(),
            mode.into(),
        ]);
        words
    }

    fn pg_ctl(&self, args: &[&str]) -> std::io::Result<Output> {
        self.run_as
            .command(&self.bin.program("pg_ctl"), &self.dir)
            .arg("-D")
            .arg(self.data_dir())
            .args(args)
            .output()
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Whether a start failure was a port collision (worth retrying on another port).
pub fn is_port_taken(error: &str) -> bool {
    error.contains("could not bind") || error.contains("already in use")
}

fn id(args: &[&str]) -> Result<u32> {
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

fn check(output: std::io::Result<Output>, what: &str) -> Result<()> {
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
