//! A private PostgreSQL run from the machine's own server binaries: the one way `groupsctl up`,
//! the tests and the benchmark start one.
//!
//! [`Server::start`] finds the binaries ([`PgBinaries::find`]: `PATH`, then the usual
//! per-version directories), creates the data directory when it is new, arms a [`watchdog`]
//! that stops the server once this process is gone (even killed), and starts it on a free
//! loopback port (retried when another process takes the port first) or on a Unix socket only.
//! PostgreSQL refuses to run as root, so [`RunAs`] hands the binaries to the `postgres` OS user
//! when this process is root; a developer's laptop runs them directly.

pub mod watchdog;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// What can go wrong, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or under \
         /usr/lib/postgresql/*/bin; install PostgreSQL (Debian: apt install postgresql) or give a \
         database URL"
    )]
    NoBinaries,
    #[error("running as root, and PostgreSQL will not: need an OS user `postgres` ({0})")]
    NoPostgresUser(String),
    #[error("a PostgreSQL already runs on {0} (another process?); stop it first")]
    AlreadyRunning(PathBuf),
    /// A file operation or a program failed to run.
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A program ran and failed: its output, and the new part of the server's log.
    #[error("{what} failed ({status}):\n{output}")]
    Failed {
        what: &'static str,
        status: String,
        output: String,
    },
    /// Every port tried was taken by someone else before the server could bind it.
    #[error("no free port after {attempts} tries; last:\n{last}")]
    PortsTaken { attempts: usize, last: String },
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Where `initdb`, `pg_ctl` and `postgres` (and their siblings, such as `pgbench`) are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// `PATH` first; else the newest of the usual per-version install directories.
    pub fn find() -> Result<Self> {
        const NEEDED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
        let has_all = |dir: &Path| NEEDED.iter().all(|b| dir.join(b).is_file());
        if let Some(path) = std::env::var_os("PATH")
            && let Some(dir) = std::env::split_paths(&path).find(|dir| has_all(dir))
        {
            return Ok(Self { dir });
        }
        // Debian/Ubuntu, RHEL and Homebrew (keg-only) layouts keep one directory per version.
        let patterns = [
            ("/usr/lib/postgresql", ""),
            ("/usr", "pgsql-"),
            ("/opt/homebrew/opt", "postgresql@"),
            ("/usr/local/opt", "postgresql@"),
        ];
        let mut found: Vec<(Vec<u32>, PathBuf)> = Vec::new();
        for (parent, prefix) in patterns {
            for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let version: Option<Vec<u32>> = name
                    .strip_prefix(prefix)
                    .and_then(|version| version.split('.').map(|p| p.parse().ok()).collect());
                let dir = entry.path().join("bin");
                if let Some(version) = version.filter(|_| has_all(&dir)) {
                    found.push((version, dir));
                }
            }
        }
        let (_, dir) = found.into_iter().max().ok_or(Error::NoBinaries)?;
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
    /// The `postgres` OS user, by uid and primary gid (this process is root).
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    /// `Me`, unless this process is root.
    pub fn detect() -> Result<Self> {
        if id(&["-u"])? != 0 {
            return Ok(Self::Me);
        }
        let uid = id(&["-u", "postgres"]).map_err(|e| Error::NoPostgresUser(e.to_string()))?;
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
        command.args(&words[1..]).current_dir(dir);
        command
    }

    /// Creates `dir` (and its parents) and makes it this user's, readable by nobody else.
    fn create_private_dir(self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        if let Self::Postgres { uid, gid } = self {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(io(format!("give {} to postgres", dir.display())))?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io(format!("restrict {}", dir.display())))
    }
}

/// How clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// TCP on 127.0.0.1, a free port (and the Unix socket).
    Loopback,
    /// Only the Unix socket, in the server's directory: mode 0700, so only this user (or root)
    /// can connect, whatever the authentication says.
    SocketOnly,
}

/// How a server stops: `pg_ctl stop -m MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnect clients, shut down cleanly.
    Fast,
    /// Abort at once (recovery at the next start).
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// How to start a [`Server`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Appended to `postgresql.conf` when the data directory is created.
    pub settings: String,
    /// Whether `initdb` syncs to disk (off for throw-away servers).
    pub durable: bool,
    /// TCP or the socket only.
    pub listen: Listen,
    /// `max_connections` values tried in turn (the first the machine can start with); empty:
    /// the server's default.
    pub max_connections: Vec<u32>,
    /// What the watchdog does if this process dies without stopping the server.
    pub on_exit: StopMode,
    /// Whether the watchdog also deletes the directory (a throw-away server).
    pub remove_on_exit: bool,
}

/// A running private server. Stop it with [`Server::stop`]; if this process goes first, its
/// watchdog stops it.
#[derive(Debug)]
pub struct Server {
    bin: PgBinaries,
    run_as: RunAs,
    /// Holds `data/`, the log and the Unix socket.
    dir: PathBuf,
    port: u16,
    listen: Listen,
    watchdog: Child,
}

/// Tries of a free port taken by another process before the server could bind it.
const PORT_ATTEMPTS: usize = 5;

/// The port of a socket-only server: it only names the socket file, which no other server
/// shares (the directory is the server's own).
const SOCKET_PORT: u16 = 5432;

impl Server {
    /// Starts a server on the cluster in `dir` (created and initialised when new).
    pub fn start(dir: &Path, config: &Config) -> Result<Self> {
        let bin = PgBinaries::find()?;
        let run_as = RunAs::detect()?;
        run_as.create_private_dir(dir)?;
        let dir = dir
            .canonicalize()
            .map_err(io(format!("resolve {}", dir.display())))?;
        let data = dir.join("data");
        let pg_ctl = |args: &[&str]| {
            run_as
                .command(&bin.program("pg_ctl"), &dir)
                .arg("-D")
                .arg(&data)
                .args(args)
                .output()
        };
        if pg_ctl(&["status"]).is_ok_and(|out| out.status.success()) {
            return Err(Error::AlreadyRunning(data));
        }
        // Armed before anything starts: even a failed start leaves nothing behind.
        let mut stop = run_as.prefix();
        stop.extend([
            bin.program("pg_ctl").into(),
            "-D".into(),
            data.clone().into(),
        ]);
        stop.extend(["stop".into(), "-m".into(), config.on_exit.as_str().into()]);
        let remove = config.remove_on_exit.then_some(dir.as_os_str());
        let watchdog =
            watchdog::stop_after_exit(&stop, remove).map_err(io("start the watchdog (sh)"))?;
        let mut server = Self {
            bin,
            run_as,
            dir,
            port: SOCKET_PORT,
            listen: config.listen,
            watchdog,
        };
        let started = server.init_if_new(config).and_then(|()| server.run(config));
        if let Err(error) = started {
            let _ = server.watchdog.kill();
            return Err(error);
        }
        Ok(server)
    }

    fn init_if_new(&self, config: &Config) -> Result<()> {
        if self.data_dir().join("PG_VERSION").is_file() {
            return Ok(());
        }
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(self.data_dir());
        initdb.args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"]);
        if !config.durable {
            initdb.arg("--no-sync");
        }
        check(initdb.output(), "initdb", String::new)?;
        let socket_dir = self.dir.to_string_lossy().replace('\'', "''");
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .map_err(io("open postgresql.conf"))?;
        writeln!(
            conf,
            "\nunix_socket_directories = '{socket_dir}'\n{}",
            config.settings
        )
        .map_err(io("write postgresql.conf"))
    }

    /// Starts the server: each `max_connections` in turn, each on a few free ports.
    fn run(&mut self, config: &Config) -> Result<()> {
        let mut limits: Vec<String> = config
            .max_connections
            .iter()
            .map(|n| format!(" -c max_connections={n}"))
            .collect();
        if limits.is_empty() {
            limits.push(String::new());
        }
        let mut last = Error::NoBinaries; // replaced by the first failure
        for limit in &limits {
            for _ in 0..PORT_ATTEMPTS {
                let (port, address) = match self.listen {
                    Listen::Loopback => (free_port()?, "127.0.0.1"),
                    Listen::SocketOnly => (SOCKET_PORT, "''"),
                };
                match self.pg_ctl_start(&format!("-p {port} -c listen_addresses={address}{limit}"))
                {
                    Ok(()) => {
                        self.port = port;
                        return Ok(());
                    }
                    Err(Error::Failed { output, .. })
                        if self.listen == Listen::Loopback && port_taken(&output) =>
                    {
                        last = Error::PortsTaken {
                            attempts: PORT_ATTEMPTS,
                            last: output,
                        };
                    }
                    Err(error) => {
                        last = error;
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    fn pg_ctl_start(&self, options: &str) -> Result<()> {
        let log = self.log_file();
        let log_start = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let output = self
            .pg_ctl()
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", options, "start"])
            .output();
        check(output, "pg_ctl start", || {
            format!("--- postgres.log ---\n{}", read_from(&log, log_start))
        })
    }

    /// Stops the server and dismisses the watchdog.
    pub fn stop(mut self, mode: StopMode) -> Result<()> {
        let output = self
            .pg_ctl()
            .args(["stop", "-w", "-m", mode.as_str()])
            .output();
        let stopped = check(output, "pg_ctl stop", String::new);
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        stopped
    }

    /// The URL of `database` as the superuser `postgres`: TCP, or the socket's directory.
    pub fn url(&self, database: &str) -> String {
        match self.listen {
            Listen::Loopback => format!("postgres://postgres@127.0.0.1:{}/{database}", self.port),
            Listen::SocketOnly => format!(
                "postgres://postgres@/{database}?host={}&port={}",
                query_escaped(&self.dir.to_string_lossy()),
                self.port
            ),
        }
    }

    /// The directory holding the data, the log and the socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's log.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The server's binaries (for `pgbench`, say) and who runs them.
    pub fn binaries(&self) -> (&PgBinaries, RunAs) {
        (&self.bin, self.run_as)
    }

    fn command(&self, program: &str) -> Command {
        self.run_as.command(&self.bin.program(program), &self.dir)
    }

    /// `pg_ctl -D DATA`, as the server's user.
    fn pg_ctl(&self) -> Command {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir());
        pg_ctl
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(io("find a free port"))
}

/// Whether a failed start says the port was taken (PostgreSQL only says so in its log).
fn port_taken(output: &str) -> bool {
    output.contains("could not bind") || output.contains("already in use")
}

/// `text` with everything but `A-Z a-z 0-9 / . - _` percent-encoded, for a URL's query.
fn query_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn id(args: &[&str]) -> Result<u32> {
    let output = Command::new("id")
        .args(args)
        .output()
        .map_err(io("run id"))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    check(Ok(output), "id", String::new)?;
    text.parse().map_err(|_| Error::Failed {
        what: "id",
        status: "0".into(),
        output: format!("id {} printed {text:?}", args.join(" ")),
    })
}

/// `Ok` when the program succeeded; else its output and `more` (read only then).
fn check(
    output: std::io::Result<Output>,
    what: &'static str,
    more: impl FnOnce() -> String,
) -> Result<()> {
    let output = output.map_err(io(format!("run {what}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Failed {
        what,
        status: output.status.to_string(),
        output: format!(
            "{}{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            more()
        ),
    })
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_directories_are_escaped_for_a_query() {
        assert_eq!(
            query_escaped("/var/lib/groups/postgres"),
            "/var/lib/groups/postgres"
        );
        assert_eq!(query_escaped("/tmp/a b&c"), "/tmp/a%20b%26c");
    }

    #[test]
    fn port_collisions_are_told_from_other_failures() {
        assert!(port_taken(
            "LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use"
        ));
        assert!(!port_taken("FATAL:  data directory has wrong ownership"));
    }
}
