//! Finding the workspace's binaries from a test: an explicit path in the environment, else
//! in `target/<profile>/` above the test executable, else built once with cargo: a test of one
//! package may need another package's binary that this cargo run did not build, and cargo
//! releases the build directory's lock before it runs the tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The `groups-server` binary (`GROUPS_SERVER_BIN` overrides).
pub fn server_binary() -> PathBuf {
    locate("groups-server", "GROUPS_SERVER_BIN")
}

/// The `groups-gateway` binary (`GROUPS_GATEWAY_BIN` overrides).
pub fn gateway_binary() -> PathBuf {
    locate("groups-gateway", "GROUPS_GATEWAY_BIN")
}

/// The `groupsctl` binary (`GROUPSCTL_BIN` overrides).
pub fn groupsctl_binary() -> PathBuf {
    locate("groupsctl", "GROUPSCTL_BIN")
}

/// The path of binary `name`. Panics, saying why, when it can be neither found nor built.
fn locate(name: &str, override_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "groups-testkit: {override_var}={} is not a file",
            path.display()
        );
        return path;
    }
    // One lock for all builds: cargo would serialize them anyway, and a binary asked for by
    // several threads at once is built once.
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let found = built
        .entry(name.to_owned())
        .or_insert_with(|| find_or_build(name));
    found
        .clone()
        .unwrap_or_else(|e| panic!("groups-testkit: {e}"))
}

/// Binary `name` next to the test executable, else where cargo builds it.
fn find_or_build(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("no current executable: {e}"))?;
    let profile_dir = profile_dir(&exe);
    let next_to_tests = profile_dir
        .as_deref()
        .map(|dir| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)));
    match next_to_tests {
        Some(path) if path.is_file() => Ok(path),
        _ => build(name, profile_dir.as_deref()),
    }
}

/// `target/<profile>` for a test executable in `target/<profile>/deps` (or the executable's own
/// directory for one run from elsewhere).
fn profile_dir(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

/// The cargo flag that selects the profile whose output directory is `dir`, so the build
/// reuses the artifacts the test run already has.
fn profile_flags(dir: Option<&Path>) -> Vec<String> {
    match dir.and_then(Path::file_name).and_then(|n| n.to_str()) {
        Some("release") => vec!["--release".into()],
        Some(other) if other != "debug" => vec!["--profile".into(), other.into()],
        _ => Vec::new(),
    }
}

/// Builds binary `name` of the workspace; returns where cargo put it.
fn build(name: &str, profile_dir: Option<&Path>) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // This crate's manifest directory, known at compile time, is two levels below the root.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    eprintln!("groups-testkit: building {name} (this test run did not build it)");
    let output = Command::new(&cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--workspace",
            "--bin",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .args(profile_flags(profile_dir))
        .output()
        .map_err(|e| format!("cannot run cargo to build {name}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build --bin {name}` failed ({}):\n{}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 4000)
        ));
    }
    executable_from_messages(&String::from_utf8_lossy(&output.stdout), name)
        .ok_or_else(|| format!("cargo built {name} but did not say where"))
}

/// The `executable` of the `compiler-artifact` message for binary `name`.
fn executable_from_messages(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// The last `max` bytes of `text` (at a character boundary).
pub(crate) fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_sit_above_the_deps_directory() {
        let exe = Path::new("/w/target/debug/deps/server-0123abcd");
        assert_eq!(profile_dir(exe).unwrap(), Path::new("/w/target/debug"));
        let exe = Path::new("/w/target/x86_64-unknown-linux-gnu/release/deps/t");
        assert_eq!(
            profile_dir(exe).unwrap(),
            Path::new("/w/target/x86_64-unknown-linux-gnu/release")
        );
    }

    #[test]
    fn builds_with_the_profile_of_the_test_run() {
        assert!(profile_flags(Some(Path::new("/t/debug"))).is_empty());
        assert_eq!(profile_flags(Some(Path::new("/t/release"))), ["--release"]);
        assert_eq!(profile_flags(Some(Path::new("/t/ci"))), ["--profile", "ci"]);
    }

    #[test]
    fn reads_the_executable_from_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"groups-core","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"groupsctl","kind":["bin"]},"executable":"/t/debug/groupsctl"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(messages, "groupsctl").unwrap(),
            Path::new("/t/debug/groupsctl")
        );
        assert_eq!(executable_from_messages(messages, "groups-server"), None);
    }

    #[test]
    fn tails_at_a_character_boundary() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }
}
