use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tokio::time::{advance, sleep};

use super::*;
use crate::metrics::{self, Refresh};

fn breaker(name: &str, config: CircuitBreakerConfig) -> Arc<CircuitBreaker> {
    CircuitBreaker::new(name, config)
}

fn fail(breaker: &CircuitBreaker) {
    breaker.acquire().expect("admitted").failure();
}

fn succeed(breaker: &CircuitBreaker) {
    breaker.acquire().expect("admitted").success();
}

/// `retry_after` of the refusal, panicking if the call was admitted.
fn refusal(breaker: &CircuitBreaker) -> Duration {
    match breaker.acquire() {
        Err(Error::CircuitOpen { retry_after, .. }) => retry_after,
        Err(other) => panic!("unexpected refusal {other}"),
        Ok(_) => panic!("admitted by a breaker in state {:?}", breaker.state()),
    }
}

fn calls_counted(name: &str, outcome: &str) -> u64 {
    metrics::render();
    super::breaker::CALLS_TOTAL.with(&[name, outcome]).get()
}

fn transitions(name: &str, from: &str, to: &str) -> u64 {
    super::breaker::TRANSITIONS_TOTAL.with(&[name, from, to]).get()
}

const TEN_CALLS_MIN_4: CircuitBreakerConfig =
    CircuitBreakerConfig::new().with_window(Window::Calls(10)).with_min_calls(4).with_open_for(Duration::from_secs(30));

#[tokio::test(start_paused = true)]
async fn no_verdict_before_min_calls_then_opens_at_the_failure_rate() {
    let b = breaker("test-min-calls", TEN_CALLS_MIN_4);
    for _ in 0..3 {
        fail(&b);
    }
    assert_eq!(b.state(), CircuitState::Closed, "3 failures out of 3, but fewer than min_calls");
    succeed(&b);
    assert_eq!(b.state(), CircuitState::Open, "3 of 4 failed: judged on the call that reached min_calls");

    let b = breaker("test-at-threshold", TEN_CALLS_MIN_4);
    succeed(&b);
    succeed(&b);
    fail(&b);
    assert_eq!(b.state(), CircuitState::Closed);
    fail(&b);
    assert_eq!(b.state(), CircuitState::Open, "2 of 4 is exactly the 0.5 threshold");

    let b = breaker("test-below-threshold", TEN_CALLS_MIN_4);
    for _ in 0..3 {
        succeed(&b);
    }
    fail(&b);
    for _ in 0..6 {
        succeed(&b);
    }
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), CircuitState::Closed, "3 of the last 10 failed");
    assert_eq!(b.snapshot().failure_rate, 0.3);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_refuses_without_running_the_call_and_says_how_long_is_left() {
    let b = breaker("test-refuses", TEN_CALLS_MIN_4);
    for _ in 0..4 {
        fail(&b);
    }
    advance(Duration::from_secs(10)).await;
    let ran = AtomicBool::new(false);
    let result: Result<(), Error> = b
        .run(
            async {
                ran.store(true, SeqCst);
                Ok(())
            },
            by_class,
            Err,
        )
        .await;
    assert!(!ran.load(SeqCst), "the body must not run");
    match result {
        Err(Error::CircuitOpen { name, retry_after, .. }) => {
            assert_eq!(name, "test-refuses");
            assert_eq!(retry_after, Duration::from_secs(20));
        }
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert_eq!(calls_counted("test-refuses", "rejected"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_count_window_judges_exactly_the_last_n_calls() {
    let config = CircuitBreakerConfig::new().with_window(Window::Calls(3)).with_min_calls(3).with_failure_rate(0.6);
    let b = breaker("test-count-window", config);
    fail(&b);
    succeed(&b);
    succeed(&b);
    succeed(&b);
    fail(&b);
    assert_eq!(b.snapshot().failures, 1, "the first failure slid out");
    fail(&b);
    // The last 3 calls hold 2 failures (0.67); all 6 calls would hold 3 (0.5).
    assert_eq!(b.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_breaker_at_the_slow_rate() {
    let config = CircuitBreakerConfig::new()
        .with_window(Window::Calls(10))
        .with_min_calls(2)
        .with_failure_rate(1.0)
        .with_slow_call(Duration::from_secs(1), 0.5);
    let b = breaker("test-slow", config);
    let call = |lasting: u64| {
        let b = b.clone();
        async move {
            let permit = b.acquire().expect("admitted");
            sleep(Duration::from_secs(lasting)).await;
            permit.success();
        }
    };
    call(1).await; // exactly slow_call: not longer, so not slow
    call(0).await;
    call(2).await;
    assert_eq!(b.snapshot().slow_calls, 1);
    assert_eq!(b.state(), CircuitState::Closed, "1 slow call of 3");
    call(2).await;
    assert_eq!(b.state(), CircuitState::Open, "2 slow calls of 4, though all succeeded");
    assert_eq!(calls_counted("test-slow", "slow_success"), 2);
    assert_eq!(calls_counted("test-slow", "success"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_time_window_forgets_calls_older_than_its_length() {
    let config = CircuitBreakerConfig::new().with_window(Window::Time(Duration::from_secs(10))).with_min_calls(3);
    let b = breaker("test-time-window", config);
    fail(&b);
    fail(&b);
    advance(Duration::from_secs(11)).await;
    fail(&b);
    succeed(&b);
    succeed(&b);
    assert_eq!(b.state(), CircuitState::Closed, "1 of the 3 calls of the last 10 s failed (3 of 5 ever did)");
    assert_eq!(b.snapshot().calls, 3);
}

#[tokio::test(start_paused = true)]
async fn successes_sliding_out_of_a_time_window_can_open_it() {
    let config = CircuitBreakerConfig::new().with_window(Window::Time(Duration::from_secs(10))).with_min_calls(4);
    let b = breaker("test-time-slide-out", config);
    for _ in 0..4 {
        succeed(&b);
    }
    advance(Duration::from_secs(5)).await;
    for _ in 0..3 {
        fail(&b);
    }
    assert_eq!(b.state(), CircuitState::Closed, "3 of 7");
    advance(Duration::from_secs(6)).await;
    succeed(&b);
    assert_eq!(b.state(), CircuitState::Open, "the 4 successes slid out: 3 of the 4 calls in the window failed");
}

const HALF_OPEN_2: CircuitBreakerConfig = CircuitBreakerConfig::new()
    .with_window(Window::Calls(5))
    .with_min_calls(1)
    .with_open_for(Duration::from_secs(5))
    .with_half_open_calls(2);

#[tokio::test(start_paused = true)]
async fn half_open_admits_half_open_calls_and_decides_after_that_many() {
    let b = breaker("test-half-open", HALF_OPEN_2);
    fail(&b);
    assert_eq!(refusal(&b), Duration::from_secs(5));
    advance(Duration::from_secs(5)).await;
    assert_eq!(b.state(), CircuitState::Open, "the transition waits for a call");

    let first = b.acquire().expect("first trial");
    assert_eq!(b.state(), CircuitState::HalfOpen);
    let second = b.acquire().expect("second trial");
    assert_eq!(refusal(&b), Duration::ZERO, "both trial slots are taken");
    first.success();
    assert_eq!(b.state(), CircuitState::HalfOpen, "one outcome of two");
    assert_eq!(b.snapshot().calls, 1);
    refusal(&b); // a decided trial keeps its slot
    second.success();
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.snapshot().calls, 0, "closed with a fresh window");
    assert_eq!(transitions("test-half-open", "half_open", "closed"), 1);
}

#[tokio::test(start_paused = true)]
async fn trials_at_the_threshold_open_the_breaker_again() {
    let b = breaker("test-half-open-reopen", HALF_OPEN_2);
    fail(&b);
    advance(Duration::from_secs(5)).await;
    let first = b.acquire().expect("trial");
    let second = b.acquire().expect("trial");
    first.success();
    second.failure();
    assert_eq!(b.state(), CircuitState::Open, "1 of 2 trials failed: 0.5 reaches the threshold");
    assert_eq!(refusal(&b), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn failed_trials_reopen_for_longer_each_time_up_to_max_open_for() {
    let config = CircuitBreakerConfig::new()
        .with_min_calls(1)
        .with_half_open_calls(1)
        .with_open_for(Duration::from_secs(10))
        .with_max_open_for(Duration::from_secs(40));
    let b = breaker("test-growing-open-for", config);
    fail(&b);
    let mut open_periods = vec![refusal(&b).as_secs()];
    for _ in 0..3 {
        advance(Duration::from_secs(open_periods[open_periods.len() - 1])).await;
        fail(&b);
        open_periods.push(refusal(&b).as_secs());
    }
    assert_eq!(open_periods, [10, 20, 40, 40]);
    advance(Duration::from_secs(40)).await;
    succeed(&b);
    assert_eq!(b.state(), CircuitState::Closed);
    fail(&b);
    assert_eq!(refusal(&b), Duration::from_secs(10), "back to open_for once closed");
}

#[tokio::test(start_paused = true)]
async fn forced_states_hold_until_reset() {
    let b = breaker("test-forced", TEN_CALLS_MIN_4);
    b.force_open();
    advance(Duration::from_secs(3600)).await;
    assert_eq!(refusal(&b), Duration::from_secs(30), "refusals carry open_for");
    assert_eq!((b.state(), b.is_forced()), (CircuitState::Open, true));
    b.reset();
    assert_eq!((b.state(), b.is_forced()), (CircuitState::Closed, false));

    b.force_closed();
    for _ in 0..20 {
        fail(&b);
    }
    assert_eq!(b.state(), CircuitState::Closed, "held closed whatever the failure rate");
    b.reset();
    assert_eq!(b.snapshot().calls, 0, "reset empties the window");
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), CircuitState::Open);
    assert_eq!(transitions("test-forced", "closed", "open"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_trial_frees_its_slot_and_records_nothing() {
    let config = HALF_OPEN_2.with_half_open_calls(1);
    let b = breaker("test-cancelled-trial", config);
    fail(&b);
    advance(Duration::from_secs(5)).await;
    let hanging = b.run(std::future::pending::<Result<(), Error>>(), by_class, Err);
    assert!(tokio::time::timeout(Duration::from_secs(1), hanging).await.is_err());
    assert_eq!(b.state(), CircuitState::HalfOpen);
    succeed(&b);
    assert_eq!(b.state(), CircuitState::Closed, "the only recorded trial is the success");
}

#[tokio::test(start_paused = true)]
async fn refusals_and_permanent_errors_do_not_count_but_timeouts_and_critical_errors_do() {
    let config = CircuitBreakerConfig::new().with_min_calls(1).with_failure_rate(1.0);
    let b = breaker("test-record", config);
    let run = |error: Error| b.run(async move { Err::<(), _>(error) }, by_class, Err);
    run(Error::rate_limited("openai", Duration::from_secs(1), 10, 0)).await.unwrap_err();
    run(Error::bulkhead_full("db", 4)).await.unwrap_err();
    run(Error::circuit_open("other", Duration::from_secs(1))).await.unwrap_err();
    let io_run = |kind: io::ErrorKind| b.run(async move { Err::<(), _>(io::Error::from(kind)) }, by_class, |_| Ok(()));
    io_run(io::ErrorKind::NotFound).await.unwrap_err();
    assert_eq!(b.snapshot().calls, 0);
    assert_eq!(calls_counted("test-record", "ignored"), 4);

    run(Error::timeout(Duration::from_secs(1))).await.unwrap_err();
    assert_eq!(b.state(), CircuitState::Open, "a timeout is a failure");

    let b = breaker("test-record-critical", config);
    b.run(async { Err::<(), _>(io::Error::from(io::ErrorKind::OutOfMemory)) }, by_class, |_| Ok(())).await.unwrap_err();
    assert_eq!(b.state(), CircuitState::Open, "a critical error is a failure");

    let b = breaker("test-record-predicate", config);
    let not_found = || async { Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)) };
    b.run(not_found(), |e| by_predicate(e.kind() == io::ErrorKind::NotFound), |_| Ok(())).await.unwrap_err();
    assert_eq!(b.state(), CircuitState::Open, "the record predicate overrides the class");
}

#[tokio::test(start_paused = true)]
async fn transitions_and_calls_are_exported_as_metrics() {
    let b = breaker("test-metrics", TEN_CALLS_MIN_4);
    succeed(&b);
    succeed(&b);
    for _ in 0..2 {
        fail(&b);
    }
    let text = metrics::render();
    for line in [
        r#"adk_circuit_breaker_calls_total{breaker="test-metrics",outcome="success"} 2"#,
        r#"adk_circuit_breaker_calls_total{breaker="test-metrics",outcome="failure"} 2"#,
        r#"adk_circuit_breaker_transitions_total{breaker="test-metrics",from="closed",to="open"} 1"#,
        r#"adk_circuit_breaker_state{breaker="test-metrics"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line}");
    }
    advance(Duration::from_secs(30)).await;
    let _trial = b.acquire().unwrap();
    assert!(metrics::render().contains(r#"adk_circuit_breaker_state{breaker="test-metrics"} 2"#));
}

#[test]
fn one_name_is_one_breaker_and_other_settings_are_reported_with_both_call_sites() {
    static FIRST: CircuitBreakerPolicy = CircuitBreakerPolicy::new("test-shared", "first.rs:1", TEN_CALLS_MIN_4);
    static SAME: CircuitBreakerPolicy = CircuitBreakerPolicy::new("test-shared", "same.rs:2", TEN_CALLS_MIN_4);
    static OTHER: CircuitBreakerPolicy =
        CircuitBreakerPolicy::new("test-shared", "other.rs:3", TEN_CALLS_MIN_4.with_failure_rate(0.9));
    assert!(std::ptr::eq(FIRST.breaker(), SAME.breaker()));
    assert!(std::ptr::eq(FIRST.breaker(), OTHER.breaker()));
    assert_eq!(OTHER.breaker().config().failure_rate(), 0.5, "the first declaration is in force");
    let conflicts: Vec<_> = registry().conflicts().into_iter().filter(|c| c.name == "test-shared").collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!((conflicts[0].first.call_site, conflicts[0].second.call_site), ("first.rs:1", "other.rs:3"));
    assert_eq!(conflicts[0].kind, crate::registry::Kind::CIRCUIT_BREAKER);
    let from_registry = registry().circuit_breaker("test-shared").expect("registered");
    assert!(std::ptr::eq(&*from_registry, FIRST.breaker()));
    assert!(registry().circuit_breakers().iter().any(|b| b.name() == "test-shared"));
}

#[test]
fn striped_counts_add_up_across_threads() {
    let config = CircuitBreakerConfig::new().with_window(Window::Calls(1_000_000)).with_failure_rate(1.0);
    let b = breaker("test-striped", config);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for i in 0..10_000 {
                    if i % 100 == 0 { fail(&b) } else { succeed(&b) }
                }
            });
        }
    });
    let window = b.snapshot();
    assert_eq!((window.calls, window.failures), (40_000, 400));
    assert_eq!(calls_counted("test-striped", "success"), 39_600);
}

/// Every admitted call fails, so the breaker keeps cycling open -> half-open -> open (`open_for` is zero): every call
/// is a trial, and no more than `half_open_calls` may ever run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_never_admits_more_than_half_open_calls_at_once() {
    const TRIALS: usize = 3;
    let config = CircuitBreakerConfig::new()
        .with_min_calls(1)
        .with_failure_rate(1.0)
        .with_open_for(Duration::ZERO)
        .with_half_open_calls(TRIALS as u32);
    let b = breaker("test-half-open-concurrency", config);
    fail(&b);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let admitted = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (b, running, most, admitted) = (b.clone(), running.clone(), most.clone(), admitted.clone());
            tokio::spawn(async move {
                for _ in 0..300 {
                    let body = async {
                        admitted.fetch_add(1, SeqCst);
                        most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                        tokio::task::yield_now().await;
                        running.fetch_sub(1, SeqCst);
                        Err::<(), _>(Error::timeout(Duration::from_secs(1)))
                    };
                    let _ = b.run(body, by_class, Err).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(most.load(SeqCst) <= TRIALS, "{} trials ran at once", most.load(SeqCst));
    let decided = transitions("test-half-open-concurrency", "half_open", "open") as usize;
    assert!(decided > 0);
    let admitted = admitted.load(SeqCst);
    assert!(
        (decided * TRIALS..decided * TRIALS + TRIALS).contains(&admitted),
        "each decision takes exactly {TRIALS} outcomes: {admitted} trials, {decided} decisions"
    );
}

#[test]
fn after_a_rebase_the_success_count_starts_from_zero() {
    let b = breaker("test-rebase", CircuitBreakerConfig::new());
    for _ in 0..3 {
        succeed(&b);
    }
    assert_eq!(calls_counted("test-rebase", "success"), 3);
    succeed(&b); // counted in a stripe, not yet reported
    b.rebase();
    // What the reset of the metrics does to the series after the rebase.
    super::breaker::CALLS_TOTAL.with(&["test-rebase", "success"]).reset();
    assert_eq!(calls_counted("test-rebase", "success"), 0, "successes from before the rebase are not reported again");
    succeed(&b);
    assert_eq!(calls_counted("test-rebase", "success"), 1);
}
