//! SPEC.md's audit listing, `GET .../audit/memberships/` and `Audit/ListMembershipEvents`, in
//! the shape of the other tables: the query first (REST 400 / gRPC INVALID_ARGUMENT), then
//! checks 2–5 (only the owner and `full` admins may read the trail), then the page. Paging,
//! retention and the events of each removal are tested on their own, beside this table.

use super::Operation::ListEvents;
use super::{Case, DENIED, FOUND, Grpc, Id, Key, NO_KEY, NO_SUCH_ID, Rest, Row, Token, shared};

fn c(name: &str) -> Case {
    Case::new(ListEvents, name)
}

/// The cases; each page they find holds all of its filters' events.
pub(super) fn cases() -> Vec<Case> {
    let mut cases = vec![
        // Pages: `AuditedGroup`'s one event, by its group, its user or both.
        c("a group's events").expect(FOUND),
        c("a user's events")
            .group(Id::Absent)
            .user(Row::FormerMember)
            .expect(FOUND),
        c("a membership's events")
            .user(Row::FormerMember)
            .expect(FOUND),
        c("no events of a user in no group")
            .group(Id::Absent)
            .user(Row::Loner)
            .expect(FOUND),
        // Another instance's events never show, even filtered by its group.
        c("another instance's group")
            .group(Row::OtherGroup)
            .expect(FOUND),
        c("page size 1").page_size(1).expect(FOUND),
        c("page size 100").page_size(100).expect(FOUND),
        // An empty value counts as not given.
        c("an empty user filter").user("").expect(FOUND).rest_only(),
        c("an empty page size")
            .page_size("")
            .expect(FOUND)
            .rest_only(),
        // gRPC reads 0 as the default and past 1000 as 1000; REST allows 1..=100.
        c("page size 0")
            .page_size(0)
            .grpc(Grpc::Found)
            .rest(Rest::BAD_PAGE),
        c("page size 101")
            .page_size(101)
            .grpc(Grpc::Found)
            .rest(Rest::BAD_PAGE),
        c("page size 5000")
            .page_size(5000)
            .grpc(Grpc::Found)
            .rest(Rest::BAD_PAGE),
        c("page size -1")
            .page_size(-1)
            .grpc(Grpc::Invalid(&["page_size"]))
            .rest(Rest::BAD_PAGE),
        c("group filter -1")
            .group(-1)
            .grpc(Grpc::Invalid(&["group_id"]))
            .rest(Rest::BAD_PAGE),
        c("user filter -3")
            .user(-3)
            .grpc(Grpc::Invalid(&["user_id"]))
            .rest(Rest::BAD_PAGE),
        c("a token that is not one")
            .page_token(Token::Text("garbage"))
            .grpc(Grpc::Invalid(&["page_token"]))
            .rest(Rest::BAD_PAGE),
        c("a token that is not UTF-8")
            .page_token(Token::Text("%FF"))
            .grpc(Grpc::Invalid(&["page_token"]))
            .rest(Rest::BAD_PAGE),
        c("a token of a listing with other filters")
            .page_token(Token::Unfiltered)
            .grpc(Grpc::Invalid(&["page_token"]))
            .rest(Rest::BAD_PAGE),
        c("empty instance name")
            .on("")
            .grpc(Grpc::Invalid(&["instance_name"]))
            .rest(Rest::NOT_FOUND),
        c("empty instance name, page size -2")
            .on("")
            .page_size(-2)
            .grpc(Grpc::Invalid(&["instance_name", "page_size"]))
            .rest(Rest::NOT_FOUND),
        // Query checks come first: before the instance and the key.
        c("page size -1, no instance, no key")
            .on("nope")
            .no_key()
            .page_size(-1)
            .grpc(Grpc::Invalid(&["page_size"]))
            .rest(Rest::BAD_PAGE),
        c("no key, no such group")
            .group(NO_SUCH_ID)
            .no_key()
            .expect(NO_KEY),
        c("write admin, no such group")
            .group(NO_SUCH_ID)
            .key(Key::Write)
            .expect(DENIED),
    ];
    for (name, query) in [
        ("page size x", "x"),
        ("page size +5", "+5"),
        ("page size 1.5", "1.5"),
        ("page size 1e2", "1e2"),
    ] {
        let case = c(&format!("{name}, raw")).page_size(query);
        cases.push(case.rest(Rest::BAD_PAGE));
    }
    for (name, group, user) in [
        ("group filter 0", "0", ""),
        ("group filter 1.5", "1.5", ""),
        ("group filter abc", "abc", ""),
        ("user filter 0", "", "0"),
        ("user filter %FF", "", "%FF"),
        (
            "user filter 99999999999999999999",
            "",
            "99999999999999999999",
        ),
    ] {
        let case = c(name).group(group).user(user);
        let case = case.no_key().on("nope");
        cases.push(case.rest(Rest::BAD_PAGE));
    }
    cases.extend(shared::cases(ListEvents, &[Key::Owner, Key::Full]));
    cases
}
