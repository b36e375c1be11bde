//! Row ids as they come from the outside: positive 64-bit integers, nothing else.

use std::fmt;

macro_rules! positive_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            /// Accepts an id given as a number (gRPC): it must be in `1..=i64::MAX`.
            pub fn new(value: i64) -> Option<Self> {
                (value > 0).then_some(Self(value))
            }

            /// Accepts an id given as text (a REST path segment): ASCII decimal digits only
            /// (no sign, no spaces), with a value in `1..=2^63-1`.
            pub fn parse(text: &str) -> Option<Self> {
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // Leading zeros are harmless ("007" is 7) but must not defeat the length check.
                let digits = text.trim_start_matches('0');
                if digits.len() > 19 {
                    return None;
                }
                digits.parse::<i64>().ok().and_then(Self::new)
            }

            /// The id as stored.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_id!(
    /// The id of a group, unique across instances.
    GroupId
);
positive_id!(
    /// The id of an instance's end user, unique across instances.
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_in_range() {
        assert_eq!(GroupId::parse("1").map(GroupId::get), Some(1));
        assert_eq!(GroupId::parse("007").map(GroupId::get), Some(7));
        assert_eq!(
            GroupId::parse("9223372036854775807").map(GroupId::get),
            Some(i64::MAX)
        );
        assert_eq!(
            GroupId::parse("0009223372036854775807").map(GroupId::get),
            Some(i64::MAX)
        );
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "0",
            "000",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "0x10",
            "9223372036854775808",
            "99999999999999999999999",
            "١",
            "abc",
        ] {
            assert_eq!(UserId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(UserId::new(0), None);
        assert_eq!(UserId::new(-5), None);
        assert_eq!(UserId::new(i64::MIN), None);
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_to_its_positive_value_or_nothing(text in "\\PC{0,30}") {
            match GroupId::parse(&text) {
                Some(id) => {
                    proptest::prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
                    proptest::prop_assert_eq!(text.parse::<u128>().ok(), Some(id.get() as u128));
                }
                None => {
                    let value = text.parse::<u128>().ok().filter(|_| text.bytes().all(|b| b.is_ascii_digit()));
                    proptest::prop_assert!(value.is_none_or(|v| v == 0 || v > i64::MAX as u128));
                }
            }
        }
    }
}
