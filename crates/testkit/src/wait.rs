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
