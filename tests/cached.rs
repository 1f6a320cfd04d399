//! #[adk::cached]: hits, misses, expiry on the paused clock, bounds, single flight (also after a failure),
//! invalidation, errors not cached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum FetchError {
    #[error("unavailable")]
    Unavailable,
}

/// Counts runs of each body.
static RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::cached(ttl = "5m", name = "cached-test-weather")]
async fn weather(city: &str, days: u8) -> Result<String, FetchError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("{city}:{days}"))
}

#[tokio::test(start_paused = true)]
async fn a_second_call_with_the_same_arguments_is_a_hit_until_the_ttl_passes() {
    let before = RUNS.load(Ordering::SeqCst);
    assert_eq!(weather("Oslo", 2).await.unwrap(), "Oslo:2");
    assert_eq!(weather("Oslo", 2).await.unwrap(), "Oslo:2");
    assert_eq!(weather("Oslo", 3).await.unwrap(), "Oslo:3", "other arguments, other key");
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 2);

    tokio::time::advance(Duration::from_secs(299)).await;
    weather("Oslo", 2).await.unwrap();
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 2, "still fresh at 4m59s");
    tokio::time::advance(Duration::from_secs(2)).await;
    weather("Oslo", 2).await.unwrap();
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 3, "expired after 5m");

    let cache = adk::registry().cache("cached-test-weather").expect("registered by name");
    assert!(cache.invalidate(&("Oslo".to_owned(), 3u8)));
    weather("Oslo", 3).await.unwrap();
    assert_eq!(RUNS.load(Ordering::SeqCst) - before, 4, "an invalidated key runs the body again");
    let text = adk::metrics::render();
    assert!(text.contains(r#"adk_cache_requests_total{cache="cached-test-weather",result="hit"}"#), "{text}");
}

static IDLE_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::cached(tti = 60)]
async fn idle(n: u32) -> Result<u32, FetchError> {
    IDLE_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn an_entry_not_read_for_tti_seconds_is_dropped() {
    idle(1).await.unwrap();
    tokio::time::advance(Duration::from_secs(50)).await;
    idle(1).await.unwrap();
    tokio::time::advance(Duration::from_secs(50)).await;
    idle(1).await.unwrap();
    assert_eq!(IDLE_RUNS.load(Ordering::SeqCst), 1, "each read within 60s keeps it");
    tokio::time::advance(Duration::from_secs(61)).await;
    idle(1).await.unwrap();
    assert_eq!(IDLE_RUNS.load(Ordering::SeqCst), 2);
}

static FLAKY_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::cached(ttl = "1h")]
async fn flaky(n: u32) -> Result<u32, FetchError> {
    if FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) == 0 { Err(FetchError::Unavailable) } else { Ok(n) }
}

#[tokio::test(start_paused = true)]
async fn errors_are_not_cached() {
    assert_eq!(flaky(7).await, Err(FetchError::Unavailable));
    assert_eq!(flaky(7).await, Ok(7), "the next caller runs the body again");
    assert_eq!(flaky(7).await, Ok(7));
    assert_eq!(FLAKY_RUNS.load(Ordering::SeqCst), 2);
}

static SLOW_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::cached(ttl = "1m")]
async fn slow(topic: String) -> Result<Arc<String>, FetchError> {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(Arc::new(topic.to_uppercase()))
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_misses_run_the_body_once() {
    let callers: Vec<_> = (0..100).map(|_| tokio::spawn(slow("rust".to_owned()))).collect();
    for caller in callers {
        assert_eq!(*caller.await.unwrap().unwrap(), "RUST");
    }
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
}

static SERIAL_RUNS: AtomicU32 = AtomicU32::new(0);
static SERIAL_RUNNING: AtomicU32 = AtomicU32::new(0);
static SERIAL_MOST: AtomicU32 = AtomicU32::new(0);

/// Fails on its first run; counts how many runs overlap.
#[adk::cached(ttl = "1m")]
async fn first_run_fails(n: u32) -> Result<u32, FetchError> {
    let run = SERIAL_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    SERIAL_MOST.fetch_max(SERIAL_RUNNING.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    SERIAL_RUNNING.fetch_sub(1, Ordering::SeqCst);
    if run == 1 { Err(FetchError::Unavailable) } else { Ok(n * 10 + run) }
}

#[tokio::test(start_paused = true)]
async fn when_the_first_run_fails_one_waiter_takes_over_and_the_rest_get_its_value() {
    let callers: Vec<_> = (0..5).map(|_| tokio::spawn(first_run_fails(4))).collect();
    let mut answers = Vec::new();
    for caller in callers {
        answers.push(caller.await.unwrap());
    }
    answers.sort_by_key(|answer| answer.is_err());
    assert_eq!(answers, [Ok(42), Ok(42), Ok(42), Ok(42), Err(FetchError::Unavailable)]);
    assert_eq!(SERIAL_RUNS.load(Ordering::SeqCst), 2, "the failure was retried by one waiter, not four");
    assert_eq!(SERIAL_MOST.load(Ordering::SeqCst), 1, "one run at a time");
}

#[derive(Clone)]
struct Request {
    model: String,
    prompt: String,
    temperature: f32,
}

static KEYED_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::cached(ttl = "1h", key = (req.model.clone(), req.prompt.clone()))]
async fn complete(req: &Request) -> Result<String, FetchError> {
    KEYED_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("{}@{}", req.prompt, req.temperature))
}

#[tokio::test(start_paused = true)]
async fn key_chooses_what_identifies_a_call() {
    let mut req = Request { model: "m".into(), prompt: "p".into(), temperature: 0.1 };
    assert_eq!(complete(&req).await.unwrap(), "p@0.1");
    req.temperature = 0.9; // f32 is not Hash: only the key's parts matter
    assert_eq!(complete(&req).await.unwrap(), "p@0.1");
    assert_eq!(KEYED_RUNS.load(Ordering::SeqCst), 1);
}

struct Client {
    calls: AtomicU32,
}

impl Client {
    // `self` is left out of the key on purpose: every client shares the answers.
    #[adk::cached(max_entries = 2, key = id)]
    fn lookup(&self, id: u64) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("user-{id}")
    }
}

#[test]
fn sync_methods_cache_their_whole_output_under_a_key_shared_across_receivers() {
    let (a, b) = (Client { calls: AtomicU32::new(0) }, Client { calls: AtomicU32::new(0) });
    assert_eq!(a.lookup(1), "user-1");
    assert_eq!(b.lookup(1), "user-1", "same key: served from the shared cache");
    assert_eq!(a.calls.load(Ordering::SeqCst) + b.calls.load(Ordering::SeqCst), 1);
}

#[derive(Debug, thiserror::Error)]
enum LlmError {
    #[error("overloaded")]
    Overloaded,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for LlmError {}

static STACKED_RUNS: AtomicU32 = AtomicU32::new(0);

#[adk::cached(ttl = "1m")]
#[adk::retry(attempts = 3, base = "10ms")]
async fn stacked(prompt: &str) -> Result<String, LlmError> {
    if STACKED_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(LlmError::Overloaded);
    }
    Ok(prompt.to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_hit_skips_the_retry_below_it() {
    assert_eq!(stacked("hi").await.unwrap(), "hi");
    assert_eq!(STACKED_RUNS.load(Ordering::SeqCst), 2, "one failure retried");
    assert_eq!(stacked("hi").await.unwrap(), "hi");
    assert_eq!(STACKED_RUNS.load(Ordering::SeqCst), 2, "a hit runs nothing");
}

/// Runs of `always_overloaded` that got as far as failing (a run cut by the timeout does not).
static BOUNDED_FAILURES: AtomicU32 = AtomicU32::new(0);

#[adk::timeout("250ms")]
#[adk::cached(ttl = "1m")]
async fn always_overloaded(n: u32) -> Result<u32, LlmError> {
    let _ = n;
    tokio::time::sleep(Duration::from_millis(100)).await;
    BOUNDED_FAILURES.fetch_add(1, Ordering::SeqCst);
    Err(LlmError::Overloaded)
}

#[tokio::test(start_paused = true)]
async fn a_timeout_above_the_cache_bounds_a_wait_through_failed_runs() {
    let started = tokio::time::Instant::now();
    let callers: Vec<_> = (0..5).map(|_| tokio::spawn(always_overloaded(1))).collect();
    let (mut failed, mut timed_out) = (0, 0);
    for caller in callers {
        match caller.await.unwrap() {
            Err(LlmError::Overloaded) => failed += 1,
            Err(LlmError::Adk(adk::Error::Timeout { .. })) => timed_out += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
    assert_eq!((failed, timed_out), (2, 3), "runs of 100 ms one after the other: the third is cut at 250 ms");
    assert_eq!(BOUNDED_FAILURES.load(Ordering::SeqCst), 2);
}
