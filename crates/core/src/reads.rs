//! Reading a user or a group of an instance, as the vendor SDK's example does before it removes
//! a member: the requests, the objects, and the order of checks.

use crate::access::{Access, Lookup, Permission, authorize};
use crate::error::{DomainError, Result};
use crate::ids::{GroupId, UserId};
use crate::instance::InstanceName;
use crate::key::Credential;
use crate::removal::{id_field, instance_field};

/// A live group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its id.
    pub id: GroupId,
    /// Optional name.
    pub name: Option<String>,
    /// Label (1–64 characters).
    pub label: String,
    /// Description (may be empty).
    pub description: String,
}

/// A user of an instance, with their live groups ordered by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Unique per instance.
    pub username: String,
    /// The groups the user is a member of (deleted groups left out), ordered by id.
    pub groups: Vec<Group>,
}

/// A read of one object: the instance and the object's id, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest<Id> {
    /// `None` when the name is not a valid instance name: such an instance cannot exist.
    pub instance: Option<InstanceName>,
    /// The object's id.
    pub id: Id,
}

/// What the store found for a read: the caller's access, and the object when the caller is
/// permitted and it exists (the store reads nothing for a caller who may not see it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found<T> {
    /// The instance and the key's principal on it.
    pub access: Access,
    /// The object, if it exists and the caller may read it.
    pub object: Option<T>,
}

impl ReadRequest<UserId> {
    /// Validates raw gRPC fields of `GetUser`.
    pub fn user(instance_name: &str, user_id: i64) -> Result<Self> {
        Self::new(instance_name, UserId::new(user_id), "user_id")
    }
}

impl ReadRequest<GroupId> {
    /// Validates raw gRPC fields of `GetGroup`.
    pub fn group(instance_name: &str, group_id: i64) -> Result<Self> {
        Self::new(instance_name, GroupId::new(group_id), "group_id")
    }
}

impl<Id: Copy> ReadRequest<Id> {
    fn new(instance_name: &str, id: Option<Id>, field: &'static str) -> Result<Self> {
        let mut violations = Vec::new();
        let instance = instance_field(instance_name, &mut violations);
        match id_field(id, field, &mut violations) {
            Some(id) if violations.is_empty() => Ok(Self { instance, id }),
            _ => Err(DomainError::InvalidArgument(violations)),
        }
    }

    /// What the store must resolve, or the answer when no store can help.
    pub fn lookup(&self, credential: &Credential, permission: Permission) -> Result<Lookup<'_>> {
        let instance = self
            .instance
            .as_ref()
            .ok_or(DomainError::InstanceNotFound)?;
        Ok(Lookup::new(instance, credential, permission))
    }
}

/// The user, if the caller may read users and the user exists: checks 2–5, then 6.
pub fn get_user(credential: &Credential, found: Found<User>) -> Result<User> {
    authorize(found.access, credential, Permission::ReadUsers)?;
    found.object.ok_or(DomainError::UserNotFound)
}

/// The group, if the caller may read groups and it exists (and is live): checks 2–5, then 6.
pub fn get_group(credential: &Credential, found: Found<Group>) -> Result<Group> {
    authorize(found.access, credential, Permission::ReadGroups)?;
    found.object.ok_or(DomainError::GroupNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Principal, Role};
    use crate::key::{KeyKind, PresentedKey, SecretKey};

    fn api_key() -> Credential {
        let key = SecretKey::generate(KeyKind::Instance).unwrap();
        Credential::Key(PresentedKey::parse(key.expose()).unwrap())
    }

    fn found<T>(principal: Principal, object: Option<T>) -> Found<T> {
        Found {
            access: Access {
                instance_found: true,
                principal: Some(principal),
            },
            object,
        }
    }

    fn group() -> Group {
        Group {
            id: GroupId::new(3).unwrap(),
            name: None,
            label: "editors".into(),
            description: String::new(),
        }
    }

    #[test]
    fn any_api_key_reads_groups_but_only_ignore_acl_reads_users() {
        let plain = Principal::ApiKey { ignore_acl: false };
        assert_eq!(
            get_group(&api_key(), found(plain, Some(group()))),
            Ok(group())
        );
        let user = User {
            id: UserId::new(7).unwrap(),
            username: "alice".into(),
            groups: vec![group()],
        };
        assert_eq!(
            get_user(&api_key(), found(plain, Some(user.clone()))),
            Err(DomainError::PermissionDenied)
        );
        let acl = Principal::ApiKey { ignore_acl: true };
        assert_eq!(
            get_user(&api_key(), found(acl, Some(user.clone()))),
            Ok(user)
        );
    }

    #[test]
    fn missing_objects_are_their_own_reason() {
        let read = Principal::Admin(Some(Role::Read));
        assert_eq!(
            get_user(&api_key(), found(read, None)),
            Err(DomainError::UserNotFound)
        );
        assert_eq!(
            get_group(&api_key(), found(read, None)),
            Err(DomainError::GroupNotFound)
        );
        let nobody = Principal::Admin(None);
        assert_eq!(
            get_group(&api_key(), found(nobody, Some(group()))),
            Err(DomainError::PermissionDenied)
        );
    }

    #[test]
    fn requests_validate_their_fields() {
        assert!(ReadRequest::user("demo", 7).is_ok());
        let Err(DomainError::InvalidArgument(v)) = ReadRequest::group("", 0) else {
            panic!("expected an argument error");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["instance_name", "group_id"]);
        let invalid = ReadRequest::user("not a name", 1).unwrap();
        assert_eq!(
            invalid
                .lookup(&Credential::Missing, Permission::ReadUsers)
                .err(),
            Some(DomainError::InstanceNotFound)
        );
    }
}
