//! One table of SPEC.md's cases that both edges run: the gRPC suite (`groups-server`) and the
//! REST suite (`groups-gateway`) send every case the table gives their edge and compare the
//! answer, and the rows left, with what the case expects.
//!
//! A [`Case`] says what is sent in terms of one fixture's rows ([`SpecWorld`], built once per
//! suite run) and what each edge must answer. Ids and names only a path can carry are REST's;
//! ids `<= 0`, `allow_missing` and `parent` are gRPC's. A removal that succeeds is aimed at a
//! membership made for that case alone and must delete it and nothing else; every other case
//! must leave every row as it was.
//!
//! One file per operation's table (`remove_from_group`, `remove_from_user`, `reads`, `audit`);
//! checks 2–5, the same for all, in `shared`; SPEC.md's answers in `answers`; `fixture` builds
//! the world; `prepare` turns a case into each edge's request and answer and checks the rows.

mod answers;
mod audit;
mod fixture;
mod prepare;
mod reads;
mod remove_from_group;
mod remove_from_user;
mod shared;
mod suite;

pub use answers::{
    BAD_KEY, DENIED, Expect, FOUND, GROUP_NOT_FOUND, Grpc, INSTANCE_NOT_FOUND, NO_KEY,
    NO_SUCH_GROUP, NO_SUCH_USER, NOT_A_MEMBER, REMOVED, Rest, USER_NOT_FOUND,
};
pub use fixture::{ExpectedGroup, ExpectedUser, SpecWorld};
pub use prepare::{ExpectedGrpc, GrpcRequest, Prepared, RestRequest};
pub use suite::{Edge, Suite, take_turn};

/// The operations of SPEC.md the table covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `DELETE .../groups/{group_id}/users/{user_id}/`; `RemoveGroupMember`, parent GROUP.
    RemoveFromGroup,
    /// `DELETE .../users/{user_id}/groups/{group_id}/`; `RemoveGroupMember`, parent USER.
    RemoveFromUser,
    /// `GET .../users/{user_id}/`; `Directory/GetUser`.
    GetUser,
    /// `GET .../groups/{group_id}/`; `Directory/GetGroup`.
    GetGroup,
    /// `GET .../audit/memberships/`; `Audit/ListMembershipEvents`.
    ListEvents,
}

impl Operation {
    /// Every operation, in SPEC.md's order.
    pub const ALL: [Operation; 5] = [
        Operation::RemoveFromGroup,
        Operation::RemoveFromUser,
        Operation::GetUser,
        Operation::GetGroup,
        Operation::ListEvents,
    ];

    /// Whether it removes a membership.
    pub fn is_removal(self) -> bool {
        matches!(self, Operation::RemoveFromGroup | Operation::RemoveFromUser)
    }
}

/// A row of the fixture, by its part in the cases (see [`SpecWorld`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Row {
    /// Demo's group `demo-group`: `DemoUser` (and every `Fresh` user) is a member.
    DemoGroup,
    /// Demo's group `second`, with a name and a description: `DemoUser` is a member.
    SecondGroup,
    /// Demo's group `third`: `DemoUser` is a member (joined before `SecondGroup`).
    ThirdGroup,
    /// Demo's deleted group: `DemoUser`'s membership row stays behind.
    DeletedGroup,
    /// Demo's group `audited`, which `FormerMember` was removed from when the fixture was built.
    AuditedGroup,
    /// Demo's user `demo-user`.
    DemoUser,
    /// Demo's user `loner`, in no group.
    Loner,
    /// Demo's user `former`, removed from `AuditedGroup` (the trail's one event of it).
    FormerMember,
    /// The group and the user (a member) of instance `other`.
    OtherGroup,
    OtherUser,
    /// The group and the user (a member) of instance `dormant`, whose owner is inactive.
    DormantGroup,
    DormantUser,
    /// A user made for the case alone, member of `DemoGroup` and `SecondGroup`.
    Fresh,
}

/// An id as a case sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    /// A fixture row's id: a number on gRPC, its decimal text on REST.
    Row(Row),
    /// A number: as is on gRPC, decimal on REST (where `0` or `-1` is a malformed path id).
    Number(i64),
    /// A row's id with leading zeros (`007`): REST only.
    Padded(Row),
    /// A row's id with every digit percent-encoded (`%37`): REST only.
    Encoded(Row),
    /// A path segment or query value as is (`abc`, `1.5`, `%FF`): REST only.
    Raw(&'static str),
    /// Not given (an audit listing's filter): 0 on gRPC, left out on REST.
    Absent,
}

impl Id {
    /// The fixture row an id names, however it is spelled.
    pub fn row(self) -> Option<Row> {
        match self {
            Id::Row(row) | Id::Padded(row) | Id::Encoded(row) => Some(row),
            _ => None,
        }
    }
}

impl From<Row> for Id {
    fn from(row: Row) -> Self {
        Id::Row(row)
    }
}

impl From<i64> for Id {
    fn from(number: i64) -> Self {
        Id::Number(number)
    }
}

impl From<&'static str> for Id {
    fn from(raw: &'static str) -> Self {
        Id::Raw(raw)
    }
}

/// The instance as a case names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    /// Text: as is on gRPC, percent-encoded into the path on REST.
    Text(&'static str),
    /// A path segment as is (`%FF`, `de%6Do`): REST only.
    Raw(&'static str),
}

/// A key a case presents, by whose it is (or what is wrong with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// Demo's owner.
    Owner,
    /// Admins with a role on demo: full, write, read.
    Full,
    Write,
    Read,
    /// An active admin with no role on demo.
    NoRole,
    /// An admin with role `full` on `other`, none on demo.
    RoleElsewhere,
    /// The owner of `other`.
    OtherOwner,
    /// The owner of `dormant`, deactivated.
    DormantOwner,
    /// Demo's API keys without and with `ignore_acl`.
    ApiKey,
    ApiKeyIgnoreAcl,
    /// Demo's revoked API keys, without and with `ignore_acl`.
    Revoked,
    RevokedIgnoreAcl,
    /// Deactivated admins with a role on demo.
    InactiveWrite,
    InactiveFull,
    InactiveRead,
    /// An API key of `other`, with `ignore_acl`.
    OtherApiKey,
    /// Well-formed keys nobody holds: account-shaped (even) and API-key-shaped (odd).
    UnknownAccount,
    UnknownApi,
    /// The owner's key cut to 39 characters, or with a 41st, upper-cased, or with a non-hex last.
    OwnerTruncated,
    OwnerExtended,
    OwnerUpperCase,
    OwnerNotHex,
    /// Any text.
    Text(&'static str),
}

/// The key and where it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No key anywhere.
    Nothing,
    /// `X-API-KEY` (REST) / `x-api-key` (gRPC).
    Header(Key),
    /// `Authorization`, from a template where `{key}` stands for the key (`Token {key}`).
    Authorization(&'static str, Key),
    /// A query parameter (`api_key`, `apikey`): REST only.
    Query(&'static str, Key),
    /// Empty values: `x-api-key: ` (and, on REST, `?api_key=&apikey=`).
    Empty,
}

impl Credential {
    /// The key presented, wherever it travels.
    pub fn key(self) -> Option<Key> {
        match self {
            Credential::Header(key)
            | Credential::Authorization(_, key)
            | Credential::Query(_, key) => Some(key),
            Credential::Nothing | Credential::Empty => None,
        }
    }
}

/// An id no row has.
pub const NO_SUCH_ID: i64 = 987_654_321;

/// 65 characters: one past the longest instance name.
pub const TOO_LONG_NAME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Path ids that are not a decimal integer in 1..2^63-1.
pub const MALFORMED_IDS: [&str; 11] = [
    "abc",
    "0",
    "000",
    "-1",
    "9223372036854775808",
    "99999999999999999999999999999999",
    "1.5",
    "+1",
    "0x10",
    "%201",
    "1e3",
];

/// One case of the table: what is sent, and what each edge must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Says what the case is; unique within its operation.
    pub name: String,
    pub operation: Operation,
    pub instance: Instance,
    /// The group (the audit listing's `group` filter); unused by `GetUser`.
    pub group: Id,
    /// The user (the audit listing's `user` filter); unused by `GetGroup`.
    pub user: Id,
    pub credential: Credential,
    /// gRPC `allow_missing` (removals).
    pub allow_missing: bool,
    /// gRPC `parent` as a raw value; `None`: GROUP (1) or USER (2) by the operation.
    pub parent: Option<i32>,
    /// The listing's page size: a number, raw text (REST only) or absent.
    pub page_size: Id,
    pub page_token: Token,
    /// REST: the path under `/v1/` rather than `/v1.1/`.
    pub v1: bool,
    /// REST: the path without its trailing slash.
    pub no_slash: bool,
    pub expect: Expect,
}

/// An audit listing's page token as a case sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// None (the first page).
    None,
    Text(&'static str),
    /// A well-formed token of a listing with no filters.
    Unfiltered,
}

/// The builder methods the tables are written in: each sets one field of a [`Case`].
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty)?) $($field:ident).+ = $value:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self $(, $arg: $ty)?) -> Self {
                self.$($field).+ = $value;
                self
            }
        )*
    };
}

impl Case {
    /// A case of `operation` on demo with the owner's key in the header, aimed at the rows the
    /// operation exists for (`DemoGroup`/`DemoUser`; `AuditedGroup`'s events for the listing),
    /// expecting nothing yet.
    pub fn new(operation: Operation, name: impl Into<String>) -> Self {
        let (group, user) = match operation {
            Operation::ListEvents => (Id::Row(Row::AuditedGroup), Id::Absent),
            _ => (Id::Row(Row::DemoGroup), Id::Row(Row::DemoUser)),
        };
        Self {
            name: name.into(),
            operation,
            instance: Instance::Text("demo"),
            group,
            user,
            credential: Credential::Header(Key::Owner),
            allow_missing: false,
            parent: None,
            page_size: Id::Absent,
            page_token: Token::None,
            v1: false,
            no_slash: false,
            expect: Expect::default(),
        }
    }

    /// A removal's ids, the parent's first (the user's for `RemoveFromUser`, else the group's);
    /// `None` leaves one as it is.
    pub fn ids(mut self, parent: Option<Id>, other: Option<Id>) -> Self {
        let (group, user) = match self.operation {
            Operation::RemoveFromUser => (other, parent),
            _ => (parent, other),
        };
        self.group = group.unwrap_or(self.group);
        self.user = user.unwrap_or(self.user);
        self
    }

    setters! {
        /// Names the instance by this text.
        on(name: &'static str) instance = Instance::Text(name);
        /// Names the instance by this raw path segment (REST only).
        on_raw(segment: &'static str) instance = Instance::Raw(segment);
        group(id: impl Into<Id>) group = id.into();
        user(id: impl Into<Id>) user = id.into();
        /// The key, in the key header.
        key(key: Key) credential = Credential::Header(key);
        no_key() credential = Credential::Nothing;
        /// The key, travelling as given.
        send(credential: Credential) credential = credential;
        allow_missing() allow_missing = true;
        /// gRPC `parent`, as a raw value.
        parent(value: i32) parent = Some(value);
        page_size(size: impl Into<Id>) page_size = size.into();
        page_token(token: Token) page_token = token;
        v1() v1 = true;
        no_slash() no_slash = true;
        /// Both edges' answers.
        expect(expect: Expect) expect = expect;
        /// The gRPC answer (the REST one unchanged).
        grpc(answer: Grpc) expect.grpc = Some(answer);
        /// The REST answer (the gRPC one unchanged).
        rest(answer: Rest) expect.rest = Some(answer);
        /// Sent over gRPC only.
        grpc_only() expect.rest = None;
        /// Sent over REST only.
        rest_only() expect.grpc = None;
    }
}

/// Every case of the table, all operations.
pub fn cases() -> Vec<Case> {
    Operation::ALL.into_iter().flat_map(cases_of).collect()
}

/// The cases of one operation.
pub fn cases_of(operation: Operation) -> Vec<Case> {
    match operation {
        Operation::RemoveFromGroup => remove_from_group::cases(),
        Operation::RemoveFromUser => remove_from_user::cases(),
        Operation::GetUser | Operation::GetGroup => reads::cases(operation),
        Operation::ListEvents => audit::cases(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Inputs only a REST request can carry.
    fn rest_only_input(case: &Case) -> bool {
        let raw = |id: Id| matches!(id, Id::Raw(_) | Id::Padded(_) | Id::Encoded(_));
        matches!(case.instance, Instance::Raw(_))
            || [case.group, case.user, case.page_size].into_iter().any(raw)
            || matches!(case.credential, Credential::Query(..))
            || case.v1
            || case.no_slash
    }

    #[test]
    fn every_case_runs_somewhere_and_only_where_its_inputs_can_travel() {
        for case in cases() {
            let Expect { grpc, rest, .. } = case.expect;
            assert!(grpc.is_some() || rest.is_some(), "{case:?}");
            assert!(!(rest_only_input(&case) && grpc.is_some()), "{case:?}");
            let grpc_only_input = case.allow_missing || case.parent.is_some();
            assert!(!(grpc_only_input && rest.is_some()), "{case:?}");
            let fresh = case.user.row() == Some(Row::Fresh);
            assert_eq!(case.expect.removes, fresh, "{case:?}");
            if case.expect.removes {
                assert!(case.operation.is_removal(), "{case:?}");
            }
        }
    }

    #[test]
    fn names_are_unique_within_an_operation() {
        for operation in Operation::ALL {
            let mut seen = HashSet::new();
            for Case { name, .. } in cases_of(operation) {
                assert!(seen.insert(name.clone()), "{operation:?}: {name}");
            }
        }
    }

    /// The table's size, so that a refactoring that loses rows fails: (all, gRPC, REST).
    #[test]
    fn every_operation_has_its_cases() {
        let counts = [
            (154, 108, 144),
            (136, 91, 130),
            (111, 73, 111),
            (112, 74, 112),
            (101, 75, 101),
        ];
        for (operation, expected) in Operation::ALL.into_iter().zip(counts) {
            let cases = cases_of(operation);
            let on = |edge: fn(&Expect) -> bool| cases.iter().filter(|c| edge(&c.expect)).count();
            let found = (
                cases.len(),
                on(|e| e.grpc.is_some()),
                on(|e| e.rest.is_some()),
            );
            assert_eq!(found, expected, "{operation:?}");
        }
    }

    #[test]
    fn the_long_name_is_one_too_long() {
        assert_eq!(TOO_LONG_NAME.len(), 65);
    }
}
