//! Service processes, driven through stand-ins written in `sh` that speak the binaries' start-up
//! protocol (one `{"listening":"ADDR"}` line on stdout), plus a smoke test of the real stack.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic;
use std::process::{Command, Stdio};
use std::time::Duration;

use groups_testkit::{ServiceCommand, World, gateway_binary, groupsctl, spawn_stack};

/// A stand-in service: logs on stderr, prints its address, says goodbye on SIGTERM.
const WELL_BEHAVED: &str = r#"trap 'echo "shutting down" >&2; exit 0' TERM
echo "starting up" >&2
echo '{"listening":"127.0.0.1:4321"}'
echo "GREETING=$GREETING" >&2
while :; do sleep 0.05; done"#;

fn sh(script: &str) -> ServiceCommand {
    ServiceCommand::new("stand-in", "sh").args(["-c", script])
}

fn is_alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Spawns `command`, which must fail to start; asserts the panic message mentions `expected`.
fn assert_spawn_fails(command: ServiceCommand, expected: &[&str]) {
    let payload = panic::catch_unwind(|| command.spawn()).expect_err("spawn should have panicked");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    for part in expected {
        assert!(message.contains(part), "{part}: {message}");
    }
}

#[test]
fn learns_the_address_captures_output_and_terminates_gracefully() {
    let mut service = sh(WELL_BEHAVED).env("GREETING", "hi").spawn();
    assert_eq!(service.addr(), "127.0.0.1:4321".parse().unwrap());
    assert_eq!(service.url(), "http://127.0.0.1:4321");
    assert!(
        service.wait_for_log("GREETING=hi", Duration::from_secs(5)),
        "{}",
        service.logs()
    );
    assert!(service.logs().contains("starting up"));
    assert!(service.try_wait().is_none());

    service.terminate();
    let status = service
        .wait_timeout(Duration::from_secs(5))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(
        service.logs().contains("shutting down"),
        "{}",
        service.logs()
    );
    assert!(!service.wait_for_log("never printed", Duration::from_millis(50)));
}

#[test]
fn dropping_a_service_kills_it() {
    let service = sh(WELL_BEHAVED).spawn();
    let pid = service.pid();
    assert!(is_alive(pid));
    drop(service);
    assert!(!is_alive(pid));
}

#[test]
fn kill_reports_a_signal_death() {
    let mut service = sh(WELL_BEHAVED).spawn();
    let status = service.kill();
    assert!(!status.success());
    assert_eq!(
        service.wait(),
        status,
        "waiting again reports the same status"
    );
}

#[test]
fn a_service_that_exits_before_listening_fails_with_its_output() {
    assert_spawn_fails(
        sh("echo 'error: cannot connect to the database' >&2; exit 2"),
        &[
            "closed stdout without printing its address",
            "cannot connect to the database",
            "exit status: 2",
        ],
    );
}

#[test]
fn a_silent_service_times_out_and_is_killed() {
    assert_spawn_fails(
        sh("echo 'stuck in migrations' >&2; exec sleep 30")
            .startup_timeout(Duration::from_millis(300)),
        &[
            "did not print its address within 300ms",
            "stuck in migrations",
            "signal: 9", // killed
        ],
    );
}

#[test]
fn a_bad_address_line_is_reported() {
    assert_spawn_fails(
        sh(r#"echo '{"listening":"somewhere"}'; exec sleep 5"#),
        &["unreadable address line"],
    );
}

#[test]
fn log_lines_before_the_address_line_are_kept() {
    let service = sh(
        r#"echo '{"level":"info","msg":"booting"}'; echo '{"listening":"127.0.0.1:1"}'; sleep 5"#,
    )
    .spawn();
    assert_eq!(service.addr().port(), 1);
    assert!(service.logs().contains("booting"));
}

/// Sends one HTTP/1.1 request and returns the status line.
fn http_status(url: &str, method: &str, path: &str, key: &str) -> String {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {address}\r\nX-API-KEY: {key}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
#[ignore = "needs the real groups-server and groups-gateway binaries"]
fn the_real_stack_removes_a_member() {
    let world = World::new();
    let stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
    let demo = &world.demo;
    let path = format!(
        "/v1.1/instances/demo/groups/{}/users/{}/",
        demo.group, demo.user
    );
    let status = http_status(&stack.url(), "DELETE", &path, &demo.owner.key);
    assert!(
        status.contains("204"),
        "{status}\n{}\n{}",
        stack.gateway.logs(),
        stack.server.logs()
    );
    assert!(!world.is_member(demo.group, demo.user));
    assert_eq!(world.counts().users, 1);
    let again = http_status(&stack.url(), "DELETE", &path, &demo.owner.key);
    assert!(again.contains("404"), "{again}");
}

#[test]
#[ignore = "builds groups-gateway when this test run did not"]
fn finds_or_builds_the_gateway_binary() {
    let path = gateway_binary();
    assert!(path.is_file(), "{}", path.display());
    assert!(path.ends_with("groups-gateway"));
}

#[test]
#[ignore = "needs the real groupsctl binary"]
fn the_real_groupsctl_provisions_into_a_test_database() {
    let world = World::new();
    let made = groupsctl(world.url(), &["user", "create", "demo", "carol"]).json();
    assert_eq!(made["username"], "carol");
    assert_eq!(world.counts().users, 2);
    let refused = groupsctl(world.url(), &["user", "create", "nowhere", "carol"]);
    assert!(!refused.success());
    assert!(!refused.stderr.is_empty());
}
