//! The deployment files cannot rot silently: this test reads docker-compose.yml and the Dockerfile
//! and checks them against the binaries themselves, in seconds and without a Docker engine (CI
//! also deploys them for real: .ci/compose.sh).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The path of one of our binaries, as the tests find them.
fn binary(name: &str) -> PathBuf {
    match name {
        "groupsctl" => PathBuf::from(env!("CARGO_BIN_EXE_groupsctl")),
        "groups-server" => groups_testkit::server_binary(),
        "groups-gateway" => groups_testkit::gateway_binary(),
        other => panic!("docker-compose.yml runs {other:?}, which this workspace does not build"),
    }
}

/// A compose service with `<<` merge keys applied (yaml-rust2 resolves aliases, not merges).
fn merged(service: &Yaml) -> HashMap<String, Yaml> {
    let hash = service.as_hash().expect("a service is a mapping");
    let base = hash.get(&Yaml::String("<<".into()));
    let base = base.map(|base| base.as_hash().expect("merge of a mapping"));
    // The service's own fields come last, so they override the merged ones.
    base.into_iter()
        .flatten()
        .chain(hash)
        .filter(|(k, _)| k.as_str() != Some("<<"))
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

fn strings(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

fn environment(service: &HashMap<String, Yaml>) -> HashMap<String, String> {
    let env = service.get("environment").and_then(Yaml::as_hash);
    env.into_iter()
        .flatten()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                other => panic!("environment value {other:?} is not a string"),
            };
            (k.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// `program args... --help`: the command words exist (clap refuses unknown ones).
fn help(command: &[String]) -> String {
    let output = Command::new(binary(&command[0]))
        .args(&command[1..])
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "`{} --help` fails: {}",
        command.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn port(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

#[test]
fn compose_file_matches_the_binaries_and_the_dockerfile() {
    let compose = &YamlLoader::load_from_str(&repo_file("docker-compose.yml")).unwrap()[0];
    let dockerfile = repo_file("Dockerfile");
    let services: HashMap<String, HashMap<String, Yaml>> = compose["services"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), merged(v)))
        .collect();
    let runtime_stage = dockerfile.rsplit("\nFROM ").next().unwrap();

    for name in ["server", "gateway", "migrate"] {
        let service = &services[name];
        assert_eq!(
            service.get("build").and_then(Yaml::as_str),
            Some("."),
            "{name} builds the Dockerfile"
        );
        let command = strings(&service["command"]);
        let program = &command[0];
        assert!(
            dockerfile.contains(&format!("--bin {program}"))
                && runtime_stage.contains(&format!("/out/{program}")),
            "{name} runs {program}, which the Dockerfile must build and copy into the runtime image"
        );
        let usage = help(&command);
        for variable in environment(service).keys() {
            assert!(
                variable == "RUST_LOG" || usage.contains(&format!("[env: {variable}")),
                "{name} sets {variable}, which `{}` does not read",
                command.join(" ")
            );
        }
        if let Some(check) = service.get("healthcheck") {
            let test = strings(&check["test"]);
            assert_eq!(test[0], "CMD");
            match test[1].as_str() {
                "curl" => assert!(
                    runtime_stage.contains(" curl"),
                    "curl must be installed in the runtime image"
                ),
                _ => {
                    help(&test[1..test.len().min(3)]);
                }
            }
        }
    }

    // Ports: what each process listens on is what is published and what the gateway calls; gRPC
    // is published on loopback only (internal callers on the host), REST on every address.
    let server_env = environment(&services["server"]);
    let gateway_env = environment(&services["gateway"]);
    let grpc_port = port(&server_env["GROUPS_SERVER_LISTEN"]);
    let rest_port = port(&gateway_env["GROUPS_GATEWAY_LISTEN"]);
    assert_eq!(
        strings(&services["server"]["ports"]),
        [format!("127.0.0.1:{grpc_port}:{grpc_port}")]
    );
    assert_eq!(
        strings(&services["gateway"]["ports"]),
        [format!("{rest_port}:{rest_port}")]
    );
    assert_eq!(
        gateway_env["GROUPS_SERVER_URL"],
        format!("http://server:{grpc_port}")
    );
    assert!(dockerfile.contains(&format!("EXPOSE {rest_port} {grpc_port}")));
    let health_url = strings(&services["server"]["healthcheck"]["test"])
        .pop()
        .unwrap();
    assert_eq!(port(&health_url), grpc_port);
    let ready_url = strings(&services["gateway"]["healthcheck"]["test"])
        .pop()
        .unwrap();
    assert_eq!(port(ready_url.trim_end_matches("/healthz")), rest_port);

    // Start-up order: migrations after PostgreSQL is healthy, the server after migrations, the
    // gateway after a healthy server.
    let condition = |service: &str, on: &str| {
        services[service]["depends_on"][on]["condition"]
            .as_str()
            .map(str::to_owned)
    };
    // PostgreSQL's probe goes over TCP: on a new volume the image's entrypoint first runs a
    // temporary server on the Unix socket only (the migration then met "connection refused").
    let pg_probe = strings(&services["postgres"]["healthcheck"]["test"]).join(" ");
    assert!(
        pg_probe.contains("pg_isready -h 127.0.0.1 "),
        "the postgres health check must probe TCP, not the socket: {pg_probe}"
    );
    assert_eq!(
        condition("migrate", "postgres").as_deref(),
        Some("service_healthy")
    );
    assert_eq!(
        condition("server", "migrate").as_deref(),
        Some("service_completed_successfully")
    );
    assert_eq!(
        condition("gateway", "server").as_deref(),
        Some("service_healthy")
    );
    let database_url = &environment(&services["migrate"])["DATABASE_URL"];
    assert_eq!(database_url, &server_env["DATABASE_URL"]);
    let pg_env = environment(&services["postgres"]);
    assert_eq!(
        database_url,
        &format!(
            "postgres://{}:{}@postgres:5432/{}",
            pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"]
        )
    );

    // The runtime image runs as a non-root user.
    let user = runtime_stage
        .lines()
        .filter_map(|line| line.strip_prefix("USER "))
        .next_back()
        .expect("the runtime stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "runtime user is {user}"
    );
}
