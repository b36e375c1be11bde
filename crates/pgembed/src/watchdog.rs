//! Clean-up that outlives this process: a detached `sh` that waits for the process to go and
//! then stops what it left behind.
//!
//! Statics are never dropped and an aborted or killed process runs no destructor at all, so the
//! only reliable moment to stop a private PostgreSQL (or a spawned service) is after the process
//! is gone, from outside it.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// Once this process is gone, runs `stop...` (a command and its arguments, no shell parsing)
/// and then removes `dir`, if given.
pub fn stop_after_exit<S: AsRef<OsStr>>(
    stop: &[S],
    remove_dir: Option<&OsStr>,
) -> std::io::Result<Child> {
    // Arguments travel as positional parameters, so no path ever needs shell quoting.
    const SCRIPT: &str = r#"pid=$1; dir=$2; shift 2
while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
"$@" >/dev/null 2>&1
if [ -n "$dir" ]; then rm -rf "$dir"; fi"#;
    let mut command = detached_sh(SCRIPT);
    command
        .arg(std::process::id().to_string())
        .arg(remove_dir.unwrap_or_default())
        .args(stop);
    command.spawn()
}

/// Kills `child` with SIGKILL if this process goes while the child still runs. The watchdog
/// ends by itself when the child does.
pub fn kill_child_after_exit(child: u32) -> std::io::Result<Child> {
    // Checking the child first means a pid freed by its exit is never signalled afterwards.
    const SCRIPT: &str = r#"pid=$1; child=$2
while kill -0 "$child" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then kill -KILL "$child" 2>/dev/null; exit 0; fi
  sleep 0.5
done"#;
    let mut command = detached_sh(SCRIPT);
    command
        .arg(std::process::id().to_string())
        .arg(child.to_string());
    command.spawn()
}

fn detached_sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg("groups-watchdog")
        .stdin(Stdio::null())
        // Not inheriting stdout/stderr: a pipe held open by the watchdog would keep
        // `cargo test | tee` (or any pipeline) waiting after this process is done.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // A process group of its own, so the Ctrl-C that interrupts this process (sent to the
        // foreground group) does not also kill the clean-up.
        .process_group(0);
    command
}
