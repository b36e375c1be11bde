//! `World`: a test database provisioned with an instance, its owner, a group, a user and a
//! membership, with methods to add the other principals tests need and to read back rows.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use groups_core::{GroupId, Role, UserId};
use groups_store::provision::{self, ApiKeyFlags};
use groups_store::{SeedSummary, StoreResult};

use crate::TestDb;

/// An admin made by the fixture.
#[derive(Clone)]
pub struct Admin {
    /// Row id.
    pub id: i64,
    /// E-mail (unique per `World`).
    pub email: String,
    /// The account key, in clear: the only copy.
    pub key: String,
}

/// An instance API key made by the fixture.
#[derive(Clone)]
pub struct ApiKey {
    /// Row id (what `revoke` takes).
    pub id: i64,
    /// The key, in clear: the only copy.
    pub key: String,
}

/// An instance with its owner, one group, one user, and that user in that group.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Row id.
    pub id: i64,
    /// Stored (lower-case) name.
    pub name: String,
    /// The admin who owns the instance.
    pub owner: Admin,
    /// A group of the instance (label `<name>-group`).
    pub group: GroupId,
    /// A user of the instance (username `<name>-user`), member of `group`.
    pub user: UserId,
}

/// Row counts of the tables a removal must leave alone (or touch exactly once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCounts {
    /// Rows of `users`, all instances.
    pub users: i64,
    /// Rows of `groups` (deleted ones too), all instances.
    pub groups: i64,
    /// Rows of `memberships`, all instances.
    pub memberships: i64,
}

/// A test database with an instance "demo" (see [`Tenant`]) and helpers to add more.
///
/// Every method takes `&self`, so a `World` can be shared by the threads of one test.
/// Provisioning failures panic: they are bugs in the test or the store.
pub struct World {
    /// The instance "demo".
    pub demo: Tenant,
    /// One connection, reused by the helpers (reopened if a test cut it).
    conn: Mutex<Option<PgConnection>>,
    next_admin: AtomicU64,
    /// The database: last, so it is dropped after the connection above is closed.
    pub db: TestDb,
}

impl World {
    /// A fresh database with the instance "demo".
    pub fn new() -> Self {
        let db = TestDb::new();
        let mut conn = db.conn();
        let demo = create_tenant(&mut conn, "demo")
            .unwrap_or_else(|e| panic!("groups-testkit: instance demo: {e}"));
        Self {
            demo,
            conn: Mutex::new(Some(conn)),
            next_admin: AtomicU64::new(1),
            db,
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        self.db.url()
    }

    /// A new connection of the test's own.
    pub fn conn(&self) -> PgConnection {
        self.db.conn()
    }

    /// Adds an instance with its own owner (`owner@<name>.test`), group, user and membership.
    pub fn add_instance(&self, name: &str) -> Tenant {
        self.provision(&format!("instance {name}"), |conn| {
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
        self.provision(&format!("admin {email}"), |conn| {
            let admin = provision::create_admin(conn, &email)?;
            if let Some(role) = role {
                provision::grant_role(conn, &email, instance, role)?;
            }
            Ok(Admin {
                id: admin.id,
                email: admin.email,
                key: admin.key.expose().to_owned(),
            })
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
        self.provision(&format!("deactivating {email}"), |conn| {
            provision::deactivate_admin(conn, email)
        });
    }

    /// Gives an existing admin a (new) role on an instance.
    pub fn grant(&self, email: &str, instance: &str, role: Role) {
        self.provision(
            &format!("granting {email} {role:?} on {instance}"),
            |conn| provision::grant_role(conn, email, instance, role),
        );
    }

    /// Adds an API key of `instance`, with `ignore_acl` set as given and the other flags off.
    pub fn add_api_key(&self, instance: &str, ignore_acl: bool) -> ApiKey {
        self.add_api_key_with(
            instance,
            ApiKeyFlags {
                ignore_acl,
                ..ApiKeyFlags::default()
            },
        )
    }

    /// Adds an API key of `instance` with these flags.
    pub fn add_api_key_with(&self, instance: &str, flags: ApiKeyFlags) -> ApiKey {
        self.provision(&format!("API key of {instance}"), |conn| {
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

    /// Revokes an API key of `instance`.
    pub fn revoke_api_key(&self, instance: &str, key_id: i64) {
        self.provision(&format!("revoking API key {key_id}"), |conn| {
            provision::revoke_api_key(conn, instance, key_id)
        });
    }

    /// Adds a user to `instance`.
    pub fn add_user(&self, instance: &str, username: &str) -> UserId {
        self.provision(&format!("user {username}"), |conn| {
            provision::create_user(conn, instance, username)
                .map(|(id, _)| valid_id(UserId::new(id)))
        })
    }

    /// Adds a group to `instance`.
    pub fn add_group(&self, instance: &str, label: &str) -> GroupId {
        self.provision(&format!("group {label}"), |conn| {
            provision::create_group(conn, instance, label).map(|(id, _)| valid_id(GroupId::new(id)))
        })
    }

    /// Makes `user` a member of `group`, both of `instance`.
    pub fn add_member(&self, instance: &str, group: GroupId, user: UserId) {
        self.provision(&format!("membership {group}/{user}"), |conn| {
            provision::add_member(conn, instance, group, user)
        });
    }

    /// Deletes a group (it stays as a row, marked deleted).
    pub fn delete_group(&self, instance: &str, group: GroupId) {
        self.provision(&format!("deleting group {group}"), |conn| {
            provision::delete_group(conn, instance, group)
        });
    }

    /// Seeds `groups` × `users` into `instance`, every user in every group.
    pub fn seed(&self, instance: &str, groups: i64, users: i64) -> SeedSummary {
        self.provision(&format!("seeding {instance}"), |conn| {
            groups_store::seed(conn, instance, groups, users)
        })
    }

    /// Whether `user` is a member of `group`.
    pub fn is_member(&self, group: GroupId, user: UserId) -> bool {
        self.provision("membership look-up", |conn| {
            provision::is_member(conn, group, user)
        })
    }

    /// Events of the audit trail recording the removal of `user` from `group`.
    pub fn count_events_of(&self, group: GroupId, user: UserId) -> i64 {
        self.count(&format!(
            "membership_events WHERE group_id = {group} AND user_id = {user}"
        ))
    }

    /// Rows of `users`, all instances.
    pub fn count_users(&self) -> i64 {
        self.count("users")
    }

    /// Rows of `groups` (deleted ones too), all instances.
    pub fn count_groups(&self) -> i64 {
        self.count("groups")
    }

    /// Rows of `memberships`, all instances.
    pub fn count_memberships(&self) -> i64 {
        self.count("memberships")
    }

    /// The three counts at once, to compare before and after.
    pub fn counts(&self) -> RowCounts {
        RowCounts {
            users: self.count_users(),
            groups: self.count_groups(),
            memberships: self.count_memberships(),
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
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        self.provision(&format!("counting {table}"), |conn| {
            let count: Count =
                diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")).get_result(conn)?;
            Ok(count.n)
        })
    }

    /// Runs `work` on the shared connection, reconnecting first if the connection died (a test
    /// may have terminated backends), and panics with `what` on failure.
    fn provision<T>(
        &self,
        what: &str,
        work: impl FnOnce(&mut PgConnection) -> StoreResult<T>,
    ) -> T {
        let result = {
            let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            let alive = slot
                .as_mut()
                .is_some_and(|conn| conn.batch_execute("SELECT 1").is_ok());
            if !alive {
                *slot = Some(self.db.conn());
            }
            let conn = slot.as_mut().expect("connected just above");
            work(conn)
        };
        result.unwrap_or_else(|e| panic!("groups-testkit: {what}: {e}"))
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("demo", &self.demo)
            .field("db", &self.db)
            .finish_non_exhaustive()
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
    let owner = Admin {
        id: owner.id,
        email: owner.email,
        key: owner.key.expose().to_owned(),
    };
    Ok(Tenant {
        id,
        name,
        owner,
        group,
        user,
    })
}

fn valid_id<T>(id: Option<T>) -> T {
    id.expect("PostgreSQL identity columns start at 1")
}
