//! #[adk::circuit_breaker]: opening at the threshold, refusing without running the body, recovering through
//! half-open trials, sharing by name, forced states, and which errors count.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use adk::CircuitState;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum DbError {
    #[error("connection reset")]
    Reset,
    #[error("no such table")]
    NoSuchTable,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for DbError {
    fn class(&self) -> adk::ErrorClass {
        match self {
            DbError::NoSuchTable => adk::ErrorClass::Permanent,
            DbError::Reset => adk::ErrorClass::Transient,
            DbError::Adk(e) => e.class(),
        }
    }
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            DbError::Adk(e) => Some(e),
            _ => None,
        }
    }
}

static RUNS: AtomicU32 = AtomicU32::new(0);
static HEALTHY: AtomicBool = AtomicBool::new(false);

#[adk::circuit_breaker(
    name = "test-db",
    failure_rate = 0.5,
    min_calls = 4,
    window = 10,
    open_for = "30s",
    half_open_calls = 2
)]
async fn query(error: DbError) -> Result<u32, DbError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if HEALTHY.load(Ordering::SeqCst) { Ok(1) } else { Err(error) }
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_at_the_threshold_refuses_and_recovers() {
    let breaker = || adk::registry().circuit_breaker("test-db").expect("declared on first call");
    for _ in 0..3 {
        assert_eq!(query(DbError::Reset).await, Err(DbError::Reset));
    }
    assert_eq!(breaker().state(), CircuitState::Closed, "not before min_calls");
    assert_eq!(query(DbError::Reset).await, Err(DbError::Reset));
    assert_eq!(breaker().state(), CircuitState::Open);

    let runs = RUNS.load(Ordering::SeqCst);
    match query(DbError::Reset).await {
        Err(DbError::Adk(adk::Error::CircuitOpen { name, retry_after, .. })) => {
            assert_eq!(name, "test-db");
            assert_eq!(retry_after, Duration::from_secs(30));
        }
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert_eq!(RUNS.load(Ordering::SeqCst), runs, "an open breaker does not run the body");

    tokio::time::advance(Duration::from_secs(30)).await;
    HEALTHY.store(true, Ordering::SeqCst);
    assert_eq!(query(DbError::Reset).await, Ok(1));
    assert_eq!(breaker().state(), CircuitState::HalfOpen, "decides after exactly half_open_calls outcomes");
    assert_eq!(query(DbError::Reset).await, Ok(1));
    assert_eq!(breaker().state(), CircuitState::Closed);

    breaker().force_open();
    assert!(matches!(query(DbError::Reset).await, Err(DbError::Adk(adk::Error::CircuitOpen { .. }))));
    breaker().reset();
    assert_eq!(query(DbError::Reset).await, Ok(1));
    assert!(
        adk::metrics::render()
            .contains(r#"adk_circuit_breaker_transitions_total{breaker="test-db",from="closed",to="open"}"#)
    );
}

#[adk::circuit_breaker(min_calls = 2, window = 4)]
async fn lookup(error: DbError) -> Result<u32, DbError> {
    Err(error)
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_and_refusals_do_not_open_the_breaker_by_default() {
    for _ in 0..10 {
        assert_eq!(lookup(DbError::NoSuchTable).await, Err(DbError::NoSuchTable));
        let limited = DbError::Adk(adk::Error::rate_limited("x", Duration::from_secs(1), 1, 0));
        assert_eq!(lookup(limited.clone()).await, Err(limited));
    }
    let breaker = adk::registry().circuit_breaker("circuit_breaker::lookup").expect("named after the function");
    assert_eq!(breaker.state(), CircuitState::Closed);
}

fn only_resets(error: &DbError) -> bool {
    matches!(error, DbError::NoSuchTable)
}

#[adk::circuit_breaker(min_calls = 2, window = 2, record = only_resets)]
async fn strict(error: DbError) -> Result<u32, DbError> {
    Err(error)
}

#[tokio::test(start_paused = true)]
async fn record_decides_which_errors_count() {
    strict(DbError::NoSuchTable).await.unwrap_err();
    strict(DbError::NoSuchTable).await.unwrap_err();
    let breaker = adk::registry().circuit_breaker("circuit_breaker::strict").unwrap();
    assert_eq!(breaker.state(), CircuitState::Open, "the predicate counts what Classify would not");
}

#[derive(Debug, thiserror::Error)]
enum LlmError {
    #[error("503")]
    Unavailable,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for LlmError {
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            LlmError::Adk(e) => Some(e),
            _ => None,
        }
    }
}

static PROVIDER_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::retry(attempts = 5, backoff = "constant", base = "1s", max_delay = "1m")]
#[adk::circuit_breaker(name = "test-provider", min_calls = 2, window = 2, open_for = "10s", half_open_calls = 1)]
async fn ask() -> Result<&'static str, LlmError> {
    let n = PROVIDER_RUNS.fetch_add(1, Ordering::SeqCst);
    if n < 2 { Err(LlmError::Unavailable) } else { Ok("answer") }
}

#[tokio::test(start_paused = true)]
async fn retry_waits_out_an_open_breaker_instead_of_hammering_it() {
    let start = tokio::time::Instant::now();
    assert_eq!(ask().await.unwrap(), "answer");
    assert_eq!(PROVIDER_RUNS.load(Ordering::SeqCst), 3, "two failures open it; the trial after 10 s succeeds");
    assert_eq!(start.elapsed(), Duration::from_secs(11), "1 s backoff, then the breaker's 10 s retry_after");
}
