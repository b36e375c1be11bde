//! Instance (tenant) names: case-insensitive, stored lower-case, 1–64 of `a-z 0-9 - _`.

use std::fmt;

/// The longest instance name.
pub const MAX_INSTANCE_NAME_LEN: usize = 64;

/// A syntactically valid instance name, already lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceName(String);

impl InstanceName {
    /// Lower-cases ASCII letters and accepts the result if it is 1–64 of `a-z 0-9 - _`.
    /// Anything else (including non-ASCII text, which has no case-insensitive match) is refused.
    pub fn parse(text: &str) -> Option<Self> {
        let valid_len = (1..=MAX_INSTANCE_NAME_LEN).contains(&text.len());
        let valid_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (valid_len && valid_chars).then(|| Self(text.to_ascii_lowercase()))
    }

    /// The stored (lower-case) form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_valid_names() {
        assert_eq!(
            InstanceName::parse("Demo-1_x").unwrap().as_str(),
            "demo-1_x"
        );
        let longest = "a".repeat(64);
        assert_eq!(InstanceName::parse(&longest).unwrap().as_str(), longest);
    }

    #[test]
    fn refuses_invalid_names() {
        for bad in ["", "a b", "a/b", "a.b", "ä", "\u{212A}elvin", "a%20", "-\0"] {
            assert!(InstanceName::parse(bad).is_none(), "{bad:?}");
        }
        assert!(InstanceName::parse(&"a".repeat(65)).is_none());
    }
}
