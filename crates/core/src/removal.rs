//! Removing a user from a group: the order of checks of SPEC.md, in one function.

use std::sync::LazyLock;

use crate::access::Principal;
use crate::error::{DomainError, FieldViolation, Result};
use crate::ids::{GroupId, UserId};
use crate::instance::InstanceName;
use crate::key::{Credential, KeyDigest, KeyKind};

/// A removal as a caller asked for it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalRequest {
    /// `None` when the name is not a valid instance name: such an instance cannot exist.
    pub instance: Option<InstanceName>,
    /// The group to remove the user from.
    pub group: GroupId,
    /// The user to remove.
    pub user: UserId,
    /// AIP-135: succeed when the user is not a member.
    pub allow_missing: bool,
}

impl RemovalRequest {
    /// Validates raw gRPC fields. Ids must be positive and the name non-empty; every violation
    /// is reported at once. A non-empty but invalid name is not an argument error: it names an
    /// instance that does not exist.
    pub fn new(
        instance_name: &str,
        group_id: i64,
        user_id: i64,
        allow_missing: bool,
    ) -> Result<Self> {
        let mut violations = Vec::new();
        if instance_name.is_empty() {
            violations.push(FieldViolation {
                field: "instance_name",
                description: "must not be empty",
            });
        }
        let group = GroupId::new(group_id);
        if group.is_none() {
            violations.push(FieldViolation {
                field: "group_id",
                description: "must be a positive integer",
            });
        }
        let user = UserId::new(user_id);
        if user.is_none() {
            violations.push(FieldViolation {
                field: "user_id",
                description: "must be a positive integer",
            });
        }
        match (group, user) {
            (Some(group), Some(user)) if violations.is_empty() => Ok(Self {
                instance: InstanceName::parse(instance_name),
                group,
                user,
                allow_missing,
            }),
            _ => Err(DomainError::InvalidArgument(violations)),
        }
    }
}

/// What the store is asked to do in one step: resolve the principal and the group, and delete
/// the membership only if the principal is one of `permitted` and the group exists.
#[derive(Debug, Clone, Copy)]
pub struct RemovalAttempt<'a> {
    /// The instance the removal is scoped to.
    pub instance: &'a InstanceName,
    /// Digest of the presented account key, if one of that kind was presented.
    pub account_key: Option<KeyDigest>,
    /// Digest of the presented instance API key, if one of that kind was presented.
    pub api_key: Option<KeyDigest>,
    /// The group.
    pub group: GroupId,
    /// The user.
    pub user: UserId,
    /// Labels ([`Principal::label`]) of the principals that may remove members, from
    /// [`Principal::can_remove_members`]: the store guards its delete with them.
    pub permitted: &'a [&'static str],
}

/// What the store found while attempting a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovalFacts {
    /// An instance of that name exists.
    pub instance_found: bool,
    /// The key's principal on that instance, if the key is valid there.
    pub principal: Option<Principal>,
    /// The group exists in that instance and is not deleted.
    pub group_found: bool,
    /// The membership existed and this attempt deleted it.
    pub removed: bool,
}

/// The store as the removal needs it. Implementations run blocking I/O.
pub trait MembershipStore {
    /// Performs a [`RemovalAttempt`]: looks everything up and deletes the membership if, and only
    /// if, the principal is permitted and the group exists, atomically.
    fn attempt_removal(&mut self, attempt: &RemovalAttempt<'_>) -> Result<RemovalFacts>;
}

/// Removes `request.user` from `request.group` for the caller holding `credential`.
///
/// The checks answer in SPEC.md's order: instance, key present, key valid, permission, group,
/// membership. The store does the look-ups and the guarded delete in one step, so a removal is
/// consistent under concurrency and the decision here only reads what it found.
pub fn remove_user_from_group(
    store: &mut impl MembershipStore,
    request: &RemovalRequest,
    credential: &Credential,
) -> Result<()> {
    let Some(instance) = &request.instance else {
        return Err(DomainError::InstanceNotFound);
    };
    let facts = store.attempt_removal(&RemovalAttempt {
        instance,
        account_key: credential.digest_for(KeyKind::Account),
        api_key: credential.digest_for(KeyKind::Instance),
        group: request.group,
        user: request.user,
        permitted: &PERMITTED,
    })?;

    if !facts.instance_found {
        return Err(DomainError::InstanceNotFound);
    }
    if *credential == Credential::Missing {
        return Err(DomainError::ApiKeyMissing);
    }
    let principal = facts.principal.ok_or(DomainError::ApiKeyInvalid)?;
    if !principal.can_remove_members() {
        return Err(DomainError::PermissionDenied);
    }
    if !facts.group_found {
        return Err(DomainError::GroupNotFound);
    }
    if !facts.removed && !request.allow_missing {
        return Err(DomainError::MembershipNotFound);
    }
    Ok(())
}

/// Computed once: a removal binds it as is, with no work per request.
static PERMITTED: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    Principal::ALL
        .into_iter()
        .filter(|p| p.can_remove_members())
        .map(Principal::label)
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;
    use crate::key::{PresentedKey, SecretKey};

    /// A store that answers fixed facts, honouring the guard the way a real store must.
    struct FixedFacts(RemovalFacts, bool);

    impl MembershipStore for FixedFacts {
        fn attempt_removal(&mut self, attempt: &RemovalAttempt<'_>) -> Result<RemovalFacts> {
            let permitted = self
                .0
                .principal
                .is_some_and(|p| attempt.permitted.contains(&p.label()));
            let removed = self.1 && permitted && self.0.group_found;
            Ok(RemovalFacts { removed, ..self.0 })
        }
    }

    fn owner_key() -> Credential {
        let key = SecretKey::generate(KeyKind::Account).unwrap();
        Credential::Key(PresentedKey::parse(key.expose()).unwrap())
    }

    fn request() -> RemovalRequest {
        RemovalRequest::new("demo", 1, 2, false).unwrap()
    }

    fn facts(instance: bool, principal: Option<Principal>, group: bool) -> RemovalFacts {
        RemovalFacts {
            instance_found: instance,
            principal,
            group_found: group,
            removed: false,
        }
    }

    fn run(facts: RemovalFacts, member: bool, credential: Credential) -> Result<()> {
        remove_user_from_group(&mut FixedFacts(facts, member), &request(), &credential)
    }

    const OWNER: Option<Principal> = Some(Principal::Admin(Some(Role::Owner)));

    #[test]
    fn first_failing_check_answers() {
        use DomainError as E;
        let r = run(facts(false, None, false), false, Credential::Missing);
        assert!(matches!(r, Err(E::InstanceNotFound)));
        let r = run(facts(true, None, false), false, Credential::Missing);
        assert!(matches!(r, Err(E::ApiKeyMissing)));
        let r = run(facts(true, None, false), false, Credential::Malformed);
        assert!(matches!(r, Err(E::ApiKeyInvalid)));
        let read = Some(Principal::Admin(Some(Role::Read)));
        let r = run(facts(true, read, false), true, owner_key());
        assert!(matches!(r, Err(E::PermissionDenied)));
        let r = run(facts(true, OWNER, false), true, owner_key());
        assert!(matches!(r, Err(E::GroupNotFound)));
        let r = run(facts(true, OWNER, true), false, owner_key());
        assert!(matches!(r, Err(E::MembershipNotFound)));
        assert!(run(facts(true, OWNER, true), true, owner_key()).is_ok());
    }

    #[test]
    fn allow_missing_turns_not_a_member_into_success() {
        let request = RemovalRequest::new("demo", 1, 2, true).unwrap();
        let mut store = FixedFacts(facts(true, OWNER, true), false);
        assert!(remove_user_from_group(&mut store, &request, &owner_key()).is_ok());
        let mut store = FixedFacts(facts(true, OWNER, false), false);
        assert!(matches!(
            remove_user_from_group(&mut store, &request, &owner_key()),
            Err(DomainError::GroupNotFound)
        ));
    }

    #[test]
    fn invalid_instance_name_is_not_found_without_a_lookup() {
        struct Unreachable;
        impl MembershipStore for Unreachable {
            fn attempt_removal(&mut self, _: &RemovalAttempt<'_>) -> Result<RemovalFacts> {
                panic!("must not be asked")
            }
        }
        let request = RemovalRequest::new("not a name", 1, 2, false).unwrap();
        assert!(matches!(
            remove_user_from_group(&mut Unreachable, &request, &Credential::Missing),
            Err(DomainError::InstanceNotFound)
        ));
    }

    #[test]
    fn argument_errors_list_every_field() {
        let Err(DomainError::InvalidArgument(v)) = RemovalRequest::new("", 0, -1, false) else {
            panic!("expected an argument error");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["instance_name", "group_id", "user_id"]);
    }
}
