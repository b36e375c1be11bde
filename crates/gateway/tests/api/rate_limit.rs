//! The per-instance rate limit at the gateway: 429 with `Retry-After` past the rate, for every
//! route of the instance alike; another instance unaffected.

use std::time::Instant;

use reqwest::Method;

use crate::{NO_SUCH_ID, NOT_FOUND, Rest, member_path};

#[tokio::test]
async fn an_instance_over_its_rate_is_429_with_retry_after_and_others_are_not() {
    let r = Rest::start_with(&["--rate-limit", "5"]);
    let other = r.world.add_instance("other");
    let demo = &r.world.demo;
    let not_a_member = member_path("demo", demo.group, NO_SUCH_ID);
    let no_such_user = format!("/v1.1/instances/demo/users/{NO_SUCH_ID}/");

    // Removals and reads of one instance draw on one budget.
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..20 {
        let (method, path) = match i % 2 {
            0 => (Method::DELETE, &not_a_member),
            _ => (Method::GET, &no_such_user),
        };
        answers.push(r.call(method, path, Some(&demo.owner.key)).await);
    }
    // Another instance, in the same second: its own budget.
    let elsewhere = member_path("other", other.group, NO_SUCH_ID);
    let mut others = Vec::new();
    for _ in 0..4 {
        others.push(r.delete(&elsewhere, Some(&other.owner.key)).await);
    }
    let elapsed = started.elapsed();

    let throttled = answers.iter().filter(|a| a.status != 404).count();
    for answer in &answers {
        if answer.status == 404 {
            answer.assert(404, NOT_FOUND, "within the rate");
            continue;
        }
        let seconds = answer.retry_after();
        assert!(seconds >= 1, "{answer:?}");
        let body = format!(
            r#"{{"detail":"Request was throttled. Expected available in {seconds} seconds."}}"#
        );
        answer.assert(429, &body, "throttled");
    }
    // 5 at once, then 5 a second: allow for the refill during a slow run.
    let refilled = (elapsed.as_secs_f64() * 5.0).ceil() as usize;
    assert!(
        answers.len() - throttled <= 5 + refilled,
        "{throttled} of 20 throttled in {elapsed:?}"
    );
    assert!(throttled >= 1, "none of 20 throttled in {elapsed:?}");
    for answer in &others {
        answer.assert(404, NOT_FOUND, "another instance");
    }
}
