//! Request ids: what ties the log lines of one request together, across the gateway and the
//! server. A caller may send its own in `x-request-id`; otherwise one is made.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The header (REST) and metadata key (gRPC) that carries the id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest id accepted from a caller; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request id: 1 to 128 visible ASCII characters. Made ones are 32 lower-case hex digits
/// (128 random bits).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Box<str>);

impl RequestId {
    /// The caller's id when it is acceptable, else a new one.
    pub fn from_caller(value: Option<&[u8]>) -> Self {
        value.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    /// The id in a request's `x-request-id` header when it is acceptable, else a new one.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        Self::from_caller(
            headers
                .get(REQUEST_ID_HEADER)
                .map(http::HeaderValue::as_bytes),
        )
    }

    /// An id a caller sent: visible ASCII (no spaces, no control characters, so it cannot break
    /// a log line), at most [`MAX_REQUEST_ID_LEN`] characters. Text shaped like one of our keys
    /// (40 lower-case hex digits) is refused too, so a key pasted into the wrong header is not
    /// written to every log line of the request.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let acceptable = !value.is_empty()
            && value.len() <= MAX_REQUEST_ID_LEN
            && value.iter().all(|b| b.is_ascii_graphic())
            && !looks_like_a_key(value);
        let text = std::str::from_utf8(value).ok().filter(|_| acceptable)?;
        Some(Self(text.into()))
    }

    /// A new id: 32 hex digits, two 64-bit SipHash values of a process-wide counter under a key
    /// the OS's randomness gave the process at start. Unique (the counter never repeats) and
    /// unguessable from other ids, without a system call per request.
    pub fn generate() -> Self {
        static KEY: OnceLock<RandomState> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let key = KEY.get_or_init(RandomState::new);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let high = key.hash_one((n, 0_u8));
        let low = key.hash_one((n, 1_u8));
        Self(format!("{high:016x}{low:016x}").into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

/// 40 lower-case hex digits: the wire format of every key (SPEC.md, "Keys").
fn looks_like_a_key(value: &[u8]) -> bool {
    value.len() == 40 && value.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_visible_ascii_up_to_128() {
        for good in [
            "a",
            "test-123",
            "9f1c2e7a-2b3c-4d5e-8f90-1a2b3c4d5e6f",
            &"x".repeat(128),
        ] {
            assert_eq!(RequestId::parse(good.as_bytes()).unwrap().as_str(), good);
        }
    }

    #[test]
    fn refuses_what_could_break_a_log_line_or_leak_a_key() {
        let key = "0123456789abcdef0123456789abcdef01234567";
        let long = "x".repeat(129);
        for bad in [
            &b""[..],
            b"with space",
            b"new\nline",
            b"tab\t",
            "é".as_bytes(),
            b"\xff",
            long.as_bytes(),
            key.as_bytes(),
        ] {
            assert_eq!(RequestId::parse(bad), None, "{bad:?}");
        }
        // Upper-case hex is not a key.
        assert!(RequestId::parse(key.to_uppercase().as_bytes()).is_some());
    }

    #[test]
    fn made_ids_are_32_hex_digits_and_differ() {
        let a = RequestId::generate();
        let b = RequestId::from_caller(Some(b"bad value"));
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(RequestId::from_caller(Some(b"mine")).as_str(), "mine");
        assert_eq!(RequestId::from_caller(None).as_str().len(), 32);
        let many: std::collections::HashSet<RequestId> =
            (0..10_000).map(|_| RequestId::generate()).collect();
        assert_eq!(many.len(), 10_000);
    }
}
