//! adk::registry().reset(): breakers, limiters, caches and adk's counters back to their first state between tests,
//! the annotated functions working and recording afterwards, and the gauges of calls still running kept true.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use adk::CircuitState;
use tokio::sync::Notify;

/// Every test here resets the process-wide registry, so they take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("upstream failed")]
    Upstream,
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

impl adk::Classify for ApiError {
    fn adk_error(&self) -> Option<&adk::Error> {
        match self {
            ApiError::Adk(e) => Some(e),
            ApiError::Upstream => None,
        }
    }
}

#[adk::observed]
#[adk::circuit_breaker(name = "reset-test-upstream", min_calls = 2, window = 4, open_for = "30s")]
async fn upstream(fail: bool) -> Result<u32, ApiError> {
    if fail { Err(ApiError::Upstream) } else { Ok(1) }
}

#[adk::rate_limited(name = "reset-test-quota", rpm = 2, key = user)]
async fn quota(user: &str) -> Result<(), ApiError> {
    let _ = user;
    Ok(())
}

static LOOKUPS: AtomicU32 = AtomicU32::new(0);

#[adk::observed(labels(team = "reset-test"))]
#[adk::cached(name = "reset-test-profiles")]
async fn profile(id: u64) -> Result<String, ApiError> {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("user-{id}"))
}

#[adk::observed]
#[adk::bulkhead(name = "reset-test-pool", max_concurrent = 1)]
async fn hold(release: Arc<Notify>) -> Result<(), ApiError> {
    release.notified().await;
    Ok(())
}

/// The value of one series in `adk::metrics::render()`, given as the exposition writes it (labels sorted by name).
fn value(series: &str) -> f64 {
    let text = adk::metrics::render();
    let line = text
        .lines()
        .find(|line| line.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

fn is_refused_by_the_breaker(result: Result<u32, ApiError>) -> bool {
    matches!(result, Err(ApiError::Adk(adk::Error::CircuitOpen { .. })))
}

fn is_rate_limited(result: Result<(), ApiError>) -> bool {
    matches!(result, Err(ApiError::Adk(adk::Error::RateLimited { .. })))
}

#[tokio::test(start_paused = true)]
async fn a_reset_closes_breakers_refills_quotas_empties_caches_and_zeroes_counters() {
    let _serial = SERIAL.lock().await;
    adk::registry().reset();

    // One test's leftovers: an open breaker, a spent key, a filled cache, counted calls.
    assert_eq!(upstream(false).await.unwrap(), 1);
    assert!(upstream(true).await.is_err(), "one failure in two calls: the breaker opens");
    assert!(is_refused_by_the_breaker(upstream(false).await));
    assert!(quota("alice").await.is_ok() && quota("alice").await.is_ok());
    assert!(is_rate_limited(quota("alice").await));
    for id in [1, 1, 2] {
        profile(id).await.unwrap();
    }
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 2);
    let registry = adk::registry();
    let breaker = registry.circuit_breaker("reset-test-upstream").unwrap();
    let limiter = registry.rate_limiter("reset-test-quota").unwrap();
    let cache = registry.cache("reset-test-profiles").unwrap();
    assert_eq!((breaker.state(), cache.len()), (CircuitState::Open, 2));
    assert_eq!(value(r#"adk_calls_total{function="reset::upstream",outcome="error"}"#), 2.0);
    assert_eq!(value(r#"adk_circuit_breaker_calls_total{breaker="reset-test-upstream",outcome="success"}"#), 1.0);
    assert_eq!(value(r#"adk_call_duration_seconds_count{function="reset::upstream"}"#), 3.0);
    assert_eq!(
        value(r#"adk_circuit_breaker_transitions_total{breaker="reset-test-upstream",from="closed",to="open"}"#),
        1.0
    );
    assert_eq!(value(r#"adk_circuit_breaker_calls_total{breaker="reset-test-upstream",outcome="rejected"}"#), 1.0);
    assert_eq!(value(r#"adk_rate_limit_decisions_total{decision="refused",limiter="reset-test-quota"}"#), 1.0);
    assert_eq!(value(r#"adk_cache_requests_total{cache="reset-test-profiles",result="hit"}"#), 1.0);
    assert_eq!(value(r#"adk_calls_total{function="reset::profile",outcome="ok",team="reset-test"}"#), 3.0);

    adk::registry().reset();

    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.snapshot().calls, 0, "a fresh window");
    assert_eq!(limiter.snapshot_key("alice").remaining, 2, "a full quota");
    assert_eq!(limiter.keys(), 0);
    assert!(cache.is_empty());
    for series in [
        r#"adk_calls_total{function="reset::upstream",outcome="ok"}"#,
        r#"adk_calls_total{function="reset::upstream",outcome="error"}"#,
        r#"adk_call_duration_seconds_count{function="reset::upstream"}"#,
        r#"adk_call_duration_seconds_sum{function="reset::upstream"}"#,
        r#"adk_call_duration_seconds_bucket{function="reset::upstream",le="+Inf"}"#,
        r#"adk_circuit_breaker_transitions_total{breaker="reset-test-upstream",from="closed",to="open"}"#,
        r#"adk_circuit_breaker_transitions_total{breaker="reset-test-upstream",from="open",to="closed"}"#,
        r#"adk_circuit_breaker_calls_total{breaker="reset-test-upstream",outcome="success"}"#,
        r#"adk_circuit_breaker_calls_total{breaker="reset-test-upstream",outcome="failure"}"#,
        r#"adk_circuit_breaker_calls_total{breaker="reset-test-upstream",outcome="rejected"}"#,
        r#"adk_rate_limit_decisions_total{decision="admitted",limiter="reset-test-quota"}"#,
        r#"adk_rate_limit_decisions_total{decision="refused",limiter="reset-test-quota"}"#,
        r#"adk_cache_requests_total{cache="reset-test-profiles",result="hit"}"#,
        r#"adk_cache_requests_total{cache="reset-test-profiles",result="miss"}"#,
        r#"adk_calls_total{function="reset::profile",outcome="ok",team="reset-test"}"#,
        r#"adk_call_duration_seconds_count{function="reset::profile",team="reset-test"}"#,
        // Gauges, published from the state the reset left.
        r#"adk_circuit_breaker_state{breaker="reset-test-upstream"}"#,
        r#"adk_rate_limit_keys{limiter="reset-test-quota"}"#,
        r#"adk_cache_entries{cache="reset-test-profiles"}"#,
    ] {
        assert_eq!(value(series), 0.0, "{series} after the reset");
    }

    // The functions annotated before the reset hold the same instances, work, and record again.
    assert_eq!(upstream(false).await.unwrap(), 1);
    assert_eq!(value(r#"adk_calls_total{function="reset::upstream",outcome="ok"}"#), 1.0);
    assert_eq!(value(r#"adk_call_duration_seconds_count{function="reset::upstream"}"#), 1.0);
    assert_eq!(value(r#"adk_circuit_breaker_calls_total{breaker="reset-test-upstream",outcome="success"}"#), 1.0);
    assert!(upstream(true).await.is_err());
    assert_eq!(breaker.state(), CircuitState::Open, "the breaker still trips");
    assert_eq!(
        value(r#"adk_circuit_breaker_transitions_total{breaker="reset-test-upstream",from="closed",to="open"}"#),
        1.0
    );
    assert!(quota("alice").await.is_ok() && quota("alice").await.is_ok());
    assert!(is_rate_limited(quota("alice").await), "the quota is full, not lifted");
    assert_eq!(value(r#"adk_rate_limit_decisions_total{decision="admitted",limiter="reset-test-quota"}"#), 2.0);
    assert_eq!(value(r#"adk_rate_limit_decisions_total{decision="refused",limiter="reset-test-quota"}"#), 1.0);
    assert_eq!(profile(1).await.unwrap(), "user-1");
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 3, "the emptied cache runs the body again");
    profile(1).await.unwrap();
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 3, "and stores its answer again");
    assert_eq!(value(r#"adk_cache_requests_total{cache="reset-test-profiles",result="hit"}"#), 1.0);
    assert_eq!(cache.len(), 1);
    assert_eq!(value(r#"adk_calls_total{function="reset::profile",outcome="ok",team="reset-test"}"#), 2.0);
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_keeps_its_slot_and_stays_counted_across_a_reset() {
    let _serial = SERIAL.lock().await;
    adk::registry().reset();
    let release = Arc::new(Notify::new());
    let running = tokio::spawn(hold(release.clone()));
    tokio::task::yield_now().await;
    assert!(matches!(hold(release.clone()).await, Err(ApiError::Adk(adk::Error::BulkheadFull { .. }))));
    assert_eq!(value(r#"adk_bulkhead_rejections_total{bulkhead="reset-test-pool"}"#), 1.0);

    adk::registry().reset();

    let pool = adk::registry().bulkhead("reset-test-pool").unwrap();
    assert_eq!(pool.in_use(), 1, "the running call keeps its slot");
    assert_eq!(value(r#"adk_bulkhead_in_use{bulkhead="reset-test-pool"}"#), 1.0);
    assert_eq!(value(r#"adk_calls_in_flight{function="reset::hold"}"#), 1.0);
    assert_eq!(value(r#"adk_bulkhead_rejections_total{bulkhead="reset-test-pool"}"#), 0.0);
    assert!(
        matches!(hold(release.clone()).await, Err(ApiError::Adk(adk::Error::BulkheadFull { .. }))),
        "the bound still counts the running call"
    );
    assert_eq!(value(r#"adk_bulkhead_rejections_total{bulkhead="reset-test-pool"}"#), 1.0);

    release.notify_waiters();
    running.await.unwrap().unwrap();
    assert_eq!(value(r#"adk_calls_in_flight{function="reset::hold"}"#), 0.0, "not below zero");
    assert_eq!(value(r#"adk_bulkhead_in_use{bulkhead="reset-test-pool"}"#), 0.0);
    assert_eq!(value(r#"adk_calls_total{function="reset::hold",outcome="ok"}"#), 1.0, "counted when it ended");
    release.notify_one();
    hold(release).await.unwrap();
}
