//! A suite that tries to break the REST API: property tests throw arbitrary paths, ids, instance
//! names, keys, headers, query strings, methods and raw bytes at the real gateway (rate limit
//! off) in front of the real server and PostgreSQL, and compare every answer with a model of
//! SPEC.md's routes and order of checks; oversized requests check what the HTTP layer answers
//! past its limits (HTTP/1.1 and HTTP/2).
//!
//! Requests go over raw TCP so the bytes on the wire are exactly the generated ones: no client
//! resolves `..`, re-encodes a path or refuses a header. One stack serves the whole file (it is
//! started once, by whichever test comes first). No key used here may remove a membership that
//! exists, so after every case the rows must be exactly as they were.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use groups_testkit::{Role, RowCounts, Stack, Tenant, World, spawn_stack};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// Cases per property.
const CASES: u32 = 256;

const GROUP_NOT_FOUND: &str = "Group was not found.";
const NOT_FOUND: &str = "Not found";
const INSTANCE_NOT_FOUND: &str = "Instance was not found.";
const NO_PERMISSION: &str = "You do not have permission to perform this action.";
const NO_SUCH_KEY: &str = "No such API Key.";

/// The member route's methods, and the health routes'.
const MEMBER_ALLOW: &str = "DELETE, OPTIONS";
const GET_ALLOW: &str = "GET, HEAD";

/// hyper refuses a request target longer than this (the `http` crate's limit) with 414.
const MAX_TARGET: usize = 65_534;

/// A well-formed account key nobody holds.
const UNKNOWN_KEY: &str = "0123456789abcdef0123456789abcdef01234560";

/// Who a provisioned key belongs to; none may remove a membership that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Principal {
    /// The owner of "empty", an instance with a group and a user but no membership.
    EmptyOwner,
    /// A read-role admin of "demo".
    DemoReader,
    /// An API key of "demo" with `ignore_acl` (API keys may never remove members).
    DemoApiKey,
    /// A revoked API key of "demo".
    Revoked,
    /// A deactivated admin with role `full` on "demo".
    Inactive,
}

/// The stack every test of this file shares, and what the model needs to know about its rows.
struct Live {
    world: World,
    stack: Stack,
    /// The instance "empty": its only membership was removed at start.
    empty: Tenant,
    keys: Vec<(String, Principal)>,
    rows: RowCounts,
}

static LIVE: LazyLock<Live> = LazyLock::new(Live::start);

impl Live {
    fn start() -> Self {
        let world = World::new();
        let empty = world.add_instance("empty");
        let keys = vec![
            (empty.owner.key.clone(), Principal::EmptyOwner),
            (
                world.add_admin("demo", Some(Role::Read)).key,
                Principal::DemoReader,
            ),
            (world.add_api_key("demo", true).key, Principal::DemoApiKey),
            (
                world.add_revoked_api_key("demo", true).key,
                Principal::Revoked,
            ),
            (
                world.add_inactive_admin("demo", Some(Role::Full)).key,
                Principal::Inactive,
            ),
        ];
        let stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
        let addr = stack.gateway.addr();
        wait_until_ready(addr);
        // Empty "empty" through the API itself: its owner may then reach every check of SPEC.md
        // on it, down to "not a member", without anything left to remove.
        let removal = Request::new(
            "DELETE",
            format!(
                "/v1.1/instances/empty/groups/{}/users/{}/",
                empty.group, empty.user
            ),
        )
        .header("X-API-KEY", empty.owner.key.as_bytes());
        let reply = exchange(addr, &removal.to_bytes(), false).expect("an answer");
        assert_eq!(reply.status, 204, "emptying \"empty\": {reply:?}");
        Self {
            rows: world.counts(),
            world,
            stack,
            empty,
            keys,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.stack.gateway.addr()
    }

    fn send(&self, request: &Request) -> Result<Reply, String> {
        exchange(self.addr(), &request.to_bytes(), request.method == "HEAD")
    }

    fn principal(&self, key: &[u8]) -> Option<Principal> {
        self.keys
            .iter()
            .find(|(known, _)| known.as_bytes() == key)
            .map(|&(_, principal)| principal)
    }

    /// The ids worth aiming at: the groups and users that exist, in either instance.
    fn known_ids(&self) -> Vec<String> {
        let demo = &self.world.demo;
        [demo.group, self.empty.group]
            .iter()
            .map(ToString::to_string)
            .chain([demo.user, self.empty.user].iter().map(ToString::to_string))
            .collect()
    }

    /// Sends `request`, then checks the answer against the one SPEC.md gives and that no row
    /// changed.
    fn check(&self, request: &Request, expected: Expected) -> Result<(), TestCaseError> {
        let reply = self
            .send(request)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{request:?}")))?;
        if !expected.matches(&reply) {
            return Err(TestCaseError::fail(format!(
                "expected {expected:?}\n     got {reply:?}\n     for {request:?}"
            )));
        }
        let rows = self.world.counts();
        if rows != self.rows {
            return Err(TestCaseError::fail(format!(
                "rows changed from {:?} to {rows:?} by {request:?}",
                self.rows
            )));
        }
        Ok(())
    }

    /// SPEC.md's answer to `request`, as a client sees it.
    fn expected(&self, request: &Request) -> Expected {
        if let Some(status) = http_refusal(&request.target) {
            return Expected::Refused(status);
        }
        let Some(target) = routed_target(&request.target) else {
            unreachable!("a target the HTTP layer takes is UTF-8 up to its fragment")
        };
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let method = request.method.as_str();
        match route(path) {
            Route::Unknown | Route::EmptySegment => Expected::detail(404, NOT_FOUND),
            Route::Get(body) => match method {
                "GET" | "HEAD" => Expected::Json(200, body),
                _ => Expected::not_allowed(method, GET_ALLOW),
            },
            Route::Metrics => match method {
                "GET" | "HEAD" => Expected::Metrics,
                _ => Expected::not_allowed(method, GET_ALLOW),
            },
            Route::Member(segments) => match method {
                "DELETE" => self.removal(segments, &request.headers, query),
                "OPTIONS" => Expected::Empty(204, Some(MEMBER_ALLOW)),
                _ => Expected::not_allowed(method, MEMBER_ALLOW),
            },
        }
    }

    /// SPEC.md's order of checks for a DELETE on the member route.
    fn removal(
        &self,
        [instance, group, user]: [&str; 3],
        headers: &[(String, Vec<u8>)],
        query: Option<&str>,
    ) -> Expected {
        let Some(group) = parse_id(group) else {
            return Expected::detail(404, GROUP_NOT_FOUND);
        };
        if parse_id(user).is_none() {
            return Expected::detail(404, NOT_FOUND);
        }
        let Some(instance) = parse_instance(instance).filter(|i| i == "demo" || i == "empty")
        else {
            return Expected::detail(404, INSTANCE_NOT_FOUND);
        };
        let Some(key) = find_key(headers, query) else {
            return Expected::detail(403, NO_PERMISSION);
        };
        let on_empty = instance == "empty";
        match self.principal(&key) {
            None | Some(Principal::Revoked | Principal::Inactive) => {
                Expected::detail(403, NO_SUCH_KEY)
            }
            Some(Principal::DemoApiKey) if on_empty => Expected::detail(403, NO_SUCH_KEY),
            Some(Principal::EmptyOwner) if on_empty => {
                if group == self.empty.group.get() {
                    // Its one user is no member any more; nobody else is either.
                    Expected::detail(404, NOT_FOUND)
                } else {
                    Expected::detail(404, GROUP_NOT_FOUND)
                }
            }
            Some(_) => Expected::detail(403, NO_PERMISSION),
        }
    }
}

/// `/readyz` answers 200 once the server has seen its database answer.
fn wait_until_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = exchange(addr, &Request::new("GET", "/readyz").to_bytes(), false);
        if reply.as_ref().is_ok_and(|r| r.status == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {reply:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- raw HTTP/1.1 ----------------------------------------------------------------------------

/// One request, as the bytes that go on the wire.
#[derive(Clone)]
struct Request {
    method: String,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    fn new(method: &str, target: impl Into<Vec<u8>>) -> Self {
        Self {
            method: method.to_owned(),
            target: target.into(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.target.len() + 256);
        bytes.extend_from_slice(self.method.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(&self.target);
        bytes.extend_from_slice(b" HTTP/1.1\r\nHost: hostile.test\r\nConnection: close\r\n");
        for (name, value) in &self.headers {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, shown(&self.target))?;
        for (name, value) in &self.headers {
            write!(f, " | {name}: {}", shown(value))?;
        }
        Ok(())
    }
}

/// Bytes as escaped ASCII, the long ones cut short.
fn shown(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 300 {
        format!("{}…({} bytes)", &text[..300], bytes.len())
    } else {
        text
    }
}

/// What came back.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The answer to a HEAD: the headers of a GET's, no body.
    head_only: bool,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {}",
            self.status,
            self.headers,
            shown(&self.body)
        )
    }
}

/// Writes `request` on a new connection and reads the whole answer (the request says
/// `Connection: close`). A server that stops reading and answers early is fine: the answer is
/// read after a failed write. No answer at all is an error.
fn exchange(addr: SocketAddr, request: &[u8], head_only: bool) -> Result<Reply, String> {
    let timeout = Duration::from_secs(30);
    let mut tcp =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    tcp.set_write_timeout(Some(timeout)).ok();
    let written = tcp.write_all(request);
    let mut raw = Vec::new();
    let read = tcp.read_to_end(&mut raw);
    let broken = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        )
    };
    // A reset once some of the answer arrived is how a server that stopped reading closes.
    if let Err(e) = &read
        && (!broken(e) || raw.is_empty())
    {
        return Err(format!(
            "read: {e} after {} bytes (write: {written:?})",
            raw.len()
        ));
    }
    parse_reply(&raw, head_only).ok_or_else(|| {
        format!(
            "no complete answer ({} bytes: {}; write: {written:?})",
            raw.len(),
            shown(&raw)
        )
    })
}

fn parse_reply(raw: &[u8], head_only: bool) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.to_owned(), value.trim().to_owned()))
        })
        .collect::<Option<_>>()?;
    let mut body = raw[end + 4..].to_vec();
    if head_only {
        body.clear();
    }
    let reply = Reply {
        status,
        headers,
        body,
        head_only,
    };
    // A body cut short is no answer either.
    let length = reply.header("content-length").map(str::parse::<usize>);
    match length {
        Some(Ok(n)) if !head_only && n != reply.body.len() => None,
        Some(Err(_)) => None,
        _ => Some(reply),
    }
}

// ---- the model -------------------------------------------------------------------------------

/// An answer SPEC.md allows.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// JSON `{"detail": ...}` (`Allow` on 405).
    Detail(u16, String, Option<&'static str>),
    /// No body (`Allow` on a plain OPTIONS).
    Empty(u16, Option<&'static str>),
    /// A JSON document.
    Json(u16, Value),
    /// The metrics page: Prometheus text.
    Metrics,
    /// Refused by the HTTP layer before routing: an empty body.
    Refused(u16),
}

impl Expected {
    fn detail(status: u16, detail: &str) -> Self {
        Self::Detail(status, detail.to_owned(), None)
    }

    fn not_allowed(method: &str, allow: &'static str) -> Self {
        Self::Detail(
            405,
            format!("Method \"{method}\" not allowed."),
            Some(allow),
        )
    }

    fn matches(&self, reply: &Reply) -> bool {
        let json_body = |expected: &Value| {
            reply.header("content-type") == Some("application/json")
                && (reply.head_only
                    || serde_json::from_slice::<Value>(&reply.body).ok().as_ref() == Some(expected))
        };
        match self {
            Self::Detail(status, detail, allow) => {
                reply.status == *status
                    && reply.header("allow") == *allow
                    && json_body(&json!({ "detail": detail }))
            }
            Self::Empty(status, allow) => {
                reply.status == *status && reply.header("allow") == *allow && reply.body.is_empty()
            }
            Self::Json(status, value) => reply.status == *status && json_body(value),
            Self::Metrics => {
                let text = reply.header("content-type").unwrap_or_default();
                reply.status == 200
                    && text.starts_with("text/plain")
                    && (reply.head_only || !reply.body.is_empty())
            }
            Self::Refused(status) => reply.status == *status && reply.body.is_empty(),
        }
    }
}

/// The status with which the HTTP layer refuses a request target, if it does: httparse takes
/// visible ASCII and bytes over 0x7f; the `http` crate then allows at most 65534 bytes, the
/// origin form (or `*` alone), UTF-8, and in the path and the query the characters its tables
/// allow (the WHATWG URL sets, plus `"`, `{` and `}` in the path). A fragment is cut off
/// unchecked.
fn http_refusal(target: &[u8]) -> Option<u16> {
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
fn routed_target(target: &[u8]) -> Option<&str> {
    let end = target
        .iter()
        .position(|&b| b == b'#')
        .unwrap_or(target.len());
    std::str::from_utf8(&target[..end]).ok()
}

/// What the router makes of a path.
enum Route<'a> {
    /// The member route: instance, group id and user id, still percent-encoded.
    Member([&'a str; 3]),
    /// The member route with an empty segment: an unknown path.
    EmptySegment,
    /// A GET route and what it answers.
    Get(Value),
    /// The metrics page.
    Metrics,
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/healthz" => return Route::Get(json!({ "status": "ok" })),
        "/readyz" => return Route::Get(json!({ "status": "ready" })),
        "/openapi.json" => return Route::Get(openapi_document()),
        "/metrics" => return Route::Metrics,
        _ => {}
    }
    let Some(rest) = ["/v1.1/instances/", "/v1/instances/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
    else {
        return Route::Unknown;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let segments = match parts.as_slice() {
        [instance, "groups", group, "users", user]
        | [instance, "groups", group, "users", user, ""] => [*instance, *group, *user],
        _ => return Route::Unknown,
    };
    if segments.iter().any(|s| s.is_empty()) {
        Route::EmptySegment
    } else {
        Route::Member(segments)
    }
}

fn openapi_document() -> Value {
    serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is JSON")
}

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
fn parse_id(raw: &str) -> Option<i64> {
    let text = decode_segment(raw)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    let value = if digits.len() > 19 {
        None
    } else {
        digits.parse::<i64>().ok()
    };
    value.filter(|&v| v > 0)
}

/// SPEC.md: 1–64 characters of `a-z 0-9 - _`, case-insensitive.
fn parse_instance(raw: &str) -> Option<String> {
    let text = decode_segment(raw)?;
    let valid = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| text.to_ascii_lowercase())
}

/// SPEC.md's key sources, first non-empty found wins: `X-API-KEY` (its first occurrence;
/// HTTP trims a value's surrounding spaces), the last `api_key`, the last `apikey` (both
/// form-decoded), then the second of exactly two words of `Authorization`.
fn find_key(headers: &[(String, Vec<u8>)], query: Option<&str>) -> Option<Vec<u8>> {
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
        let last = |name: &[u8]| {
            query.rsplit('&').find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(key) == name).then(|| form_decode(value))
            })
        };
        if let Some(key) = last(b"api_key").filter(non_empty) {
            return Some(key);
        }
        if let Some(key) = last(b"apikey").filter(non_empty) {
            return Some(key);
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

fn form_decode(text: &str) -> Vec<u8> {
    percent_decode(text.replace('+', " ").as_bytes())
}

// ---- generators ------------------------------------------------------------------------------

fn escape(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Text allowed unescaped in a path segment (RFC 3986 `pchar` less `%`).
const PCHARS: &str = "[A-Za-z0-9._~!$&'()*+,;=:@-]{1,8}";

/// Escapes that are broken, decode to something that is not UTF-8, or mean trouble once decoded.
const ODD_ESCAPES: &[&str] = &[
    "%",
    "%z",
    "%zz",
    "%G0",
    "%F",
    "%%",
    "%%41",
    "%FF",
    "%FE%FF",
    "%C3%28",
    "%C0%AF",
    "%ED%A0%80",
    "%F4%90%80%80",
    "%00",
    "%2F",
    "%2f",
    "%5C",
    "%2e%2e",
    "%2E",
    "%EF%BB%BF",
    "%D9%A1",
    "%E2%80%AE",
    "%0D%0A",
    "%20",
];

/// Numbers that overflow, are signed, or are digits in another form.
const ODD_NUMBERS: &[&str] = &[
    "0",
    "00",
    "-0",
    "-1",
    "+1",
    "1e3",
    "0x1",
    "1.0",
    "1_000",
    "9223372036854775807",
    "09223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "0000000000000000000000000000000000000001",
];

const WORDS: &[&str] = &[
    "..",
    ".",
    "demo",
    "DEMO",
    "empty",
    "EmPtY",
    "nosuch",
    "-",
    "_",
    "null",
    "undefined",
    "NaN",
];

fn number() -> BoxedStrategy<String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u128>().prop_map(|n| n.to_string()),
        (0usize..30, any::<u32>()).prop_map(|(zeros, n)| format!("{}{n}", "0".repeat(zeros))),
        prop::sample::select(ODD_NUMBERS).prop_map(str::to_owned),
    ]
    .boxed()
}

/// A piece of a path segment, already encoded for the wire.
fn piece() -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::string::string_regex(PCHARS).expect("a valid regex"),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(b, upper)| escape(&[b], upper)),
        1 => (any::<char>(), any::<bool>())
            .prop_map(|(c, upper)| escape(c.encode_utf8(&mut [0; 4]).as_bytes(), upper)),
        2 => prop::sample::select(ODD_ESCAPES).prop_map(str::to_owned),
        2 => number(),
        1 => prop::sample::select(WORDS).prop_map(str::to_owned),
        // Huge: a few together may pass the HTTP layer's 64 KiB limit on the request target.
        1 => (prop::sample::select(&["a", "9", "0", "%41", "%FF"][..]), 1usize..6_000)
            .prop_map(|(s, n)| s.repeat(n)),
    ]
    .boxed()
}

/// A path segment: empty now and then, otherwise a few pieces.
fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        1 => Just(String::new()),
        12 => prop::collection::vec(piece(), 1..4).prop_map(|pieces| pieces.concat()),
    ]
    .boxed()
}

fn instance_segment() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(&["demo", "empty", "DEMO", "Empty", "%64emo", "d%45mo", "nosuch"][..])
            .prop_map(str::to_owned),
        1 => "[a-zA-Z0-9_-]{60,70}",
        4 => segment(),
    ]
    .boxed()
}

fn id_segment(known: Vec<String>) -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(known.clone()),
        1 => prop::sample::select(known).prop_map(|id| format!("000{id}")),
        2 => (1..=i64::MAX).prop_map(|n| n.to_string()),
        4 => segment(),
    ]
    .boxed()
}

fn member_target(live: &Live) -> BoxedStrategy<String> {
    let version = prop_oneof![
        6 => prop::sample::select(&["v1.1", "v1"][..]),
        1 => prop::sample::select(&["V1.1", "v1.0", "v2", "v1.1.", "", "..", "v1%2E1"][..]),
    ];
    (
        version,
        instance_segment(),
        id_segment(live.known_ids()),
        id_segment(live.known_ids()),
        any::<bool>(),
    )
        .prop_map(|(version, instance, group, user, slash)| {
            let slash = if slash { "/" } else { "" };
            format!("/{version}/instances/{instance}/groups/{group}/users/{user}{slash}")
        })
        .boxed()
}

/// Header value bytes a client can send: visible ASCII, spaces, tabs and obs-text.
fn header_value() -> BoxedStrategy<Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x21u8..=0x7e,
        1 => Just(b' '),
        1 => Just(b'\t'),
        2 => 0x80u8..=0xff,
    ];
    prop::collection::vec(byte, 0..60).boxed()
}

/// A key as text: a provisioned one, a well-formed unknown one, or any bytes.
fn key_text(live: &Live) -> BoxedStrategy<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = live
        .keys
        .iter()
        .map(|(k, _)| k.clone().into_bytes())
        .collect();
    keys.push(UNKNOWN_KEY.as_bytes().to_vec());
    let padded =
        prop::sample::select(keys.clone()).prop_map(|key| [b" ", &key[..], b"\t"].concat());
    prop_oneof![
        4 => prop::sample::select(keys),
        1 => padded,
        2 => header_value(),
        1 => "[0-9a-fA-F]{39,41}".prop_map(String::into_bytes),
    ]
    .boxed()
}

/// A header name in any letter case.
fn any_case(name: &'static str) -> BoxedStrategy<String> {
    prop::collection::vec(any::<bool>(), name.len())
        .prop_map(move |upper| {
            name.chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect()
        })
        .boxed()
}

/// Where a key goes: headers to add and query pairs.
#[derive(Debug, Clone)]
struct KeyPlacement {
    headers: Vec<(String, Vec<u8>)>,
    query: Vec<String>,
}

/// Up to three keys, each in one of the four places, or none.
fn key_placement(live: &Live) -> BoxedStrategy<KeyPlacement> {
    let one = prop_oneof![
        (any_case("x-api-key"), key_text(live)).prop_map(|(name, key)| (Some((name, key)), None)),
        (any_case("authorization"), "[A-Za-z]{0,8}", key_text(live)).prop_map(
            |(name, scheme, key)| (Some((name, [scheme.as_bytes(), b" ", &key].concat())), None)
        ),
        (
            prop::sample::select(&["api_key", "apikey", "api%5Fkey", "API_KEY"][..]),
            key_text(live)
        )
            .prop_map(|(name, key)| (None, Some(format!("{name}={}", escape(&key, true))))),
        (
            prop::sample::select(&["api_key", "apikey"][..]),
            "[a-f0-9+%]{0,41}"
        )
            .prop_map(|(name, raw)| (None, Some(format!("{name}={raw}")))),
    ];
    prop::collection::vec(one, 0..4)
        .prop_map(|places| {
            let mut placement = KeyPlacement {
                headers: Vec::new(),
                query: Vec::new(),
            };
            for (header, pair) in places {
                placement.headers.extend(header);
                placement.query.extend(pair);
            }
            placement
        })
        .boxed()
}

fn with_key(target: String, placement: KeyPlacement, method: &str) -> Request {
    let target = if placement.query.is_empty() {
        target
    } else {
        format!("{target}?{}", placement.query.join("&"))
    };
    let mut request = Request::new(method, target);
    request.headers = placement.headers;
    request
}

/// Runs `property` on `CASES` generated values; panics with the smallest failing one.
fn check_property<S>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let ran = AtomicU32::new(0);
    let started = Instant::now();
    let outcome = TestRunner::new(config).run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        property(value)
    });
    if let Err(failure) = outcome {
        panic!("{name}: {failure}");
    }
    eprintln!(
        "{name}: {} cases passed in {:.1?}",
        ran.load(Ordering::Relaxed),
        started.elapsed()
    );
}

// ---- properties ------------------------------------------------------------------------------

#[test]
fn hostile_member_paths_get_only_spec_answers() {
    let live = &*LIVE;
    let strategy = (member_target(live), key_placement(live));
    check_property("member paths", strategy, |(target, placement)| {
        let request = with_key(target, placement, "DELETE");
        live.check(&request, live.expected(&request))
    });
}

#[test]
fn instance_names_of_any_text_get_only_spec_answers() {
    let live = &*LIVE;
    let name = prop_oneof![
        any::<String>().prop_map(|s| escape(s.as_bytes(), true)),
        "\\PC{1,70}".prop_map(|s| s.replace(['/', '?', '#', '%'], "")),
        prop::collection::vec(any::<u8>(), 1..70).prop_map(|b| escape(&b, false)),
        "[a-zA-Z0-9_-]{0,70}",
        // "demo" and "empty" in any letter case, each letter escaped or not.
        (
            prop::sample::select(&["demo", "empty"][..]),
            prop::collection::vec(0u8..4, 5)
        )
            .prop_map(|(name, how)| {
                name.chars()
                    .zip(how)
                    .map(|(c, how)| match how {
                        0 => c.to_string(),
                        1 => c.to_ascii_uppercase().to_string(),
                        2 => format!("%{:02X}", c as u8),
                        _ => format!("%{:02x}", c.to_ascii_uppercase() as u8),
                    })
                    .collect()
            }),
    ];
    let demo_owner = live.world.demo.owner.key.clone();
    let key = prop::sample::select(vec![live.empty.owner.key.clone(), demo_owner.clone()]);
    let (group, user) = (live.empty.group, live.empty.user);
    check_property("instance names", (name, key), |(name, key)| {
        let target = format!("/v1.1/instances/{name}/groups/{group}/users/{user}/");
        let request = Request::new("DELETE", target).header("X-API-KEY", key.as_bytes());
        // "demo"'s owner, kept out of the model's keys, may remove members of "demo"; the ids
        // point into "empty" (where no membership is left), so it finds no such group there.
        let by_demo_owner = key == demo_owner;
        let expected = match parse_instance(&name).as_deref() {
            Some("demo") if by_demo_owner => Expected::detail(404, GROUP_NOT_FOUND),
            Some("empty") if by_demo_owner => Expected::detail(403, NO_PERMISSION),
            _ => live.expected(&request),
        };
        // Raw text a URI may not hold is refused before routing.
        match http_refusal(&request.target) {
            Some(status) => live.check(&request, Expected::Refused(status)),
            None => live.check(&request, expected),
        }
    });
}

#[test]
fn keys_headers_and_queries_of_any_shape_get_only_spec_answers() {
    let live = &*LIVE;
    let known = live.known_ids();
    let target = (
        prop::sample::select(&["demo", "empty", "empty", "Demo", "EMPTY", "nosuch"][..]),
        prop::sample::select(known.clone()),
        prop::sample::select(known),
    )
        .prop_map(|(i, g, u)| format!("/v1.1/instances/{i}/groups/{g}/users/{u}/"));
    let junk_pair = prop_oneof![
        "[a-z_%+=&]{0,12}",
        ("[a-z_]{1,8}", header_value()).prop_map(|(k, v)| format!("{k}={}", escape(&v, true))),
    ];
    let junk_header = ("x-fuzz-[a-z0-9-]{1,10}", header_value());
    let strategy = (
        target,
        key_placement(live),
        prop::collection::vec(junk_pair, 0..4),
        prop::collection::vec(junk_header, 0..6),
    );
    check_property(
        "keys, headers and queries",
        strategy,
        |(target, placement, junk, extra)| {
            let mut placement = placement;
            placement.query.extend(junk);
            placement.headers.extend(extra);
            let request = with_key(target, placement, "DELETE");
            live.check(&request, live.expected(&request))
        },
    );
}

#[test]
fn any_method_on_any_route_gets_only_spec_answers() {
    let live = &*LIVE;
    let method = prop_oneof![
        3 => prop::sample::select(
            &[
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY",
                "delete", "Delete", "PROPFIND", "MKCOL",
            ][..]
        )
        .prop_map(str::to_owned),
        1 => "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}".prop_filter("CONNECT has its own target form", |m| {
            m != "CONNECT"
        }),
    ];
    let target = prop_oneof![
        3 => member_target(live),
        3 => prop::sample::select(
            &[
                "/healthz", "/readyz", "/openapi.json", "/metrics", "/", "/healthz/", "/HEALTHZ",
                "/v1.1",
                "/v1.1/", "/v1.1/instances/demo/groups/1/users", "/v1.1/instances/demo/groups/1/",
                "/v1.1/instances/demo/groups/1/users/1//", "/v1.1//instances/demo/groups/1/users/1/",
                "/v1.1/instances/demo/groups/1/users/1/?", "/v1.1/instances/demo/groups/1/users/1/extra",
                "*",
            ][..]
        )
        .prop_map(str::to_owned),
        1 => prop::collection::vec(segment(), 1..5).prop_map(|s| format!("/{}", s.join("/"))),
    ];
    let strategy = (method, target, key_placement(live));
    check_property("methods", strategy, |(method, target, placement)| {
        let request = with_key(target, placement, &method);
        live.check(&request, live.expected(&request))
    });
}

#[test]
fn raw_bytes_in_the_request_target_are_refused_or_answered_as_spec_says() {
    let live = &*LIVE;
    let prefix = prop::sample::select(
        &[
            "/",
            "/v1.1/instances/",
            "/v1.1/instances/demo/groups/",
            "/v1.1/instances/demo/groups/1/users/",
        ][..],
    );
    let byte = prop_oneof![
        40 => prop::sample::select(
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/?"
                .to_vec()
        ),
        4 => prop::sample::select(b"\"{}<>`^|[]\\#".to_vec()),
        2 => 0x80u8..=0xff,
        1 => 0u8..=0x1f,
        1 => Just(0x7fu8),
    ]
    .prop_filter("request-line framing", |b| {
        !matches!(b, b' ' | b'\r' | b'\n')
    });
    let strategy = (
        prefix,
        prop::collection::vec(byte, 0..40),
        key_placement(live),
    );
    check_property("raw targets", strategy, |(prefix, bytes, placement)| {
        let mut request = with_key(String::new(), placement, "DELETE");
        let query = std::mem::take(&mut request.target);
        request.target = [prefix.as_bytes(), &bytes, &query].concat();
        live.check(&request, live.expected(&request))
    });
}

// ---- oversized input -------------------------------------------------------------------------

/// A path to the "empty" instance's group with `user` as the user segment.
fn empty_member_path(user: &str) -> String {
    format!(
        "/v1.1/instances/empty/groups/{}/users/{user}/",
        LIVE.empty.group
    )
}

/// Sends `request`, expects `expected`, and that the gateway still serves afterwards.
#[track_caller]
fn expect_and_still_serving(request: &Request, expected: &Expected) {
    let live = &*LIVE;
    let reply = live
        .send(request)
        .unwrap_or_else(|e| panic!("{e}\n{request:?}"));
    assert!(
        expected.matches(&reply),
        "expected {expected:?}, got {reply:?}"
    );
    assert_eq!(live.world.counts(), live.rows);
    let health = live
        .send(&Request::new("GET", "/healthz"))
        .expect("still serving");
    assert_eq!(health.status, 200, "{health:?}");
}

#[test]
fn a_path_over_64_kib_is_414_not_a_dropped_connection() {
    let path = empty_member_path(&"1".repeat(100_000));
    expect_and_still_serving(&Request::new("DELETE", path), &Expected::Refused(414));
    // Just under the limit, the route answers as usual.
    let path = empty_member_path(&"1".repeat(MAX_TARGET - empty_member_path("").len()));
    let request = Request::new("DELETE", path).header("X-API-KEY", UNKNOWN_KEY.as_bytes());
    assert_eq!(request.target.len(), MAX_TARGET);
    expect_and_still_serving(&request, &Expected::detail(404, NOT_FOUND));
}

#[test]
fn a_query_over_64_kib_is_414_and_one_over_400_kib_is_431() {
    let path = empty_member_path("1");
    let query = |n: usize| format!("{path}?api_key={}", "k".repeat(n));
    expect_and_still_serving(
        &Request::new("DELETE", query(100_000)),
        &Expected::Refused(414),
    );
    expect_and_still_serving(
        &Request::new("DELETE", query(1 << 20)),
        &Expected::Refused(431),
    );
}

#[test]
fn a_1_mib_header_is_431_and_a_300_kib_one_is_read() {
    let path = empty_member_path("1");
    let huge = Request::new("DELETE", path.clone()).header("X-API-KEY", &vec![b'k'; 1 << 20]);
    expect_and_still_serving(&huge, &Expected::Refused(431));
    // Below the HTTP layer's limit, the gateway reads it: as a key, it is a malformed one.
    let large = Request::new("DELETE", path).header("X-API-KEY", &vec![b'k'; 300 << 10]);
    expect_and_still_serving(&large, &Expected::detail(403, NO_SUCH_KEY));
}

#[test]
fn more_than_100_header_fields_are_431() {
    let path = empty_member_path("1");
    let with_fields = |n: usize| {
        (0..n).fold(Request::new("DELETE", path.clone()), |request, i| {
            request.header(&format!("x-fuzz-{i}"), b"v")
        })
    };
    // Host and Connection count too: 98 more make 100.
    expect_and_still_serving(&with_fields(98), &Expected::detail(403, NO_PERMISSION));
    expect_and_still_serving(&with_fields(99), &Expected::Refused(431));
    expect_and_still_serving(&with_fields(200), &Expected::Refused(431));
}

#[test]
fn a_large_body_on_a_delete_is_ignored() {
    let live = &*LIVE;
    let path = empty_member_path("1");
    let mut bytes = Request::new("DELETE", path)
        .header("Content-Length", (8u32 << 20).to_string().as_bytes())
        .to_bytes();
    bytes.extend(std::iter::repeat_n(b'x', 8 << 20));
    let reply = exchange(live.addr(), &bytes, false).expect("an answer before the body is read");
    assert!(
        Expected::detail(403, NO_PERMISSION).matches(&reply),
        "{reply:?}"
    );
    assert_eq!(live.world.counts(), live.rows);
}

/// Over HTTP/2 (cleartext, prior knowledge), the gateway's header list limit is hyper's 16 KiB.
#[tokio::test]
async fn oversized_http2_headers_are_431_or_a_refused_stream_not_a_server_error() {
    let live = &*LIVE;
    let tcp = tokio::net::TcpStream::connect(live.addr())
        .await
        .expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let url = format!("http://{}{}", live.addr(), empty_member_path("1"));
    let request = |key_len: usize| {
        http::Request::delete(&url)
            .header("x-api-key", "k".repeat(key_len))
            .body(())
            .expect("a request")
    };
    let mut client = client.ready().await.expect("ready");
    let (response, _) = client.send_request(request(8 << 10), true).expect("sent");
    let response = response.await.expect("an answer to 8 KiB");
    assert_eq!(response.status(), 403, "{response:?}");

    let mut client = client.ready().await.expect("ready");
    let (response, _) = client.send_request(request(20 << 10), true).expect("sent");
    match response.await {
        Ok(response) => assert_eq!(response.status(), 431, "{response:?}"),
        Err(error) => assert!(
            error.reason() == Some(h2::Reason::REFUSED_STREAM),
            "20 KiB: {error}"
        ),
    }
    // Far past it the connection is closed (GOAWAY), which is the client's loss alone.
    let huge = client
        .ready()
        .await
        .ok()
        .and_then(|mut c| c.send_request(request(1 << 20), true).ok());
    if let Some((response, _)) = huge
        && let Ok(response) = response.await
    {
        assert_eq!(response.status(), 431, "{response:?}");
    }
    let health = live
        .send(&Request::new("GET", "/healthz"))
        .expect("still serving");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(live.world.counts(), live.rows);
}

// ---- the model itself ------------------------------------------------------------------------

#[test]
fn the_model_reads_paths_ids_names_and_keys_as_the_readme_says() {
    assert!(matches!(
        route("/v1/instances/a/groups/1/users/2"),
        Route::Member(["a", "1", "2"])
    ));
    assert!(matches!(
        route("/v1.1/instances//groups/1/users/2/"),
        Route::EmptySegment
    ));
    assert!(matches!(
        route("/v1.1/instances/a/groups/1/users/2//"),
        Route::Unknown
    ));
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
    assert_eq!(
        find_key(&h, Some("api_key=&apikey=b+c")),
        Some(b"b c".to_vec())
    );
    assert_eq!(find_key(&h, Some("apikey=&api_key")), Some(b"a".to_vec()));
    assert_eq!(
        find_key(&h, Some("api_key=x&api%5Fkey=y")),
        Some(b"y".to_vec())
    );
    let h = headers(&[("authorization", b"a b c")]);
    assert_eq!(find_key(&h, None), None);
}
