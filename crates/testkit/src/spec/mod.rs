//! One table of SPEC.md's cases that both edges run: the gRPC suite (`groups-server`) and the
//! REST suite (`groups-gateway`) each send every case the table gives their edge, and compare
//! the answer and the rows left with what the case expects.
//!
//! A [`Case`] names the operation, what is sent (instance name, ids, the key and where it
//! travels) in terms of the rows of one fixture, [`SpecWorld`], built once per suite run, and
//! what each edge must answer: a gRPC code with its `ErrorInfo` reason (or OK, or the object)
//! and a REST status with its exact JSON body (or 204, or the exact object). A case may be for
//! one edge only: ids and names only a path can carry (`abc`, `%31`) are REST's; ids `<= 0`,
//! `allow_missing` and `parent` are gRPC's. A removal that succeeds is aimed at a membership
//! made for that case alone, and must delete it and nothing else; every other case must leave
//! every row as it was.
//!
//! The tables, one file per operation: `remove_from_group`, `remove_from_user`, `reads` (GET
//! user, GET group) and `audit` (the audit list). Checks 2–5, the same for every operation,
//! are written once, in `shared`; SPEC.md's answers, as pairs of a gRPC and a REST answer, in
//! `answers`. `fixture` builds the world; `prepare` turns a case into each edge's request and
//! answer, and checks the rows it left.

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
pub use prepare::{ExpectedGrpc, ExpectedRest, GrpcRequest, Prepared, RestRequest};
pub use suite::{Suite, assert_no_failures, cases_answered, take_turn};

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

/// A row of the fixture, by its part in the cases (see [`SpecWorld`] for what each one is).
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
    /// The group of instance `other`.
    OtherGroup,
    /// The user of instance `other`, member of `OtherGroup`.
    OtherUser,
    /// The group of instance `dormant`, whose owner is inactive.
    DormantGroup,
    /// The user of instance `dormant`, member of `DormantGroup`.
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

impl From<i32> for Id {
    fn from(number: i32) -> Self {
        Id::Number(number.into())
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
    /// Admins with a role on demo.
    Full,
    /// See [`Key::Full`].
    Write,
    /// See [`Key::Full`].
    Read,
    /// An active admin with no role on demo.
    NoRole,
    /// An admin with role `full` on `other`, none on demo.
    RoleElsewhere,
    /// The owner of `other`.
    OtherOwner,
    /// The owner of `dormant`, deactivated.
    DormantOwner,
    /// Demo's API key without `ignore_acl`.
    ApiKey,
    /// Demo's API key with `ignore_acl`.
    ApiKeyIgnoreAcl,
    /// Demo's revoked API keys, without and with `ignore_acl`.
    Revoked,
    /// See [`Key::Revoked`].
    RevokedIgnoreAcl,
    /// Deactivated admins with a role on demo.
    InactiveWrite,
    /// See [`Key::InactiveWrite`].
    InactiveFull,
    /// See [`Key::InactiveWrite`].
    InactiveRead,
    /// An API key of `other`, with `ignore_acl`.
    OtherApiKey,
    /// Well-formed keys nobody holds: account-shaped (even) and API-key-shaped (odd).
    UnknownAccount,
    /// See [`Key::UnknownAccount`].
    UnknownApi,
    /// The owner's key cut to 39 characters, or with a 41st, upper-cased, or with a non-hex last.
    OwnerTruncated,
    /// See [`Key::OwnerTruncated`].
    OwnerExtended,
    /// See [`Key::OwnerTruncated`].
    OwnerUpperCase,
    /// See [`Key::OwnerTruncated`].
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

/// One case of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Says what the case is; unique within its operation.
    pub name: String,
    /// The operation called.
    pub operation: Operation,
    /// The instance named.
    pub instance: Instance,
    /// The group (the audit listing's `group` filter); unused by `GetUser`.
    pub group: Id,
    /// The user (the audit listing's `user` filter); unused by `GetGroup`.
    pub user: Id,
    /// The key and where it travels.
    pub credential: Credential,
    /// gRPC `allow_missing` (removals).
    pub allow_missing: bool,
    /// gRPC `parent` as a raw value; `None`: GROUP (1) or USER (2) by the operation.
    pub parent: Option<i32>,
    /// The listing's page size: a number, raw text (REST only) or absent.
    pub page_size: Id,
    /// The listing's page token.
    pub page_token: Token,
    /// REST: the path under `/v1/` rather than `/v1.1/`.
    pub v1: bool,
    /// REST: the path without its trailing slash.
    pub no_slash: bool,
    /// The answers.
    pub expect: Expect,
}

/// An audit listing's page token as a case sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// None (the first page).
    None,
    /// This text.
    Text(&'static str),
    /// A well-formed token of a listing with no filters.
    Unfiltered,
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
            expect: Expect {
                grpc: None,
                rest: None,
                removes: false,
            },
        }
    }

    /// Names the instance by this text.
    pub fn on(mut self, name: &'static str) -> Self {
        self.instance = Instance::Text(name);
        self
    }

    /// Names the instance by this raw path segment (REST only).
    pub fn on_raw(mut self, segment: &'static str) -> Self {
        self.instance = Instance::Raw(segment);
        self
    }

    /// The group.
    pub fn group(mut self, id: impl Into<Id>) -> Self {
        self.group = id.into();
        self
    }

    /// The user.
    pub fn user(mut self, id: impl Into<Id>) -> Self {
        self.user = id.into();
        self
    }

    /// The key, in the key header.
    pub fn key(self, key: Key) -> Self {
        self.send(Credential::Header(key))
    }

    /// No key at all.
    pub fn no_key(self) -> Self {
        self.send(Credential::Nothing)
    }

    /// The key, travelling as given.
    pub fn send(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }

    /// gRPC `allow_missing`.
    pub fn allow_missing(mut self) -> Self {
        self.allow_missing = true;
        self
    }

    /// gRPC `parent`, as a raw value.
    pub fn parent(mut self, value: i32) -> Self {
        self.parent = Some(value);
        self
    }

    /// The listing's page size.
    pub fn page_size(mut self, size: impl Into<Id>) -> Self {
        self.page_size = size.into();
        self
    }

    /// The listing's page token.
    pub fn page_token(mut self, token: Token) -> Self {
        self.page_token = token;
        self
    }

    /// REST: under `/v1/`.
    pub fn v1(mut self) -> Self {
        self.v1 = true;
        self
    }

    /// REST: without the trailing slash.
    pub fn no_slash(mut self) -> Self {
        self.no_slash = true;
        self
    }

    /// Both edges' answers.
    pub fn expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }

    /// The gRPC answer (the REST one unchanged).
    pub fn grpc(mut self, answer: Grpc) -> Self {
        self.expect.grpc = Some(answer);
        self
    }

    /// The REST answer (the gRPC one unchanged).
    pub fn rest(mut self, answer: Rest) -> Self {
        self.expect.rest = Some(answer);
        self
    }

    /// Sent over gRPC only.
    pub fn grpc_only(mut self) -> Self {
        self.expect.rest = None;
        self
    }

    /// Sent over REST only.
    pub fn rest_only(mut self) -> Self {
        self.expect.grpc = None;
        self
    }

    /// Inputs only a REST request can carry.
    #[cfg(test)]
    fn rest_only_input(&self) -> bool {
        let raw = |id: Id| matches!(id, Id::Raw(_) | Id::Padded(_) | Id::Encoded(_));
        matches!(self.instance, Instance::Raw(_))
            || raw(self.group)
            || raw(self.user)
            || raw(self.page_size)
            || matches!(self.credential, Credential::Query(..))
            || self.v1
            || self.no_slash
    }

    /// Inputs only a gRPC request can carry.
    #[cfg(test)]
    fn grpc_only_input(&self) -> bool {
        self.allow_missing || self.parent.is_some()
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
        Operation::GetUser => reads::user_cases(),
        Operation::GetGroup => reads::group_cases(),
        Operation::ListEvents => audit::cases(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_case_runs_somewhere_and_only_where_its_inputs_can_travel() {
        for case in cases() {
            let Expect { grpc, rest, .. } = case.expect;
            assert!(grpc.is_some() || rest.is_some(), "{case:?}");
            assert!(!(case.rest_only_input() && grpc.is_some()), "{case:?}");
            assert!(!(case.grpc_only_input() && rest.is_some()), "{case:?}");
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
            for case in cases_of(operation) {
                assert!(
                    seen.insert(case.name.clone()),
                    "{operation:?}: {}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn the_long_name_is_one_too_long() {
        assert_eq!(TOO_LONG_NAME.len(), 65);
    }
}
