//! Provisioning: admins, roles, instances, API keys, users, groups and memberships.
//!
//! These are what `groupsctl` runs and what tests set up with. Each takes a plain connection;
//! each checks its inputs with the domain's parsers, so nothing invalid reaches a table.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use groups_core::{GroupId, InstanceName, KeyKind, Role, SecretKey, UserId};

use crate::error::{StoreError, StoreResult};
use crate::schema::{admin_roles, admins, api_keys, groups, instances, memberships, users};

/// A new admin, with their account key (shown once).
#[derive(Debug)]
pub struct NewAdmin {
    /// Row id.
    pub id: i64,
    /// E-mail, as given.
    pub email: String,
    /// The account key: 40 hex, even last digit.
    pub key: SecretKey,
}

/// A new API key (shown once).
#[derive(Debug)]
pub struct NewApiKey {
    /// Row id, to revoke it by.
    pub id: i64,
    /// The key: 40 hex, odd last digit.
    pub key: SecretKey,
}

/// Flags of a new API key; all off by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiKeyFlags {
    /// Bypass object-level ACLs.
    pub ignore_acl: bool,
    /// May create users.
    pub allow_user_create: bool,
    /// Anonymous read access.
    pub allow_anonymous_read: bool,
    /// May create groups.
    pub allow_group_create: bool,
}

fn new_key(kind: KeyKind) -> StoreResult<SecretKey> {
    SecretKey::generate(kind).map_err(|e| StoreError::Randomness(e.to_string()))
}

fn parse_instance(name: &str) -> StoreResult<InstanceName> {
    InstanceName::parse(name).ok_or_else(|| {
        StoreError::Invalid(format!("instance name {name:?}: use 1-64 of a-z 0-9 - _"))
    })
}

/// Maps a unique violation to `AlreadyExists(what)`, keeping other errors.
fn unique(what: impl FnOnce() -> String) -> impl FnOnce(DieselError) -> StoreError {
    move |e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            StoreError::AlreadyExists(what())
        }
        other => StoreError::Database(other),
    }
}

fn validate_email(email: &str) -> StoreResult<()> {
    let plausible = (3..=254).contains(&email.len())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("e-mail {email:?}")))
    }
}

/// Creates an active admin with a fresh account key. E-mails are unique, case-insensitively.
pub fn create_admin(conn: &mut PgConnection, email: &str) -> StoreResult<NewAdmin> {
    validate_email(email)?;
    let key = new_key(KeyKind::Account)?;
    let id = diesel::insert_into(admins::table)
        .values((
            admins::email.eq(email),
            admins::key_digest.eq(&key.digest().as_bytes()[..]),
        ))
        .returning(admins::id)
        .get_result(conn)
        .map_err(unique(|| format!("admin {email}")))?;
    Ok(NewAdmin {
        id,
        email: email.to_owned(),
        key,
    })
}

/// The id of the admin with this e-mail (case-insensitive).
pub fn admin_id(conn: &mut PgConnection, email: &str) -> StoreResult<i64> {
    admins::table
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = lower(")
                .bind::<diesel::sql_types::Text, _>(email)
                .sql(")"),
        )
        .select(admins::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("admin {email}")))
}

/// The id of the instance with this name (case-insensitive).
pub fn instance_id(conn: &mut PgConnection, name: &str) -> StoreResult<i64> {
    let name = parse_instance(name)?;
    instances::table
        .filter(instances::name.eq(name.as_str()))
        .select(instances::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("instance {name}")))
}

/// Gives an admin a role on an instance, replacing any role they had there.
/// The owner already has every right; granting them a role is refused as meaningless.
pub fn grant_role(
    conn: &mut PgConnection,
    email: &str,
    instance: &str,
    role: Role,
) -> StoreResult<()> {
    if !role.is_grantable() {
        return Err(StoreError::Invalid(
            "role: owner comes with the instance and cannot be granted".into(),
        ));
    }
    conn.transaction(|conn| {
        let admin = admin_id(conn, email)?;
        let instance_id = instance_id(conn, instance)?;
        let owner: i64 = instances::table
            .find(instance_id)
            .select(instances::owner_id)
            .first(conn)?;
        if owner == admin {
            return Err(StoreError::Invalid(format!(
                "grant: {email} owns instance {instance}"
            )));
        }
        diesel::insert_into(admin_roles::table)
            .values((
                admin_roles::instance_id.eq(instance_id),
                admin_roles::admin_id.eq(admin),
                admin_roles::role.eq(role.as_str()),
            ))
            .on_conflict((admin_roles::instance_id, admin_roles::admin_id))
            .do_update()
            .set(admin_roles::role.eq(role.as_str()))
            .execute(conn)?;
        Ok(())
    })
}

/// Deactivates an admin: their key stops working everywhere at once.
pub fn deactivate_admin(conn: &mut PgConnection, email: &str) -> StoreResult<()> {
    let admin = admin_id(conn, email)?;
    diesel::update(admins::table.find(admin))
        .set(admins::is_active.eq(false))
        .execute(conn)?;
    Ok(())
}

/// Creates an instance owned by an existing admin. Returns its id and stored (lower-case) name.
pub fn create_instance(
    conn: &mut PgConnection,
    name: &str,
    owner_email: &str,
) -> StoreResult<(i64, String)> {
    let name = parse_instance(name)?;
    conn.transaction(|conn| {
        let owner = admin_id(conn, owner_email)?;
        let id = diesel::insert_into(instances::table)
            .values((
                instances::name.eq(name.as_str()),
                instances::owner_id.eq(owner),
            ))
            .returning(instances::id)
            .get_result(conn)
            .map_err(unique(|| format!("instance {name}")))?;
        Ok((id, name.to_string()))
    })
}

/// Creates an API key of an instance.
pub fn create_api_key(
    conn: &mut PgConnection,
    instance: &str,
    flags: ApiKeyFlags,
) -> StoreResult<NewApiKey> {
    let instance_id = instance_id(conn, instance)?;
    let key = new_key(KeyKind::Instance)?;
    let id = diesel::insert_into(api_keys::table)
        .values((
            api_keys::instance_id.eq(instance_id),
            api_keys::key_digest.eq(&key.digest().as_bytes()[..]),
            api_keys::ignore_acl.eq(flags.ignore_acl),
            api_keys::allow_user_create.eq(flags.allow_user_create),
            api_keys::allow_anonymous_read.eq(flags.allow_anonymous_read),
            api_keys::allow_group_create.eq(flags.allow_group_create),
        ))
        .returning(api_keys::id)
        .get_result(conn)?;
    Ok(NewApiKey { id, key })
}

/// Revokes an API key of an instance. Revoking twice is harmless; another instance's key is
/// "not found".
pub fn revoke_api_key(conn: &mut PgConnection, instance: &str, key_id: i64) -> StoreResult<()> {
    let instance_id = instance_id(conn, instance)?;
    let updated = diesel::update(
        api_keys::table
            .filter(api_keys::instance_id.eq(instance_id))
            .filter(api_keys::id.eq(key_id)),
    )
    .set(api_keys::revoked_at.eq(diesel::dsl::sql::<
        diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    >("COALESCE(revoked_at, now())")))
    .execute(conn)?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!(
            "API key {key_id} of instance {instance}"
        )));
    }
    Ok(())
}

/// Creates an end user of an instance. Usernames are unique per instance.
pub fn create_user(
    conn: &mut PgConnection,
    instance: &str,
    username: &str,
) -> StoreResult<(i64, String)> {
    if username.is_empty()
        || username.chars().count() > 64
        || username.chars().any(char::is_control)
    {
        return Err(StoreError::Invalid(format!(
            "username {username:?}: 1-64 printable characters"
        )));
    }
    let instance_id = instance_id(conn, instance)?;
    let id = diesel::insert_into(users::table)
        .values((
            users::instance_id.eq(instance_id),
            users::username.eq(username),
        ))
        .returning(users::id)
        .get_result(conn)
        .map_err(unique(|| format!("user {username}")))?;
    Ok((id, username.to_owned()))
}

/// Creates a group of an instance.
pub fn create_group(
    conn: &mut PgConnection,
    instance: &str,
    label: &str,
) -> StoreResult<(i64, String)> {
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "label {label:?}: 1-64 printable characters"
        )));
    }
    let instance_id = instance_id(conn, instance)?;
    let id = diesel::insert_into(groups::table)
        .values((groups::instance_id.eq(instance_id), groups::label.eq(label)))
        .returning(groups::id)
        .get_result(conn)?;
    Ok((id, label.to_owned()))
}

/// Deletes a group (softly: the row stays, marked deleted, and no longer exists for the API).
pub fn delete_group(conn: &mut PgConnection, instance: &str, group: GroupId) -> StoreResult<()> {
    let instance_id = instance_id(conn, instance)?;
    let updated = diesel::update(
        groups::table
            .filter(groups::instance_id.eq(instance_id))
            .filter(groups::id.eq(group.get()))
            .filter(groups::deleted_at.is_null()),
    )
    .set(groups::deleted_at.eq(diesel::dsl::sql::<
        diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    >("now()")))
    .execute(conn)?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!(
            "group {group} of instance {instance}"
        )));
    }
    Ok(())
}

/// Makes a user a member of a group of the same instance.
pub fn add_member(
    conn: &mut PgConnection,
    instance: &str,
    group: GroupId,
    user: UserId,
) -> StoreResult<()> {
    conn.transaction(|conn| {
        let instance_id = instance_id(conn, instance)?;
        let group_exists: bool = diesel::select(diesel::dsl::exists(
            groups::table
                .filter(groups::instance_id.eq(instance_id))
                .filter(groups::id.eq(group.get()))
                .filter(groups::deleted_at.is_null()),
        ))
        .get_result(conn)?;
        if !group_exists {
            return Err(StoreError::NotFound(format!(
                "group {group} of instance {instance}"
            )));
        }
        let user_exists: bool = diesel::select(diesel::dsl::exists(
            users::table
                .filter(users::instance_id.eq(instance_id))
                .filter(users::id.eq(user.get())),
        ))
        .get_result(conn)?;
        if !user_exists {
            return Err(StoreError::NotFound(format!(
                "user {user} of instance {instance}"
            )));
        }
        diesel::insert_into(memberships::table)
            .values((
                memberships::instance_id.eq(instance_id),
                memberships::group_id.eq(group.get()),
                memberships::user_id.eq(user.get()),
            ))
            .execute(conn)
            .map_err(unique(|| {
                format!("membership of user {user} in group {group}")
            }))?;
        Ok(())
    })
}

/// Whether a user is a member of a group (for tests and tools).
pub fn is_member(conn: &mut PgConnection, group: GroupId, user: UserId) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        memberships::table
            .filter(memberships::group_id.eq(group.get()))
            .filter(memberships::user_id.eq(user.get())),
    ))
    .get_result(conn)?)
}
