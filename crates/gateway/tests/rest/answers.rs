//! What the client is answered: success, every reason and bare status, malformed ids in order,
//! path decoding, the `/v1/` alias and the key sources.

use super::*;

#[tokio::test]
async fn success_is_204_with_an_empty_body_and_forwards_the_request() {
    let h = Harness::start().await;
    let request = h.request(Method::DELETE, &member("Demo", "12", "034"));
    let answer = h.send_with(request.header("x-api-key", ACCOUNT_KEY)).await;
    answer.assert(204, "");
    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0].request;
    assert_eq!(request.instance_name, "demo");
    assert_eq!((request.group_id, request.user_id), (12, 34));
    assert!(!request.allow_missing);
    assert_eq!(seen[0].api_key.as_deref(), Some(ACCOUNT_KEY));
}

#[tokio::test]
async fn every_reason_maps_to_its_rest_answer() {
    let h = Harness::start().await;
    for (reason, status, body) in [
        (Reason::InstanceNotFound, 404, INSTANCE_NOT_FOUND),
        (Reason::ApiKeyMissing, 403, NO_PERMISSION),
        (Reason::ApiKeyInvalid, 403, NO_SUCH_KEY),
        (Reason::PermissionDenied, 403, NO_PERMISSION),
        (Reason::GroupNotFound, 404, GROUP_NOT_FOUND),
        (Reason::MembershipNotFound, 404, NOT_FOUND),
        (Reason::DatabaseUnavailable, 503, UNAVAILABLE),
        (Reason::InvalidArgument, 500, SERVER_ERROR),
    ] {
        let instance = reason.as_str().to_ascii_lowercase();
        let answer = h.delete(&member(&instance, "1", "2")).await;
        answer.assert(status, body);
        let retry_after = (reason == Reason::DatabaseUnavailable).then_some("3");
        assert_eq!(answer.header("retry-after"), retry_after, "{reason:?}");
    }
}

#[tokio::test]
async fn statuses_without_error_info_map_on_their_code() {
    let h = Harness::start().await;
    // A reason is trusted only in this service's domain.
    for (instance, status, body, retry_after) in [
        ("bare-internal", 500, SERVER_ERROR, None),
        ("bare-unavailable", 503, UNAVAILABLE, Some("1")),
        ("bare-deadline", 504, TIMED_OUT, None),
        ("foreign-domain", 500, SERVER_ERROR, None),
    ] {
        let answer = h.delete(&member(instance, "1", "2")).await;
        answer.assert(status, body);
        assert_eq!(answer.header("retry-after"), retry_after, "{instance}");
    }
}

#[tokio::test]
async fn malformed_ids_answer_in_order_without_calling_the_server() {
    let h = Harness::start().await;
    let max = "9223372036854775807";
    let too_big = "9223372036854775808";
    for (instance, group, user, body) in [
        ("demo", "abc", "xyz", GROUP_NOT_FOUND),
        ("not.valid", "0", "-1", GROUP_NOT_FOUND),
        ("demo", too_big, "1", GROUP_NOT_FOUND),
        ("demo", "%FF", "1", GROUP_NOT_FOUND),
        ("demo", "1", "0", NOT_FOUND),
        ("not.valid", "1", "1.0", NOT_FOUND),
        ("demo", max, too_big, NOT_FOUND),
        ("not.valid", max, max, INSTANCE_NOT_FOUND),
        ("%FF", "1", "2", INSTANCE_NOT_FOUND),
        ("%C3%A4", "1", "2", INSTANCE_NOT_FOUND),
        (&"a".repeat(65), "1", "2", INSTANCE_NOT_FOUND),
    ] {
        let answer = h.delete(&member(instance, group, user)).await;
        answer.assert(404, body);
    }
    assert!(h.seen().is_empty(), "the server was called: {:?}", h.seen());
}

#[tokio::test]
async fn path_segments_are_percent_decoded() {
    let h = Harness::start().await;
    h.delete(&member("de%6Do", "%31", "2"))
        .await
        .assert(204, "");
    let request = &h.seen()[0].request;
    assert_eq!(
        (request.instance_name.as_str(), request.group_id),
        ("demo", 1)
    );
}

#[tokio::test]
async fn v1_alias_and_missing_trailing_slash_are_served() {
    let h = Harness::start().await;
    for version in ["v1.1", "v1"] {
        for ending in ["/", ""] {
            let path = format!("/{version}/instances/demo/groups/1/users/2{ending}");
            h.delete(&path).await.assert(204, "");
        }
    }
    assert_eq!(h.seen().len(), 4);
}

#[tokio::test]
async fn key_sources_first_found_wins() {
    let h = Harness::start().await;
    let url = format!("{}{}", h.base, member("demo", "1", "2"));
    let token = |key: &str| ("authorization", format!("Token {key}"));
    let header = |value: &str| ("x-api-key", value.to_owned());
    // (query, headers, the key forwarded)
    #[rustfmt::skip]
    let cases = [
        // Header beats query beats Authorization.
        (format!("?api_key={OTHER_KEY}&apikey={THIRD_KEY}"), vec![header(ACCOUNT_KEY), token(THIRD_KEY)], Some(ACCOUNT_KEY)),
        (format!("?apikey={THIRD_KEY}&api_key={OTHER_KEY}"), vec![token(THIRD_KEY)], Some(OTHER_KEY)),
        (format!("?apikey={OTHER_KEY}"), vec![token(THIRD_KEY)], Some(OTHER_KEY)),
        (String::new(), vec![("authorization", format!("ApiKey {THIRD_KEY}"))], Some(THIRD_KEY)),
        // Empty values are not given: the next source answers.
        ("?api_key=&apikey=".to_owned(), vec![header(""), token(THIRD_KEY)], Some(THIRD_KEY)),
        // Not a key: forwarded as the malformed marker, never as is.
        (String::new(), vec![header("not a key")], Some("malformed")),
        ("?api_key=%FF%00".to_owned(), vec![], Some("malformed")),
        (String::new(), vec![header(&ACCOUNT_KEY.to_uppercase())], Some("malformed")),
        // Authorization needs exactly two words.
        (String::new(), vec![("authorization", format!("Token {THIRD_KEY} extra"))], None),
        ("?x=%zz&&=&;".to_owned(), vec![], None),
    ];
    let expected: Vec<_> = cases
        .iter()
        .map(|(.., key)| key.map(str::to_owned))
        .collect();
    for (query, headers, _) in cases {
        let mut request = h.http.delete(format!("{url}{query}"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        h.send_with(request).await.assert(204, "");
    }
    let forwarded: Vec<_> = h.seen().into_iter().map(|s| s.api_key).collect();
    assert_eq!(forwarded, expected);
}
