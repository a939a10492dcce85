//! Waiting for a condition with a deadline, never for a fixed time: the
//! tests and the benches poll what they wait for and give up, saying what
//! they saw last, when the deadline passes.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often the waits look at their condition.
pub const POLL: Duration = Duration::from_millis(100);

/// Waits until `done` holds; false if `limit` passed first.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

/// [`wait_until`] for a condition that has to be awaited.
pub async fn wait_until_async<F: Future<Output = bool>>(limit: Duration, mut done: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// Polls `probe` until it answers `Ok`; panics after `limit` with `what`
/// and the last `Err` (what was seen then).
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(seen) => {
                assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {limit:?}: {seen}");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}
