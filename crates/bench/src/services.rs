//! The release binaries `groups-server` and `groups-gateway`, started on loopback port 0 next to
//! the benchmark. Not testkit's `ServiceCommand`, which keeps all
//! a service prints in memory and panics on failure: here millions of log lines go to a file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use groups_pgembed::watchdog;

/// How long a service may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a service may take to drain and stop after SIGTERM before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The flags of each service besides its upstream (given by `--server-arg`/`--gateway-arg`, which
/// come after, the last of a flag given twice wins).
const SERVER_FLAGS: &[&str] = &["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"];
const GATEWAY_FLAGS: &[&str] = &["--listen", "127.0.0.1:0", "--rate-limit", "0"];

/// A binary built next to this one (`cargo build --release --workspace` puts all three in
/// `target/release/`).
pub(crate) fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the benchmark's own executable")?;
    let path = exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        path.is_file(),
        "{name} is not next to groups-bench (looked for {}): build the services with \
         `cargo build --release --workspace`",
        path.display()
    );
    Ok(path)
}

/// The services of one point: the server, with its metrics page, and the gateway in front.
#[derive(Debug)]
pub(crate) struct Stack {
    pub(crate) server: Service,
    pub(crate) gateway: Service,
    pub(crate) metrics: SocketAddr,
}

impl Stack {
    /// Starts both on `database_url`, with the extra flags given, logging into
    /// `dir/{server,gateway}-LABEL.log`. The environment is inherited (`RUST_LOG`, `GROUPS_*`),
    /// but flags win over it.
    pub(crate) fn start(
        dir: &Path,
        label: &str,
        database_url: &str,
        (server_extra, gateway_extra): (&[String], &[String]),
    ) -> anyhow::Result<Self> {
        let log = |name: &str| dir.join(format!("{name}-{label}.log"));
        let flags = [SERVER_FLAGS, &["--database-url", database_url]].concat();
        let server = Service::spawn("groups-server", &flags, server_extra, &log("server"))?;
        let metrics = server
            .metrics
            .context("groups-server announced no metrics address")?;
        let url = format!("http://{}", server.addr);
        let flags = [GATEWAY_FLAGS, &["--server-url", &url]].concat();
        let gateway = Service::spawn("groups-gateway", &flags, gateway_extra, &log("gateway"))?;
        Ok(Self {
            server,
            gateway,
            metrics,
        })
    }

    /// Fails, quoting its log, if a service has exited.
    pub(crate) fn check_running(&mut self, during: &str) -> anyhow::Result<()> {
        for service in [&mut self.server, &mut self.gateway] {
            ensure!(
                service.running(),
                "{} died during {during}; its log ends:\n{}",
                service.name,
                service.log_tail()
            );
        }
        Ok(())
    }

    /// Stops both, the gateway first so it never outlives its server.
    pub(crate) fn stop(mut self) {
        self.gateway.stop();
        self.server.stop();
    }
}

/// A service this benchmark started. Stopped (SIGTERM, then SIGKILL) when dropped; a watchdog
/// kills it if the benchmark dies first.
#[derive(Debug)]
pub(crate) struct Service {
    name: &'static str,
    child: Child,
    /// The addresses of its `{"listening":"ADDR","metrics":"ADDR"}` line.
    pub(crate) addr: SocketAddr,
    metrics: Option<SocketAddr>,
    log: PathBuf,
    watchdog: Option<Child>,
}

impl Service {
    /// Starts binary `name` with `args` then `extra`, stderr (its log) in `log`, and waits for
    /// its `{"listening":"ADDR",...}` line.
    fn spawn(
        name: &'static str,
        args: &[&str],
        extra: &[String],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let program = sibling_binary(name)?;
        let log_file =
            File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(&program)
            .args(args)
            .args(extra)
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
            metrics: None,
            log: log.to_path_buf(),
            watchdog,
        };
        let Ok((addr, metrics)) = rx.recv_timeout(STARTUP_TIMEOUT) else {
            service.stop();
            bail!(
                "{name} did not print its address within {STARTUP_TIMEOUT:?}; its log ends:\n{}",
                service.log_tail()
            );
        };
        (service.addr, service.metrics) = (addr, metrics);
        Ok(service)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last few KiB of its log, for error messages.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            // A shorter log fails the seek and is read whole.
            let _ = file.seek(SeekFrom::End(-4096));
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Asks it to stop (SIGTERM, as a supervisor would) and waits; kills it if it lingers.
    fn stop(&mut self) {
        if self.running() {
            // `kill` the command: sending a signal from Rust needs libc and `unsafe`.
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
            while self.running() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if self.running() {
                eprintln!("groups-bench: {} ignored SIGTERM; killing it", self.name);
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

/// Reads stdout line by line, sends the first listening addresses, then keeps draining (a full
/// pipe would block the service).
fn read_listening_line(stdout: impl Read, tx: &mpsc::Sender<Addresses>) {
    let mut sent = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if !sent && let Some(announced) = listening_address(&line) {
            sent = tx.send(announced).is_ok();
        }
    }
}

type Addresses = (SocketAddr, Option<SocketAddr>);

/// The addresses of a `{"listening":"ADDR",...}` line: that one, and `metrics` if given.
fn listening_address(line: &str) -> Option<Addresses> {
    let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let addr = |name: &str| value.get(name)?.as_str()?.parse().ok();
    Some((addr("listening")?, addr("metrics")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        let line = "{\"listening\":\"127.0.0.1:4321\",\"metrics\":\"127.0.0.1:9\"}\n";
        let (addr, metrics) = listening_address(line).unwrap();
        assert_eq!(addr, "127.0.0.1:4321".parse().unwrap());
        assert_eq!(metrics, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(listening_address("INFO starting"), None);
        assert_eq!(listening_address("{\"listening\":\"nowhere\"}"), None);
    }
}
