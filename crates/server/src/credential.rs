//! The caller's key, from gRPC metadata: `x-api-key`, else `authorization: <scheme> <key>`.

use groups_core::Credential;
use tonic::metadata::MetadataMap;

/// Reads the key the caller presented. A value that is not text, or not a well-formed key, is
/// `Malformed`; an `authorization` value that is not exactly two words is no key at all.
pub(crate) fn credential_from(metadata: &MetadataMap) -> Credential {
    // An empty value counts as not given, as at the gateway (the original's `or` chain).
    if let Some(value) = metadata.get("x-api-key").filter(|v| !v.is_empty()) {
        return match value.to_str() {
            Ok(text) => Credential::from_text(Some(text)),
            Err(_) => Credential::Malformed,
        };
    }
    let Some(value) = metadata.get("authorization") else {
        return Credential::Missing;
    };
    let Ok(text) = value.to_str() else {
        return Credential::Malformed;
    };
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(_scheme), Some(key), None) => Credential::from_text(Some(key)),
        _ => Credential::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT_KEY: &str = "0123456789abcdef0123456789abcdef01234560";

    fn with(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn reads_x_api_key_first() {
        let md = with(&[("x-api-key", ACCOUNT_KEY), ("authorization", "Bearer nope")]);
        assert!(matches!(credential_from(&md), Credential::Key(_)));
    }

    #[test]
    fn reads_authorization_with_exactly_two_words() {
        assert!(matches!(
            credential_from(&with(&[(
                "authorization",
                &format!("ApiKey {ACCOUNT_KEY}")
            )])),
            Credential::Key(_)
        ));
        assert_eq!(
            credential_from(&with(&[("authorization", ACCOUNT_KEY)])),
            Credential::Missing
        );
        assert_eq!(
            credential_from(&with(&[("authorization", &format!("a {ACCOUNT_KEY} b"))])),
            Credential::Missing
        );
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(credential_from(&MetadataMap::new()), Credential::Missing);
        assert_eq!(
            credential_from(&with(&[("x-api-key", "short")])),
            Credential::Malformed
        );
    }
}
