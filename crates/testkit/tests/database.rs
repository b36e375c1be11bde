//! The PostgreSQL side of the testkit, against a real server: per-test databases cloned from the
//! migrated template, the `World` fixture, and the fault proxy in front of PostgreSQL.

use diesel::connection::SimpleConnection;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Text};
use groups_core::{KeyKind, PresentedKey, Role};
use groups_testkit::{FaultProxy, RowCounts, TestDb, World};

/// Every table of the schema.
const TABLES: [&str; 8] = [
    "admins",
    "instances",
    "admin_roles",
    "api_keys",
    "users",
    "groups",
    "memberships",
    "membership_events",
];

fn flag(conn: &mut PgConnection, query: &str) -> bool {
    sql::<Bool>(query).get_result(conn).unwrap()
}

fn count(conn: &mut PgConnection, query: &str) -> i64 {
    sql::<BigInt>(query).get_result(conn).unwrap()
}

fn setting(conn: &mut PgConnection, name: &str) -> String {
    let query = format!("SELECT current_setting('{name}')");
    sql::<Text>(&query).get_result(conn).unwrap()
}

fn database_exists(conn: &mut PgConnection, name: &str) -> bool {
    flag(
        conn,
        &format!("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"),
    )
}

#[test]
fn a_test_database_has_the_migrated_schema() {
    let db = TestDb::new();
    let mut conn = db.conn();
    for table in TABLES {
        assert!(
            flag(
                &mut conn,
                &format!("SELECT to_regclass('{table}') IS NOT NULL")
            ),
            "{table}"
        );
    }
    assert_eq!(
        groups_store::migrate(&mut conn).unwrap(),
        Vec::<String>::new(),
        "already up to date"
    );
    assert_eq!(count(&mut conn, "SELECT count(*) FROM memberships"), 0);
}

#[test]
fn test_databases_are_independent() {
    let (one, two) = (TestDb::new(), TestDb::new());
    assert_ne!(one.name(), two.name());
    assert_ne!(one.url(), two.url());
    groups_store::provision::create_admin(&mut one.conn(), "only@one.test").unwrap();
    assert_eq!(count(&mut one.conn(), "SELECT count(*) FROM admins"), 1);
    assert_eq!(count(&mut two.conn(), "SELECT count(*) FROM admins"), 0);
}

#[test]
fn dropping_a_test_database_drops_it_even_with_connections_open() {
    let witness = TestDb::new();
    let db = TestDb::new();
    let name = db.name().to_owned();
    let mut still_open = db.conn();
    assert!(database_exists(&mut witness.conn(), &name));
    drop(db);
    assert!(!database_exists(&mut witness.conn(), &name));
    assert!(
        still_open.batch_execute("SELECT 1").is_err(),
        "its connections were closed"
    );
}

#[test]
fn many_threads_get_databases_at_once() {
    let names: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let db = TestDb::new();
                    let mut conn = db.conn();
                    assert_eq!(count(&mut conn, "SELECT count(*) FROM groups"), 0);
                    db.name().to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}

#[test]
fn a_private_server_is_tuned_for_tests() {
    if std::env::var_os("TEST_DATABASE_URL").is_some() {
        return; // Someone else's server: its settings are theirs.
    }
    let db = TestDb::new();
    let mut conn = db.conn();
    for (name, expected) in [
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
    ] {
        assert_eq!(setting(&mut conn, name), expected, "{name}");
    }
    let max = setting(&mut conn, "max_connections");
    assert!(max.parse::<u32>().unwrap() >= 100);
    assert_eq!(db.server_addr().ip().to_string(), "127.0.0.1");
}

#[test]
fn the_world_has_a_demo_instance_with_a_member() {
    let world = World::new();
    let demo = &world.demo;
    assert_eq!(demo.name, "demo");
    assert!(world.is_member(demo.group, demo.user));
    assert_eq!(
        world.counts(),
        RowCounts {
            users: 1,
            groups: 1,
            memberships: 1
        }
    );
    let key = PresentedKey::parse(&demo.owner.key).expect("40 lower-case hex");
    assert_eq!(key.kind(), KeyKind::Account);
    let debug = format!("{world:?}");
    assert!(
        !debug.contains(&demo.owner.key),
        "Debug shows no key: {debug}"
    );
}

#[test]
fn the_world_adds_principals_instances_and_rows() {
    let world = World::new();
    let mut conn = world.conn();

    let full = world.add_admin("demo", Some(Role::Full));
    let reader = world.add_admin("demo", Some(Role::Read));
    let stranger = world.add_admin("demo", None);
    let inactive = world.add_inactive_admin("demo", Some(Role::Write));
    assert_ne!(full.email, reader.email);
    let roles: Vec<(String, String)> = {
        use groups_store::schema::{admin_roles, admins};
        admin_roles::table
            .inner_join(admins::table)
            .select((admins::email, admin_roles::role))
            .order(admins::id)
            .load(&mut conn)
            .unwrap()
    };
    assert_eq!(
        roles,
        [
            (full.email.clone(), "full".to_owned()),
            (reader.email.clone(), "read".to_owned()),
            (inactive.email.clone(), "write".to_owned()),
        ]
    );
    let active = |email: &str| {
        use groups_store::schema::admins;
        admins::table
            .filter(admins::email.eq(email))
            .select(admins::is_active)
            .first::<bool>(&mut world.conn())
            .unwrap()
    };
    assert!(active(&stranger.email));
    assert!(!active(&inactive.email));

    let plain = world.add_api_key("demo", false);
    let acl = world.add_api_key("demo", true);
    let revoked = world.add_revoked_api_key("demo", false);
    for key in [&plain, &acl, &revoked] {
        assert_eq!(
            PresentedKey::parse(&key.key).unwrap().kind(),
            KeyKind::Instance
        );
    }
    let keys: Vec<(i64, bool, bool)> = {
        use groups_store::schema::api_keys;
        api_keys::table
            .select((
                api_keys::id,
                api_keys::ignore_acl,
                api_keys::revoked_at.is_not_null(),
            ))
            .order(api_keys::id)
            .load(&mut conn)
            .unwrap()
    };
    assert_eq!(
        keys,
        [
            (plain.id, false, false),
            (acl.id, true, false),
            (revoked.id, false, true)
        ]
    );

    let other = world.add_instance("Other");
    assert_eq!(other.name, "other");
    assert_ne!(other.owner.email, world.demo.owner.email);
    assert!(world.is_member(other.group, other.user));
    assert!(!world.is_member(world.demo.group, other.user));

    let group = world.add_group("demo", "second");
    let user = world.add_user("demo", "bob");
    assert!(!world.is_member(group, user));
    world.add_member("demo", group, user);
    assert!(world.is_member(group, user));
    world.delete_group("demo", group);
    assert_eq!(
        world.counts(),
        RowCounts {
            users: 3,
            groups: 3,
            memberships: 3
        }
    );

    let seeded = world.seed("other", 3, 4);
    assert_eq!(seeded.memberships, 12);
    assert_eq!(world.count_memberships(), 15);
}

#[test]
fn keys_are_stored_only_as_digests() {
    let world = World::new();
    let admin = world.add_admin("demo", Some(Role::Write));
    let api_key = world.add_api_key("demo", true);
    let mut conn = world.conn();

    let digest_of = |table: &str, id: i64| -> Vec<u8> {
        sql::<Bytea>(&format!("SELECT key_digest FROM {table} WHERE id = {id}"))
            .get_result(&mut world.conn())
            .unwrap()
    };
    for (table, id, key) in [
        ("admins", world.demo.owner.id, &world.demo.owner.key),
        ("admins", admin.id, &admin.key),
        ("api_keys", api_key.id, &api_key.key),
    ] {
        let expected = PresentedKey::parse(key).unwrap().digest();
        assert_eq!(
            digest_of(table, id),
            expected.as_bytes().to_vec(),
            "{table} {id}"
        );
        for any_table in TABLES {
            let found: i64 = sql::<BigInt>(&format!(
                "SELECT count(*) FROM {any_table} AS t WHERE t::text LIKE '%' || "
            ))
            .bind::<Text, _>(key.as_str())
            .sql(" || '%'")
            .get_result(&mut conn)
            .unwrap();
            assert_eq!(found, 0, "a key in clear in {any_table}");
        }
    }
}

#[test]
fn the_world_reconnects_after_its_connection_is_terminated() {
    let world = World::new();
    assert!(world.is_member(world.demo.group, world.demo.user));
    let mut admin = world.conn();
    let terminated = count(
        &mut admin,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert!(terminated >= 1);
    assert!(world.is_member(world.demo.group, world.demo.user));
}

#[test]
fn a_fault_proxy_in_front_of_postgres_cuts_and_restores_it() {
    let db = TestDb::new();
    let proxy = FaultProxy::start(db.server_addr());
    let via_proxy = db.url_via(proxy.addr());
    assert!(via_proxy.contains(&proxy.addr().port().to_string()));

    let mut conn = groups_store::connect(&via_proxy).unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM users"), 0);
    assert_eq!(proxy.connection_count(), 1);

    proxy.cut();
    assert!(
        conn.batch_execute("SELECT 1").is_err(),
        "an open connection is cut"
    );
    assert!(
        groups_store::connect(&via_proxy).is_err(),
        "new connections fail while cut"
    );

    proxy.restore();
    let mut conn = groups_store::connect(&via_proxy).unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM users"), 0);
}

#[test]
fn the_service_s_pooled_connections_are_pinned_to_their_session_settings() {
    let db = TestDb::new();
    // Whatever the database says by default...
    db.conn()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'serializable'; \
             ALTER DATABASE \"{}\" SET plan_cache_mode = 'force_custom_plan'",
            db.name(),
            db.name()
        ))
        .unwrap();
    let pool = groups_store::Pool::new(db.url(), &groups_store::PoolConfig::default());
    let mut conn = pool.checkout(std::time::Duration::from_secs(5)).unwrap();
    let show = |conn: &mut groups_store::Checkout, name: &str| {
        let query = format!("SELECT current_setting('{name}')");
        conn.run(|c| sql::<Text>(&query).get_result::<String>(c))
            .unwrap()
    };
    // ...the service's statements run in READ COMMITTED with generic plans (planning the
    // removal for each call would cost more than running it), bounded by a statement timeout.
    assert_eq!(
        show(&mut conn, "default_transaction_isolation"),
        "read committed"
    );
    assert_eq!(show(&mut conn, "plan_cache_mode"), "force_generic_plan");
    assert_eq!(show(&mut conn, "statement_timeout"), "5s");
}
