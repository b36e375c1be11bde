//! SPEC's invariant: no input, however malformed or large, makes the gateway answer 5xx.

use crate::{NO_SUCH_ID, NO_SUCH_KEY, Rest, member_path};

#[tokio::test]
async fn no_input_makes_a_server_error() {
    let r = Rest::start();
    let demo = &r.world.demo;
    let key = demo.owner.key.clone();
    let long = "a".repeat(10_000);
    let (g, u) = (demo.group.to_string(), demo.user.to_string());
    let not_a_member = member_path("demo", &g, NO_SUCH_ID);
    let paths = [
        member_path(&long, &g, &u),
        member_path("demo", &long, &u),
        member_path("demo", &g, &long),
        member_path("demo%2Fx", &g, &u),
        member_path("demo", "%FF%FE", &u),
        member_path("demo", &g, "%00"),
        member_path("%", &g, &u),
        format!("{not_a_member}?api_key=%zz&&=&%FF=%FF"),
        format!("{not_a_member}?api_key={}", "k".repeat(8_000)),
    ];
    for path in &paths {
        let answer = r.delete(path, Some(&key)).await;
        let shown = &path[..path.len().min(80)];
        assert!((400..500).contains(&answer.status), "{shown}: {answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
    let long_key = r.delete(&r.demo_path(), Some(&"k".repeat(8_000))).await;
    long_key.assert(403, NO_SUCH_KEY, "an 8 kB key");
    // Still serving, and nothing was removed by any of it.
    assert!(r.world.is_member(demo.group, demo.user));
    let removed = r.delete(&r.demo_path(), Some(&key)).await;
    removed.assert(204, "", "after hostile input");
}
