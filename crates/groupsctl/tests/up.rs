//! `groupsctl up` as a person runs it: first run provisions and prints the key once, the printed
//! curl works, its PostgreSQL is reachable by nobody else, Ctrl-C stops everything (PostgreSQL
//! included) with exit 0, and a second run on the same data directory keeps the data.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `groupsctl up`, interrupted (like Ctrl-C) if a failing assertion drops it.
struct Up(Option<Child>);

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            let _ = interrupt(child);
        }
    }
}

/// Starts `groupsctl up` and returns it with the JSON summary it prints once serving.
fn start_up(data_dir: &Path) -> (Up, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_groupsctl"))
        .args("up --rest-listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 --data-dir".split(' '))
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groupsctl up starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("summary line");
    if line.is_empty() {
        let err = std::io::read_to_string(child.stderr.take().expect("stderr")).unwrap();
        panic!("groupsctl up printed nothing; stderr:\n{err}");
    }
    let summary = serde_json::from_str(&line).expect("one JSON object");
    (Up(Some(child)), summary)
}

/// A raw HTTP/1.1 DELETE; returns the status code and body.
fn delete(rest: &str, path: &str, key: &str) -> (u16, String) {
    let addr = rest.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("gateway reachable");
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-KEY: {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().expect("status code");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Sends SIGINT (Ctrl-C) and waits for the exit status.
fn interrupt(mut child: Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "up did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The private PostgreSQL listens on no TCP address, only on a Unix socket in a directory that
/// only its owner may enter; the printed URL reaches it through that socket.
fn closed_to_others(data_dir: &Path, database_url: &str) {
    use diesel::RunQueryDsl;
    let dir = data_dir
        .join("postgres")
        .canonicalize()
        .expect("the server's directory");
    let mode = std::fs::metadata(&dir)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{} is {mode:o}", dir.display());
    assert!(dir.join(".s.PGSQL.5432").exists(), "the socket is in it");
    assert!(
        database_url.starts_with("postgres://postgres@/groups?host="),
        "{database_url}"
    );
    assert!(
        database_url.contains(&*dir.to_string_lossy()),
        "{database_url}"
    );
    let mut conn = groups_store::connect(database_url).expect("the printed URL connects");
    let listen_addresses: String =
        diesel::dsl::sql::<diesel::sql_types::Text>("SHOW listen_addresses")
            .get_result(&mut conn)
            .expect("a setting");
    assert_eq!(listen_addresses, "", "no TCP listener");
}

/// The gateway's address and the path of the removal in the printed curl command.
fn rest_and_curl_path(summary: &Value) -> (String, String) {
    let rest = summary["rest"].as_str().expect("the REST address");
    let curl = summary["curl"].as_str().expect("a curl command");
    let url = curl.split_whitespace().last().expect("a URL");
    (rest.to_owned(), url.trim_start_matches(rest).to_owned())
}

fn postmaster_running(data_dir: &Path) -> bool {
    data_dir.join("postgres/data/postmaster.pid").exists()
}

#[test]
fn up_serves_the_demo_stops_cleanly_and_keeps_its_data() {
    let base = std::env::temp_dir().join(format!("groupsctl-up-test-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    // As root the data directory goes to the postgres user: let it through.
    std::fs::set_permissions(&base, PermissionsExt::from_mode(0o755)).unwrap();
    let data_dir = base.join("data");

    let (mut first, summary) = start_up(&data_dir);
    let key = summary["key"]
        .as_str()
        .expect("key shown on the first run")
        .to_owned();
    assert_eq!(key.len(), 40);
    let not_found = (404, r#"{"detail":"Not found"}"#.to_owned());
    let (rest, path) = rest_and_curl_path(&summary);
    assert_eq!(
        delete(&rest, &path, &key).0,
        204,
        "the printed curl removes a member"
    );
    assert_eq!(delete(&rest, &path, &key), not_found);
    assert!(postmaster_running(&data_dir));
    closed_to_others(&data_dir, summary["database_url"].as_str().expect("a URL"));
    assert!(
        interrupt(first.0.take().unwrap()).success(),
        "Ctrl-C exits 0"
    );
    assert!(!postmaster_running(&data_dir), "PostgreSQL stopped with it");

    let (mut second, summary) = start_up(&data_dir);
    assert!(summary["key"].is_null(), "the key is shown once only");
    let (rest, next) = rest_and_curl_path(&summary);
    assert_eq!(
        delete(&rest, &path, &key),
        not_found,
        "the removal of the first run is still there"
    );
    assert_ne!(
        next, path,
        "the banner shows a membership that still exists"
    );
    assert_eq!(
        delete(&rest, &next, &key).0,
        204,
        "the first run's key still works"
    );
    assert!(interrupt(second.0.take().unwrap()).success());
    assert!(!postmaster_running(&data_dir));
    let _ = std::fs::remove_dir_all(&base);
}
