//! Reading a user (with their live groups) or a group: one statement each, one round trip,
//! no locks. The statement resolves the instance and the key's principal, and reads the object
//! only for a principal the operation permits.

use diesel::sql_types::{Array, BigInt, Bool, Bytea, Nullable, Text};
use diesel::{PgConnection, QueryResult, RunQueryDsl};
use groups_core::{Access, Found, Group, GroupId, Lookup, User, UserId};

use crate::removal::{decode_error, principal};
use crate::statement::{fixed_statement, principal_sql};

/// A read's statement: what it finds of object `Id` for a lookup (the server runs either on its
/// database workers through one generic path).
pub type Read<Id, T> = fn(&mut PgConnection, &Lookup<'_>, Id) -> QueryResult<Found<T>>;

/// The user `id` of the lookup's instance, with their live groups ordered by id.
pub fn get_user(
    conn: &mut PgConnection,
    lookup: &Lookup<'_>,
    id: UserId,
) -> QueryResult<Found<User>> {
    let digests = Digests::of(lookup);
    let (instance_found, label, username, ids, names, labels, descriptions) = GetUser {
        instance: lookup.instance.as_str(),
        account_key: digests.account,
        api_key: digests.api,
        user: id.get(),
        permitted: lookup.permitted,
    }
    .get_result::<UserRow>(conn)?;
    let ids = ids.unwrap_or_default();
    let (names, labels, descriptions) = (
        names.unwrap_or_default(),
        labels.unwrap_or_default(),
        descriptions.unwrap_or_default(),
    );
    if [names.len(), labels.len(), descriptions.len()] != [ids.len(); 3] {
        return Err(decode_error("group columns of unequal length".to_owned()));
    }
    let groups = ids
        .into_iter()
        .zip(names)
        .zip(labels.into_iter().zip(descriptions))
        .map(|((id, name), (label, description))| {
            Ok(Group {
                id: group_id(id)?,
                name,
                label,
                description,
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;
    Ok(Found {
        access: Access {
            instance_found,
            principal: principal(label)?,
        },
        object: username.map(|username| User {
            id,
            username,
            groups,
        }),
    })
}

/// The live group `id` of the lookup's instance.
pub fn get_group(
    conn: &mut PgConnection,
    lookup: &Lookup<'_>,
    id: GroupId,
) -> QueryResult<Found<Group>> {
    let digests = Digests::of(lookup);
    let (instance_found, label, found, name, group_label, description) = GetGroup {
        instance: lookup.instance.as_str(),
        account_key: digests.account,
        api_key: digests.api,
        group: id.get(),
        permitted: lookup.permitted,
    }
    .get_result::<GroupRow>(conn)?;
    let object = match (found, group_label, description) {
        (true, Some(label), Some(description)) => Some(Group {
            id,
            name,
            label,
            description,
        }),
        _ => None,
    };
    Ok(Found {
        access: Access {
            instance_found,
            principal: principal(label)?,
        },
        object,
    })
}

fn group_id(id: i64) -> QueryResult<GroupId> {
    GroupId::new(id).ok_or_else(|| decode_error(format!("group id {id}")))
}

/// A lookup's key digests as bind values.
pub(crate) struct Digests<'a> {
    pub(crate) account: Option<&'a [u8]>,
    pub(crate) api: Option<&'a [u8]>,
}

impl<'a> Digests<'a> {
    pub(crate) fn of(lookup: &'a Lookup<'_>) -> Self {
        Self {
            account: lookup.account_key.as_ref().map(|d| &d.as_bytes()[..]),
            api: lookup.api_key.as_ref().map(|d| &d.as_bytes()[..]),
        }
    }
}

type UserRow = (
    bool,
    Option<String>,
    Option<String>,
    Option<Vec<i64>>,
    Option<Vec<Option<String>>>,
    Option<Vec<String>>,
    Option<Vec<String>>,
);

type GroupRow = (
    bool,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// `WITH inst, who`: the instance named `$1` and the principal of the key digests `$2`, `$3`.
macro_rules! access_sql {
    () => {
        concat!(
            "WITH inst AS (SELECT id, owner_id FROM instances WHERE name = $1), \
             who AS (SELECT p.label, p.admin_id FROM inst CROSS JOIN LATERAL (",
            principal_sql!("inst", "$2", "$3"),
            ") p) "
        )
    };
}

fixed_statement! {
    /// See [`get_user`]: `(instance found, principal label, username, then the groups' ids,
    /// names, labels and descriptions as parallel arrays)`.
    GetUser<'a> {
        instance: &'a str => Text,
        account_key: Option<&'a [u8]> => Nullable<Bytea>,
        api_key: Option<&'a [u8]> => Nullable<Bytea>,
        user: i64 => BigInt,
        permitted: &'a [&'static str] => Array<Text>,
    } -> (
        Bool,
        Nullable<Text>,
        Nullable<Text>,
        Nullable<Array<BigInt>>,
        Nullable<Array<Nullable<Text>>>,
        Nullable<Array<Text>>,
        Nullable<Array<Text>>,
    ) = concat!(
        access_sql!(),
        ", usr AS (\
           SELECT u.id, u.username, u.instance_id FROM inst JOIN users u ON u.instance_id = inst.id AND u.id = $4 \
           WHERE EXISTS (SELECT 1 FROM who WHERE who.label = ANY($5::text[]))\
         ), grp AS (\
           SELECT g.id, g.name, g.label, g.description FROM usr \
           JOIN memberships m ON m.instance_id = usr.instance_id AND m.user_id = usr.id \
           JOIN groups g ON g.instance_id = m.instance_id AND g.id = m.group_id AND g.deleted_at IS NULL\
         ) \
         SELECT EXISTS (SELECT 1 FROM inst), (SELECT label FROM who), usr.username, \
                (SELECT array_agg(id ORDER BY id) FROM grp), (SELECT array_agg(name ORDER BY id) FROM grp), \
                (SELECT array_agg(label ORDER BY id) FROM grp), (SELECT array_agg(description ORDER BY id) FROM grp) \
         FROM (SELECT 1) AS one LEFT JOIN usr ON true"
    )
}

fixed_statement! {
    /// See [`get_group`]: `(instance found, principal label, group found, name, label,
    /// description)`.
    GetGroup<'a> {
        instance: &'a str => Text,
        account_key: Option<&'a [u8]> => Nullable<Bytea>,
        api_key: Option<&'a [u8]> => Nullable<Bytea>,
        group: i64 => BigInt,
        permitted: &'a [&'static str] => Array<Text>,
    } -> (Bool, Nullable<Text>, Bool, Nullable<Text>, Nullable<Text>, Nullable<Text>) = concat!(
        access_sql!(),
        ", grp AS (\
           SELECT g.name, g.label, g.description FROM inst \
           JOIN groups g ON g.instance_id = inst.id AND g.id = $4 AND g.deleted_at IS NULL \
           WHERE EXISTS (SELECT 1 FROM who WHERE who.label = ANY($5::text[]))\
         ) \
         SELECT EXISTS (SELECT 1 FROM inst), (SELECT label FROM who), grp.label IS NOT NULL, \
                grp.name, grp.label, grp.description \
         FROM (SELECT 1) AS one LEFT JOIN grp ON true"
    )
}
