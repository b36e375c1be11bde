//! Keys: the wire format (40 lower-case hex, parity of the last digit tells the kind), their
//! SHA-256 digests (the only form ever stored), and fresh keys from the OS's CSPRNG.

use std::fmt;

use sha2::{Digest, Sha256};

/// Length of a key on the wire.
pub const KEY_LEN: usize = 40;

/// Whose key it is, told by the parity of its last hex digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// An admin's account key: last digit even.
    Account,
    /// An instance API key: last digit odd.
    Instance,
}

/// SHA-256 of a key. Keys are looked up by digest and never stored in clear.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of a key's wire text.
    fn of(key_text: &str) -> Self {
        Self(Sha256::digest(key_text.as_bytes()).into())
    }

    /// The 32 digest bytes, as stored.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not secret, but there is nothing useful in printing it either.
        f.write_str("KeyDigest(..)")
    }
}

/// A well-formed key presented by a caller, reduced to what a look-up needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedKey {
    kind: KeyKind,
    digest: KeyDigest,
}

impl PresentedKey {
    /// Parses the wire format: exactly 40 characters of `0-9 a-f`.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != KEY_LEN || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let last = bytes[KEY_LEN - 1];
        let value = if last.is_ascii_digit() {
            last - b'0'
        } else {
            last - b'a' + 10
        };
        let kind = if value % 2 == 0 {
            KeyKind::Account
        } else {
            KeyKind::Instance
        };
        Some(Self {
            kind,
            digest: KeyDigest::of(text),
        })
    }

    /// Account key or instance API key.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The digest to look the key up by.
    pub fn digest(&self) -> KeyDigest {
        self.digest
    }
}

/// What a caller presented as a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No key at all.
    Missing,
    /// Something that cannot be a key (wrong length, alphabet or encoding).
    Malformed,
    /// A well-formed key, which may still be unknown or revoked.
    Key(PresentedKey),
}

impl Credential {
    /// Classifies an optional key text, as found in a request.
    pub fn from_text(text: Option<&str>) -> Self {
        match text {
            None => Self::Missing,
            Some(text) => PresentedKey::parse(text).map_or(Self::Malformed, Self::Key),
        }
    }

    /// The digest to look up when the key is of `kind`, else `None`.
    pub fn digest_for(&self, kind: KeyKind) -> Option<KeyDigest> {
        match self {
            Self::Key(key) if key.kind == kind => Some(key.digest),
            _ => None,
        }
    }
}

/// A freshly made key. It is shown once, when it is created; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Makes a key of `kind` from the OS's CSPRNG, with the parity fixed in the last digit.
    ///
    /// Fails only when the OS has no randomness to give.
    pub fn generate(kind: KeyKind) -> Result<Self, getrandom::Error> {
        let mut raw = [0u8; KEY_LEN / 2];
        getrandom::fill(&mut raw)?;
        // Setting the lowest bit of the last byte fixes the parity of the last hex digit.
        let last = &mut raw[KEY_LEN / 2 - 1];
        *last = match kind {
            KeyKind::Account => *last & !1,
            KeyKind::Instance => *last | 1,
        };
        Ok(Self(hex::encode(raw)))
    }

    /// The digest to store.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    /// The key's wire text, to show to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_wire_format_and_parity() {
        for kind in [KeyKind::Account, KeyKind::Instance] {
            for _ in 0..64 {
                let key = SecretKey::generate(kind).unwrap();
                let parsed = PresentedKey::parse(key.expose()).unwrap();
                assert_eq!(parsed.kind(), kind);
                assert_eq!(parsed.digest(), key.digest());
            }
        }
    }

    #[test]
    fn generated_keys_differ() {
        let a = SecretKey::generate(KeyKind::Account).unwrap();
        let b = SecretKey::generate(KeyKind::Account).unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = SecretKey::generate(KeyKind::Instance).unwrap();
        assert!(!format!("{key:?}").contains(key.expose()));
        assert!(!format!("{:?}", key.digest()).contains(&key.expose()[..8]));
    }

    #[test]
    fn parity_decides_the_kind() {
        let even = "0123456789abcdef0123456789abcdef0123456e";
        let odd = "0123456789abcdef0123456789abcdef0123456f";
        assert_eq!(PresentedKey::parse(even).unwrap().kind(), KeyKind::Account);
        assert_eq!(PresentedKey::parse(odd).unwrap().kind(), KeyKind::Instance);
    }

    #[test]
    fn malformed_keys_are_refused() {
        let upper = "0123456789ABCDEF0123456789abcdef01234567";
        for bad in [
            "",
            "abc",
            upper,
            &"a".repeat(41),
            &"g".repeat(40),
            &"é".repeat(20),
        ] {
            assert_eq!(
                Credential::from_text(Some(bad)),
                Credential::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(Credential::from_text(None), Credential::Missing);
    }
}
