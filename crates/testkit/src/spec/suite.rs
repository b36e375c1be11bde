//! What the gRPC and the REST suites of the table share: one fixture per test process, the
//! tests taking turns on it, and one report of every failed case.

use tokio::sync::{Mutex, MutexGuard, OnceCell};

use super::{Operation, Prepared, SpecWorld, cases_of};

/// The fixture and what serves it (a server, a stack), for every test of a suite's table.
#[derive(Debug)]
pub struct Suite<S> {
    /// The fixture every case is prepared on.
    pub fixture: SpecWorld,
    /// The processes the cases are sent to.
    pub service: S,
}

/// The edge a suite sends its cases to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Grpc,
    Rest,
}

/// The table's tests take turns: each case compares the tables' rows before and after it.
static TURN: Mutex<()> = Mutex::const_new(());

/// Waits for this test's turn, then returns it with the suite in `cell`, built the first time
/// with `start` (the processes serving the fixture).
pub async fn take_turn<S: Send + Sync>(
    cell: &'static OnceCell<Suite<S>>,
    start: impl FnOnce(&SpecWorld) -> S,
) -> (MutexGuard<'static, ()>, &'static Suite<S>) {
    let turn = TURN.lock().await;
    let suite = cell
        .get_or_init(|| async {
            let fixture = SpecWorld::new();
            let service = start(&fixture);
            Suite { fixture, service }
        })
        .await;
    (turn, suite)
}

impl<S> Suite<S> {
    /// Sends every case of `operation` that `edge` answers through `send`, which says how its
    /// answer differs from the expected one; checks the rows each left; and fails listing every
    /// case that went wrong.
    pub async fn run(
        &self,
        edge: Edge,
        operation: Operation,
        send: impl AsyncFn(&Prepared<'_>) -> Result<(), String>,
    ) {
        let cases: Vec<_> = cases_of(operation)
            .into_iter()
            .filter(|case| match edge {
                Edge::Grpc => case.expect.grpc.is_some(),
                Edge::Rest => case.expect.rest.is_some(),
            })
            .collect();
        let mut failures = Vec::new();
        for case in &cases {
            let prepared = self.fixture.prepare(case);
            let verdict = send(&prepared).await;
            if let Err(why) = verdict.and_then(|()| self.fixture.verify(&prepared)) {
                failures.push(format!("{}: {why}", case.name));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} {edge:?} cases of {operation:?} failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
}

/// Declares the SPEC table's tests, one `#[tokio::test]` per [`spec::Operation`](crate::spec::Operation),
/// each calling `$run(operation).await` (a suite's `async fn run(Operation)`).
#[macro_export]
macro_rules! spec_tests {
    ($run:ident) => {
        $crate::spec_tests!(@each $run: remove_from_group RemoveFromGroup,
            remove_from_user RemoveFromUser, get_user GetUser, get_group GetGroup,
            list_events ListEvents);
    };
    (@each $run:ident: $($test:ident $operation:ident),*) => {
        $(
            #[tokio::test]
            async fn $test() {
                $run($crate::spec::Operation::$operation).await;
            }
        )*
    };
}
