//! `SpecWorld`: the one fixture the SPEC table runs against, built once per suite run: every
//! row and key a case names, what the reads must return, and the trail's events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use diesel::PgConnection;
use diesel::connection::SimpleConnection;
use groups_core::{
    Credential as Presented, GroupId, InstanceName, Lookup, MembershipEvent, Permission,
    PresentedKey, RemovalAttempt, Role, UserId,
};
use groups_store::Removal;

use super::Key;
use super::Row::{self, DemoGroup, SecondGroup, ThirdGroup};
use crate::World;

/// The request id of the removals made while the fixture is built (the trail's first events).
pub(super) const FIXTURE_REQUEST_ID: &str = "spec-fixture-removal";

/// A live group as the reads must return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedGroup {
    pub id: i64,
    pub name: Option<String>,
    pub label: String,
    pub description: String,
}

/// A user as `GetUser` must return them: live groups only, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedUser {
    pub id: i64,
    pub username: String,
    pub groups: Vec<ExpectedGroup>,
}

/// The fixture: a [`World`] with instances `demo`, `other` and `dormant`, holding every
/// [`Row`] and [`Key`] a case names; `other`'s trail holds one removal too.
pub struct SpecWorld {
    world: World,
    rows: HashMap<Row, i64>,
    keys: HashMap<Key, String>,
    /// The admin and role behind each key that may remove members: what an event records.
    actors: HashMap<Key, (i64, Role)>,
    groups: HashMap<Row, ExpectedGroup>,
    /// Username and live groups of the users reads return.
    users: HashMap<Row, (&'static str, &'static [Row])>,
    next_fresh: AtomicU64,
    conn: Mutex<PgConnection>,
}

impl SpecWorld {
    /// Builds the fixture in a fresh database.
    pub fn new() -> Self {
        let world = World::new();
        let demo = world.demo.clone();
        let mut conn = world.conn();
        let second = world.add_group("demo", "second");
        let (second_name, second_description) = ("Second opinion", "Reads \"everything\" – twice");
        conn.batch_execute(&format!(
            "UPDATE groups SET name = '{second_name}', description = '{second_description}' \
             WHERE id = {second}"
        ))
        .unwrap_or_else(|e| panic!("groups-testkit: naming group second: {e}"));
        // demo-user joins its groups out of id order: a read must still list them by id.
        let third = world.add_group("demo", "third");
        let deleted = world.add_group("demo", "deleted");
        for group in [third, deleted, second] {
            world.add_member("demo", group, demo.user);
        }
        world.delete_group("demo", deleted);
        let audited = world.add_group("demo", "audited");
        let former = world.add_user("demo", "former");
        world.add_member("demo", audited, former);
        remove(&mut conn, "demo", &demo.owner.key, audited, former);
        let loner = world.add_user("demo", "loner");

        let other = world.add_instance("other");
        let gone = world.add_user("other", "other-former");
        world.add_member("other", other.group, gone);
        remove(&mut conn, "other", &other.owner.key, other.group, gone);
        let dormant = world.add_instance("dormant");
        world.deactivate_admin(&dormant.owner.email);

        let full = world.add_admin("demo", Some(Role::Full));
        let write = world.add_admin("demo", Some(Role::Write));
        let owner = &demo.owner.key;
        let admin = |instance, role| world.add_admin(instance, role).key;
        let inactive = |role| world.add_inactive_admin("demo", Some(role)).key;
        let api_key = |instance, ignore_acl| world.add_api_key(instance, ignore_acl).key;
        let revoked = |ignore_acl| world.add_revoked_api_key("demo", ignore_acl).key;
        let unknown = |last: char| format!("0123456789abcdef0123456789abcdef0123456{last}");
        let keys = HashMap::from([
            (Key::Owner, owner.clone()),
            (Key::Full, full.key.clone()),
            (Key::Write, write.key.clone()),
            (Key::Read, admin("demo", Some(Role::Read))),
            (Key::NoRole, admin("demo", None)),
            (Key::RoleElsewhere, admin("other", Some(Role::Full))),
            (Key::OtherOwner, other.owner.key.clone()),
            (Key::DormantOwner, dormant.owner.key.clone()),
            (Key::ApiKey, api_key("demo", false)),
            (Key::ApiKeyIgnoreAcl, api_key("demo", true)),
            (Key::Revoked, revoked(false)),
            (Key::RevokedIgnoreAcl, revoked(true)),
            (Key::InactiveWrite, inactive(Role::Write)),
            (Key::InactiveFull, inactive(Role::Full)),
            (Key::InactiveRead, inactive(Role::Read)),
            (Key::OtherApiKey, api_key("other", true)),
            (Key::UnknownAccount, unknown('0')),
            (Key::UnknownApi, unknown('1')),
            (Key::OwnerTruncated, owner[..39].to_owned()),
            (Key::OwnerExtended, format!("{owner}0")),
            (Key::OwnerUpperCase, owner.to_uppercase()),
            (Key::OwnerNotHex, format!("{}g", &owner[..39])),
        ]);
        assert_ne!(
            keys[&Key::OwnerUpperCase],
            *owner,
            "the owner's key has a hex letter"
        );
        let actors = HashMap::from([
            (Key::Owner, (demo.owner.id, Role::Owner)),
            (Key::Full, (full.id, Role::Full)),
            (Key::Write, (write.id, Role::Write)),
        ]);

        let rows = HashMap::from([
            (Row::DemoGroup, demo.group.get()),
            (Row::SecondGroup, second.get()),
            (Row::ThirdGroup, third.get()),
            (Row::DeletedGroup, deleted.get()),
            (Row::AuditedGroup, audited.get()),
            (Row::DemoUser, demo.user.get()),
            (Row::Loner, loner.get()),
            (Row::FormerMember, former.get()),
            (Row::OtherGroup, other.group.get()),
            (Row::OtherUser, other.user.get()),
            (Row::DormantGroup, dormant.group.get()),
            (Row::DormantUser, dormant.user.get()),
        ]);
        let group =
            |id: GroupId, label: &str, name: Option<&str>, description: &str| ExpectedGroup {
                id: id.get(),
                name: name.map(str::to_owned),
                label: label.to_owned(),
                description: description.to_owned(),
            };
        let groups = HashMap::from([
            (Row::DemoGroup, group(demo.group, "demo-group", None, "")),
            (
                Row::SecondGroup,
                group(second, "second", Some(second_name), second_description),
            ),
            (Row::ThirdGroup, group(third, "third", None, "")),
            (Row::AuditedGroup, group(audited, "audited", None, "")),
        ]);
        let users: HashMap<Row, (&str, &[Row])> = HashMap::from([
            (
                Row::DemoUser,
                ("demo-user", &[ThirdGroup, SecondGroup, DemoGroup][..]),
            ),
            (Row::Loner, ("loner", &[][..])),
            (Row::FormerMember, ("former", &[][..])),
        ]);
        let spec = Self {
            world,
            rows,
            keys,
            actors,
            groups,
            users,
            next_fresh: AtomicU64::new(1),
            conn: Mutex::new(conn),
        };
        // The trail's one event of `audited`, as the removal statement wrote it.
        let trail = spec.events(Some(audited.get()), None, 10);
        let written = matches!(&trail[..], [event] if event.group == audited.get()
            && event.user == former.get()
            && (event.actor_admin, event.actor_role) == (demo.owner.id, Role::Owner)
            && event.request_id == FIXTURE_REQUEST_ID);
        assert!(written, "groups-testkit: the fixture's event: {trail:?}");
        spec
    }

    /// The world underneath, for what the table does not cover.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The id of a fixture row (not [`Row::Fresh`], which is made per case).
    pub fn row(&self, row: Row) -> i64 {
        *self
            .rows
            .get(&row)
            .unwrap_or_else(|| panic!("groups-testkit: {row:?} is made per case"))
    }

    /// The text of a key.
    pub fn key(&self, key: Key) -> String {
        match key {
            Key::Text(text) => text.to_owned(),
            _ => self.keys[&key].clone(),
        }
    }

    /// The admin and role an event records for a removal with `key`.
    pub(super) fn actor(&self, key: Key) -> Option<(i64, Role)> {
        self.actors.get(&key).copied()
    }

    /// A new user of demo, member of `DemoGroup` and `SecondGroup`.
    pub(super) fn fresh_member(&self) -> i64 {
        let n = self.next_fresh.fetch_add(1, Ordering::Relaxed);
        let user = self.world.add_user("demo", &format!("fresh-{n}"));
        for group in [Row::DemoGroup, Row::SecondGroup] {
            let group = GroupId::new(self.row(group)).expect("a fixture id");
            self.world.add_member("demo", group, user);
        }
        user.get()
    }

    /// The group a read of `row` must return.
    pub fn expected_group(&self, row: Row) -> ExpectedGroup {
        self.groups
            .get(&row)
            .cloned()
            .unwrap_or_else(|| panic!("groups-testkit: {row:?} is not a live group"))
    }

    /// The user a read of `row` must return.
    pub fn expected_user(&self, row: Row) -> ExpectedUser {
        let (username, groups) = self
            .users
            .get(&row)
            .unwrap_or_else(|| panic!("groups-testkit: {row:?} is not a user reads return"));
        let mut groups: Vec<_> = groups.iter().map(|g| self.expected_group(*g)).collect();
        // SPEC: "ordered by id".
        groups.sort_by_key(|g| g.id);
        ExpectedUser {
            id: self.row(row),
            username: (*username).to_owned(),
            groups,
        }
    }

    /// Demo's newest events (at most `limit`), with these filters.
    pub(super) fn events(
        &self,
        group: Option<i64>,
        user: Option<i64>,
        limit: u32,
    ) -> Vec<MembershipEvent> {
        groups_store::audit::recent_events(
            &mut self.conn(),
            "demo",
            group.and_then(GroupId::new),
            user.and_then(UserId::new),
            limit,
        )
        .unwrap_or_else(|e| panic!("groups-testkit: reading the trail: {e}"))
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, PgConnection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for SpecWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SpecWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecWorld")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Removes a member with the very statement the server runs, so the trail holds a real event.
fn remove(conn: &mut PgConnection, instance: &str, key: &str, group: GroupId, user: UserId) {
    let name = InstanceName::parse(instance).expect("a fixture instance name");
    let credential = Presented::Key(PresentedKey::parse(key).expect("a fixture key"));
    let attempt = RemovalAttempt {
        lookup: Lookup::new(&name, &credential, Permission::RemoveMembers),
        group,
        user,
    };
    let removal = Removal {
        attempt,
        request_id: FIXTURE_REQUEST_ID,
    };
    let facts = groups_store::removal::remove_members(conn, &[removal])
        .unwrap_or_else(|e| panic!("groups-testkit: removing {group}/{user}: {e}"));
    assert!(
        facts.first().is_some_and(|f| f.removed),
        "groups-testkit: the fixture's removal of {group}/{user} removed nothing: {facts:?}"
    );
}
