//! Waiting from async tests without blocking the runtime, which may still have work to do
//! (closing the test's connections, answering other tasks).

use std::time::{Duration, Instant};

use crate::ServiceProcess;

/// Retries `attempt` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM, then waits (without blocking the runtime, which may still have to close the
/// test's connections) for the exit, so the logs are complete. Panics after 15 seconds.
pub async fn stop(service: &mut ServiceProcess) {
    service.terminate();
    let deadline = Instant::now() + Duration::from_secs(15);
    while service.try_wait().is_none() {
        assert!(Instant::now() < deadline, "{service:?} did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
