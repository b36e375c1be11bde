//! `groupsctl` runs against a test database, with no service setting of the developer's shell
//! inherited.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};

use crate::binaries::groupsctl_binary;
use crate::service::without_service_settings;

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
    // The environment rather than `--database-url`: it works whatever the subcommand.
    without_service_settings(&mut command)
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
