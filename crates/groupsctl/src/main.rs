//! `groupsctl`: provisioning and seeding, exactly the interface of SPEC.md ("Operating it").
//!
//! Each command prints one JSON object on stdout on success; errors go to stderr with exit 1
//! (usage errors: exit 2).

mod health;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use groups_core::{GroupId, Role, UserId};
use groups_store::provision::{self, ApiKeyFlags};
use serde_json::{Value, json};

/// Provision and seed the group-membership service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// PostgreSQL URL, e.g. postgres://user:pass@host:5432/groups.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations.
    Migrate,
    /// Manage admins (accounts).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage instances (tenants).
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Manage an instance's API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Manage an instance's users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage an instance's groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage group memberships.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Ask a groups server whether it is SERVING (grpc.health.v1); exit 0 only if it is.
    /// For container health checks.
    Health {
        /// The server's URL.
        #[arg(default_value = "http://127.0.0.1:50051")]
        server_url: String,
    },
    /// Run everything locally: a private PostgreSQL (unless a database URL is given), a demo
    /// instance, gRPC and REST in one process, until Ctrl-C.
    Up(up::UpArgs),
    /// The newest membership events of an instance (the audit trail), newest first.
    Audit {
        /// Instance name.
        instance: String,
        /// Only this group's events.
        #[arg(long)]
        group: Option<i64>,
        /// Only this user's events.
        #[arg(long)]
        user: Option<i64>,
        /// Most events to print (1-10000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Bulk-load G groups × U users, every user in every group.
    Seed {
        /// Instance name.
        instance: String,
        /// Number of groups.
        #[arg(long)]
        groups: i64,
        /// Number of users.
        #[arg(long)]
        users: i64,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin; prints the account key once.
    Create {
        /// E-mail (unique, case-insensitive).
        email: String,
    },
    /// Give an admin a role on an instance (replaces any role there).
    Grant {
        /// The admin's e-mail.
        email: String,
        /// Instance name.
        instance: String,
        /// full, write or read.
        #[arg(value_parser = ["full", "write", "read"])]
        role: String,
    },
    /// Deactivate an admin: their key stops working everywhere.
    Deactivate {
        /// The admin's e-mail.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum InstanceCommand {
    /// Create an instance owned by an existing admin.
    Create {
        /// Instance name: 1-64 of a-z 0-9 - _ (case-insensitive).
        name: String,
        /// The owner's e-mail.
        #[arg(long)]
        owner: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create an API key; prints the key once.
    Create {
        /// Instance name.
        instance: String,
        /// The key bypasses object-level ACLs.
        #[arg(long)]
        ignore_acl: bool,
    },
    /// Revoke an API key.
    Revoke {
        /// Instance name.
        instance: String,
        /// The key's id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user.
    Create {
        /// Instance name.
        instance: String,
        /// Username, unique in the instance.
        username: String,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a group.
    Create {
        /// Instance name.
        instance: String,
        /// Label (at most 64 characters).
        label: String,
    },
    /// Delete a group (it no longer exists for the API; its rows stay).
    Delete {
        /// Instance name.
        instance: String,
        /// The group's id.
        group_id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Add a user to a group.
    Add {
        /// Instance name.
        instance: String,
        /// The group's id.
        group_id: i64,
        /// The user's id.
        user_id: i64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Health { server_url } => health::check(&server_url).map(Some),
        Command::Up(args) => up::up(cli.database_url, args).map(|()| None),
        command => execute(cli.database_url, command).map(Some),
    };
    match outcome {
        Ok(output) => {
            if let Some(output) = output {
                println!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a provisioning command against the database.
fn execute(database_url: Option<String>, command: Command) -> anyhow::Result<Value> {
    let url = database_url
        .ok_or_else(|| anyhow::anyhow!("no database: pass --database-url or set DATABASE_URL"))?;
    let conn = &mut groups_store::connect(&url)?;
    Ok(match command {
        Command::Migrate => json!({ "applied": groups_store::migrate(conn)? }),
        Command::Admin(AdminCommand::Create { email }) => {
            let admin = provision::create_admin(conn, &email)?;
            json!({ "id": admin.id, "email": admin.email, "key": admin.key.expose() })
        }
        Command::Admin(AdminCommand::Grant {
            email,
            instance,
            role,
        }) => {
            let role =
                Role::parse(&role).ok_or_else(|| anyhow::anyhow!("invalid role {role:?}"))?;
            provision::grant_role(conn, &email, &instance, role)?;
            json!({ "email": email, "instance": instance.to_ascii_lowercase(), "role": role.as_str() })
        }
        Command::Admin(AdminCommand::Deactivate { email }) => {
            provision::deactivate_admin(conn, &email)?;
            json!({ "email": email, "is_active": false })
        }
        Command::Instance(InstanceCommand::Create { name, owner }) => {
            let (id, name) = provision::create_instance(conn, &name, &owner)?;
            json!({ "id": id, "name": name })
        }
        Command::Apikey(ApiKeyCommand::Create {
            instance,
            ignore_acl,
        }) => {
            let flags = ApiKeyFlags {
                ignore_acl,
                ..ApiKeyFlags::default()
            };
            let key = provision::create_api_key(conn, &instance, flags)?;
            json!({ "id": key.id, "key": key.key.expose() })
        }
        Command::Apikey(ApiKeyCommand::Revoke { instance, id }) => {
            provision::revoke_api_key(conn, &instance, id)?;
            json!({ "id": id, "revoked": true })
        }
        Command::User(UserCommand::Create { instance, username }) => {
            let (id, username) = provision::create_user(conn, &instance, &username)?;
            json!({ "id": id, "username": username })
        }
        Command::Group(GroupCommand::Create { instance, label }) => {
            let (id, label) = provision::create_group(conn, &instance, &label)?;
            json!({ "id": id, "label": label })
        }
        Command::Group(GroupCommand::Delete { instance, group_id }) => {
            provision::delete_group(conn, &instance, group_id_arg(group_id)?)?;
            json!({ "id": group_id, "deleted": true })
        }
        Command::Member(MemberCommand::Add {
            instance,
            group_id,
            user_id,
        }) => {
            let user =
                UserId::new(user_id).ok_or_else(|| anyhow::anyhow!("user id must be positive"))?;
            provision::add_member(conn, &instance, group_id_arg(group_id)?, user)?;
            json!({ "group": group_id, "user": user_id })
        }
        Command::Audit {
            instance,
            group,
            user,
            limit,
        } => {
            let group = group.map(group_id_arg).transpose()?;
            let user = user
                .map(|id| {
                    UserId::new(id).ok_or_else(|| anyhow::anyhow!("user id must be positive"))
                })
                .transpose()?;
            let events = groups_store::audit::recent_events(conn, &instance, group, user, limit)?;
            // The shape of SPEC.md's event, as the REST listing writes it.
            let events: Vec<Value> = events
                .into_iter()
                .map(|event| {
                    json!({
                        "id": event.id,
                        "action": groups_core::audit::MEMBERSHIP_REMOVED,
                        "group": event.group,
                        "user": event.user,
                        "actor": { "admin": event.actor_admin, "role": event.actor_role.as_str() },
                        "request_id": event.request_id,
                        "at": event.at.to_string(),
                    })
                })
                .collect();
            json!({ "events": events })
        }
        Command::Up(_) | Command::Health { .. } => anyhow::bail!("runs without a database"),
        Command::Seed {
            instance,
            groups,
            users,
        } => {
            let summary = groups_store::seed(conn, &instance, groups, users)?;
            json!({
                "groups": [summary.groups.0, summary.groups.1],
                "users": [summary.users.0, summary.users.1],
                "memberships": summary.memberships,
            })
        }
    })
}

fn group_id_arg(id: i64) -> anyhow::Result<GroupId> {
    GroupId::new(id).ok_or_else(|| anyhow::anyhow!("group id must be positive"))
}
