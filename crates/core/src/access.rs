//! Who a caller is on an instance, what that lets them do, and checks 2–5 of SPEC.md, which
//! every operation runs alike: the instance exists, a key was given, it is valid there, and its
//! principal holds the operation's permission.

use std::sync::LazyLock;

use crate::error::{DomainError, Result};
use crate::instance::InstanceName;
use crate::key::{Credential, KeyDigest, KeyKind};

/// An admin's role on an instance. The owner counts as `Owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Owns the instance.
    Owner,
    /// Full access.
    Full,
    /// Read and write access.
    Write,
    /// Read-only access.
    Read,
}

impl Role {
    /// Every role, for tables and tests.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Full, Role::Write, Role::Read];

    /// The role's name, as the CLI and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Full => "full",
            Role::Write => "write",
            Role::Read => "read",
        }
    }

    /// Parses a role's name (`owner`, `full`, `write`, `read`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// Roles that may be granted; ownership comes with the instance and is never granted.
    pub fn is_grantable(self) -> bool {
        self != Role::Owner
    }
}

/// The authenticated caller, as seen from one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An active admin, with their role on the instance (`None`: no role there).
    Admin(Option<Role>),
    /// One of the instance's own (unrevoked) API keys.
    ApiKey {
        /// The key bypasses object-level ACLs (it still cannot change memberships).
        ignore_acl: bool,
    },
}

impl Principal {
    /// Every kind of principal.
    pub const ALL: [Principal; 7] = [
        Principal::Admin(Some(Role::Owner)),
        Principal::Admin(Some(Role::Full)),
        Principal::Admin(Some(Role::Write)),
        Principal::Admin(Some(Role::Read)),
        Principal::Admin(None),
        Principal::ApiKey { ignore_acl: false },
        Principal::ApiKey { ignore_acl: true },
    ];

    /// A stable label for the principal (the store computes it in SQL and parses it back).
    pub fn label(self) -> &'static str {
        match self {
            Principal::Admin(Some(role)) => role.as_str(),
            Principal::Admin(None) => "none",
            Principal::ApiKey { ignore_acl: false } => "api_key",
            Principal::ApiKey { ignore_acl: true } => "api_key_ignore_acl",
        }
    }

    /// The principal a label stands for.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.label() == label)
    }
}

/// What an operation requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Remove a user from a group: admins with role owner, full or write. API keys may not,
    /// whatever their flags: Syncano v1.1 grants API keys read access to memberships only.
    RemoveMembers,
    /// Read a user: an admin with any role, or an API key with `ignore_acl`.
    ReadUsers,
    /// Read a group: an admin with any role, or any API key of the instance.
    ReadGroups,
    /// Read the audit trail: the owner and admins with role full.
    ReadAudit,
}

impl Permission {
    /// Every permission, for tables and tests.
    pub const ALL: [Permission; 4] = [
        Permission::RemoveMembers,
        Permission::ReadUsers,
        Permission::ReadGroups,
        Permission::ReadAudit,
    ];

    /// Whether `principal` holds this permission: SPEC.md's "who may", in one place.
    pub fn allows(self, principal: Principal) -> bool {
        use Principal::{Admin, ApiKey};
        match self {
            Permission::RemoveMembers => {
                matches!(
                    principal,
                    Admin(Some(Role::Owner | Role::Full | Role::Write))
                )
            }
            Permission::ReadUsers => {
                matches!(principal, Admin(Some(_)) | ApiKey { ignore_acl: true })
            }
            Permission::ReadGroups => matches!(principal, Admin(Some(_)) | ApiKey { .. }),
            Permission::ReadAudit => matches!(principal, Admin(Some(Role::Owner | Role::Full))),
        }
    }

    /// The labels ([`Principal::label`]) of the principals allowed: the store guards its work
    /// with them, so a refused caller gets nothing done and nothing read. Computed once.
    pub fn labels(self) -> &'static [&'static str] {
        static LABELS: LazyLock<[Vec<&'static str>; 4]> = LazyLock::new(|| {
            Permission::ALL.map(|permission| {
                Principal::ALL
                    .into_iter()
                    .filter(|p| permission.allows(*p))
                    .map(Principal::label)
                    .collect()
            })
        });
        &LABELS[self as usize]
    }
}

/// What the store is asked to resolve for any operation: the instance, the key's principal on
/// it, and which principals the operation permits.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The instance the operation is scoped to.
    pub instance: &'a InstanceName,
    /// Digest of the presented account key, if one of that kind was presented.
    pub account_key: Option<KeyDigest>,
    /// Digest of the presented instance API key, if one of that kind was presented.
    pub api_key: Option<KeyDigest>,
    /// Labels of the permitted principals ([`Permission::labels`]).
    pub permitted: &'static [&'static str],
}

impl<'a> Lookup<'a> {
    /// What to look up for `credential` on `instance`, for an operation needing `permission`.
    pub fn new(
        instance: &'a InstanceName,
        credential: &Credential,
        permission: Permission,
    ) -> Self {
        Self {
            instance,
            account_key: credential.digest_for(KeyKind::Account),
            api_key: credential.digest_for(KeyKind::Instance),
            permitted: permission.labels(),
        }
    }
}

/// What the store found of a [`Lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// An instance of that name exists.
    pub instance_found: bool,
    /// The key's principal on that instance, if the key is valid there.
    pub principal: Option<Principal>,
}

/// Checks 2–5, in SPEC.md's order: the instance exists, a key was given, the key is valid on
/// the instance, and its principal holds `permission`. Returns the principal.
pub fn authorize(
    access: Access,
    credential: &Credential,
    permission: Permission,
) -> Result<Principal> {
    if !access.instance_found {
        return Err(DomainError::InstanceNotFound);
    }
    if *credential == Credential::Missing {
        return Err(DomainError::ApiKeyMissing);
    }
    let principal = access.principal.ok_or(DomainError::ApiKeyInvalid)?;
    if !permission.allows(principal) {
        return Err(DomainError::PermissionDenied);
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{PresentedKey, SecretKey};

    fn allowed(permission: Permission) -> Vec<Principal> {
        Principal::ALL
            .into_iter()
            .filter(|p| permission.allows(*p))
            .collect()
    }

    #[test]
    fn who_may_do_what() {
        use Principal::{Admin, ApiKey};
        let (owner, full, write, read) = (
            Admin(Some(Role::Owner)),
            Admin(Some(Role::Full)),
            Admin(Some(Role::Write)),
            Admin(Some(Role::Read)),
        );
        let (key, acl_key) = (ApiKey { ignore_acl: false }, ApiKey { ignore_acl: true });
        assert_eq!(allowed(Permission::RemoveMembers), [owner, full, write]);
        assert_eq!(
            allowed(Permission::ReadUsers),
            [owner, full, write, read, acl_key]
        );
        assert_eq!(
            allowed(Permission::ReadGroups),
            [owner, full, write, read, key, acl_key]
        );
        assert_eq!(allowed(Permission::ReadAudit), [owner, full]);
        for permission in Permission::ALL {
            let labels: Vec<_> = allowed(permission)
                .into_iter()
                .map(Principal::label)
                .collect();
            assert_eq!(permission.labels(), labels.as_slice());
        }
    }

    #[test]
    fn labels_round_trip() {
        for p in Principal::ALL {
            assert_eq!(Principal::from_label(p.label()), Some(p));
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(!Role::Owner.is_grantable());
    }

    #[test]
    fn checks_answer_in_order() {
        use DomainError as E;
        let key = SecretKey::generate(KeyKind::Account).unwrap();
        let key = Credential::Key(PresentedKey::parse(key.expose()).unwrap());
        let read = Some(Principal::Admin(Some(Role::Read)));
        let owner = Some(Principal::Admin(Some(Role::Owner)));
        let at = |instance_found, principal| Access {
            instance_found,
            principal,
        };
        let remove = Permission::RemoveMembers;
        let r = authorize(at(false, owner), &Credential::Missing, remove);
        assert!(matches!(r, Err(E::InstanceNotFound)));
        let r = authorize(at(true, None), &Credential::Missing, remove);
        assert!(matches!(r, Err(E::ApiKeyMissing)));
        let r = authorize(at(true, None), &Credential::Malformed, remove);
        assert!(matches!(r, Err(E::ApiKeyInvalid)));
        let r = authorize(at(true, read), &key, remove);
        assert!(matches!(r, Err(E::PermissionDenied)));
        assert_eq!(
            authorize(at(true, read), &key, Permission::ReadGroups).unwrap(),
            Principal::Admin(Some(Role::Read))
        );
    }
}
