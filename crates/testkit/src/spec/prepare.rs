//! A case made concrete against the fixture: the request each edge sends, the answer each edge
//! must give (objects and pages rendered from the fixture), and the check of the rows left.

use std::fmt::Write as _;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use groups_core::{MembershipEvent, PageToken, Snapshot};
use tonic::Code;

use super::fixture::{ExpectedGroup, ExpectedUser, SpecWorld};
use super::{Case, Credential, Grpc, Id, Instance, Operation, Rest, Row, Token};

/// Events per page when a listing does not say (both edges).
const DEFAULT_PAGE_SIZE: u32 = 50;
/// gRPC reads a larger page size as this.
const GRPC_MAX_PAGE: u32 = 1000;

/// A gRPC request, field by field (each method reads the fields it has; 0 or empty: not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcRequest {
    pub instance_name: String,
    pub group_id: i64,
    pub user_id: i64,
    pub allow_missing: bool,
    pub parent: i32,
    pub page_size: i32,
    pub page_token: String,
    /// Metadata to send, in order.
    pub metadata: Vec<(&'static str, String)>,
}

/// A REST request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    /// `DELETE` or `GET`.
    pub method: &'static str,
    /// Path and query, exactly as sent.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
}

/// The gRPC answer a case must get, made concrete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedGrpc {
    /// OK, `Empty`.
    Empty,
    User(ExpectedUser),
    Group(ExpectedGroup),
    /// OK, these events (newest first) and no next page token.
    Events(Vec<MembershipEvent>),
    /// An error with this code and `ErrorInfo` reason.
    Error {
        code: Code,
        reason: &'static str,
    },
    /// INVALID_ARGUMENT with `BadRequest` naming these fields (sorted).
    Invalid(Vec<&'static str>),
}

/// The rows a case is judged on, counted before and after it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
struct Rows {
    #[diesel(sql_type = BigInt)]
    users: i64,
    #[diesel(sql_type = BigInt)]
    groups: i64,
    #[diesel(sql_type = BigInt)]
    memberships: i64,
    #[diesel(sql_type = BigInt)]
    events: i64,
    /// The case's membership exists.
    #[diesel(sql_type = Bool)]
    target: bool,
    /// `admin:role` of each event of the case's membership, oldest first.
    #[diesel(sql_type = Text)]
    actors: String,
    /// A fresh user's membership of `SecondGroup`, their other group, exists.
    #[diesel(sql_type = Bool)]
    neighbour: bool,
}

/// A case ready to run: see [`SpecWorld::prepare`].
#[derive(Debug)]
pub struct Prepared<'a> {
    world: &'a SpecWorld,
    pub case: &'a Case,
    /// The ids the case names (the fresh user made for it), when they name one.
    group: Option<i64>,
    user: Option<i64>,
    /// `SecondGroup` when the user is a fresh one, whose other membership must stay.
    neighbour: Option<i64>,
    before: Rows,
}

impl SpecWorld {
    /// Makes what the case needs (a fresh member) and counts the rows it is judged on.
    pub fn prepare<'a>(&'a self, case: &'a Case) -> Prepared<'a> {
        let fresh = (case.user.row() == Some(Row::Fresh)).then(|| self.fresh_member());
        let number = |id: Id| match (id.row(), id) {
            (Some(Row::Fresh), _) => fresh,
            (Some(row), _) => Some(self.row(row)),
            (None, Id::Number(n)) => Some(n),
            (None, _) => None,
        };
        let (group, user) = (number(case.group), number(case.user));
        let neighbour = fresh.map(|_| self.row(Row::SecondGroup));
        let before = self.snapshot(group, user, neighbour);
        if case.expect.removes {
            assert!(before.target, "{}: nothing to remove", case.name);
        }
        Prepared {
            world: self,
            case,
            group,
            user,
            neighbour,
            before,
        }
    }

    /// Whether the rows left are those the case must leave: its membership gone with one event
    /// recording its actor, and nothing else changed, when it removes; nothing changed at all
    /// otherwise.
    pub fn verify(&self, prepared: &Prepared<'_>) -> Result<(), String> {
        let after = self.snapshot(prepared.group, prepared.user, prepared.neighbour);
        let (case, before) = (prepared.case, prepared.before.clone());
        let wanted = if case.expect.removes {
            let key = case.credential.key().expect("a removal presents a key");
            let (admin, role) = self
                .actor(key)
                .unwrap_or_else(|| panic!("{}: {key:?} may not remove members", case.name));
            Rows {
                memberships: before.memberships - 1,
                events: before.events + 1,
                target: false,
                actors: format!("{admin}:{}", role.as_str()),
                ..before
            }
        } else {
            before
        };
        if after == wanted {
            Ok(())
        } else {
            Err(format!("rows: expected {wanted:?}, found {after:?}"))
        }
    }

    fn snapshot(&self, group: Option<i64>, user: Option<i64>, neighbour: Option<i64>) -> Rows {
        diesel::sql_query(
            "SELECT (SELECT count(*) FROM users) AS users, \
                    (SELECT count(*) FROM groups) AS groups, \
                    (SELECT count(*) FROM memberships) AS memberships, \
                    (SELECT count(*) FROM membership_events) AS events, \
                    EXISTS (SELECT 1 FROM memberships WHERE group_id = $1 AND user_id = $2) AS target, \
                    (SELECT coalesce(string_agg(actor_admin_id || ':' || actor_role, ',' ORDER BY id), '') \
                     FROM membership_events WHERE group_id = $1 AND user_id = $2) AS actors, \
                    EXISTS (SELECT 1 FROM memberships WHERE group_id = $3 AND user_id = $2) AS neighbour",
        )
        .bind::<BigInt, _>(group.unwrap_or(-1))
        .bind::<BigInt, _>(user.unwrap_or(-1))
        .bind::<BigInt, _>(neighbour.unwrap_or(-1))
        .get_result(&mut *self.conn())
        .unwrap_or_else(|e| panic!("groups-testkit: counting rows: {e}"))
    }
}

impl Prepared<'_> {
    /// An id as REST spells it, `number` being its value; `None` when it is not given.
    fn text_of(id: Id, number: Option<i64>) -> Option<String> {
        let number = || number.expect("a resolved id").to_string();
        Some(match id {
            Id::Row(_) | Id::Number(_) => number(),
            Id::Padded(_) => format!("00{}", number()),
            Id::Encoded(_) => number().bytes().map(|d| format!("%{d:02X}")).collect(),
            Id::Raw(raw) => raw.to_owned(),
            Id::Absent => return None,
        })
    }

    /// The metadata or headers that carry the case's key (the names are lower case, as
    /// gRPC and HTTP/2 require and HTTP/1.1 allows); a key in the query is not among them.
    fn key_headers(&self) -> Vec<(&'static str, String)> {
        match self.case.credential {
            Credential::Nothing | Credential::Query(..) => vec![],
            Credential::Header(key) => vec![("x-api-key", self.world.key(key))],
            Credential::Authorization(template, key) => {
                let value = template.replace("{key}", &self.world.key(key));
                vec![("authorization", value)]
            }
            Credential::Empty => vec![("x-api-key", String::new())],
        }
    }

    /// The gRPC request. Panics for a case that is not sent over gRPC.
    pub fn grpc(&self) -> GrpcRequest {
        let case = self.case;
        let refuse = |what: &dyn std::fmt::Debug| -> ! {
            panic!("{}: {what:?} cannot travel over gRPC", case.name)
        };
        let Instance::Text(instance_name) = case.instance else {
            refuse(&case.instance)
        };
        if let Credential::Query(..) = case.credential {
            refuse(&case.credential)
        }
        let number = |id: Id, value: Option<i64>| match id {
            Id::Row(_) | Id::Number(_) => value.expect("resolved"),
            Id::Absent => 0,
            _ => refuse(&id),
        };
        let page_size = match case.page_size {
            Id::Number(n) => i32::try_from(n).expect("a page size fits an int32"),
            Id::Absent => 0,
            other => refuse(&other),
        };
        GrpcRequest {
            instance_name: instance_name.to_owned(),
            group_id: number(case.group, self.group),
            user_id: number(case.user, self.user),
            allow_missing: case.allow_missing,
            parent: case.parent.unwrap_or(match case.operation {
                Operation::RemoveFromUser => 2,
                _ => 1,
            }),
            page_size,
            page_token: token(case.page_token),
            metadata: self.key_headers(),
        }
    }

    /// The REST request.
    pub fn rest(&self) -> RestRequest {
        let case = self.case;
        let instance = match case.instance {
            Instance::Text(text) => encoded(text),
            Instance::Raw(raw) => raw.to_owned(),
        };
        let group = Self::text_of(case.group, self.group).unwrap_or_default();
        let user = Self::text_of(case.user, self.user).unwrap_or_default();
        let base = format!("{}/instances/{instance}", prefix(case));
        let mut path = match case.operation {
            Operation::RemoveFromGroup => format!("{base}/groups/{group}/users/{user}/"),
            Operation::RemoveFromUser => format!("{base}/users/{user}/groups/{group}/"),
            Operation::GetUser => format!("{base}/users/{user}/"),
            Operation::GetGroup => format!("{base}/groups/{group}/"),
            Operation::ListEvents => format!("{base}/audit/memberships/"),
        };
        if case.no_slash {
            path.pop();
        }
        let mut query = Vec::new();
        if case.operation == Operation::ListEvents {
            let size = match case.page_size {
                Id::Number(n) => Some(n),
                _ => None,
            };
            let params = [
                ("group", case.group, self.group),
                ("user", case.user, self.user),
                ("page_size", case.page_size, size),
            ];
            for (name, value, number) in params {
                if let Some(text) = Self::text_of(value, number) {
                    query.push(format!("{name}={text}"));
                }
            }
            if case.page_token != Token::None {
                query.push(format!("page_token={}", token(case.page_token)));
            }
        }
        match case.credential {
            Credential::Query(name, key) => {
                query.push(format!("{name}={}", encoded(&self.world.key(key))));
            }
            Credential::Empty => query.push("api_key=&apikey=".to_owned()),
            _ => {}
        }
        if !query.is_empty() {
            let _ = write!(path, "?{}", query.join("&"));
        }
        let removal = case.operation.is_removal();
        RestRequest {
            method: if removal { "DELETE" } else { "GET" },
            path,
            headers: self.key_headers(),
        }
    }

    /// The gRPC answer the case must get.
    pub fn expected_grpc(&self) -> ExpectedGrpc {
        let case = self.case;
        match case.expect.grpc.expect("a gRPC case") {
            Grpc::Ok => ExpectedGrpc::Empty,
            Grpc::Found => self.found(true),
            Grpc::Error(code, reason) => ExpectedGrpc::Error { code, reason },
            Grpc::Invalid(fields) => {
                let mut fields = fields.to_vec();
                fields.sort_unstable();
                ExpectedGrpc::Invalid(fields)
            }
        }
    }

    /// The REST answer the case must get: the status and the exact body (empty for 204).
    pub fn expected_rest(&self) -> (u16, String) {
        let case = self.case;
        let base = format!("{}/instances/demo", prefix(case));
        match case.expect.rest.expect("a REST case") {
            Rest::NoContent => (204, String::new()),
            Rest::Found => match self.found(false) {
                ExpectedGrpc::User(user) => (200, user_json(&base, &user)),
                ExpectedGrpc::Group(group) => (200, group_json(&base, &group)),
                ExpectedGrpc::Events(events) => (200, events_json(&events)),
                _ => unreachable!("a read finds an object"),
            },
            Rest::Detail(status, detail) => (status, format!(r#"{{"detail":{}}}"#, json(detail))),
        }
    }

    /// What a read finds: the user, the group, or the page of events (on gRPC or REST).
    fn found(&self, grpc: bool) -> ExpectedGrpc {
        let case = self.case;
        let row = |id: Id| {
            id.row()
                .unwrap_or_else(|| panic!("{}: {id:?} names no fixture row", case.name))
        };
        match case.operation {
            Operation::GetUser => ExpectedGrpc::User(self.world.expected_user(row(case.user))),
            Operation::GetGroup => ExpectedGrpc::Group(self.world.expected_group(row(case.group))),
            Operation::ListEvents => ExpectedGrpc::Events(self.events(grpc)),
            _ => panic!("{}: a removal finds nothing", case.name),
        }
    }

    /// The page a listing must return: the fixture's events of its filters, all on one page.
    fn events(&self, grpc: bool) -> Vec<MembershipEvent> {
        let case = self.case;
        let size = match case.page_size {
            Id::Number(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => DEFAULT_PAGE_SIZE,
        };
        let size = if grpc { size.min(GRPC_MAX_PAGE) } else { size };
        let events = self.world.events(self.group, self.user, size + 1);
        assert!(
            events.len() <= size as usize,
            "{}: the events would not fit one page",
            case.name
        );
        events
    }
}

/// The REST path's version prefix.
fn prefix(case: &Case) -> &'static str {
    if case.v1 { "/v1" } else { "/v1.1" }
}

fn token(token: Token) -> String {
    match token {
        Token::None => String::new(),
        Token::Text(text) => text.to_owned(),
        Token::Unfiltered => PageToken {
            last_id: 1,
            group: None,
            user: None,
            snapshot: Snapshot::parse("1:1:").expect("a snapshot"),
        }
        .encode(),
    }
}

/// Percent-encodes every byte but the URL's unreserved characters.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn json(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// A group as SPEC.md writes it, fields in its order.
fn group_json(base: &str, group: &ExpectedGroup) -> String {
    let name = group.name.as_deref().map_or("null".to_owned(), json);
    let this = format!("{base}/groups/{}/", group.id);
    format!(
        r#"{{"id":{},"name":{name},"label":{},"description":{},"links":{{"self":{},"users":{}}}}}"#,
        group.id,
        json(&group.label),
        json(&group.description),
        json(&this),
        json(&format!("{this}users/")),
    )
}

/// A user as SPEC.md writes it.
fn user_json(base: &str, user: &ExpectedUser) -> String {
    let groups: Vec<String> = user.groups.iter().map(|g| group_json(base, g)).collect();
    let this = format!("{base}/users/{}/", user.id);
    format!(
        r#"{{"id":{},"username":{},"groups":[{}],"links":{{"self":{},"groups":{}}}}}"#,
        user.id,
        json(&user.username),
        groups.join(","),
        json(&this),
        json(&format!("{this}groups/")),
    )
}

/// A page of the trail in the original's list shape, all of it on one page.
fn events_json(events: &[MembershipEvent]) -> String {
    let objects: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                r#"{{"id":{},"action":"membership.removed","group":{},"user":{},"actor":{{"admin":{},"role":"{}"}},"request_id":{},"at":"{}"}}"#,
                e.id,
                e.group,
                e.user,
                e.actor_admin,
                e.actor_role.as_str(),
                json(&e.request_id),
                e.at,
            )
        })
        .collect();
    format!(
        r#"{{"next":null,"prev":null,"objects":[{}]}}"#,
        objects.join(",")
    )
}
