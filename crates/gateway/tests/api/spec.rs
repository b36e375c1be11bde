//! The SPEC table over REST: every case of `groups_testkit::spec` with a REST answer, sent to
//! one gateway and server over one fixture built once per run, each answer compared exactly
//! (status, body byte for byte, `Content-Type`) and the rows checked after each case.

use groups_testkit::spec::{self, Edge, Operation, Suite};
use groups_testkit::{Stack, spawn_stack};
use reqwest::Method;
use tokio::sync::OnceCell;

use crate::{http_client, send};

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
    let send = async |prepared: &spec::Prepared<'_>| {
        let (request, (status, body)) = (prepared.rest(), prepared.expected_rest());
        let method = Method::from_bytes(request.method.as_bytes()).expect("a method");
        let mut builder = http.request(method, format!("{}{}", suite.service.url(), request.path));
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        // The status and the exact body; JSON whenever there is a body, none with a 204.
        let answer = send(builder).await;
        let json = (!body.is_empty()).then_some("application/json");
        let content_type = answer.header("content-type");
        if (answer.status, &answer.body, content_type) == (status, &body, json) {
            return Ok(());
        }
        let got = format!("{} {} ({content_type:?})", answer.status, answer.body);
        Err(format!(
            "{}: expected {status} {body}, got {got}",
            request.path
        ))
    };
    suite.run(Edge::Rest, operation, send).await;
}
