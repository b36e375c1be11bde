//! Where the key travels when several are given: `X-API-KEY`, then `api_key`, then `apikey`,
//! then `Authorization`; the first found wins (each source alone is a row of the SPEC table).

use crate::{NO_SUCH_KEY, Rest, UNKNOWN_ACCOUNT_KEY, member_path, send};
use reqwest::Method;

#[tokio::test]
async fn the_key_is_read_from_header_then_query_then_authorization() {
    let r = Rest::start();
    let key = r.world.demo.owner.key.clone();
    let bad = UNKNOWN_ACCOUNT_KEY;
    let group = r.world.demo.group;

    // Precedence: header, then api_key, then apikey, then Authorization.
    let header = |value: &str| vec![("X-API-KEY", value.to_owned())];
    let token = |value: &str| vec![("Authorization", format!("Token {value}"))];
    let query = |name: &'static str, value: &str| vec![(name, value.to_owned())];
    // (case, headers, query parameters, status, body)
    #[rustfmt::skip]
    let cases = [
        ("good header + bad query", header(&key), query("api_key", bad), 204, ""),
        ("bad header + good query", header(bad), query("api_key", &key), 403, NO_SUCH_KEY),
        ("good api_key + bad apikey", vec![], [query("api_key", &key), query("apikey", bad)].concat(), 204, ""),
        ("bad api_key + good apikey", vec![], [query("apikey", &key), query("api_key", bad)].concat(), 403, NO_SUCH_KEY),
        ("good query + bad Authorization", token(bad), query("apikey", &key), 204, ""),
        ("bad query + good Authorization", token(&key), query("api_key", bad), 403, NO_SUCH_KEY),
        ("good header + bad Authorization", [header(&key), token(bad)].concat(), vec![], 204, ""),
        ("empty header + good Authorization", [header(""), token(&key)].concat(), vec![], 204, ""),
    ];
    for (i, (case, headers, query, status, body)) in cases.into_iter().enumerate() {
        let user = r.new_member(&format!("precedence-{i}"));
        let mut request = r
            .request(Method::DELETE, &member_path("demo", group, user))
            .query(&query);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        send(request).await.assert(status, body, case);
        assert_eq!(r.world.is_member(group, user), status != 204, "{case}");
    }
}
