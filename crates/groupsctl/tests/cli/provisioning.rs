//! `migrate`, `admin`, `instance`, `apikey`, `user`, `group`, `member` and `seed`: each one's exact
//! JSON on stdout and its effect on the tables.

use super::*;

// ---- migrate -------------------------------------------------------------------------------

#[test]
fn migrate_on_a_migrated_database_applies_nothing() {
    let db = TestDb::new();
    assert_eq!(ok(&db, "migrate"), json!({ "applied": [] }));
}

#[test]
fn migrate_creates_the_schema_of_an_empty_database_once() {
    let (db, empty) = (TestDb::new(), TestDb::empty());
    let first = groupsctl(empty.url(), &["migrate"]).json();
    assert_eq!(fields(&first), ["applied"]);
    let applied = first["applied"].as_array().expect("a list");
    assert!(!applied.is_empty(), "{first}");
    assert!(applied.iter().all(Value::is_string), "{first}");
    assert_eq!(
        groupsctl(empty.url(), &["migrate"]).json(),
        json!({ "applied": [] })
    );
    assert_eq!(
        tables(&mut empty.conn()),
        tables(&mut db.conn()),
        "the same schema as a test database"
    );
}

// ---- admin ---------------------------------------------------------------------------------

#[test]
fn admin_create_prints_id_email_and_an_account_key() {
    let db = TestDb::new();
    let first = ok(&db, "admin create Owner@Example.com");
    assert_eq!(fields(&first), ["email", "id", "key"]);
    assert_eq!(first["email"], "Owner@Example.com");
    let first_id = id(&first, "id");
    assert_key(&key_of(&first), true);

    let second = ok(&db, "admin create second@example.com");
    assert!(id(&second, "id") > first_id);
    assert_key(&key_of(&second), true);
    assert_ne!(first["key"], second["key"], "every key is new");
    assert_eq!(all_counts(&db)["admins"], 2);
}

#[test]
fn admin_grant_sets_or_replaces_a_role_and_deactivate_turns_an_admin_off() {
    let db = TestDb::new();
    demo_instance(&db);
    ok(&db, "admin create helper@demo.test");
    let role = |db: &TestDb| {
        word(
            &mut db.conn(),
            "SELECT r.role FROM admin_roles r JOIN admins a ON a.id = r.admin_id \
             WHERE a.email = 'helper@demo.test'",
        )
    };

    ok(&db, "admin grant helper@demo.test demo write");
    assert_eq!(role(&db).as_deref(), Some("write"));
    // Again, another role: replaced, not added. Instance names are case-insensitive.
    ok(&db, "admin grant HELPER@demo.test DEMO read");
    assert_eq!(role(&db).as_deref(), Some("read"));
    ok(&db, "admin grant helper@demo.test demo full");
    assert_eq!(role(&db).as_deref(), Some("full"));
    assert_eq!(all_counts(&db)["admin_roles"], 1);

    let active = |db: &TestDb| {
        flag(
            &mut db.conn(),
            "SELECT is_active FROM admins WHERE email = 'helper@demo.test'",
        )
    };
    assert_eq!(active(&db), Some(true));
    ok(&db, "admin deactivate helper@demo.test");
    assert_eq!(active(&db), Some(false));
}

// ---- instance, API keys, users, groups, members --------------------------------------------

#[test]
fn instance_create_prints_id_and_the_lower_cased_name() {
    let db = TestDb::new();
    ok(&db, "admin create owner@acme.test");
    let made = ok(&db, "instance create ACME-Corp_1 --owner owner@acme.test");
    assert_eq!(
        made,
        json!({ "id": id(&made, "id"), "name": "acme-corp_1" })
    );
    assert_eq!(
        word(&mut db.conn(), "SELECT name FROM instances").as_deref(),
        Some("acme-corp_1")
    );
}

#[test]
fn apikey_create_prints_an_instance_key_and_revoke_revokes_it() {
    let db = TestDb::new();
    demo_instance(&db);
    let plain = ok(&db, "apikey create demo");
    assert_eq!(fields(&plain), ["id", "key"]);
    assert_key(&key_of(&plain), false);
    let ignoring = ok(&db, "apikey create DEMO --ignore-acl");
    assert_key(&key_of(&ignoring), false);
    assert_ne!(plain["key"], ignoring["key"]);

    let mut conn = db.conn();
    // `column` of the API key of `answer`.
    let mut of = |column: &str, answer: &Value| {
        let id = id(answer, "id");
        flag(
            &mut conn,
            &format!("SELECT {column} FROM api_keys WHERE id = {id}"),
        )
    };
    assert_eq!(of("ignore_acl", &plain), Some(false));
    assert_eq!(of("ignore_acl", &ignoring), Some(true));

    ok(&db, &format!("apikey revoke demo {}", id(&plain, "id")));
    assert_eq!(of("revoked_at IS NOT NULL", &plain), Some(true));
    assert_eq!(of("revoked_at IS NOT NULL", &ignoring), Some(false));
}

#[test]
fn user_and_group_create_print_their_ids_and_group_delete_hides_the_group() {
    let db = TestDb::new();
    demo_instance(&db);
    let user = ok(&db, "user create demo Alice");
    assert_eq!(user, json!({ "id": id(&user, "id"), "username": "Alice" }));
    let group = ok_args(&db, &["group", "create", "Demo", "Admins & friends"]);
    assert_eq!(
        group,
        json!({ "id": id(&group, "id"), "label": "Admins & friends" })
    );

    let (group, user) = (id(&group, "id"), id(&user, "id"));
    ok(&db, &format!("group delete demo {group}"));
    assert_eq!(
        flag(
            &mut db.conn(),
            &format!("SELECT deleted_at IS NOT NULL FROM groups WHERE id = {group}")
        ),
        Some(true),
        "the row stays, marked deleted"
    );
    // Deleted: no members can join it, and it cannot be deleted twice.
    fails(&db, &format!("member add demo {group} {user}"), 1);
    fails(&db, &format!("group delete demo {group}"), 1);
}

#[test]
fn member_add_prints_group_and_user() {
    let db = TestDb::new();
    demo_instance(&db);
    let user = id(&ok(&db, "user create demo alice"), "id");
    let group = id(&ok(&db, "group create demo admins"), "id");
    let added = ok(&db, &format!("member add demo {group} {user}"));
    assert_eq!(added, json!({ "group": group, "user": user }));
    assert!(is_member(&db, group, user));
}

#[test]
fn seed_makes_contiguous_ids_and_every_membership() {
    let db = TestDb::new();
    demo_instance(&db);
    // Something already there, so the ids do not start at 1.
    ok(&db, "user create demo early-bird");
    ok(&db, "group create demo early-group");

    let mut previous_last = (1, 1);
    for (groups, users) in [(3, 4), (2, 5)] {
        let seeded = ok(&db, &format!("seed demo --groups {groups} --users {users}"));
        let first_group = seeded["groups"][0].as_i64().expect("first group id");
        let first_user = seeded["users"][0].as_i64().expect("first user id");
        assert_eq!(
            seeded,
            json!({
                "groups": [first_group, first_group + groups - 1],
                "users": [first_user, first_user + users - 1],
                "memberships": groups * users,
            })
        );
        assert!(first_group > previous_last.0 && first_user > previous_last.1);
        previous_last = (first_group + groups - 1, first_user + users - 1);

        let (g0, g1, u0, u1) = (first_group, previous_last.0, first_user, previous_last.1);
        let mut conn = db.conn();
        let demo_rows = |table: &str, lo: i64, hi: i64| {
            format!(
                "SELECT count(*) FROM {table} t JOIN instances i ON i.id = t.instance_id \
                 WHERE i.name = 'demo' AND t.id BETWEEN {lo} AND {hi}"
            )
        };
        assert_eq!(count(&mut conn, &demo_rows("groups", g0, g1)), groups);
        assert_eq!(count(&mut conn, &demo_rows("users", u0, u1)), users);
        assert_eq!(
            count(
                &mut conn,
                &format!(
                    "SELECT count(*) FROM memberships \
                     WHERE group_id BETWEEN {g0} AND {g1} AND user_id BETWEEN {u0} AND {u1}"
                )
            ),
            groups * users,
            "every user in every group"
        );
    }
    let counts = all_counts(&db);
    assert_eq!(counts["groups"], 1 + 3 + 2);
    assert_eq!(counts["users"], 1 + 4 + 5);
    assert_eq!(counts["memberships"], 3 * 4 + 2 * 5);
}
