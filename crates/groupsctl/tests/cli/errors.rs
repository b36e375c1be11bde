//! What goes wrong: errors on stderr with exit 1 and nothing changed, usage errors with exit 2,
//! and keys stored only as digests.

use super::*;

// ---- errors --------------------------------------------------------------------------------

#[test]
fn errors_go_to_stderr_with_exit_1_and_change_nothing() {
    let db = TestDb::new();
    demo_instance(&db);
    owned_instance(&db, "other");
    let demo_user = id(&ok(&db, "user create demo alice"), "id");
    let demo_group = id(&ok(&db, "group create demo admins"), "id");
    let other_user = id(&ok(&db, "user create other bob"), "id");
    let other_group = id(&ok(&db, "group create other staff"), "id");
    ok(&db, &format!("member add demo {demo_group} {demo_user}"));
    let too_long = "a".repeat(65);

    #[rustfmt::skip]
    let cases: Vec<(&str, String)> = vec![
        ("duplicate admin", "admin create owner@demo.test".into()),
        ("duplicate admin, other case", "admin create OWNER@DEMO.TEST".into()),
        ("not an e-mail", "admin create not-an-email".into()),
        ("grant to an unknown admin", "admin grant nobody@demo.test demo write".into()),
        ("grant on an unknown instance", "admin grant owner@other.test nope write".into()),
        ("grant the owner a role on their instance", "admin grant owner@demo.test demo read".into()),
        ("deactivate an unknown admin", "admin deactivate nobody@demo.test".into()),
        ("instance of an unknown owner", "instance create fresh --owner nobody@x.test".into()),
        ("duplicate instance, other case", "instance create DEMO --owner owner@demo.test".into()),
        ("instance name with a dot", "instance create bad.name --owner owner@demo.test".into()),
        ("instance name too long", format!("instance create {too_long} --owner owner@demo.test")),
        ("API key of an unknown instance", "apikey create nope".into()),
        ("revoke an unknown API key", "apikey revoke demo 999999".into()),
        ("user of an unknown instance", "user create nope carol".into()),
        ("duplicate username", "user create demo alice".into()),
        ("group of an unknown instance", "group create nope g".into()),
        ("label too long", format!("group create demo {too_long}")),
        ("delete an unknown group", "group delete demo 999999".into()),
        ("delete another instance's group", format!("group delete demo {other_group}")),
        ("member add of another instance's user", format!("member add demo {demo_group} {other_user}")),
        ("member add to another instance's group", format!("member add demo {other_group} {demo_user}")),
        ("duplicate membership", format!("member add demo {demo_group} {demo_user}")),
        ("member add with user id 0", format!("member add demo {demo_group} 0")),
        ("seed an unknown instance", "seed nope --groups 1 --users 1".into()),
    ];
    let invalid_name = [
        "instance",
        "create",
        "no such!",
        "--owner",
        "owner@demo.test",
    ];
    let cases = cases
        .iter()
        .map(|(case, line)| (*case, words(line)))
        .chain([("invalid instance name", invalid_name.to_vec())]);
    for (case, args) in cases {
        let out = fails_args(&db, &args, 1);
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
    ok(&db, "admin create helper@demo.test");
    for line in [
        "admin grant helper@demo.test demo admin",
        "admin grant helper@demo.test demo owner",
        "admin grant helper@demo.test demo",
        "admin create",
        "group delete demo abc",
        "member add demo 1",
        "seed demo --groups many --users 1",
        "no-such-command",
    ] {
        fails(&db, line, 2);
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
    let account_key = key_of(&admin_out.json());
    ok(&db, "instance create demo --owner owner@demo.test");
    let api_out = groupsctl(db.url(), &["apikey", "create", "demo", "--ignore-acl"]);
    let api_key = key_of(&api_out.json());
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
                &format!("SELECT count(*) FROM \"{table}\" t WHERE lower(t::text) LIKE '%{key}%'"),
            );
            assert_eq!(found, 0, "a key is stored in {table}");
        }
    }
    for (table, key, which) in [
        ("admins", &account_key, "account key"),
        ("api_keys", &api_key, "API key"),
    ] {
        let digest = format!("sha256(convert_to('{key}', 'UTF8'))");
        assert_eq!(
            count(
                &mut conn,
                &format!("SELECT count(*) FROM {table} WHERE key_digest = {digest}")
            ),
            1,
            "the {which}'s SHA-256 digest is stored"
        );
    }
}
