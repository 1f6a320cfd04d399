//! Deadlines flow down a stack: under a total #[adk::timeout], a refusal whose `retry_after` ends past the deadline is
//! returned at once as the refusal it is, waits are cut to the deadline, and nested annotated calls inherit it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("upstream failed")]
    Upstream,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for ApiError {
    fn class(&self) -> adk::ErrorClass {
        match self {
            ApiError::Upstream => adk::ErrorClass::Transient,
            ApiError::Adk(e) => e.class(),
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        self.adk_error().and_then(adk::Classify::retry_after)
    }
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            ApiError::Adk(e) => Some(e),
            ApiError::Upstream => None,
        }
    }
}

static QUOTA_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::timeout("2s")]
#[adk::retry(attempts = 3)]
#[adk::rate_limited(rpm = 5, burst = 1)]
async fn over_quota() -> Result<u32, ApiError> {
    Ok(QUOTA_RUNS.fetch_add(1, Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn a_quota_refusal_beyond_the_deadline_is_returned_at_once() {
    assert_eq!(over_quota().await.unwrap(), 0);
    let started = Instant::now();
    let refusal = over_quota().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(10), "waited {:?}", started.elapsed());
    match refusal {
        ApiError::Adk(adk::Error::RateLimited { retry_after, .. }) => {
            assert!(retry_after > Duration::from_secs(2), "the next admission is 12 s away, not {retry_after:?}");
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
    assert_eq!(QUOTA_RUNS.load(Ordering::SeqCst), 1);
}

static BREAKER_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::timeout("2s")]
#[adk::retry(attempts = 3, base = "10ms")]
#[adk::circuit_breaker(name = "deadline-long-open", min_calls = 1, window = 1, open_for = "10s")]
async fn behind_a_long_open_breaker() -> Result<(), ApiError> {
    BREAKER_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(ApiError::Upstream)
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_whose_open_period_outlasts_the_deadline_refuses_at_once() {
    // The first attempt fails and opens the breaker; the retry's next attempt is refused with a `retry_after` of
    // 10 s, beyond the 2 s deadline: returned at once, without waiting for the timeout.
    let started = Instant::now();
    let error = behind_a_long_open_breaker().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(100), "waited {:?}", started.elapsed());
    assert!(matches!(error, ApiError::Adk(adk::Error::CircuitOpen { .. })), "got {error:?}");
    assert_eq!(BREAKER_RUNS.load(Ordering::SeqCst), 1);

    let started = Instant::now();
    let error = behind_a_long_open_breaker().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(10), "waited {:?}", started.elapsed());
    assert!(matches!(error, ApiError::Adk(adk::Error::CircuitOpen { .. })), "got {error:?}");
    assert_eq!(BREAKER_RUNS.load(Ordering::SeqCst), 1, "an open breaker runs nothing");
}

static SHORT_OPEN_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::timeout("5s")]
#[adk::retry(attempts = 3, base = "10ms")]
#[adk::circuit_breaker(name = "deadline-short-open", min_calls = 1, window = 1, open_for = "1s", half_open_calls = 1)]
async fn behind_a_short_open_breaker() -> Result<u32, ApiError> {
    match SHORT_OPEN_RUNS.fetch_add(1, Ordering::SeqCst) {
        0 => Err(ApiError::Upstream),
        n => Ok(n),
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_that_closes_before_the_deadline_is_waited_out_and_retried() {
    let started = Instant::now();
    assert_eq!(behind_a_short_open_breaker().await.unwrap(), 1);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(2), "waited {waited:?}");
    assert_eq!(SHORT_OPEN_RUNS.load(Ordering::SeqCst), 2);
}

#[adk::timeout("500ms")]
#[adk::rate_limited(rps = 4, burst = 1, on_limit = "wait", max_wait = "30s")]
async fn patient_within_the_deadline() -> Result<(), ApiError> {
    Ok(())
}

#[adk::timeout("500ms")]
#[adk::rate_limited(rps = 1, burst = 1, on_limit = "wait", max_wait = "30s")]
async fn patient_beyond_the_deadline() -> Result<(), ApiError> {
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_wait_is_cut_to_the_deadline() {
    patient_within_the_deadline().await.unwrap();
    let started = Instant::now();
    patient_within_the_deadline().await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(250), "a wait that ends inside the deadline is waited");

    patient_beyond_the_deadline().await.unwrap();
    let started = Instant::now();
    let error = patient_beyond_the_deadline().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(10), "waited {:?}", started.elapsed());
    assert!(matches!(error, ApiError::Adk(adk::Error::RateLimited { .. })), "got {error:?}");
}

#[adk::retry(attempts = 2, base = "10ms", max_elapsed = "1s")]
#[adk::bulkhead(name = "deadline-pool", max_concurrent = 1, max_wait = "10s")]
async fn pooled(hold: Duration) -> Result<(), ApiError> {
    tokio::time::sleep(hold).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_wait_is_cut_to_the_deadline() {
    let holder = tokio::spawn(pooled(Duration::from_secs(5)));
    tokio::task::yield_now().await;
    let started = Instant::now();
    // `max_wait` would wait 10 s, and the slot frees at 5 s; `max_elapsed` ends the wait at 1 s.
    let error = pooled(Duration::ZERO).await.unwrap_err();
    assert!(matches!(error, ApiError::Adk(adk::Error::BulkheadFull { .. })), "got {error:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    holder.await.unwrap().unwrap();
}

#[adk::retry(attempts = 5, base = "1s", backoff = "constant")]
async fn inner_flaky(runs: &AtomicU32) -> Result<(), ApiError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Err(ApiError::Upstream)
}

#[adk::timeout("2500ms")]
async fn outer(runs: &AtomicU32) -> Result<(), ApiError> {
    inner_flaky(runs).await
}

#[tokio::test(start_paused = true)]
async fn a_nested_annotated_call_inherits_the_deadline() {
    // The inner retry would wait 1 s four times; under the outer 2.5 s deadline it stops before the wait that would
    // pass it, and returns its own error rather than being cut off by the timeout.
    let runs = AtomicU32::new(0);
    let started = Instant::now();
    let error = outer(&runs).await.unwrap_err();
    assert!(matches!(error, ApiError::Upstream), "got {error:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(adk::runtime::deadline::current(), None, "nothing leaks out of the call");
}

#[adk::retry(attempts = 10, base = "100ms", backoff = "constant", max_elapsed = "2500ms")]
#[adk::rate_limited(rate = "1/2s", burst = 1, on_limit = "wait", max_wait = "10s")]
async fn within_max_elapsed(runs: &AtomicU32) -> Result<(), ApiError> {
    runs.fetch_add(1, Ordering::SeqCst);
    Err(ApiError::Upstream)
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_is_a_deadline_for_the_layers_below() {
    // Attempts at 0 s and (after the limiter's wait of 1.9 s) 2 s. At 2.1 s the limiter's next admission is 1.9 s
    // away, past the 2.5 s deadline: refused at once, and the retry gives the refusal back rather than wait for it.
    let runs = AtomicU32::new(0);
    let started = Instant::now();
    let error = within_max_elapsed(&runs).await.unwrap_err();
    assert!(matches!(error, ApiError::Adk(adk::Error::RateLimited { .. })), "got {error:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(started.elapsed(), Duration::from_millis(2100));
}
