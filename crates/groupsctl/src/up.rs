//! `groupsctl up`: the one-command local run.
//!
//! Without a database URL it runs a private PostgreSQL from the machine's server binaries in a
//! persistent data directory; it migrates, provisions a demo instance on first run (printing the
//! owner's key once), then serves gRPC and REST in this process, started exactly as
//! `groups-server` and `groups-gateway` start them, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use diesel::RunQueryDsl;
use groups_core::{GroupId, UserId};
use groups_gateway::GatewayConfig;
use groups_pgembed::{Config, Listen, RunAs, Server, StopMode};
use groups_server::ServerConfig;
use groups_store::provision;
use serde_json::json;
use tokio::net::TcpListener;

/// Options of `up`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Where the private PostgreSQL keeps its data (default: $XDG_DATA_HOME/groups, else
    /// ~/.local/share/groups; as root /var/lib/groups). Ignored when a database URL is given.
    #[arg(long, env = "GROUPS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the REST gateway.
    #[arg(long, env = "GROUPS_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    rest_listen: SocketAddr,
    /// Address of the gRPC server.
    #[arg(long, env = "GROUPS_SERVER_LISTEN", default_value = "127.0.0.1:50051")]
    grpc_listen: SocketAddr,
    /// Requests a second allowed per instance at the gateway; 0 turns the limit off.
    #[arg(long, env = "GROUPS_RATE_LIMIT", default_value_t = groups_gateway::DEFAULT_RATE_LIMIT)]
    rate_limit: u32,
    /// Failed authentications a second per client address at the gateway; 0 turns it off.
    #[arg(long, env = "GROUPS_AUTH_FAILURE_LIMIT", default_value_t = groups_gateway::DEFAULT_AUTH_FAILURE_LIMIT)]
    auth_failure_limit: u32,
}

/// The demo instance `up` provisions on first run.
const DEMO_INSTANCE: &str = "demo";
const DEMO_OWNER: &str = "owner@demo.example";
const DEMO_USERS: [&str; 3] = ["alice", "bob", "carol"];
const DEMO_GROUPS: [&str; 2] = ["admins", "editors"];

/// Runs `up` to completion: returns once the services and the database have stopped.
pub(crate) fn up(database_url: Option<String>, args: UpArgs) -> anyhow::Result<()> {
    let private = match database_url {
        Some(_) => None,
        None => Some(PrivatePostgres::start(&data_dir(
            args.data_dir.as_deref(),
        )?)?),
    };
    let database_url = match (&database_url, &private) {
        (Some(url), _) => url.clone(),
        (None, Some(pg)) => pg.database_url.clone(),
        (None, None) => unreachable!("a private database is started when no URL is given"),
    };
    let served = prepare_and_serve(&database_url, &args);
    if let Some(pg) = private {
        pg.stop();
    }
    served
}

fn prepare_and_serve(database_url: &str, args: &UpArgs) -> anyhow::Result<()> {
    let mut conn = groups_store::connect(database_url)?;
    let applied = groups_store::migrate(&mut conn)?;
    if !applied.is_empty() {
        eprintln!("applied migrations: {}", applied.join(", "));
    }
    let demo = provision_demo(&mut conn)?;
    drop(conn);

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    // Inside the runtime, which drives trace export's gRPC channel; dropped (flushing the spans
    // still batched) before the runtime is.
    let _telemetry = {
        let _entered = runtime.enter();
        groups_runtime::init("groupsctl", groups_runtime::LogFormat::Human)
    };
    runtime.block_on(serve(database_url, args, demo))
}

/// What the banner shows about the demo data.
#[derive(Debug)]
struct Demo {
    /// The owner's key, on the run that created it; never again.
    new_key: Option<String>,
    group: i64,
    user: i64,
}

/// Creates the demo instance with its owner, users, groups and memberships, unless it exists.
fn provision_demo(conn: &mut diesel::PgConnection) -> anyhow::Result<Demo> {
    if provision::instance_id(conn, DEMO_INSTANCE).is_ok() {
        return Ok(Demo {
            new_key: None,
            group: first_member(conn)?.0,
            user: first_member(conn)?.1,
        });
    }
    let owner = provision::create_admin(conn, DEMO_OWNER).or_else(|_| {
        anyhow::bail!(
            "admin {DEMO_OWNER} exists but instance {DEMO_INSTANCE} does not; use another database"
        )
    })?;
    provision::create_instance(conn, DEMO_INSTANCE, DEMO_OWNER)?;
    let mut users = Vec::new();
    for name in DEMO_USERS {
        users.push(provision::create_user(conn, DEMO_INSTANCE, name)?.0);
    }
    for label in DEMO_GROUPS {
        let (group, _) = provision::create_group(conn, DEMO_INSTANCE, label)?;
        for &user in &users {
            let (Some(group), Some(user)) = (GroupId::new(group), UserId::new(user)) else {
                anyhow::bail!("the database returned a non-positive id");
            };
            provision::add_member(conn, DEMO_INSTANCE, group, user)?;
        }
    }
    let (group, user) = first_member(conn)?;
    Ok(Demo {
        new_key: Some(owner.key.expose().to_owned()),
        group,
        user,
    })
}

/// A membership of the demo instance for the banner's example (or the first group and user,
/// when every membership has been removed: the example then shows the documented 404).
fn first_member(conn: &mut diesel::PgConnection) -> anyhow::Result<(i64, i64)> {
    #[derive(diesel::QueryableByName)]
    struct Pair {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        group_id: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        user_id: i64,
    }
    let pair: Option<Pair> = diesel::sql_query(
        "SELECT coalesce((SELECT m.group_id FROM memberships m JOIN instances i ON i.id = m.instance_id \
                          WHERE i.name = $1 ORDER BY m.group_id, m.user_id LIMIT 1), \
                         (SELECT min(g.id) FROM groups g JOIN instances i ON i.id = g.instance_id WHERE i.name = $1), 1) AS group_id, \
                coalesce((SELECT m.user_id FROM memberships m JOIN instances i ON i.id = m.instance_id \
                          WHERE i.name = $1 ORDER BY m.group_id, m.user_id LIMIT 1), \
                         (SELECT min(u.id) FROM users u JOIN instances i ON i.id = u.instance_id WHERE i.name = $1), 1) AS user_id",
    )
    .bind::<diesel::sql_types::Text, _>(DEMO_INSTANCE)
    .get_result(conn)
    .map(Some)
    .or_else(|e| match e {
        diesel::result::Error::NotFound => Ok(None),
        other => Err(other),
    })?;
    Ok(pair.map_or((1, 1), |p| (p.group_id, p.user_id)))
}

async fn serve(database_url: &str, args: &UpArgs, demo: Demo) -> anyhow::Result<()> {
    let grpc = TcpListener::bind(args.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {} (gRPC)", args.grpc_listen))?;
    let rest = TcpListener::bind(args.rest_listen)
        .await
        .with_context(|| format!("cannot listen on {} (REST)", args.rest_listen))?;
    let grpc_addr = grpc.local_addr()?;
    let rest_addr = rest.local_addr()?;

    // One recorder for both services, installed before either describes its metrics; the
    // gateway's /metrics shows them all.
    groups_runtime::metrics();
    let (stop_server, server_stops) = tokio::sync::oneshot::channel::<()>();
    let (stop_gateway, gateway_stops) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(groups_server::run(
        grpc,
        ServerConfig::new(database_url),
        async move {
            let _ = server_stops.await;
        },
    ));
    let gateway_config = GatewayConfig {
        server_url: format!("http://{grpc_addr}"),
        rate_limit: args.rate_limit,
        auth_failure_limit: args.auth_failure_limit,
        ..GatewayConfig::default()
    };
    let gateway = tokio::spawn(groups_gateway::run(rest, gateway_config, async move {
        let _ = gateway_stops.await;
    }));

    print_banner(&without_password(database_url), grpc_addr, rest_addr, &demo)?;
    groups_runtime::shutdown_signal().await;
    // The gateway stops first and drains its requests, which need the server; then the server.
    let _ = stop_gateway.send(());
    let gateway_result = gateway.await.context("gateway task failed")?;
    let _ = stop_server.send(());
    let server_result = server.await.context("server task failed")?;
    gateway_result.and(server_result)
}

fn print_banner(
    database_url: &str,
    grpc: SocketAddr,
    rest: SocketAddr,
    demo: &Demo,
) -> anyhow::Result<()> {
    let key_shown = demo.new_key.as_deref().unwrap_or("$KEY");
    let curl = format!(
        "curl -i -X DELETE -H 'X-API-KEY: {key_shown}' http://{rest}/v1.1/instances/{DEMO_INSTANCE}/groups/{}/users/{}/",
        demo.group, demo.user
    );
    let grpcurl = format!(
        "grpcurl -plaintext -H 'x-api-key: {key_shown}' -d '{{\"instance_name\":\"{DEMO_INSTANCE}\",\"group_id\":{},\"user_id\":{}}}' {grpc} groups.v1.GroupMembers/RemoveGroupMember",
        demo.group, demo.user
    );
    let key_note = match &demo.new_key {
        Some(key) => {
            format!("owner key of instance '{DEMO_INSTANCE}' ({DEMO_OWNER}), shown once: {key}")
        }
        None => format!(
            "instance '{DEMO_INSTANCE}' exists already (its key was shown on the first run). For a new key:\n  \
             groupsctl --database-url '{database_url}' admin create you@example.com\n  \
             groupsctl --database-url '{database_url}' admin grant you@example.com {DEMO_INSTANCE} full"
        ),
    };
    eprintln!(
        "\ngroups is up\n  REST  http://{rest}\n  gRPC  {grpc}\n  database  {database_url}\n\n{key_note}\n\n\
         Remove a member:\n  {curl}\n  {grpcurl}\n\nCtrl-C stops everything.\n"
    );
    let summary = json!({
        "rest": format!("http://{rest}"),
        "grpc": grpc.to_string(),
        "database_url": database_url,
        "instance": DEMO_INSTANCE,
        "owner": DEMO_OWNER,
        "key": demo.new_key,
        "curl": curl,
    });
    println!("{summary}");
    Ok(())
}

/// The URL with its password (if any) replaced by `***`, for printing.
fn without_password(database_url: &str) -> String {
    let Some((scheme, rest)) = database_url.split_once("://") else {
        return database_url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return database_url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => database_url.to_owned(),
    }
}

/// $XDG_DATA_HOME/groups, else ~/.local/share/groups; as root /var/lib/groups, since the
/// `postgres` user that runs the server cannot enter root's home.
fn data_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    if RunAs::detect()? != RunAs::Me {
        return Ok(PathBuf::from("/var/lib/groups"));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("groups"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("no HOME: pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/groups"))
}

/// The private PostgreSQL of `up`: durable, in the data directory, reachable only through a
/// Unix socket in a directory only the user running `up` may enter (no TCP at all), so no other
/// local user can connect, whatever the authentication says.
#[derive(Debug)]
struct PrivatePostgres {
    server: Server,
    database_url: String,
}

impl PrivatePostgres {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let dir = dir.join("postgres");
        if !dir.join("data/PG_VERSION").is_file() {
            eprintln!("initialising PostgreSQL in {}", dir.join("data").display());
        }
        let config = Config {
            settings: String::new(),
            durable: true,
            listen: Listen::SocketOnly,
            max_connections: Vec::new(),
            // Stopped cleanly by `up`; by its watchdog if `up` is killed.
            on_exit: StopMode::Fast,
            remove_on_exit: false,
        };
        let server = Server::start(&dir, &config)?;
        match create_database(&server) {
            Ok(database_url) => Ok(Self {
                server,
                database_url,
            }),
            Err(error) => {
                let _ = server.stop(StopMode::Fast);
                Err(error)
            }
        }
    }

    fn stop(self) {
        eprintln!("stopping PostgreSQL");
        if let Err(error) = self.server.stop(StopMode::Fast) {
            eprintln!("warning: {error}");
        }
    }
}

/// Makes sure database `groups` exists and returns its URL.
fn create_database(server: &Server) -> anyhow::Result<String> {
    let mut conn = groups_store::connect(&server.url("postgres"))?;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'groups') AS exists",
    )
    .get_result(&mut conn)?;
    if !found.exists {
        diesel::sql_query("CREATE DATABASE groups").execute(&mut conn)?;
    }
    Ok(server.url("groups"))
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn printed_urls_hide_the_password() {
        assert_eq!(
            without_password("postgres://app:s3cret@db:5432/groups"),
            "postgres://app:***@db:5432/groups"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1:5432/groups"),
            "postgres://postgres@127.0.0.1:5432/groups"
        );
        assert_eq!(
            without_password("host=db dbname=groups"),
            "host=db dbname=groups"
        );
    }
}
