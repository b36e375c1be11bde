//! What a spawned service prints: both streams captured line by line for `logs()`, and the
//! first `{"listening":"ADDR"}` line on stdout kept for whoever waits for the address.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// The address line's JSON, or the line when its address is none.
pub(crate) type Announced = Result<serde_json::Value, String>;

/// Output captured from a child's stdout and stderr.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) text: String,
    pub(crate) announced: Option<Announced>,
    pub(crate) stdout_closed: bool,
    closed_streams: u8,
}

impl Captured {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything captured so far.
    pub(crate) fn text(&self) -> String {
        self.lock().text.clone()
    }

    /// Waits until `done` holds, both streams are closed, or `timeout` passed; returns the state.
    pub(crate) fn wait(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> MutexGuard<'_, State> {
        let state = self.lock();
        self.changed
            .wait_timeout_while(state, timeout, |s| !done(s) && s.closed_streams < 2)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Waits until the output contains `needle`; false if it did not within `timeout` (or the
    /// streams closed first).
    pub(crate) fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let done = |s: &State| s.text.contains(needle);
        done(&self.wait(timeout, done))
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    fn close_stream(&self, stdout: bool) {
        self.update(|s| {
            s.closed_streams += 1;
            s.stdout_closed |= stdout;
        });
    }
}

/// Reads one stream to its end, line by line, into `output`; on stdout, also keeps the first
/// address line.
pub(crate) fn spawn_reader(
    service: &str,
    stdout: bool,
    stream: impl Read + Send + 'static,
    output: Arc<Captured>,
) {
    let stream_name = if stdout { "stdout" } else { "stderr" };
    let spawned = thread::Builder::new()
        .name(format!("{service}-{stream_name}"))
        .spawn({
            let output = Arc::clone(&output);
            move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                    let line = String::from_utf8_lossy(&buf);
                    output.update(|s| {
                        // Only the first address line counts; later lines are just output.
                        if stdout && s.announced.is_none() {
                            s.announced = listening_address(&line);
                        }
                        s.text.push_str(&line);
                    });
                    buf.clear();
                }
                output.close_stream(stdout);
            }
        });
    if let Err(e) = spawned {
        output.close_stream(stdout);
        eprintln!("groups-testkit: cannot read the {stream_name} of {service}: {e}");
    }
}

/// The JSON of a `{"listening":"ADDR"}` line; `Err(line)` when the address is not one.
fn listening_address(line: &str) -> Option<Announced> {
    let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let address = value.get("listening")?.as_str();
    if address.is_some_and(|a| a.parse::<SocketAddr>().is_ok()) {
        Some(Ok(value))
    } else {
        Some(Err(line.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        let line = "{\"listening\":\"127.0.0.1:4321\"}\n";
        let announced = serde_json::json!({ "listening": "127.0.0.1:4321" });
        assert_eq!(listening_address(line), Some(Ok(announced)));
        assert_eq!(listening_address("2026-01-01 INFO starting\n"), None);
        assert_eq!(listening_address("{\"level\":\"info\"}"), None);
        assert!(matches!(
            listening_address("{\"listening\":\"nowhere\"}"),
            Some(Err(_))
        ));
    }
}
