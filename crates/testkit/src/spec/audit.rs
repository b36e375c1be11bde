//! SPEC.md's audit listing, `GET .../audit/memberships/` and `Audit/ListMembershipEvents`, in
//! the shape of the other tables: the query first (REST 400 / gRPC INVALID_ARGUMENT), then
//! checks 2–5 (only the owner and `full` admins may read the trail), then the page. Paging,
//! retention and the events of each removal are tested on their own, beside this table.

use super::Operation::ListEvents;
use super::Row::{FormerMember, Loner, OtherGroup};
use super::{Case, DENIED, FOUND, Grpc, Id, Key, NO_KEY, NO_SUCH_ID, Rest, Token, shared};

fn c(name: &str) -> Case {
    Case::new(ListEvents, name)
}

/// The cases; each page they find holds all of its filters' events (by default the one event
/// of `AuditedGroup`).
#[rustfmt::skip]
pub(super) fn cases() -> Vec<Case> {
    let page_token = |name: &str, token: Token| {
        c(name).page_token(token).grpc(Grpc::Invalid(&["page_token"])).rest(Rest::BAD_PAGE)
    };
    let mut cases = vec![
        // Pages: by group, by user, by both; none for a user in no group.
        c("a group's events").expect(FOUND),
        c("a user's events").group(Id::Absent).user(FormerMember).expect(FOUND),
        c("a membership's events").user(FormerMember).expect(FOUND),
        c("no events of a user in no group").group(Id::Absent).user(Loner).expect(FOUND),
        // Another instance's events never show, even filtered by its group.
        c("another instance's group").group(OtherGroup).expect(FOUND),
        c("page size 1").page_size(1).expect(FOUND),
        c("page size 100").page_size(100).expect(FOUND),
        // An empty value counts as not given.
        c("an empty user filter").user("").expect(FOUND).rest_only(),
        c("an empty page size").page_size("").expect(FOUND).rest_only(),
        // gRPC reads 0 as the default and past 1000 as 1000; REST allows 1..=100.
        c("page size 0").page_size(0).grpc(Grpc::Found).rest(Rest::BAD_PAGE),
        c("page size 101").page_size(101).grpc(Grpc::Found).rest(Rest::BAD_PAGE),
        c("page size 5000").page_size(5000).grpc(Grpc::Found).rest(Rest::BAD_PAGE),
        c("page size -1").page_size(-1).grpc(Grpc::Invalid(&["page_size"])).rest(Rest::BAD_PAGE),
        c("group filter -1").group(-1).grpc(Grpc::Invalid(&["group_id"])).rest(Rest::BAD_PAGE),
        c("user filter -3").user(-3).grpc(Grpc::Invalid(&["user_id"])).rest(Rest::BAD_PAGE),
        page_token("a token that is not one", Token::Text("garbage")),
        page_token("a token that is not UTF-8", Token::Text("%FF")),
        page_token("a token of a listing with other filters", Token::Unfiltered),
        c("empty instance name").on("").grpc(Grpc::Invalid(&["instance_name"])).rest(Rest::NOT_FOUND),
        c("empty instance name, page size -2").on("").page_size(-2)
            .grpc(Grpc::Invalid(&["instance_name", "page_size"])).rest(Rest::NOT_FOUND),
        // The query is checked first: before the instance and the key.
        c("page size -1, no instance, no key").on("nope").no_key().page_size(-1)
            .grpc(Grpc::Invalid(&["page_size"])).rest(Rest::BAD_PAGE),
        c("no key, no such group").group(NO_SUCH_ID).no_key().expect(NO_KEY),
        c("write admin, no such group").group(NO_SUCH_ID).key(Key::Write).expect(DENIED),
    ];
    for size in ["x", "+5", "1.5", "1e2"] {
        cases.push(c(&format!("page size {size:?}")).page_size(size).rest(Rest::BAD_PAGE));
    }
    for (group, user) in [("0", ""), ("1.5", ""), ("abc", ""), ("", "0"), ("", "%FF"), ("", "99999999999999999999")] {
        let case = c(&format!("filters group={group} user={user}, on nope, no key"));
        cases.push(case.group(group).user(user).on("nope").no_key().rest(Rest::BAD_PAGE));
    }
    cases.extend(shared::cases(ListEvents, &[Key::Owner, Key::Full]));
    cases
}
