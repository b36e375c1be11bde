//! The JSON objects of the REST API, shaped as Syncano v1.1 wrote them (fields in its order),
//! and the audit listing's query: its parameters and the `next` link.
//!
//! Links are paths (no host) under the version prefix the request came in on, with the
//! instance's stored (lower-case) name. The original's `user_key` and `profile` are left out:
//! there are no user keys or profiles here.

use std::fmt::Write as _;

use groups_core::{GroupId, InstanceName, PageToken, UserId, UtcMicros};
use serde::Serialize;

use crate::answer::Answer;
use crate::api_key::last_query_value;

/// Where an instance's objects live: `/v1.1/instances/demo`.
#[derive(Debug, Clone)]
pub(crate) struct Base(String);

impl Base {
    pub(crate) fn new(version: &str, instance: &InstanceName) -> Self {
        Self(format!("{version}/instances/{instance}"))
    }
}

/// A group: `{"id","name","label","description","links":{"self","users"}}`.
#[derive(Debug, Serialize)]
pub(crate) struct Group {
    id: i64,
    name: Option<String>,
    label: String,
    description: String,
    links: GroupLinks,
}

#[derive(Debug, Serialize)]
struct GroupLinks {
    #[serde(rename = "self")]
    this: String,
    users: String,
}

impl Group {
    pub(crate) fn new(base: &Base, group: groups_proto::Group) -> Self {
        let this = format!("{}/groups/{}/", base.0, group.id);
        Self {
            id: group.id,
            name: group.name,
            label: group.label,
            description: group.description,
            links: GroupLinks {
                users: format!("{this}users/"),
                this,
            },
        }
    }
}

/// A user: `{"id","username","groups":[group...],"links":{"self","groups"}}`.
#[derive(Debug, Serialize)]
pub(crate) struct User {
    id: i64,
    username: String,
    groups: Vec<Group>,
    links: UserLinks,
}

#[derive(Debug, Serialize)]
struct UserLinks {
    #[serde(rename = "self")]
    this: String,
    groups: String,
}

impl User {
    pub(crate) fn new(base: &Base, user: groups_proto::User) -> Self {
        let this = format!("{}/users/{}/", base.0, user.id);
        Self {
            id: user.id,
            username: user.username,
            groups: user
                .groups
                .into_iter()
                .map(|g| Group::new(base, g))
                .collect(),
            links: UserLinks {
                groups: format!("{this}groups/"),
                this,
            },
        }
    }
}

/// A page of the audit trail, in the original's list shape.
#[derive(Debug, Serialize)]
pub(crate) struct EventList {
    next: Option<String>,
    prev: Option<String>,
    objects: Vec<Event>,
}

/// `{"id","action","group","user","actor":{"admin","role"},"request_id","at"}`.
#[derive(Debug, Serialize)]
struct Event {
    id: i64,
    action: String,
    group: i64,
    user: i64,
    actor: Actor,
    request_id: String,
    at: String,
}

#[derive(Debug, Serialize)]
struct Actor {
    admin: i64,
    role: String,
}

impl EventList {
    /// The page, with `next` leading to the page after it (same filters and size) when there is one.
    pub(crate) fn new(
        base: &Base,
        query: &ListQuery,
        page: groups_proto::ListMembershipEventsResponse,
    ) -> Self {
        let next = (!page.next_page_token.is_empty()).then(|| {
            let mut link = format!(
                "{}/audit/memberships/?page_size={}",
                base.0, query.page_size
            );
            if let Some(group) = query.group {
                let _ = write!(link, "&group={group}");
            }
            if let Some(user) = query.user {
                let _ = write!(link, "&user={user}");
            }
            // The token is URL-safe base64: nothing to escape.
            let _ = write!(link, "&page_token={}", page.next_page_token);
            link
        });
        Self {
            next,
            prev: None,
            objects: page.events.into_iter().map(Event::from).collect(),
        }
    }
}

impl From<groups_proto::MembershipEvent> for Event {
    fn from(event: groups_proto::MembershipEvent) -> Self {
        let at = event.at.unwrap_or_default();
        let micros = at
            .seconds
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(at.nanos / 1000));
        Self {
            id: event.id,
            action: event.action,
            group: event.group_id,
            user: event.user_id,
            actor: Actor {
                admin: event.actor_admin_id,
                role: event.actor_role,
            },
            request_id: event.request_id,
            at: UtcMicros(micros).to_string(),
        }
    }
}

/// Events per REST page when the query does not say.
pub(crate) const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most events a REST page holds.
pub(crate) const MAX_PAGE_SIZE: u32 = 100;

/// The audit listing's query: `group`, `user`, `page_size`, `page_token`; other parameters
/// (a key in `api_key`, say) are not its business. An empty value counts as not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub(crate) group: Option<GroupId>,
    pub(crate) user: Option<UserId>,
    pub(crate) page_size: u32,
    pub(crate) page_token: String,
}

impl ListQuery {
    /// Reads the query; any value that cannot be one is 400 "Incorrect page parameter provided.".
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, Answer> {
        let value = |name: &str| -> Result<Option<String>, Answer> {
            let Some(bytes) = query.and_then(|q| last_query_value(q, name.as_bytes())) else {
                return Ok(None);
            };
            let text = String::from_utf8(bytes.into_owned()).map_err(|_| Answer::bad_page())?;
            Ok((!text.is_empty()).then_some(text))
        };
        let id = |name: &str, parse: fn(&str) -> Option<i64>| -> Result<Option<i64>, Answer> {
            value(name)?
                .map(|text| parse(&text).ok_or(Answer::bad_page()))
                .transpose()
        };
        let group = id("group", |t| GroupId::parse(t).map(GroupId::get))?;
        let user = id("user", |t| UserId::parse(t).map(UserId::get))?;
        let page_size = match value("page_size")? {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|size| {
                    (1..=MAX_PAGE_SIZE).contains(size) && text.bytes().all(|b| b.is_ascii_digit())
                })
                .ok_or(Answer::bad_page())?,
        };
        let (group, user) = (group.and_then(GroupId::new), user.and_then(UserId::new));
        // A token is checked here, with the other query values (check 1), not only by the
        // server after the instance and the key: it must be one of ours, for these filters.
        let page_token = value("page_token")?.unwrap_or_default();
        if !page_token.is_empty() {
            PageToken::decode(&page_token)
                .filter(|token| token.group == group && token.user == user)
                .ok_or(Answer::bad_page())?;
        }
        Ok(Self {
            group,
            user,
            page_size,
            page_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_have_syncano_s_shape() {
        let base = Base::new("/v1.1", &InstanceName::parse("Demo").unwrap());
        let group = groups_proto::Group {
            id: 3,
            name: None,
            label: "editors".into(),
            description: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&Group::new(&base, group.clone())).unwrap(),
            r#"{"id":3,"name":null,"label":"editors","description":"","links":{"self":"/v1.1/instances/demo/groups/3/","users":"/v1.1/instances/demo/groups/3/users/"}}"#
        );
        let user = groups_proto::User {
            id: 7,
            username: "alice".into(),
            groups: vec![group],
        };
        let json = serde_json::to_string(&User::new(&base, user)).unwrap();
        assert!(
            json.starts_with(r#"{"id":7,"username":"alice","groups":[{"id":3,"#),
            "{json}"
        );
        assert!(
            json.ends_with(r#""links":{"self":"/v1.1/instances/demo/users/7/","groups":"/v1.1/instances/demo/users/7/groups/"}}"#),
            "{json}"
        );
    }

    #[test]
    fn list_queries_are_checked() {
        let q = ListQuery::parse(Some("group=3&page_size=10&api_key=x")).unwrap();
        assert_eq!(
            (q.group.map(GroupId::get), q.user, q.page_size),
            (Some(3), None, 10)
        );
        assert_eq!(ListQuery::parse(None).unwrap().page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(ListQuery::parse(Some("group=&user=")).unwrap().group, None);
        let token = PageToken {
            last_id: 9,
            group: GroupId::new(3),
            user: None,
            snapshot: groups_core::Snapshot::parse("5:5:").unwrap(),
        }
        .encode();
        let with = |query: &str| ListQuery::parse(Some(&format!("{query}&page_token={token}")));
        assert_eq!(with("group=3").unwrap().page_token, token);
        assert_eq!(with("group=4"), Err(Answer::bad_page()), "another filter");
        for bad in [
            "page_size=0",
            "page_size=101",
            "page_size=+5",
            "page_size=x",
            "group=-1",
            "user=0",
            "group=1.5",
            "page_token=%FF",
            "page_token=nonsense",
        ] {
            assert_eq!(
                ListQuery::parse(Some(bad)),
                Err(Answer::bad_page()),
                "{bad}"
            );
        }
    }

    #[test]
    fn next_links_keep_the_filters_and_never_the_key() {
        let base = Base::new("/v1", &InstanceName::parse("demo").unwrap());
        let query = ListQuery::parse(Some("api_key=secret&user=7&page_size=2")).unwrap();
        let page = groups_proto::ListMembershipEventsResponse {
            events: vec![],
            next_page_token: "abc_-".into(),
        };
        let list = EventList::new(&base, &query, page);
        assert_eq!(
            list.next.as_deref(),
            Some("/v1/instances/demo/audit/memberships/?page_size=2&user=7&page_token=abc_-")
        );
    }
}
