//! #[adk::retry]: what a user relies on — call counts, delays on the paused clock, budgets, which errors pass through.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum CallError {
    #[error("flaky")]
    Flaky,
    #[error("bad request")]
    BadRequest,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for CallError {
    fn class(&self) -> adk::ErrorClass {
        match self {
            CallError::Flaky => adk::ErrorClass::Transient,
            CallError::BadRequest => adk::ErrorClass::Permanent,
            CallError::Adk(e) => e.class(),
        }
    }
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            CallError::Adk(e) => Some(e),
            _ => None,
        }
    }
}

const MS: Duration = Duration::from_millis(1);

/// Fails `failures` times with `error`, then answers with the number of calls; records when each call started.
struct Flaky {
    calls: AtomicU32,
    failures: u32,
    error: CallError,
    started: std::sync::Mutex<Vec<Instant>>,
}

impl Flaky {
    fn new(failures: u32, error: CallError) -> Self {
        Flaky { calls: AtomicU32::new(0), failures, error, started: Default::default() }
    }
    fn call(&self) -> Result<u32, CallError> {
        self.started.lock().unwrap().push(Instant::now());
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.failures { Err(self.error.clone()) } else { Ok(n) }
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
    /// Waits between consecutive calls.
    fn gaps(&self) -> Vec<Duration> {
        self.started.lock().unwrap().windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[adk::retry(attempts = 3)]
async fn defaults(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_exponential_backoff_by_default() {
    let dep = Flaky::new(2, CallError::Flaky);
    assert_eq!(defaults(&dep).await, Ok(3));
    assert_eq!(dep.calls(), 3);
    assert_eq!(dep.gaps(), [100 * MS, 200 * MS], "base 100ms, doubling");
}

#[tokio::test(start_paused = true)]
async fn the_last_error_is_returned_once_attempts_are_spent() {
    let dep = Flaky::new(10, CallError::Flaky);
    assert_eq!(defaults(&dep).await, Err(CallError::Flaky));
    assert_eq!(dep.calls(), 3, "attempts counts every call, the first included");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_returned_at_once() {
    let dep = Flaky::new(10, CallError::BadRequest);
    let start = Instant::now();
    assert_eq!(defaults(&dep).await, Err(CallError::BadRequest));
    assert_eq!(dep.calls(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[adk::retry(attempts = 4, backoff = "constant", base = "50ms")]
async fn constant(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[adk::retry(attempts = 4, backoff = "linear", base = "50ms")]
async fn linear(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[adk::retry(attempts = 5, backoff = "exponential", base = "100ms", multiplier = 3, max_delay = "500ms")]
async fn capped(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[tokio::test(start_paused = true)]
async fn backoff_schedules_follow_the_documented_formulas() {
    let dep = Flaky::new(3, CallError::Flaky);
    constant(&dep).await.unwrap();
    assert_eq!(dep.gaps(), [50 * MS, 50 * MS, 50 * MS]);

    let dep = Flaky::new(3, CallError::Flaky);
    linear(&dep).await.unwrap();
    assert_eq!(dep.gaps(), [50 * MS, 100 * MS, 150 * MS]);

    let dep = Flaky::new(4, CallError::Flaky);
    capped(&dep).await.unwrap();
    assert_eq!(dep.gaps(), [100 * MS, 300 * MS, 500 * MS, 500 * MS], "x3 each time, capped at max_delay");
}

#[adk::retry(attempts = 6, backoff = "constant", base = "1s", jitter)]
async fn full_jitter(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[adk::retry(attempts = 6, backoff = "constant", base = "1s", jitter = "equal")]
async fn equal_jitter(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[tokio::test(start_paused = true)]
async fn jitter_draws_within_the_computed_delay() {
    let dep = Flaky::new(5, CallError::Flaky);
    full_jitter(&dep).await.unwrap();
    let gaps = dep.gaps();
    assert!(gaps.iter().all(|g| *g <= Duration::from_secs(1)), "{gaps:?}");
    assert!(gaps.iter().any(|g| *g != Duration::from_secs(1)), "five draws are not all the maximum: {gaps:?}");

    let dep = Flaky::new(5, CallError::Flaky);
    equal_jitter(&dep).await.unwrap();
    let gaps = dep.gaps();
    assert!(gaps.iter().all(|g| *g >= 500 * MS && *g <= Duration::from_secs(1)), "{gaps:?}");
}

fn only_flaky(error: &CallError) -> bool {
    matches!(error, CallError::Flaky)
}

#[derive(Debug, PartialEq)]
struct Opaque(&'static str);

#[adk::retry(attempts = 3, backoff = "constant", base = "10ms", when = worth_retrying)]
async fn with_predicate(dep: &Flaky, error: &'static str) -> Result<u32, Opaque> {
    dep.call().map_err(|_| Opaque(error))
}

fn worth_retrying(error: &Opaque) -> bool {
    error.0 == "busy"
}

#[tokio::test(start_paused = true)]
async fn when_decides_which_errors_are_retried_without_classify() {
    let dep = Flaky::new(1, CallError::Flaky);
    assert_eq!(with_predicate(&dep, "busy").await, Ok(2));
    let dep = Flaky::new(1, CallError::Flaky);
    assert_eq!(with_predicate(&dep, "denied").await, Err(Opaque("denied")));
    assert_eq!(dep.calls(), 1);
    assert!(only_flaky(&CallError::Flaky));
}

#[adk::retry(attempts = 3, backoff = "constant", base = "10ms", max_delay = "5s")]
async fn rate_limited_dependency(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_is_waited_out() {
    let hint = CallError::Adk(adk::Error::rate_limited("provider", Duration::from_secs(2), 10, 0));
    let dep = Flaky::new(1, hint);
    assert_eq!(rate_limited_dependency(&dep).await, Ok(2));
    assert_eq!(dep.gaps(), [Duration::from_secs(2)], "the hint wins over the 10ms backoff");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_max_delay_is_returned_at_once() {
    let hint = CallError::Adk(adk::Error::rate_limited("provider", Duration::from_secs(60), 10, 0));
    let dep = Flaky::new(1, hint.clone());
    let start = Instant::now();
    assert_eq!(rate_limited_dependency(&dep).await, Err(hint));
    assert_eq!((dep.calls(), start.elapsed()), (1, Duration::ZERO));
    let text = adk::metrics::render();
    assert!(
        text.contains(
            r#"adk_retry_attempts_total{function="retry::rate_limited_dependency",outcome="retry_after_too_long"} 1"#
        ),
        "{text}"
    );
}

#[adk::retry(attempts = 10, backoff = "constant", base = "400ms", max_elapsed = "1s")]
async fn deadline(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_stops_retries_whose_wait_would_pass_it() {
    let dep = Flaky::new(100, CallError::Flaky);
    let start = Instant::now();
    assert_eq!(deadline(&dep).await, Err(CallError::Flaky));
    assert_eq!(dep.calls(), 3, "calls at 0, 400ms, 800ms; a wait to 1200ms would pass 1s");
    assert_eq!(start.elapsed(), 800 * MS);
}

#[adk::retry(attempts = 2, backoff = "constant", base = "1ms", budget = 0.1)]
async fn budgeted(dep: &Flaky) -> Result<u32, CallError> {
    dep.call()
}

#[tokio::test(start_paused = true)]
async fn a_retry_budget_bounds_retries_during_an_outage() {
    let dep = Flaky::new(u32::MAX, CallError::Flaky);
    for _ in 0..1000 {
        assert_eq!(budgeted(&dep).await, Err(CallError::Flaky));
    }
    let retries = dep.calls() - 1000;
    // 10% of 1000 calls, plus the 10 retries a second over the 10 s window every budget keeps in reserve.
    assert!((150..=200).contains(&retries), "retries without a budget would be 1000, got {retries}");
}

#[derive(Debug)]
struct Payload {
    body: String,
    clones: &'static AtomicU32,
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Payload { body: self.body.clone(), clones: self.clones }
    }
}

fn consume(payload: Payload) -> usize {
    payload.body.len()
}

#[adk::retry(attempts = 3, backoff = "constant", base = "1ms")]
async fn send(dep: &Flaky, payload: Payload, mut budget: u32) -> Result<usize, CallError> {
    budget -= 1;
    dep.call()?;
    Ok(consume(payload) + budget as usize)
}

#[tokio::test(start_paused = true)]
async fn owned_arguments_are_cloned_for_each_attempt_and_borrowed_ones_reborrowed() {
    static CLONES: AtomicU32 = AtomicU32::new(0);
    let dep = Flaky::new(2, CallError::Flaky);
    let payload = Payload { body: "hello".into(), clones: &CLONES };
    assert_eq!(send(&dep, payload, 10).await, Ok(5 + 9));
    assert_eq!(CLONES.load(Ordering::SeqCst), 3, "one clone per attempt");
}

struct Session {
    attempts_seen: u32,
}

impl Session {
    #[adk::retry(attempts = 3, backoff = "constant", base = "1ms")]
    async fn exchange(&mut self, dep: &Flaky) -> Result<u32, CallError> {
        self.attempts_seen += 1;
        dep.call()
    }
}

#[tokio::test(start_paused = true)]
async fn methods_taking_mut_self_are_retried() {
    let mut session = Session { attempts_seen: 0 };
    let dep = Flaky::new(2, CallError::Flaky);
    assert_eq!(session.exchange(&dep).await, Ok(3));
    assert_eq!(session.attempts_seen, 3);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_counted_in_metrics() {
    let dep = Flaky::new(1, CallError::Flaky);
    linear(&dep).await.unwrap();
    let text = adk::metrics::render();
    assert!(text.contains(r#"adk_retry_attempts_total{function="retry::linear",outcome="retried"}"#), "{text}");
    assert!(text.contains(r#"adk_retry_attempts_total{function="retry::linear",outcome="recovered"}"#));
}
