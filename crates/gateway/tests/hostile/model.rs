//! SPEC.md as a model: the answer the gateway owes any request, given the rows it serves (the
//! fixture's instances, users, groups, memberships and keys, and the audit trail so far).
//!
//! Written from SPEC.md and the README, not from the gateway's code: what the HTTP layer
//! refuses, what the router matches, each route's order of checks, who may do what, and the
//! JSON of every object. Page tokens are opaque: the model knows those the gateway handed out.

mod answer;
mod request;

use std::cmp::Reverse;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use groups_testkit::Role;
use serde_json::{Value, json};

use crate::wire::Request;

pub(crate) use answer::{Expected, NextPage};
pub(crate) use request::{
    Api, MAX_TARGET, Op, Route, find_key, http_refusal, list_query, parse_id, parse_instance,
    route, routed_target,
};

pub(crate) const GROUP_NOT_FOUND: &str = "Group was not found.";
pub(crate) const USER_NOT_FOUND: &str = "User was not found.";
pub(crate) const NOT_FOUND: &str = "Not found";
pub(crate) const INSTANCE_NOT_FOUND: &str = "Instance was not found.";
pub(crate) const NO_PERMISSION: &str = "You do not have permission to perform this action.";
pub(crate) const NO_SUCH_KEY: &str = "No such API Key.";
pub(crate) const BAD_PAGE: &str = "Incorrect page parameter provided.";

/// `Allow` of the removal routes, of the reads and the listing, and of the health routes.
pub(crate) const REMOVAL_ALLOW: &str = "DELETE, OPTIONS";
pub(crate) const READ_ALLOW: &str = "GET, HEAD, OPTIONS";
pub(crate) const GET_ALLOW: &str = "GET, HEAD";

// ---- the rows --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) id: i64,
    pub(crate) label: String,
    pub(crate) deleted: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: i64,
    pub(crate) username: String,
}

/// An instance and its rows; memberships as (group, user).
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub(crate) name: String,
    pub(crate) groups: Vec<Group>,
    pub(crate) users: Vec<User>,
    pub(crate) memberships: Vec<(i64, i64)>,
}

impl Instance {
    fn live_group(&self, id: i64) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id && !g.deleted)
    }

    fn user(&self, id: i64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// A membership of a live group: what a removal can find.
    fn is_member(&self, group: i64, user: i64) -> bool {
        self.live_group(group).is_some() && self.memberships.contains(&(group, user))
    }
}

/// Who holds a key.
#[derive(Debug, Clone)]
pub(crate) enum Holder {
    /// An active admin and its roles, by instance.
    Admin { id: i64, roles: Vec<(String, Role)> },
    /// An instance's API key.
    ApiKey { instance: String, ignore_acl: bool },
    /// A revoked API key or an inactive admin's key.
    Dead,
}

/// A key as the server sees it on one instance (check 4 passed).
#[derive(Debug, Clone, Copy)]
enum Principal {
    Admin { id: i64, role: Option<Role> },
    ApiKey { ignore_acl: bool },
}

/// What each operation needs (SPEC.md: who may remove, read users, read groups, read events).
#[derive(Debug, Clone, Copy)]
enum Permission {
    Remove,
    ReadUser,
    ReadGroup,
    ReadAudit,
}

impl Permission {
    fn allows(self, principal: Principal) -> bool {
        use Role::{Full, Owner, Write};
        match (self, principal) {
            (Self::Remove, Principal::Admin { role, .. }) => {
                matches!(role, Some(Owner | Full | Write))
            }
            (Self::ReadAudit, Principal::Admin { role, .. }) => matches!(role, Some(Owner | Full)),
            (Self::ReadUser | Self::ReadGroup, Principal::Admin { role, .. }) => role.is_some(),
            (Self::ReadUser, Principal::ApiKey { ignore_acl }) => ignore_acl,
            (Self::ReadGroup, Principal::ApiKey { .. }) => true,
            (Self::Remove | Self::ReadAudit, Principal::ApiKey { .. }) => false,
        }
    }
}

/// A removal the model predicts: what its event must say (the actor's role by name).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub(crate) struct Removal {
    #[diesel(sql_type = Text)]
    pub(crate) instance: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) group: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) user: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) admin: i64,
    #[diesel(sql_type = Text)]
    pub(crate) role: String,
}

/// One event of the audit trail, as listed (and as `live` reads it from its table).
#[derive(Debug, Clone, QueryableByName)]
pub(crate) struct Event {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(embed)]
    pub(crate) removal: Removal,
    #[diesel(sql_type = Text)]
    pub(crate) request_id: String,
    #[diesel(sql_type = Text)]
    pub(crate) at: String,
}

/// A page token the gateway handed out, and what it stands for.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) text: String,
    pub(crate) last_id: i64,
    pub(crate) group: Option<i64>,
    pub(crate) user: Option<i64>,
}

/// What changes as requests are answered: the trail and the tokens handed out.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    pub(crate) events: Vec<Event>,
    pub(crate) tokens: Vec<Token>,
}

/// The answer, and the removal it stands for (204 only).
#[derive(Debug, Clone)]
pub(crate) struct Prediction {
    pub(crate) expected: Expected,
    pub(crate) removal: Option<Removal>,
}

impl From<Expected> for Prediction {
    fn from(expected: Expected) -> Self {
        Self {
            expected,
            removal: None,
        }
    }
}

/// The rows the gateway serves and the keys to them; constant but for memberships removed and
/// put back by the fixture.
#[derive(Debug)]
pub(crate) struct Rows {
    pub(crate) instances: Vec<Instance>,
    pub(crate) keys: Vec<(String, Holder)>,
}

impl Rows {
    /// SPEC.md's answer to `request`, as a client sees it.
    pub(crate) fn predict(&self, trail: &Trail, request: &Request) -> Prediction {
        if let Some(status) = http_refusal(&request.target) {
            return Expected::Refused(status).into();
        }
        let Some(target) = routed_target(&request.target) else {
            unreachable!("a target the HTTP layer takes is UTF-8 up to its fragment")
        };
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let method = request.method.as_str();
        let get = method == "GET" || method == "HEAD";
        match route(path) {
            Route::Unknown | Route::EmptySegment => Expected::detail(404, NOT_FOUND).into(),
            Route::Get(body) if get => Expected::Json(200, body).into(),
            Route::Metrics if get => Expected::Metrics.into(),
            Route::Get(_) | Route::Metrics => Expected::not_allowed(method, GET_ALLOW).into(),
            Route::Api(api) if method == "OPTIONS" => {
                Expected::Empty(204, Some(api.op.allow())).into()
            }
            Route::Api(api) if !api.op.serves(method) => {
                Expected::not_allowed(method, api.op.allow()).into()
            }
            Route::Api(api) => {
                let key = find_key(&request.headers, query);
                let call = Call {
                    rows: self,
                    trail,
                    key,
                };
                call.answer(&api, query).unwrap_or_else(Prediction::from)
            }
        }
    }

    /// Every group and user id of every instance, as path text.
    pub(crate) fn ids(&self) -> Vec<String> {
        let groups = self
            .instances
            .iter()
            .flat_map(|i| i.groups.iter().map(|g| g.id));
        let users = self
            .instances
            .iter()
            .flat_map(|i| i.users.iter().map(|u| u.id));
        groups.chain(users).map(|id| id.to_string()).collect()
    }
}

/// One API request past the router: the rows, the trail and the key it presents.
struct Call<'a> {
    rows: &'a Rows,
    trail: &'a Trail,
    key: Option<Vec<u8>>,
}

type Answer<T> = Result<T, Expected>;

impl Call<'_> {
    fn answer(&self, api: &Api<'_>, query: Option<&str>) -> Answer<Prediction> {
        let Api {
            op,
            version,
            instance: i,
            group: g,
            user: u,
        } = *api;
        match op {
            Op::RemoveFromGroup => self.remove_from_group(i, g, u),
            Op::RemoveFromUser => self.remove_from_user(i, g, u),
            Op::GetUser => self.get_user(version, i, u),
            Op::GetGroup => self.get_group(version, i, g),
            Op::ListEvents => self.list(version, i, query),
        }
    }

    fn remove_from_group(&self, i: &str, g: Option<&str>, u: Option<&str>) -> Answer<Prediction> {
        let group = id(g).ok_or(not_found(GROUP_NOT_FOUND))?;
        let user = id(u).ok_or(not_found(NOT_FOUND))?;
        let (instance, principal) = self.authorize(&instance_name(i)?, Permission::Remove)?;
        instance
            .live_group(group)
            .ok_or(not_found(GROUP_NOT_FOUND))?;
        removed(instance, principal, group, user)
    }

    fn remove_from_user(&self, i: &str, g: Option<&str>, u: Option<&str>) -> Answer<Prediction> {
        let user = id(u).ok_or(not_found(USER_NOT_FOUND))?;
        let group = id(g).ok_or(not_found(NOT_FOUND))?;
        let (instance, principal) = self.authorize(&instance_name(i)?, Permission::Remove)?;
        instance.user(user).ok_or(not_found(USER_NOT_FOUND))?;
        removed(instance, principal, group, user)
    }

    fn get_user(&self, version: &str, i: &str, u: Option<&str>) -> Answer<Prediction> {
        let user = id(u).ok_or(not_found(NOT_FOUND))?;
        let (instance, _) = self.authorize(&instance_name(i)?, Permission::ReadUser)?;
        let user = instance.user(user).ok_or(not_found(NOT_FOUND))?;
        Ok(Expected::Json(200, user_json(version, instance, user)).into())
    }

    fn get_group(&self, version: &str, i: &str, g: Option<&str>) -> Answer<Prediction> {
        let group = id(g).ok_or(not_found(NOT_FOUND))?;
        let (instance, _) = self.authorize(&instance_name(i)?, Permission::ReadGroup)?;
        let group = instance.live_group(group).ok_or(not_found(NOT_FOUND))?;
        Ok(Expected::Json(200, group_json(version, &instance.name, group)).into())
    }

    /// The query's values first (check 1; a page token among them), then checks 2 to 5.
    fn list(&self, version: &str, i: &str, query: Option<&str>) -> Answer<Prediction> {
        let bad_page = || Expected::detail(400, BAD_PAGE);
        let q = list_query(query).ok_or_else(bad_page)?;
        // A token the gateway handed out, for these filters: the last event of its page.
        let issued = |text: &String| {
            let mut tokens = self.trail.tokens.iter();
            tokens.find(|t| t.text == *text && (t.group, t.user) == (q.group, q.user))
        };
        let before = (q.token.as_ref())
            .map(|text| issued(text).map(|t| t.last_id).ok_or_else(bad_page))
            .transpose()?;
        // The page token is one of the query's values (check 1), so it comes before the name.
        let name = instance_name(i)?;
        let (instance, _) = self.authorize(&name, Permission::ReadAudit)?;
        let mut matching: Vec<&Event> = (self.trail.events.iter())
            .filter(|e| e.removal.instance == instance.name)
            .filter(|e| q.group.is_none_or(|g| e.removal.group == g))
            .filter(|e| q.user.is_none_or(|u| e.removal.user == u))
            .filter(|e| before.is_none_or(|last| e.id < last))
            .collect();
        matching.sort_by_key(|e| Reverse(e.id)); // newest first
        let shown = &matching[..matching.len().min(q.page_size as usize)];
        let next = (matching.len() > shown.len()).then(|| {
            let mut prefix = format!(
                "{version}/instances/{}/audit/memberships/?page_size={}",
                instance.name, q.page_size
            );
            if let Some(group) = q.group {
                prefix += &format!("&group={group}");
            }
            if let Some(user) = q.user {
                prefix += &format!("&user={user}");
            }
            prefix += "&page_token=";
            let last_id = shown.last().map_or(0, |e| e.id);
            NextPage {
                prefix,
                last_id,
                group: q.group,
                user: q.user,
            }
        });
        let objects = shown.iter().map(|e| event_json(e)).collect();
        Ok(Expected::Page { objects, next }.into())
    }

    /// Checks 2 to 5: the instance exists, a key is given and valid, and it may do this.
    fn authorize(&self, name: &str, permission: Permission) -> Answer<(&Instance, Principal)> {
        let instance = (self.rows.instances.iter())
            .find(|i| i.name == name)
            .ok_or_else(|| not_found(INSTANCE_NOT_FOUND))?;
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| Expected::detail(403, NO_PERMISSION))?;
        let holder = self.rows.keys.iter().find(|(k, _)| k.as_bytes() == key);
        let principal = match holder.map(|(_, holder)| holder) {
            Some(Holder::Admin { id, roles }) => {
                let role = roles.iter().find(|(i, _)| *i == instance.name);
                Principal::Admin {
                    id: *id,
                    role: role.map(|&(_, role)| role),
                }
            }
            Some(Holder::ApiKey {
                instance: of,
                ignore_acl,
            }) if *of == instance.name => Principal::ApiKey {
                ignore_acl: *ignore_acl,
            },
            _ => return Err(Expected::detail(403, NO_SUCH_KEY)),
        };
        if !permission.allows(principal) {
            return Err(Expected::detail(403, NO_PERMISSION));
        }
        Ok((instance, principal))
    }
}

fn not_found(detail: &str) -> Expected {
    Expected::detail(404, detail)
}

fn id(raw: Option<&str>) -> Option<i64> {
    raw.and_then(parse_id)
}

/// Check 2's half the gateway does: a name that cannot be one.
fn instance_name(raw: &str) -> Answer<String> {
    parse_instance(raw).ok_or_else(|| not_found(INSTANCE_NOT_FOUND))
}

/// The last checks of both removals: a member (of a live group) is removed, anyone else is not.
fn removed(instance: &Instance, who: Principal, group: i64, user: i64) -> Answer<Prediction> {
    if !instance.is_member(group, user) {
        return Err(not_found(NOT_FOUND));
    }
    let Principal::Admin {
        id: admin,
        role: Some(role),
    } = who
    else {
        unreachable!("only admins with a role may remove members")
    };
    Ok(Prediction {
        expected: Expected::Empty(204, None),
        removal: Some(Removal {
            instance: instance.name.clone(),
            group,
            user,
            admin,
            role: role.as_str().to_owned(),
        }),
    })
}

// ---- the objects -----------------------------------------------------------------------------

pub(crate) fn group_json(version: &str, instance: &str, group: &Group) -> Value {
    let this = format!("{version}/instances/{instance}/groups/{}/", group.id);
    json!({
        "id": group.id,
        "name": null,
        "label": group.label,
        "description": "",
        "links": { "users": format!("{this}users/"), "self": this },
    })
}

/// A user with its live groups, by id.
fn user_json(version: &str, instance: &Instance, user: &User) -> Value {
    let mut groups: Vec<&Group> = (instance.groups.iter())
        .filter(|g| instance.is_member(g.id, user.id))
        .collect();
    groups.sort_by_key(|g| g.id);
    let this = format!("{version}/instances/{}/users/{}/", instance.name, user.id);
    json!({
        "id": user.id,
        "username": user.username,
        "groups": groups.iter().map(|g| group_json(version, &instance.name, g)).collect::<Vec<_>>(),
        "links": { "groups": format!("{this}groups/"), "self": this },
    })
}

fn event_json(event: &Event) -> Value {
    let Removal {
        group,
        user,
        admin,
        role,
        ..
    } = &event.removal;
    json!({
        "id": event.id,
        "action": "membership.removed",
        "group": group,
        "user": user,
        "actor": { "admin": admin, "role": role },
        "request_id": event.request_id,
        "at": event.at,
    })
}
