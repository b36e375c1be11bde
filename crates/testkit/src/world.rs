//! `World`: a test database provisioned with an instance, its owner, a group, a user and a
//! membership, with methods to add the other principals tests need and to read back rows.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use groups_core::{GroupId, Role, UserId};
use groups_store::provision::{self, ApiKeyFlags};
use groups_store::{SeedSummary, StoreResult};

use crate::TestDb;

/// An admin made by the fixture.
#[derive(Clone)]
pub struct Admin {
    pub id: i64,
    /// Unique per `World`.
    pub email: String,
    /// The account key, in clear: the only copy.
    pub key: String,
}

/// An instance API key made by the fixture.
#[derive(Clone)]
pub struct ApiKey {
    /// What `revoke` takes.
    pub id: i64,
    /// The key, in clear: the only copy.
    pub key: String,
}

/// An instance with its owner, one group, one user, and that user in that group.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    /// Stored (lower-case) name.
    pub name: String,
    pub owner: Admin,
    /// A group of the instance (label `<name>-group`).
    pub group: GroupId,
    /// A user of the instance (username `<name>-user`), member of `group`.
    pub user: UserId,
}

/// Row counts, all instances, of the tables a removal must leave alone (or touch exactly once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCounts {
    pub users: i64,
    /// Deleted ones too.
    pub groups: i64,
    pub memberships: i64,
}

/// A test database with an instance "demo" (see [`Tenant`]) and helpers to add more.
///
/// Every method takes `&self`, so a `World` can be shared by the threads of one test.
/// Provisioning failures panic: they are bugs in the test or the store.
#[derive(Debug)]
pub struct World {
    /// The instance "demo".
    pub demo: Tenant,
    next_admin: AtomicU64,
    pub db: TestDb,
}

impl World {
    /// A fresh database with the instance "demo".
    pub fn new() -> Self {
        let db = TestDb::new();
        let demo = db.with_conn("instance demo", |conn| create_tenant(conn, "demo"));
        let next_admin = AtomicU64::new(1);
        Self {
            demo,
            next_admin,
            db,
        }
    }

    pub fn url(&self) -> &str {
        self.db.url()
    }

    /// A new connection of the test's own.
    pub fn conn(&self) -> PgConnection {
        self.db.conn()
    }

    /// Adds an instance with its own owner (`owner@<name>.test`), group, user and membership.
    pub fn add_instance(&self, name: &str) -> Tenant {
        self.db.with_conn(&format!("instance {name}"), |conn| {
            create_tenant(conn, name)
        })
    }

    /// Adds an active admin with `role` on `instance` (`None`: an admin with no role there).
    /// `Role::Owner` is refused: an instance has one owner, its tenant's `owner`.
    pub fn add_admin(&self, instance: &str, role: Option<Role>) -> Admin {
        let email = format!(
            "admin{}@world.test",
            self.next_admin.fetch_add(1, Ordering::Relaxed)
        );
        self.db.with_conn(&format!("admin {email}"), |conn| {
            let made = provision::create_admin(conn, &email)?;
            if let Some(role) = role {
                provision::grant_role(conn, &email, instance, role)?;
            }
            Ok(admin(made))
        })
    }

    /// Adds an admin with `role` on `instance` and deactivates them.
    pub fn add_inactive_admin(&self, instance: &str, role: Option<Role>) -> Admin {
        let admin = self.add_admin(instance, role);
        self.deactivate_admin(&admin.email);
        admin
    }

    /// Deactivates an admin: their key stops working everywhere.
    pub fn deactivate_admin(&self, email: &str) {
        self.db.with_conn(&format!("deactivating {email}"), |conn| {
            provision::deactivate_admin(conn, email)
        });
    }

    /// Gives an existing admin a (new) role on an instance.
    pub fn grant(&self, email: &str, instance: &str, role: Role) {
        self.db.with_conn(
            &format!("granting {email} {role:?} on {instance}"),
            |conn| provision::grant_role(conn, email, instance, role),
        );
    }

    /// Adds an API key of `instance`, with `ignore_acl` set as given and the other flags off.
    pub fn add_api_key(&self, instance: &str, ignore_acl: bool) -> ApiKey {
        let flags = ApiKeyFlags {
            ignore_acl,
            ..ApiKeyFlags::default()
        };
        self.db
            .with_conn(&format!("API key of {instance}"), |conn| {
                let key = provision::create_api_key(conn, instance, flags)?;
                Ok(ApiKey {
                    id: key.id,
                    key: key.key.expose().to_owned(),
                })
            })
    }

    /// Adds an API key of `instance` and revokes it.
    pub fn add_revoked_api_key(&self, instance: &str, ignore_acl: bool) -> ApiKey {
        let key = self.add_api_key(instance, ignore_acl);
        self.revoke_api_key(instance, key.id);
        key
    }

    pub fn revoke_api_key(&self, instance: &str, key_id: i64) {
        self.db
            .with_conn(&format!("revoking API key {key_id}"), |conn| {
                provision::revoke_api_key(conn, instance, key_id)
            });
    }

    pub fn add_user(&self, instance: &str, username: &str) -> UserId {
        self.db.with_conn(&format!("user {username}"), |conn| {
            provision::create_user(conn, instance, username)
                .map(|(id, _)| valid_id(UserId::new(id)))
        })
    }

    pub fn add_group(&self, instance: &str, label: &str) -> GroupId {
        self.db.with_conn(&format!("group {label}"), |conn| {
            provision::create_group(conn, instance, label).map(|(id, _)| valid_id(GroupId::new(id)))
        })
    }

    /// Makes `user` a member of `group`, both of `instance`.
    pub fn add_member(&self, instance: &str, group: GroupId, user: UserId) {
        self.db
            .with_conn(&format!("membership {group}/{user}"), |conn| {
                provision::add_member(conn, instance, group, user)
            });
    }

    /// Deletes a group (it stays as a row, marked deleted).
    pub fn delete_group(&self, instance: &str, group: GroupId) {
        self.db
            .with_conn(&format!("deleting group {group}"), |conn| {
                provision::delete_group(conn, instance, group)
            });
    }

    /// Seeds `groups` × `users` into `instance`, every user in every group.
    pub fn seed(&self, instance: &str, groups: i64, users: i64) -> SeedSummary {
        self.db.with_conn(&format!("seeding {instance}"), |conn| {
            groups_store::seed(conn, instance, groups, users)
        })
    }

    pub fn is_member(&self, group: GroupId, user: UserId) -> bool {
        self.db.with_conn("membership look-up", |conn| {
            provision::is_member(conn, group, user)
        })
    }

    /// Events of the audit trail recording the removal of `user` from `group`.
    pub fn count_events_of(&self, group: GroupId, user: UserId) -> i64 {
        self.count(&format!(
            "membership_events WHERE group_id = {group} AND user_id = {user}"
        ))
    }

    pub fn count_memberships(&self) -> i64 {
        self.count("memberships")
    }

    /// The three counts at once, to compare before and after.
    pub fn counts(&self) -> RowCounts {
        let (users, groups, memberships) = self.db.with_conn("counting rows", |conn| {
            sql::<(BigInt, BigInt, BigInt)>(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM groups), \
                 (SELECT count(*) FROM memberships)",
            )
            .get_result(conn)
            .map_err(Into::into)
        });
        RowCounts {
            users,
            groups,
            memberships,
        }
    }

    /// One key of every kind for "demo", created in this order: the owner's, an API key, a
    /// revoked API key (ignoring ACLs), a reader admin's; and [`UNKNOWN_ACCOUNT_KEY`].
    ///
    /// [`UNKNOWN_ACCOUNT_KEY`]: crate::UNKNOWN_ACCOUNT_KEY
    pub fn keys_of_every_kind(&self) -> [String; 5] {
        [
            self.demo.owner.key.clone(),
            self.add_api_key("demo", false).key,
            self.add_revoked_api_key("demo", true).key,
            self.add_admin("demo", Some(Role::Read)).key,
            crate::UNKNOWN_ACCOUNT_KEY.to_owned(),
        ]
    }

    /// Asserts that the demo membership is gone with exactly one event recording its removal,
    /// and that nothing else changed since `before` (one membership fewer); `case` names the
    /// case in the failure message.
    #[track_caller]
    pub fn assert_demo_membership_removed_once(&self, before: RowCounts, case: &str) {
        let demo = &self.demo;
        assert!(!self.is_member(demo.group, demo.user), "{case}");
        assert_eq!(
            self.counts(),
            RowCounts {
                memberships: before.memberships - 1,
                ..before
            },
            "{case}"
        );
        assert_eq!(self.count_events_of(demo.group, demo.user), 1, "{case}");
    }

    /// Rows of `table`, which may carry a `WHERE` clause of numbers only.
    fn count(&self, table: &str) -> i64 {
        self.db.with_conn(&format!("counting {table}"), |conn| {
            Ok(sql::<BigInt>(&format!("SELECT count(*) FROM {table}")).get_result(conn)?)
        })
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys stay out of test output, as they stay out of logs.
        f.debug_struct("Admin")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

fn create_tenant(conn: &mut PgConnection, name: &str) -> StoreResult<Tenant> {
    let email = format!("owner@{name}.test");
    let owner = provision::create_admin(conn, &email)?;
    let (id, name) = provision::create_instance(conn, name, &email)?;
    let (group, _) = provision::create_group(conn, &name, &format!("{name}-group"))?;
    let (user, _) = provision::create_user(conn, &name, &format!("{name}-user"))?;
    let (group, user) = (valid_id(GroupId::new(group)), valid_id(UserId::new(user)));
    provision::add_member(conn, &name, group, user)?;
    Ok(Tenant {
        id,
        name,
        owner: admin(owner),
        group,
        user,
    })
}

fn valid_id<T>(id: Option<T>) -> T {
    id.expect("PostgreSQL identity columns start at 1")
}

fn admin(made: provision::NewAdmin) -> Admin {
    Admin {
        id: made.id,
        email: made.email,
        key: made.key.expose().to_owned(),
    }
}
