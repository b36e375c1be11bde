//! The real `groups-server` and `groups-gateway` processes on port 0, with their output
//! captured (`crate::output`).
//!
//! A service prints one line `{"listening":"127.0.0.1:PORT"}` on stdout once bound; that line
//! is how a test learns the port (and, in further fields such as `"metrics"`, the addresses of
//! other endpoints it serves). Everything both streams print is kept for `logs()`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use groups_pgembed::watchdog;

use crate::TestDb;
use crate::binaries::{gateway_binary, server_binary, tail};
use crate::output::{Captured, spawn_reader};

/// How long a service may take to print its address by default.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How much of the output a start-up failure quotes.
const FAILURE_TAIL: usize = 4000;

/// Environment variables the binaries read: removed from children, so a developer's shell
/// settings cannot change what a test sees. `ServiceCommand::env` sets them on purpose.
/// (`OTEL_*` too: a developer's trace collector must not receive, or swallow, a test's spans.)
pub(crate) fn without_service_settings(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("GROUPS_") || name.starts_with("OTEL_") || name == "DATABASE_URL" {
            command.env_remove(&key);
        }
    }
    command
}

/// A service to start: the program, its arguments and environment.
#[derive(Debug)]
pub struct ServiceCommand {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    startup_timeout: Duration,
}

impl ServiceCommand {
    /// Any program that prints `{"listening":"ADDR"}` on stdout once it serves; `name` labels
    /// its messages.
    pub fn new(name: &str, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            // Plain text logs: escape codes would break `logs().contains(..)`.
            envs: vec![("NO_COLOR".into(), "1".into())],
            startup_timeout: STARTUP_TIMEOUT,
        }
    }

    /// `groups-server --database-url URL --listen 127.0.0.1:0`.
    pub fn server(database_url: &str) -> Self {
        Self::new("groups-server", server_binary()).args([
            "--database-url",
            database_url,
            "--listen",
            "127.0.0.1:0",
        ])
    }

    /// `groups-gateway --listen 127.0.0.1:0 --server-url URL`.
    ///
    /// The per-address throttle on failed authentication is off (tests send many failing
    /// requests from one address on purpose); a test of the throttle passes
    /// `--auth-failure-limit`, which overrides the environment.
    pub fn gateway(server_url: &str) -> Self {
        Self::new("groups-gateway", gateway_binary())
            .args(["--listen", "127.0.0.1:0", "--server-url", server_url])
            .env("GROUPS_AUTH_FAILURE_LIMIT", "0")
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable of the process (`RUST_LOG`, `GROUPS_LOG_FORMAT`, ...).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The most verbose logging there is (`RUST_LOG=trace`), in `format` (`human`, `json`).
    pub fn verbose_logs(self, format: &str) -> Self {
        self.env("RUST_LOG", "trace")
            .env("GROUPS_LOG_FORMAT", format)
    }

    /// How long to wait for the address line (default 20 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the process and waits for its address. Panics, quoting the end of its output,
    /// when it exits first or stays silent past the start-up timeout.
    pub fn spawn(self) -> ServiceProcess {
        let mut command = Command::new(&self.program);
        let mut child = without_service_settings(&mut command)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "groups-testkit: cannot start {} ({}): {e}",
                    self.name,
                    self.program.display()
                )
            });
        let watchdog = watchdog::kill_child_after_exit(child.id()).ok();

        let output = Arc::new(Captured::default());
        let stdout = child.stdout.take().expect("stdout is piped");
        spawn_reader(&self.name, true, stdout, Arc::clone(&output));
        let stderr = child.stderr.take().expect("stderr is piped");
        spawn_reader(&self.name, false, stderr, Arc::clone(&output));

        let timeout = self.startup_timeout;
        let (announced, stdout_closed) = {
            let state = output.wait(timeout, |s| s.announced.is_some() || s.stdout_closed);
            (state.announced.clone(), state.stdout_closed)
        };
        let mut process = ServiceProcess {
            name: self.name,
            child,
            announced: serde_json::Value::Null,
            output,
            watchdog,
            status: None,
        };
        match announced {
            Some(Ok(announced)) => {
                process.announced = announced;
                process
            }
            Some(Err(line)) => {
                process.fail(&format!("printed an unreadable address line {line:?}"))
            }
            None if stdout_closed => process.fail("closed stdout without printing its address"),
            None => process.fail(&format!("did not print its address within {timeout:?}")),
        }
    }
}

/// A running service. Killed (SIGKILL) when dropped; a watchdog kills it too if the test
/// process dies without dropping it.
pub struct ServiceProcess {
    name: String,
    child: Child,
    /// The whole address line: `"listening"` and other endpoints' addresses.
    announced: serde_json::Value,
    output: Arc<Captured>,
    watchdog: Option<Child>,
    /// Set once the child is reaped: its pid may then belong to someone else.
    status: Option<ExitStatus>,
}

impl ServiceProcess {
    pub fn addr(&self) -> SocketAddr {
        self.announced_addr("listening")
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Another address from the address line: `{"listening":"...","NAME":"ADDR"}` (the
    /// server's `"metrics"`). Panics when the line has no such address.
    pub fn announced_addr(&self, name: &str) -> SocketAddr {
        self.announced
            .get(name)
            .and_then(serde_json::Value::as_str)
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "groups-testkit: {} announced no {name:?} address: {}",
                    self.name, self.announced
                )
            })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far, stdout and stderr interleaved by line as they arrived.
    pub fn logs(&self) -> String {
        self.output.text()
    }

    /// Waits until its output contains `needle`; false if it did not within `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.output.wait_for(needle, timeout)
    }

    /// Asks it to shut down gracefully (SIGTERM).
    pub fn terminate(&self) {
        if self.status.is_some() {
            return;
        }
        // `kill` the command: sending a signal from Rust needs libc and `unsafe`.
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        if !sent.is_ok_and(|s| s.success()) {
            eprintln!(
                "groups-testkit: could not send SIGTERM to {} ({})",
                self.name,
                self.pid()
            );
        }
    }

    /// Waits for it to exit, then for its output to be fully captured.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("groups-testkit: waiting for {}: {e}", self.name));
        self.reaped(status)
    }

    /// Waits at most `timeout` for it to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => Some(self.reaped(status)),
            Ok(None) => None,
            Err(e) => panic!("groups-testkit: checking on {}: {e}", self.name),
        }
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn kill(&mut self) -> ExitStatus {
        if self.status.is_none() {
            // Fails only when it already exited, which `wait` then reports.
            let _ = self.child.kill();
        }
        self.wait()
    }

    fn reaped(&mut self, status: ExitStatus) -> ExitStatus {
        self.status = Some(status);
        // The pipes reach end-of-file right after the exit; give the readers a moment to
        // append the last lines (a grandchild holding a pipe must not hang the test).
        drop(self.output.wait(Duration::from_secs(2), |_| false));
        self.dismiss_watchdog();
        status
    }

    fn dismiss_watchdog(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    fn fail(mut self, what: &str) -> ! {
        let status = self
            .wait_timeout(Duration::from_millis(200))
            .unwrap_or_else(|| self.kill());
        let logs = self.logs();
        panic!(
            "groups-testkit: {} {what} ({status}); last output:\n{}",
            self.name,
            tail(&logs, FAILURE_TAIL)
        );
    }
}

impl fmt::Debug for ServiceProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("announced", &self.announced)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.dismiss_watchdog();
    }
}

/// `groups-server` on port 0, serving the database at `database_url`, with extra arguments.
pub fn spawn_server(database_url: &str, extra_args: &[&str]) -> ServiceProcess {
    ServiceCommand::server(database_url)
        .args(extra_args)
        .spawn()
}

/// `groups-gateway` on port 0 in front of the server at `server_url`, with extra arguments
/// (`--rate-limit N`, `--deadline-ms N`, ...).
pub fn spawn_gateway(server_url: &str, extra_args: &[&str]) -> ServiceProcess {
    ServiceCommand::gateway(server_url).args(extra_args).spawn()
}

/// A server and a gateway in front of it.
#[derive(Debug)]
pub struct Stack {
    /// The REST gateway (dropped first, so it never outlives its server).
    pub gateway: ServiceProcess,
    /// The gRPC server.
    pub server: ServiceProcess,
}

impl Stack {
    /// The gateway's `http://ADDR`: where REST requests go.
    pub fn url(&self) -> String {
        self.gateway.url()
    }
}

/// A server on `db` and a gateway in front of it, given `gateway_args`.
pub fn spawn_stack(db: &TestDb, gateway_args: &[&str]) -> Stack {
    let server = spawn_server(db.url(), &[]);
    let gateway = spawn_gateway(&server.url(), gateway_args);
    Stack { gateway, server }
}

/// A server on the database at `database_url` and a gateway in front of it, both logging JSON.
pub fn spawn_json_logging_stack(database_url: &str) -> Stack {
    let server = ServiceCommand::server(database_url)
        .args(["--log-format", "json"])
        .spawn();
    let gateway = ServiceCommand::gateway(&server.url())
        .env("GROUPS_LOG_FORMAT", "json")
        .spawn();
    Stack { gateway, server }
}
