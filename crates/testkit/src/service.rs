//! The real `groups-server` and `groups-gateway` processes on port 0, with their output
//! captured, and `groupsctl` runs.
//!
//! A service prints one line `{"listening":"127.0.0.1:PORT"}` on stdout once bound; that line
//! is how a test learns the port (and, in further fields such as `"metrics"`, the addresses of
//! other endpoints it serves). Everything both streams print is kept for `logs()`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::TestDb;
use crate::binaries::{gateway_binary, groupsctl_binary, server_binary, tail};
use groups_pgembed::watchdog;

/// How long a service may take to print its address by default.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How much of the output a start-up failure quotes.
const FAILURE_TAIL: usize = 4000;

/// Environment variables the binaries read: removed from children, so a developer's shell
/// settings cannot change what a test sees. `ServiceCommand::env` sets them on purpose.
/// (`OTEL_*` too: a developer's trace collector must not receive, or swallow, a test's spans.)
fn is_service_setting(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with("GROUPS_") || name.starts_with("OTEL_") || name == "DATABASE_URL"
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

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
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

    /// How long to wait for the address line (default 20 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the process and waits for its address. Panics, quoting the end of its output,
    /// when it exits first or stays silent past the start-up timeout.
    pub fn spawn(self) -> ServiceProcess {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os().filter(|(key, _)| is_service_setting(key)) {
            command.env_remove(key);
        }
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "groups-testkit: cannot start {} ({}): {e}",
                self.name,
                self.program.display()
            )
        });
        let watchdog = watchdog::kill_child_after_exit(child.id()).ok();

        let output = Arc::new(Captured::default());
        let (address_tx, address_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        spawn_reader(
            &self.name,
            "stdout",
            stdout,
            Arc::clone(&output),
            Some(address_tx),
        );
        spawn_reader(&self.name, "stderr", stderr, Arc::clone(&output), None);

        let mut process = ServiceProcess {
            name: self.name,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            announced: serde_json::Value::Null,
            output,
            watchdog,
            status: None,
        };
        match address_rx.recv_timeout(self.startup_timeout) {
            Ok(Ok((addr, announced))) => {
                process.addr = addr;
                process.announced = announced;
                process
            }
            Ok(Err(line)) => process.fail(&format!("printed an unreadable address line {line:?}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                process.fail("closed stdout without printing its address")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let waited = format!(
                    "did not print its address within {:?}",
                    self.startup_timeout
                );
                process.fail(&waited)
            }
        }
    }
}

/// A running service. Killed (SIGKILL) when dropped; a watchdog kills it too if the test
/// process dies without dropping it.
pub struct ServiceProcess {
    name: String,
    child: Child,
    addr: SocketAddr,
    /// The whole address line, for its other fields.
    announced: serde_json::Value,
    output: Arc<Captured>,
    watchdog: Option<Child>,
    /// Set once the child is reaped: its pid may then belong to someone else.
    status: Option<ExitStatus>,
}

impl ServiceProcess {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far, stdout and stderr interleaved by line as they arrived.
    pub fn logs(&self) -> String {
        self.output.lock().text.clone()
    }

    /// Waits until its output contains `needle`; false if it did not within `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.output.lock();
        loop {
            if state.text.contains(needle) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || (state.open_streams == 0) {
                return false;
            }
            state = self
                .output
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
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
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its exit status, if it has exited.
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
        self.output.wait_closed(Duration::from_secs(2));
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        status
    }

    fn fail(mut self, what: &str) -> ! {
        let status = self
            .wait_timeout(Duration::from_millis(200))
            .or_else(|| Some(self.kill()));
        let status = status.map_or_else(String::new, |s| format!(" ({s})"));
        let logs = self.logs();
        panic!(
            "groups-testkit: {} {what}{status}; last output:\n{}",
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
            .field("addr", &self.addr)
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
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// Output captured from a child's stdout and stderr.
#[derive(Debug, Default)]
struct Captured {
    state: Mutex<CapturedState>,
    changed: Condvar,
}

#[derive(Debug)]
struct CapturedState {
    text: String,
    open_streams: u8,
}

impl Default for CapturedState {
    fn default() -> Self {
        Self {
            text: String::new(),
            open_streams: 2,
        }
    }
}

impl Captured {
    fn lock(&self) -> MutexGuard<'_, CapturedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, line: &str) {
        self.lock().text.push_str(line);
        self.changed.notify_all();
    }

    fn close_stream(&self) {
        self.lock().open_streams -= 1;
        self.changed.notify_all();
    }

    fn wait_closed(&self, timeout: Duration) {
        let state = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(state, timeout, |s| s.open_streams > 0);
    }
}

/// Reads one stream to its end, line by line, into `output`; on stdout, also reports the first
/// address line.
fn spawn_reader(
    service: &str,
    stream_name: &str,
    stream: impl Read + Send + 'static,
    output: Arc<Captured>,
    mut address_tx: Option<mpsc::Sender<Result<(SocketAddr, serde_json::Value), String>>>,
) {
    let spawned = thread::Builder::new()
        .name(format!("{service}-{stream_name}"))
        .spawn({
            let output = Arc::clone(&output);
            move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let line = String::from_utf8_lossy(&buf);
                    // Only the first address line counts; later lines are just output.
                    if address_tx.is_some()
                        && let Some(address) = listening_address(&line)
                        && let Some(tx) = address_tx.take()
                    {
                        let whole = serde_json::from_str(line.trim()).unwrap_or_default();
                        let _ = tx.send(address.map(|address| (address, whole)));
                    }
                    output.append(&line);
                }
                output.close_stream();
            }
        });
    if let Err(e) = spawned {
        output.close_stream();
        eprintln!("groups-testkit: cannot read the {stream_name} of {service}: {e}");
    }
}

/// The address of a `{"listening":"ADDR"}` line; `Err(line)` when the address is not one.
fn listening_address(line: &str) -> Option<Result<SocketAddr, String>> {
    let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let address = value.get("listening")?;
    Some(
        address
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| line.trim().to_owned()),
    )
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

/// What a `groupsctl` run printed and how it ended.
#[derive(Debug)]
pub struct CtlOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (one JSON object on success).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CtlOutput {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout as JSON; panics, quoting stderr, when the run failed or printed something else.
    pub fn json(&self) -> serde_json::Value {
        assert!(
            self.success(),
            "groupsctl failed ({}): {}",
            self.status,
            self.stderr
        );
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("groupsctl printed no JSON ({e}): {:?}", self.stdout))
    }
}

impl From<Output> for CtlOutput {
    fn from(output: Output) -> Self {
        Self {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A `groupsctl` command with `DATABASE_URL` set and no other service settings inherited.
pub fn groupsctl_command(database_url: &str) -> Command {
    hermetic_command(groupsctl_binary(), database_url)
}

fn hermetic_command(program: PathBuf, database_url: &str) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os().filter(|(key, _)| is_service_setting(key)) {
        command.env_remove(key);
    }
    // The environment rather than `--database-url`: it works whatever the subcommand.
    command
        .env("DATABASE_URL", database_url)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// Runs `groupsctl ARGS` against the database at `database_url` and waits for it.
pub fn groupsctl(database_url: &str, args: &[&str]) -> CtlOutput {
    run_to_end(
        hermetic_command(groupsctl_binary(), database_url).args(args),
        "groupsctl",
    )
}

fn run_to_end(command: &mut Command, name: &str) -> CtlOutput {
    command
        .output()
        .map(CtlOutput::from)
        .unwrap_or_else(|e| panic!("groups-testkit: cannot run {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        let line = "{\"listening\":\"127.0.0.1:4321\"}\n";
        assert_eq!(
            listening_address(line),
            Some(Ok("127.0.0.1:4321".parse().unwrap()))
        );
        assert_eq!(listening_address("2026-01-01 INFO starting\n"), None);
        assert_eq!(listening_address("{\"level\":\"info\"}"), None);
        assert!(matches!(
            listening_address("{\"listening\":\"nowhere\"}"),
            Some(Err(_))
        ));
    }

    #[test]
    fn commands_get_the_database_url_and_no_inherited_settings() {
        let mut command = hermetic_command(PathBuf::from("sh"), "postgres://x@127.0.0.1:1/db");
        let output = run_to_end(
            command.args(["-c", "echo \"$DATABASE_URL\"; echo oops >&2; exit 3"]),
            "sh",
        );
        assert_eq!(output.stdout, "postgres://x@127.0.0.1:1/db\n");
        assert_eq!(output.stderr, "oops\n");
        assert_eq!(output.status.code(), Some(3));
        assert!(!output.success());
    }
}
