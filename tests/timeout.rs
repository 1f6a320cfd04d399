//! #[adk::timeout]: bounds on tokio's clock, returned through the user's error type.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, PartialEq, thiserror::Error)]
enum CallError {
    #[error("failed")]
    Failed,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for CallError {}

#[adk::timeout("2s")]
async fn sleepy(work: Duration) -> Result<&'static str, CallError> {
    tokio::time::sleep(work).await;
    Ok("done")
}

#[tokio::test(start_paused = true)]
async fn a_call_within_the_bound_answers_normally() {
    assert_eq!(sleepy(Duration::from_millis(1999)).await, Ok("done"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_gets_adk_error_timeout_through_from() {
    let start = Instant::now();
    match sleepy(Duration::from_secs(60)).await {
        Err(CallError::Adk(adk::Error::Timeout { after, .. })) => assert_eq!(after, Duration::from_secs(2)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(adk::metrics::render().contains(r#"adk_timeouts_total{function="timeout::sleepy"}"#));
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[adk::timeout("100ms")]
async fn holds(flag: Arc<AtomicBool>) -> Result<(), CallError> {
    let _guard = DropFlag(flag);
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_timed_out_body_is_dropped() {
    let dropped = Arc::new(AtomicBool::new(false));
    assert!(holds(dropped.clone()).await.is_err());
    assert!(dropped.load(Ordering::SeqCst), "the body's state is released when the bound fires");
}

static CALLS: AtomicU32 = AtomicU32::new(0);

#[adk::timeout("2500ms")]
#[adk::retry(attempts = 5, backoff = "constant", base = "100ms")]
#[adk::timeout("1s")]
async fn per_attempt_and_total(work: Duration) -> Result<u32, CallError> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(work).await;
    Ok(1)
}

#[tokio::test(start_paused = true)]
async fn an_inner_timeout_bounds_each_attempt_and_an_outer_one_the_whole_call() {
    let start = Instant::now();
    let result = per_attempt_and_total(Duration::from_secs(10)).await;
    match result {
        Err(CallError::Adk(adk::Error::Timeout { after, .. })) => {
            assert_eq!(after, Duration::from_millis(2500), "the total bound fired")
        }
        other => panic!("expected the total timeout, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
    assert_eq!(CALLS.load(Ordering::SeqCst), 3, "attempts at 0s, 1.1s, 2.2s; the third is cut by the total bound");
}

#[adk::timeout("1s")]
async fn fails_fast() -> Result<(), CallError> {
    Err(CallError::Failed)
}

#[tokio::test(start_paused = true)]
async fn errors_of_the_body_pass_through_unchanged() {
    assert_eq!(fails_fast().await, Err(CallError::Failed));
}
