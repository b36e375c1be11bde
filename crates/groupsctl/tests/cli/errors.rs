//! What goes wrong: errors on stderr with exit 1 and nothing changed, usage errors with exit 2,
//! and keys stored only as digests.

use super::*;

// ---- errors --------------------------------------------------------------------------------

#[test]
fn errors_go_to_stderr_with_exit_1_and_change_nothing() {
    let db = TestDb::new();
    demo_instance(&db);
    owned_instance(&db, "other");
    let demo_user = id(&ok(&db, &["user", "create", "demo", "alice"]), "id").to_string();
    let demo_group = id(&ok(&db, &["group", "create", "demo", "admins"]), "id").to_string();
    let other_user = id(&ok(&db, &["user", "create", "other", "bob"]), "id").to_string();
    let other_group = id(&ok(&db, &["group", "create", "other", "staff"]), "id").to_string();
    ok(&db, &["member", "add", "demo", &demo_group, &demo_user]);
    let too_long = "a".repeat(65);

    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "duplicate admin",
            vec!["admin", "create", "owner@demo.test"],
        ),
        (
            "duplicate admin, other case",
            vec!["admin", "create", "OWNER@DEMO.TEST"],
        ),
        ("not an e-mail", vec!["admin", "create", "not-an-email"]),
        (
            "grant to an unknown admin",
            vec!["admin", "grant", "nobody@demo.test", "demo", "write"],
        ),
        (
            "grant on an unknown instance",
            vec!["admin", "grant", "owner@other.test", "nope", "write"],
        ),
        (
            "grant the owner a role on their instance",
            vec!["admin", "grant", "owner@demo.test", "demo", "read"],
        ),
        (
            "deactivate an unknown admin",
            vec!["admin", "deactivate", "nobody@demo.test"],
        ),
        (
            "instance of an unknown owner",
            vec!["instance", "create", "fresh", "--owner", "nobody@x.test"],
        ),
        (
            "duplicate instance, other case",
            vec!["instance", "create", "DEMO", "--owner", "owner@demo.test"],
        ),
        (
            "invalid instance name",
            vec![
                "instance",
                "create",
                "no such!",
                "--owner",
                "owner@demo.test",
            ],
        ),
        (
            "instance name with a dot",
            vec![
                "instance",
                "create",
                "bad.name",
                "--owner",
                "owner@demo.test",
            ],
        ),
        (
            "instance name too long",
            vec![
                "instance",
                "create",
                &too_long,
                "--owner",
                "owner@demo.test",
            ],
        ),
        (
            "API key of an unknown instance",
            vec!["apikey", "create", "nope"],
        ),
        (
            "revoke an unknown API key",
            vec!["apikey", "revoke", "demo", "999999"],
        ),
        (
            "user of an unknown instance",
            vec!["user", "create", "nope", "carol"],
        ),
        (
            "duplicate username",
            vec!["user", "create", "demo", "alice"],
        ),
        (
            "group of an unknown instance",
            vec!["group", "create", "nope", "g"],
        ),
        ("label too long", vec!["group", "create", "demo", &too_long]),
        (
            "delete an unknown group",
            vec!["group", "delete", "demo", "999999"],
        ),
        (
            "delete another instance's group",
            vec!["group", "delete", "demo", &other_group],
        ),
        (
            "member add of another instance's user",
            vec!["member", "add", "demo", &demo_group, &other_user],
        ),
        (
            "member add to another instance's group",
            vec!["member", "add", "demo", &other_group, &demo_user],
        ),
        (
            "duplicate membership",
            vec!["member", "add", "demo", &demo_group, &demo_user],
        ),
        (
            "member add with user id 0",
            vec!["member", "add", "demo", &demo_group, "0"],
        ),
        (
            "seed an unknown instance",
            vec!["seed", "nope", "--groups", "1", "--users", "1"],
        ),
    ];
    for (case, args) in &cases {
        let out = fails(&db, args, 1);
        assert!(
            !out.stderr.contains("panicked"),
            "{case}: an error, not a crash: {}",
            out.stderr
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let db = TestDb::new();
    demo_instance(&db);
    ok(&db, &["admin", "create", "helper@demo.test"]);
    for args in [
        vec!["admin", "grant", "helper@demo.test", "demo", "admin"],
        vec!["admin", "grant", "helper@demo.test", "demo", "owner"],
        vec!["admin", "grant", "helper@demo.test", "demo"],
        vec!["admin", "create"],
        vec!["group", "delete", "demo", "abc"],
        vec!["member", "add", "demo", "1"],
        vec!["seed", "demo", "--groups", "many", "--users", "1"],
        vec!["no-such-command"],
    ] {
        fails(&db, &args, 2);
    }
}

#[test]
fn without_a_database_url_it_says_so() {
    let db = TestDb::new();
    let output = groupsctl_command(db.url())
        .env_remove("DATABASE_URL")
        .args(["user", "create", "demo", "alice"])
        .output()
        .expect("runs");
    let output = CtlOutput::from(output);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(
        output.stderr.to_lowercase().contains("database"),
        "{output:?}"
    );
}

// ---- keys ----------------------------------------------------------------------------------

#[test]
fn keys_are_stored_only_as_sha256_digests() {
    let db = TestDb::new();
    let admin_out = groupsctl(db.url(), &["admin", "create", "owner@demo.test"]);
    let account_key = admin_out.json()["key"].as_str().expect("a key").to_owned();
    ok(
        &db,
        &["instance", "create", "demo", "--owner", "owner@demo.test"],
    );
    let api_out = groupsctl(db.url(), &["apikey", "create", "demo", "--ignore-acl"]);
    let api_key = api_out.json()["key"].as_str().expect("a key").to_owned();
    // Shown once, on stdout only.
    assert!(!admin_out.stderr.contains(&account_key));
    assert!(!api_out.stderr.contains(&api_key));

    let mut conn = db.conn();
    for key in [&account_key, &api_key] {
        for table in tables(&mut conn) {
            // A row as text shows every column, bytea as hex: a key stored in clear, or as
            // its raw bytes, would show up here.
            let found = count(
                &mut conn,
                &format!(
                    "SELECT count(*) AS n FROM \"{table}\" t WHERE lower(t::text) LIKE '%{key}%'"
                ),
            );
            assert_eq!(found, 0, "a key is stored in {table}");
        }
    }
    let digest_of = |key: &str| format!("sha256(convert_to('{key}', 'UTF8'))");
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM admins WHERE key_digest = {}",
                digest_of(&account_key)
            )
        ),
        1,
        "the account key's SHA-256 digest is stored"
    );
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM api_keys WHERE key_digest = {}",
                digest_of(&api_key)
            )
        ),
        1,
        "the API key's SHA-256 digest is stored"
    );
}
