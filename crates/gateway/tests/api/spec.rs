//! The SPEC table over REST: every case of `groups_testkit::spec` with a REST answer, sent to
//! one gateway and server over one fixture built once per run, each answer compared exactly
//! (status, body byte for byte, `Content-Type`) and the rows checked after each case.

use groups_testkit::spec::{self, Operation, Suite};
use groups_testkit::{Stack, spawn_stack};
use reqwest::Method;
use tokio::sync::OnceCell;

use crate::{Answer, http_client, send};

static SUITE: OnceCell<Suite<Stack>> = OnceCell::const_new();

groups_testkit::spec_tests!(run);

/// Runs the operation's REST cases and reports every one that failed.
async fn run(operation: Operation) {
    let (_turn, suite) = spec::take_turn(&SUITE, |fixture| {
        // No rate limit: the table sends hundreds of requests a second to one instance.
        spawn_stack(&fixture.world().db, &["--rate-limit", "0"])
    })
    .await;
    let http = http_client();
    let cases = spec::cases_answered(operation, |case| case.expect.rest.is_some());
    let mut failures = Vec::new();
    for case in &cases {
        let prepared = suite.fixture.prepare(case);
        let expected = prepared.expected_rest();
        let request = prepared.rest();
        let method = Method::from_bytes(request.method.as_bytes()).expect("a method");
        let mut builder = http.request(method, format!("{}{}", suite.service.url(), request.path));
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let answer = send(builder).await;
        let verdict = judge(&answer, expected.status, &expected.body)
            .and_then(|()| suite.fixture.verify(&prepared));
        if let Err(why) = verdict {
            failures.push(format!("{} ({}): {why}", case.name, request.path));
        }
    }
    spec::assert_no_failures(&failures, cases.len(), "REST", operation);
}

/// The status and the exact body; JSON whenever there is a body, none with a 204.
fn judge(answer: &Answer, status: u16, body: &str) -> Result<(), String> {
    let content_type = answer.header("content-type");
    let right_type = if body.is_empty() {
        content_type.is_none()
    } else {
        content_type == Some("application/json")
    };
    if answer.status == status && answer.body == body && right_type {
        Ok(())
    } else {
        Err(format!(
            "expected {status} {body}, got {} {} ({content_type:?})",
            answer.status, answer.body
        ))
    }
}
