//! The stack every test of the suite shares (server, gateway, PostgreSQL), the fixture's rows
//! and their model, and the one way a case runs: the model's answer, the reply, then the rows
//! and the audit trail, read with SQL of the suite's own.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel::{PgConnection, RunQueryDsl};
use groups_testkit::{Admin, GroupId, Role, RowCounts, Stack, UserId, World, spawn_stack};
use proptest::test_runner::TestCaseError;

use crate::model::{Event, Expected, Group, Holder, Instance, Rows, Token, Trail, User};
use crate::wire::Request;

/// The stack every test of this file shares, the model of its rows, and what cases change.
pub(crate) struct Live {
    world: World,
    pub(crate) stack: Stack,
    pub(crate) rows: Rows,
    /// Every key the model knows, in this order: the owners of "empty" and "demo", "demo"'s
    /// full admin, its write admin (read on "empty"), its read admin, its API keys (with and
    /// without `ignore_acl`), a revoked API key, an inactive full admin's key.
    pub(crate) keys: Vec<String>,
    /// The row counts every case must leave.
    counts: RowCounts,
    state: Mutex<State>,
}

/// What cases share, one at a time.
struct State {
    trail: Trail,
    /// Reads the events the removals wrote, apart from the API.
    conn: PgConnection,
    /// The first mismatch seen: a later one may follow from it (a membership gone for good).
    first_failure: Option<String>,
}

thread_local! {
    /// The statuses answered as the model said, on this thread (one test), by status.
    pub(crate) static ANSWERED: RefCell<BTreeMap<u16, u32>> = const { RefCell::new(BTreeMap::new()) };
}

pub(crate) static LIVE: LazyLock<Live> = LazyLock::new(Live::start);

impl Live {
    /// "demo" (World's) with two more groups (one deleted, with a member) and two more users
    /// (one in no group); "empty", emptied through the API; keys of every kind; and a few
    /// removals from both sides, so the trail has events to list from the start.
    fn start() -> Self {
        let world = World::new();
        let empty = world.add_instance("empty");
        let demo = world.demo.clone();
        let editors = world.add_group("demo", "editors");
        let archived = world.add_group("demo", "archived");
        let alice = world.add_user("demo", "alice");
        let bob = world.add_user("demo", "bob");
        let demo_members = [
            (demo.group, demo.user),
            (demo.group, alice),
            (editors, demo.user),
            (editors, alice),
            (archived, demo.user),
        ];
        for &(g, u) in &demo_members[1..] {
            world.add_member("demo", g, u);
        }
        world.delete_group("demo", archived);
        let full = world.add_admin("demo", Some(Role::Full));
        let writer = world.add_admin("demo", Some(Role::Write));
        world.grant(&writer.email, "empty", Role::Read);
        let reader = world.add_admin("demo", Some(Role::Read));
        let admin = |a: &Admin, roles: &[(&str, Role)]| {
            let roles = roles.iter().map(|(i, r)| ((*i).to_owned(), *r)).collect();
            (a.key.clone(), Holder::Admin { id: a.id, roles })
        };
        let api_key = |ignore_acl| {
            let instance = "demo".to_owned();
            let key = world.add_api_key("demo", ignore_acl).key;
            (
                key,
                Holder::ApiKey {
                    instance,
                    ignore_acl,
                },
            )
        };
        let keys = vec![
            admin(&empty.owner, &[("empty", Role::Owner)]),
            admin(&demo.owner, &[("demo", Role::Owner)]),
            admin(&full, &[("demo", Role::Full)]),
            admin(&writer, &[("demo", Role::Write), ("empty", Role::Read)]),
            admin(&reader, &[("demo", Role::Read)]),
            api_key(true),
            api_key(false),
            (world.add_revoked_api_key("demo", true).key, Holder::Dead),
            (
                world.add_inactive_admin("demo", Some(Role::Full)).key,
                Holder::Dead,
            ),
        ];
        let group = |id: GroupId, label: &str, deleted| Group {
            id: id.get(),
            label: label.to_owned(),
            deleted,
        };
        let user = |id: UserId, name: &str| User {
            id: id.get(),
            username: name.to_owned(),
        };
        let instances = vec![
            Instance {
                name: "demo".to_owned(),
                groups: vec![
                    group(demo.group, "demo-group", false),
                    group(editors, "editors", false),
                    group(archived, "archived", true),
                ],
                users: vec![
                    user(demo.user, "demo-user"),
                    user(alice, "alice"),
                    user(bob, "bob"),
                ],
                memberships: demo_members.map(|(g, u)| (g.get(), u.get())).to_vec(),
            },
            Instance {
                name: "empty".to_owned(),
                groups: vec![group(empty.group, "empty-group", false)],
                users: vec![user(empty.user, "empty-user")],
                memberships: vec![(empty.group.get(), empty.user.get())],
            },
        ];
        let stack = spawn_stack(&world.db, &["--rate-limit", "0"]);
        wait_until_ready(stack.gateway.addr());
        let state = Mutex::new(State {
            trail: Trail::default(),
            conn: world.conn(),
            first_failure: None,
        });
        // Empty "empty" through the API itself: its owner may then reach every check of SPEC.md
        // on it, down to "not a member", without anything left to remove.
        let emptying = format!(
            "/v1.1/instances/empty/groups/{}/users/{}/",
            empty.group, empty.user
        );
        let emptying =
            Request::new("DELETE", emptying).header("X-API-KEY", empty.owner.key.as_bytes());
        let mut live = Self {
            counts: world.counts(),
            keys: keys.iter().map(|(key, _)| key.clone()).collect(),
            rows: Rows { instances, keys },
            world,
            stack,
            state,
        };
        live.run(&mut live.lock(), &emptying, false)
            .expect("emptying \"empty\"");
        live.rows.instances[1].memberships.clear();
        live.counts = live.world.counts();
        // Events by three roles (the owner, the full admin and the write admin of "demo"), from
        // both sides, through both versions and two key sources: each live membership of "demo"
        // removed (and put back) once from each side.
        for (n, &(g, u)) in demo_members[..4].iter().cycle().take(8).enumerate() {
            let key = &live.keys[1 + n % 3];
            let path = if n < 4 {
                format!("/v1.1/instances/demo/groups/{g}/users/{u}/")
            } else {
                format!("/v1/instances/demo/users/{u}/groups/{g}")
            };
            let request = Request::new("DELETE", path);
            let request = if n % 2 == 0 {
                request.header("X-API-KEY", key.as_bytes())
            } else {
                request.header("Authorization", format!("Token {key}").as_bytes())
            };
            live.run(&mut live.lock(), &request, true)
                .expect("a removal at start");
        }
        assert_eq!(live.lock().trail.events.len(), 9);
        // Page through "demo"'s trail, all of it and one user's, following each next link: the
        // pages must be the model's, and the tokens stay for the properties to reuse.
        let owner = live.keys[1].clone();
        for query in [
            "page_size=2".to_owned(),
            format!("page_size=1&user={}", demo.user),
        ] {
            let first = format!("/v1.1/instances/demo/audit/memberships/?{query}");
            let mut target = first.clone();
            loop {
                let request = Request::new("GET", target).header("X-API-KEY", owner.as_bytes());
                let mut state = live.lock();
                let handed_out = state.trail.tokens.len();
                live.run(&mut state, &request, true)
                    .expect("a page of the trail");
                match state.trail.tokens.get(handed_out) {
                    Some(token) => target = format!("{first}&page_token={}", token.text),
                    None => break,
                }
            }
        }
        assert_eq!(live.lock().trail.tokens.len(), 3 + 3);
        live
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.stack.gateway.addr()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `request` and checks the answer against the model, and the rows after it.
    pub(crate) fn check(&self, request: &Request) -> Result<Expected, TestCaseError> {
        self.check_with(|_| request.clone())
    }

    /// [`Live::check`] of each request in turn, up to the first mismatch.
    pub(crate) fn check_all(
        &self,
        requests: impl IntoIterator<Item = Request>,
    ) -> Result<(), TestCaseError> {
        requests
            .into_iter()
            .try_for_each(|r| self.check(&r).map(drop))
    }

    /// As [`Live::check`], with a request built from the tokens handed out so far.
    pub(crate) fn check_with(
        &self,
        build: impl FnOnce(&[Token]) -> Request,
    ) -> Result<Expected, TestCaseError> {
        let mut state = self.lock();
        let request = build(&state.trail.tokens);
        let outcome = self.run(&mut state, &request, true);
        if let Err(failure) = &outcome {
            state.first_failure.get_or_insert_with(|| failure.clone());
        }
        outcome.map_err(TestCaseError::fail)
    }

    /// One case: the model's answer, the reply, then the rows: a removal the model predicts
    /// wrote exactly its event and removed exactly its membership (put back when `replenish`);
    /// any other request wrote nothing.
    fn run(
        &self,
        state: &mut State,
        request: &Request,
        replenish: bool,
    ) -> Result<Expected, String> {
        let prediction = self.rows.predict(&state.trail, request);
        let reply = request
            .send(self.addr())
            .map_err(|e| format!("{e}\n     for {request:?}"))?;
        let expected = prediction.expected;
        if !expected.matches(&reply) {
            return Err(format!(
                "expected {expected:?}\n     got {reply:?}\n     for {request:?}"
            ));
        }
        if let Some(token) = expected.token(&reply) {
            state.trail.tokens.push(token);
        }
        let last_id = state.trail.events.last().map_or(0, |e| e.id);
        let written = new_events(&mut state.conn, last_id);
        let rows_are = |counts: RowCounts| {
            let after = self.world.counts();
            let unexpected = format!("rows {after:?}, not {counts:?}, after {request:?}");
            (after == counts).then_some(()).ok_or(unexpected)
        };
        match (prediction.removal, written.as_slice()) {
            (None, []) => {}
            (Some(removal), [event]) => {
                // The id and time are the database's; the request id is the reply's (both
                // processes use the one the gateway answers with).
                let request_id = reply.header("x-request-id").unwrap_or_default();
                if event.removal != removal || event.request_id != request_id {
                    return Err(format!(
                        "wrote {event:?}\n     not {removal:?} by request {request_id}\n     for {request:?}"
                    ));
                }
                state.trail.events.push(event.clone());
                rows_are(RowCounts {
                    memberships: self.counts.memberships - 1,
                    ..self.counts
                })?;
                if !replenish {
                    return Ok(expected);
                }
                let group = GroupId::new(removal.group).expect("a group id");
                let user = UserId::new(removal.user).expect("a user id");
                self.world.add_member(&removal.instance, group, user);
            }
            (removal, written) => {
                return Err(format!(
                    "predicted {removal:?}, wrote {written:?}\n     for {request:?}"
                ));
            }
        }
        rows_are(self.counts)?;
        ANSWERED.with_borrow_mut(|answered| *answered.entry(expected.status()).or_default() += 1);
        Ok(expected)
    }

    /// The first mismatch of the run, if any.
    pub(crate) fn first_failure(&self) -> Option<String> {
        self.lock().first_failure.clone()
    }

    /// Between cases, the rows are the fixture's.
    pub(crate) fn assert_rows(&self) {
        let _cases_wait = self.lock();
        assert_eq!(self.world.counts(), self.counts);
    }
}

/// The events written after `after`, read with SQL of this test's own.
fn new_events(conn: &mut PgConnection, after: i64) -> Vec<Event> {
    diesel::sql_query(
        "SELECT e.id, i.name AS instance, e.group_id AS \"group\", e.user_id AS \"user\", \
         e.actor_admin_id AS admin, e.actor_role AS role, e.request_id, \
         to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS at \
         FROM membership_events e JOIN instances i ON i.id = e.instance_id \
         WHERE e.id > $1 ORDER BY e.id",
    )
    .bind::<BigInt, _>(after)
    .load(conn)
    .expect("the events table")
}

/// `/readyz` answers 200 once the server has seen its database answer.
pub(crate) fn wait_until_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = Request::new("GET", "/readyz").send(addr);
        if reply.as_ref().is_ok_and(|r| r.status == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {reply:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
