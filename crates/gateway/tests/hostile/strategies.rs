//! Generators of hostile input: path segments, ids, instance names, keys in every place, header
//! values, methods, the listing's query values and page tokens. Each is a proptest strategy, so
//! a failure shrinks to a small case.

use proptest::prelude::*;
use proptest::sample::Index;

use crate::model::Token;
use crate::wire::Request;

pub(crate) use groups_testkit::UNKNOWN_ACCOUNT_KEY as UNKNOWN_KEY;

/// Every byte percent-escaped, in upper- or lower-case hex.
pub(crate) fn escape(bytes: &[u8], upper: bool) -> String {
    let hex = |b: &u8| {
        if upper {
            format!("%{b:02X}")
        } else {
            format!("%{b:02x}")
        }
    };
    bytes.iter().map(hex).collect()
}

/// Text allowed unescaped in a path segment (RFC 3986 `pchar` less `%`).
const PCHARS: &str = "[A-Za-z0-9._~!$&'()*+,;=:@-]{1,8}";

/// Escapes that are broken, decode to something that is not UTF-8, or mean trouble once decoded.
#[rustfmt::skip]
const ODD_ESCAPES: &[&str] = &[
    "%", "%z", "%zz", "%G0", "%F", "%%", "%%41", "%FF", "%FE%FF", "%C3%28", "%C0%AF", "%ED%A0%80",
    "%F4%90%80%80", "%00", "%2F", "%2f", "%5C", "%2e%2e", "%2E", "%EF%BB%BF", "%D9%A1",
    "%E2%80%AE", "%0D%0A", "%20",
];

/// Numbers that overflow, are signed, or are digits in another form.
#[rustfmt::skip]
const ODD_NUMBERS: &[&str] = &[
    "0", "00", "-0", "-1", "+1", "1e3", "0x1", "1.0", "1_000",
    "9223372036854775807", "09223372036854775807", "9223372036854775808",
    "18446744073709551615", "18446744073709551616", "340282366920938463463374607431768211456",
    "0000000000000000000000000000000000000001",
];

/// Words with a meaning somewhere: dot segments, instance names, the routes' own.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "..", ".", "demo", "DEMO", "empty", "EmPtY", "nosuch", "-", "_", "null", "undefined", "NaN",
    "audit", "memberships", "users", "groups",
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
pub(crate) fn segment() -> BoxedStrategy<String> {
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

/// An id: one that exists (in some instance), with leading zeros, any positive one, or junk.
pub(crate) fn id_segment(known: Vec<String>) -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(known.clone()),
        1 => prop::sample::select(known).prop_map(|id| format!("000{id}")),
        2 => (1..=i64::MAX).prop_map(|n| n.to_string()),
        4 => segment(),
    ]
    .boxed()
}

/// The variables of an API path, each encoded for the wire, put on every route at once.
#[derive(Debug, Clone)]
pub(crate) struct Segments {
    version: String,
    instance: String,
    group: String,
    user: String,
    slash: bool,
    /// HEAD rather than GET on the read routes.
    head: bool,
}

impl Segments {
    /// `/v1.1/instances/{instance}/...` with these ids, a trailing slash, GET on the reads.
    pub(crate) fn plain(instance: &str, group: &str, user: &str) -> Self {
        Self {
            version: "v1.1".to_owned(),
            instance: instance.to_owned(),
            group: group.to_owned(),
            user: user.to_owned(),
            slash: true,
            head: false,
        }
    }

    /// One request per operation, with these variables (the listing's as its filters).
    pub(crate) fn requests(&self) -> [(&'static str, String); 5] {
        let (g, u) = (&self.group, &self.user);
        let base = format!("/{}/instances/{}", self.version, self.instance);
        let slash = if self.slash { "/" } else { "" };
        let get = if self.head { "HEAD" } else { "GET" };
        [
            ("DELETE", format!("{base}/groups/{g}/users/{u}{slash}")),
            ("DELETE", format!("{base}/users/{u}/groups/{g}{slash}")),
            (get, format!("{base}/users/{u}{slash}")),
            (get, format!("{base}/groups/{g}{slash}")),
            (
                get,
                format!("{base}/audit/memberships{slash}?group={g}&user={u}"),
            ),
        ]
    }
}

/// Hostile variables for every route: odd versions, instance names, ids.
pub(crate) fn segments(known: Vec<String>) -> BoxedStrategy<Segments> {
    let version = prop_oneof![
        6 => prop::sample::select(&["v1.1", "v1"][..]),
        1 => prop::sample::select(&["V1.1", "v1.0", "v2", "v1.1.", "", "..", "v1%2E1"][..]),
    ];
    (
        version,
        instance_segment(),
        id_segment(known.clone()),
        id_segment(known),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(version, instance, group, user, slash, head)| Segments {
            version: version.to_owned(),
            instance,
            group,
            user,
            slash,
            head,
        })
        .boxed()
}

/// Header value bytes a client can send: visible ASCII, spaces, tabs and obs-text.
pub(crate) fn header_value() -> BoxedStrategy<Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x21u8..=0x7e,
        1 => Just(b' '),
        1 => Just(b'\t'),
        2 => 0x80u8..=0xff,
    ];
    prop::collection::vec(byte, 0..60).boxed()
}

/// A key as text: a provisioned one, a well-formed unknown one, or any bytes.
fn key_text(keys: &[String]) -> BoxedStrategy<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = keys.iter().map(|k| k.clone().into_bytes()).collect();
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
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyPlacement {
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) query: Vec<String>,
}

/// Up to three keys, each in one of the four places, or none.
pub(crate) fn key_placement(keys: &[String]) -> BoxedStrategy<KeyPlacement> {
    let one = prop_oneof![
        (any_case("x-api-key"), key_text(keys)).prop_map(|(name, key)| (Some((name, key)), None)),
        (any_case("authorization"), "[A-Za-z]{0,8}", key_text(keys)).prop_map(
            |(name, scheme, key)| (Some((name, [scheme.as_bytes(), b" ", &key].concat())), None)
        ),
        (
            prop::sample::select(&["api_key", "apikey", "api%5Fkey", "API_KEY"][..]),
            key_text(keys)
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
            let mut placement = KeyPlacement::default();
            for (header, pair) in places {
                placement.headers.extend(header);
                placement.query.extend(pair);
            }
            placement
        })
        .boxed()
}

/// `target` with the placement's query pairs after its own, and its headers.
pub(crate) fn with_key(target: &str, placement: &KeyPlacement, method: &str) -> Request {
    let mut target = target.to_owned();
    if !placement.query.is_empty() {
        target.push(if target.contains('?') { '&' } else { '?' });
        target += &placement.query.join("&");
    }
    let mut request = Request::new(method, target);
    request.headers = placement.headers.clone();
    request
}

/// Standard, odd-cased and extension methods.
pub(crate) fn method() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(
            &[
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY",
                "delete", "Delete", "get", "PROPFIND", "MKCOL",
            ][..]
        )
        .prop_map(str::to_owned),
        1 => "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}".prop_filter("CONNECT has its own target form", |m| {
            m != "CONNECT"
        }),
    ]
    .boxed()
}

/// Paths near the API's: prefixes, doubled and missing slashes, extra segments, `*`.
#[rustfmt::skip]
pub(crate) const NEAR_PATHS: &[&str] = &[
    "/healthz", "/readyz", "/openapi.json", "/metrics", "/", "/healthz/", "/HEALTHZ", "/v1.1",
    "/v1.1/",
    "/v1.1/instances/demo/groups/1/users",
    "/v1.1/instances/demo/groups/1/",
    "/v1.1/instances/demo/groups/1/users/1//",
    "/v1.1//instances/demo/groups/1/users/1/",
    "/v1.1/instances/demo/groups/1/users/1/?",
    "/v1.1/instances/demo/groups/1/users/1/extra",
    "/v1.1/instances/demo/users/1/",
    "/v1/instances/demo/users/1",
    "/v1.1/instances/demo/users/1/groups/1/",
    "/v1.1/instances/demo/users/1/groups",
    "/v1.1/instances/demo/users/",
    "/v1.1/instances/demo/groups/",
    "/v1.1/instances/demo/audit/memberships/",
    "/v1/instances/demo/audit/memberships?page_size=1",
    "/v1.1/instances/demo/audit/",
    "/v1.1/instances/demo/audit/memberships/1/",
    "/v1.1/instances//audit/memberships/",
    "*",
];

/// Query values that are almost a page size or an id, or not text at all.
const ODD_LIST_VALUES: &[&str] = &[
    "", "0", "100", "101", "+5", "05", " 5", "5%20", "%35", "1e1", "-1", "%FF", "1%00",
];

/// A filter's value: an id that exists, any small one, or one that cannot be an id.
fn filter_value(known: Vec<String>) -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::sample::select(known),
        2 => (1u32..=120).prop_map(|n| n.to_string()),
        1 => prop::sample::select(ODD_LIST_VALUES).prop_map(str::to_owned),
        1 => number(),
        1 => segment(),
    ]
    .boxed()
}

/// A page size: mostly small, so that pages have a next one; past the bounds; not a number.
fn page_size_value() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (1u32..=3).prop_map(|n| n.to_string()),
        2 => (1u32..=120).prop_map(|n| n.to_string()),
        2 => prop::sample::select(ODD_LIST_VALUES).prop_map(str::to_owned),
        1 => number(),
        1 => segment(),
    ]
    .boxed()
}

/// A page token: none, empty, junk, or one the gateway handed out (resolved when the request is
/// built), with the filters it was issued for or the generated ones.
#[derive(Debug, Clone)]
pub(crate) enum TokenChoice {
    Absent,
    Empty,
    Junk(String),
    Issued { pick: Index, same_filters: bool },
}

/// A listing request: the path's variables, query pairs (filters, page sizes, junk) and a token.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    version: &'static str,
    instance: &'static str,
    slash: bool,
    head: bool,
    pairs: Vec<String>,
    token: TokenChoice,
}

impl Listing {
    /// The target and method, with `issued` (the tokens handed out so far) to pick from.
    pub(crate) fn target(&self, issued: &[Token]) -> (String, &'static str) {
        let slash = if self.slash { "/" } else { "" };
        let mut pairs = self.pairs.clone();
        match &self.token {
            TokenChoice::Absent => {}
            TokenChoice::Empty => pairs.push("page_token=".to_owned()),
            TokenChoice::Junk(junk) => pairs.push(format!("page_token={junk}")),
            TokenChoice::Issued { .. } if issued.is_empty() => {}
            TokenChoice::Issued { pick, same_filters } => {
                let token = pick.get(issued);
                if *same_filters {
                    pairs.retain(|p| !p.starts_with("group=") && !p.starts_with("user="));
                    pairs.extend(token.group.map(|g| format!("group={g}")));
                    pairs.extend(token.user.map(|u| format!("user=00{u}")));
                }
                pairs.push(format!("page_token={}", token.text));
            }
        }
        let base = format!(
            "/{}/instances/{}/audit/memberships{slash}",
            self.version, self.instance
        );
        let method = if self.head { "HEAD" } else { "GET" };
        (format!("{base}?{}", pairs.join("&")), method)
    }
}

pub(crate) fn listing(known: Vec<String>) -> BoxedStrategy<Listing> {
    let odd_name = prop::sample::select(&["page_token", "gr%6Fup", "page+size", "PAGE_SIZE"][..]);
    let pair = prop_oneof![
        5 => filter_value(known.clone()).prop_map(|v| format!("group={v}")),
        5 => filter_value(known.clone()).prop_map(|v| format!("user={v}")),
        5 => page_size_value().prop_map(|v| format!("page_size={v}")),
        1 => (odd_name, filter_value(known)).prop_map(|(name, v)| format!("{name}={v}")),
        1 => "[a-z_%+=&]{0,12}",
    ];
    let token = prop_oneof![
        2 => Just(TokenChoice::Absent),
        1 => Just(TokenChoice::Empty),
        1 => "[A-Za-z0-9_-]{1,12}|[A-Za-z0-9_.!~*-]{1,40}|%FF|e1".prop_map(TokenChoice::Junk),
        4 => (any::<Index>(), any::<bool>())
            .prop_map(|(pick, same_filters)| TokenChoice::Issued { pick, same_filters }),
    ];
    (
        prop::sample::select(&["v1.1", "v1"][..]),
        prop_oneof![
            8 => Just("demo"),
            2 => Just("empty"),
            1 => prop::sample::select(&["DEMO", "nosuch", "%FF", "d%45mo"][..]),
        ],
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(pair, 0..4),
        token,
    )
        .prop_map(|(version, instance, slash, head, pairs, token)| Listing {
            version,
            instance,
            slash,
            head,
            pairs,
            token,
        })
        .boxed()
}
