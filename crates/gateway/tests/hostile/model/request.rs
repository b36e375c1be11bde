//! How a request is read: what the HTTP layer refuses, what the router matches, and how the
//! gateway reads ids, instance names, keys and the listing's query (SPEC.md and the README).

use serde_json::{Value, json};

use super::{READ_ALLOW, REMOVAL_ALLOW};

/// hyper refuses a request target longer than this (the `http` crate's limit) with 414.
pub(crate) const MAX_TARGET: usize = 65_534;

/// The listing's page size when the query does not say, and its largest.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 100;

/// The status with which the HTTP layer refuses a request target, if it does: httparse takes
/// visible ASCII and bytes over 0x7f; the `http` crate then allows at most 65534 bytes, the
/// origin form (or `*` alone), UTF-8, and in the path and the query the characters its tables
/// allow (the WHATWG URL sets, plus `"`, `{` and `}` in the path). A fragment is cut off
/// unchecked.
pub(crate) fn http_refusal(target: &[u8]) -> Option<u16> {
    if !target
        .iter()
        .all(|&b| (0x21..=0x7e).contains(&b) || b >= 0x80)
    {
        return Some(400);
    }
    if target.len() > MAX_TARGET {
        return Some(414);
    }
    if target == b"*" {
        return None;
    }
    if target.first() != Some(&b'/') {
        return Some(400);
    }
    let in_path = |b: u8| {
        matches!(b, 0x21 | 0x24..=0x3b | 0x3d | 0x40..=0x5f | 0x61..=0x7a | 0x7c | 0x7e)
            || matches!(b, b'"' | b'{' | b'}' | 0x80..=0xff)
    };
    let in_query = |b: u8| matches!(b, 0x21 | 0x24..=0x3b | 0x3d | 0x3f..=0x7e | 0x80..=0xff);
    let mut query = false;
    for &b in target {
        if b == b'#' {
            break;
        }
        let valid = if query {
            in_query(b)
        } else if b == b'?' {
            query = true;
            true
        } else {
            in_path(b)
        };
        if !valid {
            return Some(400);
        }
    }
    // The whole target, fragment too, must be UTF-8 (the fragment's characters are not checked).
    std::str::from_utf8(target).is_err().then_some(400)
}

/// The part of a target the router sees: up to the fragment, as text.
pub(crate) fn routed_target(target: &[u8]) -> Option<&str> {
    let end = target
        .iter()
        .position(|&b| b == b'#')
        .unwrap_or(target.len());
    std::str::from_utf8(&target[..end]).ok()
}

/// The API's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `DELETE .../groups/{group_id}/users/{user_id}/`
    RemoveFromGroup,
    /// `DELETE .../users/{user_id}/groups/{group_id}/`
    RemoveFromUser,
    /// `GET .../users/{user_id}/`
    GetUser,
    /// `GET .../groups/{group_id}/`
    GetGroup,
    /// `GET .../audit/memberships/`
    ListEvents,
}

impl Op {
    pub(crate) fn allow(self) -> &'static str {
        match self {
            Self::RemoveFromGroup | Self::RemoveFromUser => REMOVAL_ALLOW,
            _ => READ_ALLOW,
        }
    }

    pub(crate) fn serves(self, method: &str) -> bool {
        match self {
            Self::RemoveFromGroup | Self::RemoveFromUser => method == "DELETE",
            _ => method == "GET" || method == "HEAD",
        }
    }
}

/// An operation, its version prefix (`/v1.1`, `/v1`) and its variables, still percent-encoded
/// (`None`: not in this route).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Api<'a> {
    pub(crate) op: Op,
    pub(crate) version: &'a str,
    pub(crate) instance: &'a str,
    pub(crate) group: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
}

/// What the router makes of a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route<'a> {
    Api(Api<'a>),
    /// An API route with an empty segment: an unknown path.
    EmptySegment,
    /// A GET route and what it answers.
    Get(Value),
    /// The metrics page.
    Metrics,
    Unknown,
}

pub(crate) fn route(path: &str) -> Route<'_> {
    match path {
        "/healthz" => return Route::Get(json!({ "status": "ok" })),
        "/readyz" => return Route::Get(json!({ "status": "ready" })),
        "/openapi.json" => return Route::Get(openapi_document()),
        "/metrics" => return Route::Metrics,
        _ => {}
    }
    let Some((version, rest)) = ["/v1.1", "/v1"].iter().find_map(|version| {
        let rest = path.strip_prefix(version)?.strip_prefix("/instances/")?;
        Some((*version, rest))
    }) else {
        return Route::Unknown;
    };
    let mut parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop(); // the optional trailing slash
    }
    let (op, instance, group, user) = match parts.as_slice() {
        [i, "groups", g, "users", u] => (Op::RemoveFromGroup, *i, Some(*g), Some(*u)),
        [i, "users", u, "groups", g] => (Op::RemoveFromUser, *i, Some(*g), Some(*u)),
        [i, "users", u] => (Op::GetUser, *i, None, Some(*u)),
        [i, "groups", g] => (Op::GetGroup, *i, Some(*g), None),
        [i, "audit", "memberships"] => (Op::ListEvents, *i, None, None),
        _ => return Route::Unknown,
    };
    if [Some(instance), group, user].contains(&Some("")) {
        return Route::EmptySegment;
    }
    Route::Api(Api {
        op,
        version,
        instance,
        group,
        user,
    })
}

pub(crate) fn openapi_document() -> Value {
    serde_json::from_str(include_str!("../../../openapi.json")).expect("openapi.json is JSON")
}

// ---- reading paths, queries and keys ---------------------------------------------------------

/// `%XX` escapes decoded; a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let escaped = (text[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    out
}

/// A path segment's text: percent-decoded, and only if that is UTF-8.
fn decode_segment(raw: &str) -> Option<String> {
    String::from_utf8(percent_decode(raw.as_bytes())).ok()
}

/// README: ids are ASCII decimal digits only, leading zeros accepted, in 1..=2^63-1.
pub(crate) fn parse_id_text(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Past 19 digits, or all zeros (nothing left to parse), it is out of range.
    let digits = text.trim_start_matches('0');
    digits.parse::<i64>().ok().filter(|&v| v > 0)
}

/// An id in a path segment (percent-encoded).
pub(crate) fn parse_id(raw: &str) -> Option<i64> {
    parse_id_text(&decode_segment(raw)?)
}

/// SPEC.md: 1–64 characters of `a-z 0-9 - _`, case-insensitive.
pub(crate) fn parse_instance(raw: &str) -> Option<String> {
    let text = decode_segment(raw)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let valid = (1..=64).contains(&text.len()) && text.bytes().all(allowed);
    valid.then(|| text.to_ascii_lowercase())
}

fn form_decode(text: &str) -> Vec<u8> {
    percent_decode(text.replace('+', " ").as_bytes())
}

/// The last value of `name` in a query, both form-decoded (as Django's `QueryDict.get`).
fn last_query_value(query: &str, name: &[u8]) -> Option<Vec<u8>> {
    query.rsplit('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key) == name).then(|| form_decode(value))
    })
}

/// SPEC.md's key sources, first non-empty found wins: `X-API-KEY` (its first occurrence;
/// HTTP trims a value's surrounding spaces), the last `api_key`, the last `apikey` (both
/// form-decoded), then the second of exactly two words of `Authorization`.
pub(crate) fn find_key(headers: &[(String, Vec<u8>)], query: Option<&str>) -> Option<Vec<u8>> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim_ascii().to_vec())
    };
    let non_empty = |value: &Vec<u8>| !value.is_empty();
    if let Some(key) = header("x-api-key").filter(non_empty) {
        return Some(key);
    }
    if let Some(query) = query {
        for name in [&b"api_key"[..], b"apikey"] {
            if let Some(key) = last_query_value(query, name).filter(non_empty) {
                return Some(key);
            }
        }
    }
    let authorization = header("authorization")?;
    let words: Vec<&[u8]> = authorization
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        [_scheme, key] => Some(key.to_vec()),
        _ => None,
    }
}

/// The listing's query, as SPEC.md and the lead's notes read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub(crate) group: Option<i64>,
    pub(crate) user: Option<i64>,
    pub(crate) page_size: u32,
    pub(crate) token: Option<String>,
}

/// `group`, `user` (ids), `page_size` (1..=100, decimal digits), `page_token`: an empty value
/// is not given, any other that cannot be one (or is not UTF-8 once decoded) is `None`.
pub(crate) fn list_query(query: Option<&str>) -> Option<ListQuery> {
    let value = |name: &str| -> Option<Option<String>> {
        let Some(bytes) = query.and_then(|q| last_query_value(q, name.as_bytes())) else {
            return Some(None);
        };
        let text = String::from_utf8(bytes).ok()?;
        Some((!text.is_empty()).then_some(text))
    };
    let id = |name| -> Option<Option<i64>> {
        match value(name)? {
            None => Some(None),
            Some(text) => parse_id_text(&text).map(Some),
        }
    };
    let page_size = match value("page_size")? {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => {
            let digits = text.trim_start_matches('0');
            let all_digits = text.bytes().all(|b| b.is_ascii_digit());
            let size = (all_digits && digits.len() <= 3).then(|| digits.parse::<u32>().ok());
            size.flatten().filter(|s| (1..=MAX_PAGE_SIZE).contains(s))?
        }
    };
    Some(ListQuery {
        group: id("group")?,
        user: id("user")?,
        page_size,
        token: value("page_token")?,
    })
}

#[test]
fn the_model_reads_paths_ids_names_keys_and_queries_as_the_readme_says() {
    let api = |path| match route(path) {
        Route::Api(a) => (a.op, a.version, a.instance, a.group, a.user),
        other => panic!("{path}: {other:?}"),
    };
    #[rustfmt::skip]
    let routes = [
        ("/v1/instances/a/groups/1/users/2", Op::RemoveFromGroup, Some("1"), Some("2")),
        ("/v1/instances/a/users/2/groups/1/", Op::RemoveFromUser, Some("1"), Some("2")),
        ("/v1/instances/a/users/2", Op::GetUser, None, Some("2")),
        ("/v1/instances/a/groups/1/", Op::GetGroup, Some("1"), None),
        ("/v1/instances/a/audit/memberships", Op::ListEvents, None, None),
    ];
    for (path, op, group, user) in routes {
        assert_eq!(api(path), (op, "/v1", "a", group, user), "{path}");
    }
    let empty_segment = route("/v1.1/instances//groups/1/users/2/");
    assert_eq!(empty_segment, Route::EmptySegment);
    for path in [
        "/v1.1/instances/a/groups/1/users/2//",
        "/v1.1/instances/a/audit/",
    ] {
        assert_eq!(route(path), Route::Unknown, "{path}");
    }
    assert_eq!(parse_id("007"), Some(7));
    assert_eq!(parse_id("%31"), Some(1));
    assert_eq!(parse_id("9223372036854775808"), None);
    assert_eq!(parse_id("0"), None);
    assert_eq!(parse_instance("De%4Do").as_deref(), Some("demo"));
    assert_eq!(parse_instance("%FF"), None);
    let headers = |pairs: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect()
    };
    let h = headers(&[("X-Api-Key", b"  "), ("Authorization", b"Token  a")]);
    let found: [(&str, &[u8]); 3] = [
        ("api_key=&apikey=b+c", b"b c"),
        ("apikey=&api_key", b"a"),
        ("api_key=x&api%5Fkey=y", b"y"),
    ];
    for (query, key) in found {
        assert_eq!(find_key(&h, Some(query)).as_deref(), Some(key), "{query}");
    }
    let h = headers(&[("authorization", b"a b c")]);
    assert_eq!(find_key(&h, None), None);
    let q = "group=03&user=&page_size=0007&page_token=abc&api_key=k";
    let q = list_query(Some(q)).unwrap();
    assert_eq!(
        (q.group, q.user, q.page_size, q.token.as_deref()),
        (Some(3), None, 7, Some("abc"))
    );
    assert_eq!(list_query(None).map(|q| q.page_size), Some(50));
    #[rustfmt::skip]
    let bad_queries = [
        "page_size=0", "page_size=101", "page_size=+5", "page_size=%205", "gr%6Fup=x", "user=-1",
        "page_token=%FF",
    ];
    for bad in bad_queries {
        assert_eq!(list_query(Some(bad)), None, "{bad}");
    }
}
