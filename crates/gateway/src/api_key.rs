//! Finding the caller's key in a REST request, and turning it into the `x-api-key` metadata the
//! server reads.
//!
//! Sources, first found wins (SPEC.md): header `X-API-KEY`; query `api_key`, then `apikey`;
//! header `Authorization: <scheme> <key>`. As in the original's Python `or` chain, an **empty**
//! value counts as not given and the next source is tried; anything else, even whitespace, is a
//! given key (and, unless well-formed, a malformed one). A query parameter given more than once
//! counts by its last value, as Django's `QueryDict.get` does; a repeated header by its first.
//! `Authorization` words are split on ASCII whitespace, like Python's `split()`. Keys are kept
//! as bytes until classified, so text that is not UTF-8 is a malformed key, not an error.

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderMap, header};
use groups_core::PresentedKey;
use percent_encoding::percent_decode;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};

/// Metadata the server reads the key from.
pub(crate) const METADATA_KEY: &str = "x-api-key";

/// Sent instead of a key that cannot be one. It is not 40 hex digits, so the server classifies it
/// as malformed and answers API_KEY_INVALID after its instance check, in SPEC.md's order.
pub(crate) const MALFORMED_MARKER: &str = "malformed";

/// Key text as presented. `Debug` never prints it: keys stay out of logs.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyText<'a>(Cow<'a, [u8]>);

impl fmt::Debug for KeyText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyText([redacted])")
    }
}

impl KeyText<'_> {
    /// The metadata value to forward: the key itself when well-formed, else the marker.
    pub(crate) fn to_metadata(&self) -> AsciiMetadataValue {
        let mut value = std::str::from_utf8(&self.0)
            .ok()
            .filter(|text| PresentedKey::parse(text).is_some())
            .and_then(|text| MetadataValue::try_from(text).ok())
            .unwrap_or_else(|| MetadataValue::from_static(MALFORMED_MARKER));
        // Sensitive: HPACK never indexes it, and `Debug` (as in h2's trace logs) hides it.
        value.set_sensitive(true);
        value
    }
}

/// The caller's key, from the first source that has a non-empty one.
pub(crate) fn find<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<KeyText<'a>> {
    let from_header = headers
        .get("x-api-key")
        .map(|value| Cow::Borrowed(value.as_bytes()));
    let from_query = || {
        let query = query?;
        last_query_value(query, b"api_key")
            .filter(|v| !v.is_empty())
            .or_else(|| last_query_value(query, b"apikey"))
    };
    let from_authorization = || {
        let value = headers.get(header::AUTHORIZATION)?.as_bytes();
        let mut words = value
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        match (words.next(), words.next(), words.next()) {
            (Some(_scheme), Some(key), None) => Some(Cow::Borrowed(key)),
            _ => None,
        }
    };
    from_header
        .filter(|v| !v.is_empty())
        .or_else(from_query)
        .filter(|v| !v.is_empty())
        .or_else(from_authorization)
        .map(KeyText)
}

/// The last value of `name` in a form-urlencoded query, decoded to bytes. Never fails: pairs
/// without `=` have an empty value and broken escapes stay as they are.
pub(crate) fn last_query_value<'a>(query: &'a str, name: &[u8]) -> Option<Cow<'a, [u8]>> {
    query.rsplit('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key).as_ref() == name).then(|| form_decode(value))
    })
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, then percent escapes.
fn form_decode(text: &str) -> Cow<'_, [u8]> {
    if text.contains('+') {
        let spaced = text.replace('+', " ");
        Cow::Owned(percent_decode(spaced.as_bytes()).collect())
    } else {
        percent_decode(text.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const KEY: &str = "0123456789abcdef0123456789abcdef01234567";

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    fn found(headers: &HeaderMap, query: Option<&str>) -> Option<Vec<u8>> {
        find(headers, query).map(|k| k.0.into_owned())
    }

    #[test]
    fn header_beats_query_beats_authorization() {
        let all = headers(&[("x-api-key", b"h"), ("authorization", b"Token a")]);
        assert_eq!(found(&all, Some("api_key=q")), Some(b"h".to_vec()));
        let no_header = headers(&[("authorization", b"Token a")]);
        assert_eq!(found(&no_header, Some("apikey=q2")), Some(b"q2".to_vec()));
        assert_eq!(
            found(&no_header, Some("apikey=b&api_key=a")),
            Some(b"a".to_vec())
        );
        assert_eq!(found(&no_header, None), Some(b"a".to_vec()));
    }

    #[test]
    fn empty_values_count_as_not_given() {
        let h = headers(&[("x-api-key", b""), ("authorization", b"Token a")]);
        assert_eq!(found(&h, Some("api_key=&apikey=")), Some(b"a".to_vec()));
        assert_eq!(found(&h, Some("api_key=&apikey=k")), Some(b"k".to_vec()));
        assert_eq!(found(&HeaderMap::new(), Some("api_key")), None);
        assert_eq!(found(&HeaderMap::new(), Some("")), None);
    }

    #[test]
    fn query_is_form_decoded_and_last_value_wins() {
        let none = HeaderMap::new();
        assert_eq!(
            found(&none, Some("api_key=a&api%5Fkey=b%2Bc+d")),
            Some(b"b+c d".to_vec())
        );
        assert_eq!(
            found(&none, Some("x=%zz&&=&api_key=%FF%")),
            Some(vec![0xFF, b'%'])
        );
    }

    #[test]
    fn authorization_needs_exactly_two_words() {
        for (value, expected) in [
            (&b"Token abc"[..], Some(b"abc".to_vec())),
            (b"  Bearer \t abc  ", Some(b"abc".to_vec())),
            (b"abc", None),
            (b"Token a b", None),
            (b"", None),
        ] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(found(&h, None), expected, "{value:?}");
        }
    }

    #[test]
    fn only_well_formed_keys_are_forwarded() {
        let forwarded = |bytes: &'static [u8]| KeyText(Cow::Borrowed(bytes)).to_metadata();
        assert_eq!(forwarded(KEY.as_bytes()), KEY);
        for bad in [
            &b"short"[..],
            b" ",
            &[0xFF; 40],
            KEY.to_uppercase().leak().as_bytes(),
        ] {
            assert_eq!(forwarded(bad), MALFORMED_MARKER);
        }
        let debug = format!("{:?}", KeyText(Cow::Borrowed(KEY.as_bytes())));
        assert!(!debug.contains(KEY));
    }
}
