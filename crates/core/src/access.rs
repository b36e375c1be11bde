//! Who a caller is on an instance, and what that lets them do.

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
    /// Every kind of principal: the store guards its delete with the ones that may remove members.
    pub const ALL: [Principal; 7] = [
        Principal::Admin(Some(Role::Owner)),
        Principal::Admin(Some(Role::Full)),
        Principal::Admin(Some(Role::Write)),
        Principal::Admin(Some(Role::Read)),
        Principal::Admin(None),
        Principal::ApiKey { ignore_acl: false },
        Principal::ApiKey { ignore_acl: true },
    ];

    /// Whether this principal may remove a user from a group.
    ///
    /// Admins with role owner, full or write may. API keys may not, whatever their flags:
    /// Syncano v1.1 grants API keys read access to memberships only.
    pub fn can_remove_members(self) -> bool {
        matches!(
            self,
            Principal::Admin(Some(Role::Owner | Role::Full | Role::Write))
        )
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owner_full_and_write_admins_may_remove_members() {
        let allowed: Vec<_> = Principal::ALL
            .into_iter()
            .filter(|p| p.can_remove_members())
            .collect();
        assert_eq!(
            allowed,
            [
                Principal::Admin(Some(Role::Owner)),
                Principal::Admin(Some(Role::Full)),
                Principal::Admin(Some(Role::Write)),
            ]
        );
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
}
