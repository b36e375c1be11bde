//! The release binaries `groups-server` and `groups-gateway`, started on loopback port 0 next to
//! the benchmark, or the addresses of services already running.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use groups_pgembed::watchdog;

/// How long a service may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a service may take to drain and stop after SIGTERM before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A binary built next to this one (`cargo build --release --workspace` puts all three in
/// `target/release/`).
pub(crate) fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let dir = exe
        .parent()
        .context("the benchmark's executable has no directory")?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "{name} is not next to groups-bench (looked for {}): build the services with \
             `cargo build --release --workspace`, or give --server-url and --gateway-url of \
             services already running",
            path.display()
        );
    }
    Ok(path)
}

/// A service this benchmark started. Stopped (SIGTERM, then SIGKILL) when dropped; a watchdog
/// kills it if the benchmark dies first.
#[derive(Debug)]
pub(crate) struct Service {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    watchdog: Option<Child>,
    stopped: bool,
}

impl Service {
    /// Starts `program args...` with stderr (its log) in `log`, and waits for its
    /// `{"listening":"ADDR"}` line. The environment is inherited (`RUST_LOG`, `GROUPS_*`), but
    /// the flags given here win over it.
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: &[OsString],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log_file =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        let watchdog = watchdog::kill_child_after_exit(child.id()).ok();
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || read_listening_line(stdout, &tx))
            .context("cannot start a thread")?;
        let mut service = Self {
            name,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log.to_path_buf(),
            watchdog,
            stopped: false,
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => {
                service.addr = addr;
                Ok(service)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = service.child.wait().ok();
                bail!(
                    "{name} exited ({status:?}) without printing its address; its log ends:\n{}",
                    service.log_tail()
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "{name} did not print its address within {STARTUP_TIMEOUT:?}; its log ends:\n{}",
                service.log_tail()
            ),
        }
    }

    /// The address it serves on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last few KiB of its log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        const TAIL: u64 = 4096;
        let Ok(mut file) = File::open(&self.log) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        text
    }

    /// Asks it to stop (SIGTERM, as a supervisor would) and waits; kills it if it lingers.
    pub(crate) fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if matches!(self.child.try_wait(), Ok(None)) {
            // `kill` the command: sending a signal from Rust needs libc and `unsafe`.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                eprintln!(
                    "groups-bench: {} did not stop on SIGTERM; killing it",
                    self.name
                );
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads stdout line by line, sends the first listening address, then keeps draining (a full
/// pipe would block the service).
fn read_listening_line(stdout: impl Read, tx: &mpsc::Sender<SocketAddr>) {
    let mut sent = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if !sent && let Some(addr) = listening_address(&line) {
            sent = tx.send(addr).is_ok();
        }
    }
}

/// The address of a `{"listening":"ADDR"}` line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    value.get("listening")?.as_str()?.parse().ok()
}

/// Where the workloads send their requests, and the processes to measure (`None`: a service
/// the benchmark did not start and was given no pid of).
#[derive(Debug, Clone)]
pub(crate) struct Targets {
    pub(crate) gateway: Option<SocketAddr>,
    pub(crate) server: Option<SocketAddr>,
    pub(crate) gateway_pid: Option<u32>,
    pub(crate) server_pid: Option<u32>,
}

/// `http://HOST:PORT` (or `HOST:PORT`) → a socket address: the load generator speaks to
/// addresses, not names, so the figures never include a resolver.
pub(crate) fn parse_target(url: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    if rest.contains('/') || url.starts_with("https://") {
        bail!("{url}: give http://HOST:PORT (plain HTTP, no path)");
    }
    rest.to_socket_addrs()
        .with_context(|| format!("{url}: not HOST:PORT"))?
        .next()
        .with_context(|| format!("{url}: resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        assert_eq!(
            listening_address("{\"listening\":\"127.0.0.1:4321\"}\n"),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(listening_address("INFO starting"), None);
    }

    #[test]
    fn targets_are_socket_addresses() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(parse_target("http://127.0.0.1:8080/").unwrap(), addr);
        assert_eq!(parse_target("127.0.0.1:8080").unwrap(), addr);
        assert!(parse_target("https://127.0.0.1:8080").is_err());
        assert!(parse_target("http://127.0.0.1:8080/v1").is_err());
    }
}
