//! What the gRPC and the REST suites of the table share: one fixture per test process, the
//! tests taking turns on it, and one report of every failed case.

use std::fmt;

use tokio::sync::{Mutex, MutexGuard, OnceCell};

use super::{Case, Operation, SpecWorld, cases_of};

/// The fixture and what serves it (a server, a stack), for every test of a suite's table.
pub struct Suite<S> {
    /// The fixture every case is prepared on.
    pub fixture: SpecWorld,
    /// The processes the cases are sent to.
    pub service: S,
}

impl<S: fmt::Debug> fmt::Debug for Suite<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suite")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
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

/// The cases of `operation` for which `answers` says there is an answer to compare.
pub fn cases_answered(operation: Operation, answers: impl Fn(&Case) -> bool) -> Vec<Case> {
    cases_of(operation).into_iter().filter(answers).collect()
}

/// Asserts that none of the `total` `kind` cases (REST, gRPC) of `operation` failed, listing
/// every failure otherwise.
#[track_caller]
pub fn assert_no_failures(failures: &[String], total: usize, kind: &str, operation: Operation) {
    assert!(
        failures.is_empty(),
        "{} of {total} {kind} cases of {operation:?} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Declares the SPEC table's tests, one `#[tokio::test]` per [`spec::Operation`](crate::spec::Operation),
/// each calling `$run(operation).await` (a suite's `async fn run(Operation)`).
#[macro_export]
macro_rules! spec_tests {
    ($run:ident) => {
        #[tokio::test]
        async fn remove_from_group() {
            $run($crate::spec::Operation::RemoveFromGroup).await;
        }

        #[tokio::test]
        async fn remove_from_user() {
            $run($crate::spec::Operation::RemoveFromUser).await;
        }

        #[tokio::test]
        async fn get_user() {
            $run($crate::spec::Operation::GetUser).await;
        }

        #[tokio::test]
        async fn get_group() {
            $run($crate::spec::Operation::GetGroup).await;
        }

        #[tokio::test]
        async fn list_events() {
            $run($crate::spec::Operation::ListEvents).await;
        }
    };
}
