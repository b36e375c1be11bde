//! Removing a user from a group, from either side: the request, what the store must find out,
//! and the order of checks of SPEC.md, in one function.

use crate::access::{Access, Lookup, Permission, authorize};
use crate::error::{DomainError, FieldViolation, Result};
use crate::ids::{GroupId, UserId};
use crate::instance::InstanceName;
use crate::key::Credential;

/// The side a removal comes from; it decides check 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Parent {
    /// `/groups/{group}/users/{user}/`: a missing group is "Group was not found.".
    #[default]
    Group,
    /// `/users/{user}/groups/{group}/`: a missing user is "User was not found."; a missing
    /// group only means the user is not a member of it.
    User,
}

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
    /// The side the caller came from.
    pub parent: Parent,
}

/// A non-empty instance name, else the violation; an invalid one names no instance.
pub(crate) fn instance_field(
    instance_name: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<InstanceName> {
    if instance_name.is_empty() {
        violations.push(FieldViolation {
            field: "instance_name",
            description: "must not be empty",
        });
    }
    InstanceName::parse(instance_name)
}

/// A positive id, else the violation.
pub(crate) fn id_field<T>(
    value: Option<T>,
    field: &'static str,
    violations: &mut Vec<FieldViolation>,
) -> Option<T> {
    if value.is_none() {
        violations.push(FieldViolation {
            field,
            description: "must be a positive integer",
        });
    }
    value
}

impl RemovalRequest {
    /// Validates raw gRPC fields. Ids must be positive, the name non-empty and the parent one
    /// the contract defines (`None`: it is not); every violation is reported at once. A
    /// non-empty but invalid name is not an argument error: it names an instance that does
    /// not exist.
    pub fn new(
        instance_name: &str,
        group_id: i64,
        user_id: i64,
        allow_missing: bool,
        parent: Option<Parent>,
    ) -> Result<Self> {
        let mut violations = Vec::new();
        let instance = instance_field(instance_name, &mut violations);
        let group = id_field(GroupId::new(group_id), "group_id", &mut violations);
        let user = id_field(UserId::new(user_id), "user_id", &mut violations);
        if parent.is_none() {
            violations.push(FieldViolation {
                field: "parent",
                description: "must be MEMBERSHIP_PARENT_GROUP or MEMBERSHIP_PARENT_USER",
            });
        }
        match (group, user, parent) {
            (Some(group), Some(user), Some(parent)) if violations.is_empty() => Ok(Self {
                instance,
                group,
                user,
                allow_missing,
                parent,
            }),
            _ => Err(DomainError::InvalidArgument(violations)),
        }
    }

    /// What the store must do, or the answer when no store can help (an invalid instance name).
    ///
    /// The store resolves the instance, the principal, the group and the user, and deletes the
    /// membership if, and only if, the principal may remove members and the group is live,
    /// atomically, writing the audit event in the same statement.
    pub fn attempt<'a>(&'a self, credential: &Credential) -> Result<RemovalAttempt<'a>> {
        let instance = self
            .instance
            .as_ref()
            .ok_or(DomainError::InstanceNotFound)?;
        Ok(RemovalAttempt {
            lookup: Lookup::new(instance, credential, Permission::RemoveMembers),
            group: self.group,
            user: self.user,
        })
    }
}

/// One removal for the store; see [`RemovalRequest::attempt`].
#[derive(Debug, Clone, Copy)]
pub struct RemovalAttempt<'a> {
    /// The instance and the key.
    pub lookup: Lookup<'a>,
    /// The group.
    pub group: GroupId,
    /// The user.
    pub user: UserId,
}

/// What the store found while attempting a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemovalFacts {
    /// The instance and the key's principal on it.
    pub access: Access,
    /// The group exists in that instance and is not deleted.
    pub group_found: bool,
    /// The user exists in that instance.
    pub user_found: bool,
    /// The membership existed and this attempt deleted it.
    pub removed: bool,
}

/// Removes `request.user` from `request.group` for the caller holding `credential`, judging
/// what the store found in SPEC.md's order: instance, key present, key valid, permission, then
/// the parent (the group, or the user on the user side), then the membership.
pub fn remove_user_from_group(
    request: &RemovalRequest,
    credential: &Credential,
    facts: RemovalFacts,
) -> Result<()> {
    authorize(facts.access, credential, Permission::RemoveMembers)?;
    match request.parent {
        Parent::Group if !facts.group_found => return Err(DomainError::GroupNotFound),
        Parent::User if !facts.user_found => return Err(DomainError::UserNotFound),
        Parent::Group | Parent::User => {}
    }
    if !facts.removed && !request.allow_missing {
        return Err(DomainError::MembershipNotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Principal, Role};
    use crate::key::{KeyKind, PresentedKey, SecretKey};

    fn owner_key() -> Credential {
        let key = SecretKey::generate(KeyKind::Account).unwrap();
        Credential::Key(PresentedKey::parse(key.expose()).unwrap())
    }

    const OWNER: Option<Principal> = Some(Principal::Admin(Some(Role::Owner)));

    fn facts(principal: Option<Principal>, group: bool, user: bool, removed: bool) -> RemovalFacts {
        RemovalFacts {
            access: Access {
                instance_found: true,
                principal,
            },
            group_found: group,
            user_found: user,
            removed,
        }
    }

    fn judge(parent: Parent, allow_missing: bool, facts: RemovalFacts) -> Result<()> {
        let request = RemovalRequest::new("demo", 1, 2, allow_missing, Some(parent)).unwrap();
        remove_user_from_group(&request, &owner_key(), facts)
    }

    #[test]
    fn the_parent_decides_check_six() {
        use DomainError as E;
        let r = judge(Parent::Group, false, facts(OWNER, false, true, false));
        assert!(matches!(r, Err(E::GroupNotFound)));
        let r = judge(Parent::User, false, facts(OWNER, false, true, false));
        assert!(matches!(r, Err(E::MembershipNotFound)));
        let r = judge(Parent::User, false, facts(OWNER, true, false, false));
        assert!(matches!(r, Err(E::UserNotFound)));
        let r = judge(Parent::Group, false, facts(OWNER, true, false, false));
        assert!(matches!(r, Err(E::MembershipNotFound)));
        assert!(judge(Parent::User, false, facts(OWNER, true, true, true)).is_ok());
        let read = Some(Principal::Admin(Some(Role::Read)));
        let r = judge(Parent::User, false, facts(read, false, false, false));
        assert!(matches!(r, Err(E::PermissionDenied)));
    }

    #[test]
    fn allow_missing_turns_not_a_member_into_success() {
        assert!(judge(Parent::Group, true, facts(OWNER, true, true, false)).is_ok());
        assert!(matches!(
            judge(Parent::Group, true, facts(OWNER, false, true, false)),
            Err(DomainError::GroupNotFound)
        ));
        assert!(matches!(
            judge(Parent::User, true, facts(OWNER, true, false, false)),
            Err(DomainError::UserNotFound)
        ));
    }

    #[test]
    fn invalid_instance_name_is_not_found_without_a_lookup() {
        let request = RemovalRequest::new("not a name", 1, 2, false, Some(Parent::Group)).unwrap();
        assert!(matches!(
            request.attempt(&Credential::Missing),
            Err(DomainError::InstanceNotFound)
        ));
    }

    #[test]
    fn argument_errors_list_every_field() {
        let Err(DomainError::InvalidArgument(v)) = RemovalRequest::new("", 0, -1, false, None)
        else {
            panic!("expected an argument error");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["instance_name", "group_id", "user_id", "parent"]);
    }
}
