//! The caller's deadline, from the `grpc-timeout` request header.
//!
//! tonic enforces the timeout on the response, but the blocking store call would run on
//! regardless; knowing the deadline lets the store refuse to start work nobody waits for.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// The instant the caller stops waiting, if it sent `grpc-timeout`.
pub(crate) fn deadline_from(metadata: &MetadataMap, received: Instant) -> Option<Instant> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    received.checked_add(parse_timeout(text)?)
}

/// Parses the gRPC wire format: at most 8 ASCII digits and a unit (`H M S m u n`).
fn parse_timeout(text: &str) -> Option<Duration> {
    if !text.is_ascii() {
        return None;
    }
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_refuses_garbage() {
        assert_eq!(parse_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("7u"), Some(Duration::from_micros(7)));
        for bad in ["", "S", "10", "10s", "123456789S", "-1S", "1.5S", "é"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }
}
