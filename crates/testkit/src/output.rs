//! What a spawned service prints: both streams captured line by line for `logs()`, and the
//! first `{"listening":"ADDR"}` line on stdout reported to whoever waits for the address.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Output captured from a child's stdout and stderr.
#[derive(Debug, Default)]
pub(crate) struct Captured {
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

    /// Everything captured so far.
    pub(crate) fn text(&self) -> String {
        self.lock().text.clone()
    }

    /// Waits until the output contains `needle`; false if it did not within `timeout` (or the
    /// streams closed first).
    pub(crate) fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if state.text.contains(needle) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || state.open_streams == 0 {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn append(&self, line: &str) {
        self.lock().text.push_str(line);
        self.changed.notify_all();
    }

    fn close_stream(&self) {
        self.lock().open_streams -= 1;
        self.changed.notify_all();
    }

    pub(crate) fn wait_closed(&self, timeout: Duration) {
        let state = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(state, timeout, |s| s.open_streams > 0);
    }
}

/// Reads one stream to its end, line by line, into `output`; on stdout, also reports the first
/// address line.
pub(crate) fn spawn_reader(
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
}
