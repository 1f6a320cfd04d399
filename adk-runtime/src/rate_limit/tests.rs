//! What a user of `#[rate_limited]` relies on, through the policy and the limiter, on tokio's paused clock (and on a
//! real multi-thread runtime where concurrency is the point).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::{Classify, ErrorClass};

const STRATEGIES: [Strategy; 5] =
    [Strategy::Gcra, Strategy::TokenBucket, Strategy::LeakyBucket, Strategy::FixedWindow, Strategy::SlidingWindow];

fn policy(function: &'static str, quota: Quota) -> &'static RateLimitPolicy {
    Box::leak(Box::new(RateLimitPolicy::new(function, "tests.rs:1", quota)))
}

fn waiting(function: &'static str, quota: Quota, max_wait: Duration) -> &'static RateLimitPolicy {
    Box::leak(Box::new(RateLimitPolicy::new(function, "tests.rs:1", quota).with_on_limit(OnLimit::Wait { max_wait })))
}

async fn call(policy: &RateLimitPolicy) -> Result<(), Error> {
    policy.run(async { Ok(()) }, Err).await
}

async fn call_as(policy: &RateLimitPolicy, user: &str, cost: u64) -> Result<(), Error> {
    policy.run_with(Some(user), cost, async { Ok(()) }, Err).await
}

fn retry_after(result: Result<(), Error>) -> Duration {
    match result {
        Err(Error::RateLimited { retry_after, .. }) => retry_after,
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_carries_the_exact_wait_and_a_call_after_it_is_admitted() {
    let policy = policy("tests::exact", Quota::per_minute(60).with_burst(2));
    assert!(call(policy).await.is_ok() && call(policy).await.is_ok());
    let refusal = call(policy).await.unwrap_err();
    let Error::RateLimited { ref name, retry_after, limit, remaining, reset, .. } = refusal else { panic!() };
    assert_eq!((name.as_str(), limit, remaining), ("tests::exact", 2, 0));
    assert_eq!((retry_after, reset), (Duration::from_secs(1), Duration::from_secs(2)));
    assert_eq!(refusal.class(), ErrorClass::Transient);
    tokio::time::advance(retry_after - Duration::from_millis(1)).await;
    assert!(call(policy).await.is_err(), "not a millisecond early");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(call(policy).await.is_ok());
}

#[test]
fn the_call_future_is_send_whatever_the_key_since_the_key_is_hashed_at_once() {
    fn assert_send<T: Send>(_: T) {}
    let policy = policy("tests::send", Quota::per_second(1));
    let key: std::rc::Rc<str> = "alice".into();
    assert_send(policy.run_with(Some(&key), 1u8, async { Ok::<(), Error>(()) }, Err));
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_budget_and_a_call_without_key_shares_one() {
    let policy = policy("tests::keys", Quota::per_second(1));
    assert!(call_as(policy, "alice", 1).await.is_ok());
    assert!(call_as(policy, "alice", 1).await.is_err());
    assert!(call_as(policy, "bob", 1).await.is_ok());
    assert!(call(policy).await.is_ok());
    assert!(call(policy).await.is_err());
    assert_eq!(policy.limiter().keys(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cost_spends_units_and_a_cost_above_the_limit_is_a_permanent_refusal() {
    let policy = policy("tests::tokens", Quota::per_minute(90_000));
    assert!(call_as(policy, "alice", 60_000).await.is_ok());
    assert_eq!(policy.limiter().snapshot_key("alice").remaining, 30_000);
    let wait = retry_after(call_as(policy, "alice", 40_000).await);
    // 10,000 tokens' worth, at one token every 666,667 ns (60 s / 90,000, rounded).
    assert_eq!(wait, Duration::from_nanos(10_000 * 666_667));
    let refusal = call_as(policy, "bob", 90_001).await.unwrap_err();
    assert!(matches!(refusal, Error::CostAboveLimit { cost: 90_001, limit: 90_000, .. }), "{refusal}");
    assert_eq!(refusal.class(), ErrorClass::Permanent);
    assert_eq!(refusal.retry_after(), None);
    let patient = waiting("tests::tokens-wait", Quota::per_minute(100), Duration::from_secs(3600));
    let started = Instant::now();
    assert!(matches!(call_as(patient, "bob", 101).await, Err(Error::CostAboveLimit { .. })));
    assert_eq!(started.elapsed(), Duration::ZERO, "refused at once, not after an endless wait");
}

#[tokio::test(start_paused = true)]
async fn waiting_sleeps_until_admitted_and_refuses_at_once_beyond_max_wait() {
    for strategy in STRATEGIES {
        let quota = Quota::per_second(2).with_strategy(strategy);
        let name = Box::leak(format!("tests::wait-{strategy}").into_boxed_str());
        let patient = waiting(name, quota, Duration::from_secs(2));
        let started = Instant::now();
        for _ in 0..3 {
            assert!(call(patient).await.is_ok(), "{strategy}");
        }
        let waited = started.elapsed();
        let expected = Duration::from_millis(match strategy {
            Strategy::Gcra | Strategy::TokenBucket => 500, // the third waits for one unit to come back
            Strategy::LeakyBucket => 1000,                 // three calls spaced 500 ms apart
            _ => 1000, // the windows: the next window (the sliding one once the first weighs less than two calls)
        });
        assert!(waited >= expected && waited <= expected + Duration::from_millis(1), "{strategy}: {waited:?}");
    }
    let hasty = waiting("tests::wait-hasty", Quota::per_second(1), Duration::from_millis(300));
    assert!(call(hasty).await.is_ok());
    let started = Instant::now();
    assert_eq!(retry_after(call(hasty).await), Duration::from_secs(1));
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_before_its_turn_gives_the_turn_back() {
    for strategy in [Strategy::Gcra, Strategy::TokenBucket, Strategy::LeakyBucket] {
        let quota = Quota::per_second(1).with_burst(1).with_strategy(strategy);
        let name = Box::leak(format!("tests::dropped-{strategy}").into_boxed_str());
        let patient = waiting(name, quota, Duration::from_secs(10));
        assert!(call(patient).await.is_ok());
        let abandoned = tokio::time::timeout(Duration::from_millis(100), call(patient)).await;
        assert!(abandoned.is_err(), "{strategy}: the second call was waiting");
        let started = Instant::now();
        assert!(call(patient).await.is_ok());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited <= Duration::from_millis(901),
            "{strategy}: waited {waited:?}, as if the abandoned call had happened"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_leaky_bucket_delays_even_when_rejecting_and_refuses_only_when_full() {
    let policy = policy("tests::leaky", Quota::per_second(4).with_burst(2).with_strategy(Strategy::LeakyBucket));
    let started = Instant::now();
    let (a, b, c) = tokio::join!(call(policy), call(policy), call(policy));
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(started.elapsed(), Duration::from_millis(250), "the second left one interval after the first");
    assert_eq!(retry_after(c), Duration::from_millis(250), "the bucket held two");
}

#[tokio::test(start_paused = true)]
async fn functions_naming_one_limiter_share_it_and_a_different_quota_is_reported() {
    static FIRST: RateLimitPolicy =
        RateLimitPolicy::new("tests::first", "a.rs:1", Quota::per_minute(2)).with_name("tests-shared");
    static SECOND: RateLimitPolicy =
        RateLimitPolicy::new("tests::second", "b.rs:2", Quota::per_minute(2)).with_name("tests-shared");
    static THIRD: RateLimitPolicy =
        RateLimitPolicy::new("tests::third", "c.rs:3", Quota::per_minute(5)).with_name("tests-shared");
    assert!(call(&FIRST).await.is_ok());
    assert!(call(&SECOND).await.is_ok());
    assert!(call(&FIRST).await.is_err(), "the second function spent the shared budget");
    assert!(Arc::ptr_eq(FIRST.limiter(), THIRD.limiter()));
    let conflict = crate::registry().conflicts().into_iter().find(|c| c.name == "tests-shared").expect("reported");
    assert_eq!((conflict.first.call_site, conflict.second.call_site), ("a.rs:1", "c.rs:3"));
    assert_eq!(crate::registry().rate_limiter("tests-shared").unwrap().quota(), Quota::per_minute(2));
    assert!(crate::registry().rate_limiter_names().contains(&"tests-shared".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn decisions_and_keys_are_exported_per_limiter_never_per_key() {
    let patient = waiting("tests::metrics", Quota::per_second(1), Duration::from_secs(5));
    assert!(call_as(patient, "alice", 1).await.is_ok());
    assert!(call_as(patient, "alice", 1).await.is_ok());
    assert!(call_as(patient, "bob", 1).await.is_ok());
    assert!(call_as(patient, "bob", 9).await.is_err());
    let text = crate::metrics::render();
    for line in [
        r#"adk_rate_limit_decisions_total{decision="admitted",limiter="tests::metrics"} 2"#,
        r#"adk_rate_limit_decisions_total{decision="delayed",limiter="tests::metrics"} 1"#,
        r#"adk_rate_limit_decisions_total{decision="refused",limiter="tests::metrics"} 1"#,
        r#"adk_rate_limit_keys{limiter="tests::metrics"} 2"#,
    ] {
        assert!(text.contains(line), "missing {line}");
    }
    assert!(!text.contains("alice"));
}

#[tokio::test(start_paused = true)]
async fn a_decision_through_the_backend_trait_spends_the_same_state_and_is_counted() {
    let limiter = RateLimiter::new("tests::decide", Quota::per_second(1).with_burst(1));
    let patient = Start::Within(Duration::from_secs(5));
    let Ok(first) = limiter.decide(Some("alice"), 1, Start::Immediately).await;
    assert_eq!(first, Verdict::Admit { wait: Duration::ZERO });
    assert!(limiter.check_key("alice").is_err(), "the check sees what the decision spent");
    let Ok(reserved) = limiter.decide(Some("alice"), 1, patient).await;
    assert_eq!(reserved, Verdict::Admit { wait: Duration::from_secs(1) });
    let alice = limiter.backend().hash_key("alice");
    let Ok(()) = limiter.backend().refund(limiter.spec(), Some(alice), 1).await;
    let Ok(again) = limiter.decide(Some("alice"), 1, patient).await;
    assert_eq!(again, reserved, "the turn given back is granted again, not the one after it");
    let Ok(refused) = limiter.decide(Some("alice"), 1, Start::Immediately).await;
    assert_eq!(refused.denied().and_then(Denied::retry_after), Some(Duration::from_secs(2)));
    let text = crate::metrics::render();
    for line in [
        r#"adk_rate_limit_decisions_total{decision="admitted",limiter="tests::decide"} 1"#,
        r#"adk_rate_limit_decisions_total{decision="delayed",limiter="tests::decide"} 2"#,
        r#"adk_rate_limit_decisions_total{decision="refused",limiter="tests::decide"} 2"#,
    ] {
        assert!(text.contains(line), "missing {line}");
    }
}

/// Admission instants (nanoseconds from the start) of `tasks` tasks, each calling through `policy` after a random
/// pause averaging `gap`, for `run_for`.
async fn hammer(policy: &'static RateLimitPolicy, tasks: usize, gap: Duration, run_for: Duration) -> Vec<u64> {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks as u64)
        .map(|seed| {
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut admitted = Vec::new();
                while start.elapsed() < run_for {
                    tokio::time::sleep(gap.mul_f64(rng.f64() * 2.0)).await;
                    let at = policy.run(async { Ok(start.elapsed().as_nanos() as u64) }, Err::<u64, Error>).await;
                    admitted.extend(at);
                }
                admitted
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for handle in handles {
        admitted.extend(handle.await.unwrap());
    }
    admitted.sort_unstable();
    admitted
}

/// The most admissions within any span of `span` nanoseconds.
fn busiest(admitted: &[u64], span: u64) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (last, &at) in admitted.iter().enumerate() {
        while admitted[first] + span <= at {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

#[tokio::test(start_paused = true)]
async fn over_any_period_admissions_stay_within_the_quota_plus_the_burst() {
    for strategy in STRATEGIES {
        let quota = Quota::per_second(20).with_burst(5).with_strategy(strategy);
        let policy = policy(Box::leak(format!("tests::bound-{strategy}").into_boxed_str()), quota);
        let admitted = hammer(policy, 50, Duration::from_millis(20), Duration::from_secs(30)).await;
        let bound = (20 + quota.limit()) as usize;
        let most = busiest(&admitted, 1_000_000_000);
        assert!(most <= bound, "{strategy}: {most} admitted within one second, bound {bound}");
        assert!(most >= 20, "{strategy}: the test must saturate the limiter ({most})");
    }
}

#[tokio::test(start_paused = true)]
async fn under_sustained_overload_the_admitted_rate_is_within_one_percent() {
    for strategy in STRATEGIES {
        let quota = Quota::per_second(20).with_burst(5).with_strategy(strategy);
        let policy = policy(Box::leak(format!("tests::rate-{strategy}").into_boxed_str()), quota);
        // Ten times the rate, for 200 s.
        let admitted = hammer(policy, 20, Duration::from_millis(100), Duration::from_secs(200)).await;
        let steady = admitted.iter().filter(|&&at| at >= 10_000_000_000).count() as f64;
        let expected = 20.0 * 190.0;
        let error = (steady - expected).abs() / expected;
        assert!(error <= 0.01, "{strategy}: {steady} admitted over 190 s, expected {expected} ({:.2}%)", error * 100.0);
    }
}

#[test]
fn many_tasks_on_two_threads_never_get_more_than_the_quota_allows() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    for strategy in STRATEGIES {
        for keyed in [false, true] {
            let quota = Quota::per_second(1000).with_burst(50).with_strategy(strategy);
            let limiter = RateLimiter::new(format!("tests::threads-{strategy}"), quota);
            let admitted = Arc::new(AtomicU64::new(0));
            let started = std::time::Instant::now();
            runtime.block_on(async {
                let tasks: Vec<_> = (0..64)
                    .map(|_| {
                        let (limiter, admitted) = (limiter.clone(), admitted.clone());
                        tokio::spawn(async move {
                            for i in 0..2_000u32 {
                                let ok = if keyed { limiter.check_key(&7u32).is_ok() } else { limiter.check().is_ok() };
                                if ok {
                                    admitted.fetch_add(1, Ordering::Relaxed);
                                }
                                if i % 64 == 0 {
                                    tokio::task::yield_now().await;
                                }
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            // Every decision fell within `elapsed`, so no more than the burst (the quota, for the windows, twice
            // over a boundary) plus the rate times `elapsed` can have been admitted.
            let elapsed = started.elapsed().as_secs_f64();
            let burst = match strategy {
                Strategy::LeakyBucket => 1, // a check that cannot wait admits only into an empty bucket
                Strategy::FixedWindow | Strategy::SlidingWindow => 2 * 1000,
                _ => 50,
            };
            let bound = burst as f64 + 1000.0 * elapsed + 1.0;
            let admitted = admitted.load(Ordering::Relaxed) as f64;
            assert!(admitted <= bound, "{strategy} keyed={keyed}: {admitted} admitted in {elapsed:.3}s, bound {bound}");
            assert!(admitted >= burst.min(50) as f64, "{strategy}: {admitted} admitted");
        }
    }
}

#[test]
fn many_keys_on_two_threads_each_get_exactly_their_quota() {
    // A day's quota does not refill during the test, so each key's admissions are exactly its quota: no more (the
    // compare-and-swap never double-spends a cell, whichever thread wins) and no fewer (every key is asked far more
    // often than its quota). Keys share the store's shards, so threads race on the same shard and the same key.
    const KEYS: u32 = 64;
    const QUOTA: u64 = 40;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    for strategy in [Strategy::Gcra, Strategy::TokenBucket, Strategy::FixedWindow, Strategy::SlidingWindow] {
        let quota = Quota::new(Rate::per_day(QUOTA)).with_burst(QUOTA).with_strategy(strategy);
        let limiter = RateLimiter::new(format!("tests::keys-on-threads-{strategy}"), quota);
        let admitted: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
        runtime.block_on(async {
            let tasks: Vec<_> = (0..16u32)
                .map(|task| {
                    let (limiter, admitted) = (limiter.clone(), admitted.clone());
                    tokio::spawn(async move {
                        for round in 0..(QUOTA as u32 * 3) {
                            for offset in 0..KEYS {
                                // Tasks walk the keys from different starting points, so they collide on keys.
                                let key = (offset + task * 7 + round) % KEYS;
                                if limiter.check_key(&key).is_ok() {
                                    admitted[key as usize].fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        for (key, count) in admitted.iter().enumerate() {
            assert_eq!(count.load(Ordering::Relaxed), QUOTA, "{strategy}: key {key}");
        }
    }
}

#[test]
fn waiters_abandoned_on_two_threads_leave_the_limiter_as_they_found_it() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    for strategy in [Strategy::Gcra, Strategy::TokenBucket, Strategy::LeakyBucket] {
        let quota = Quota::new(Rate::per_hour(1)).with_burst(4).with_strategy(strategy);
        let name = Box::leak(format!("tests::abandoned-{strategy}").into_boxed_str());
        let patient = waiting(name, quota, Duration::from_secs(1000 * 3600));
        runtime.block_on(async {
            patient.limiter().check_n(4).unwrap();
            let before = patient.limiter().snapshot();
            let waiters: Vec<_> = (0..200).map(|_| tokio::spawn(call(patient))).collect();
            tokio::time::sleep(Duration::from_millis(20)).await;
            for waiter in &waiters {
                waiter.abort();
            }
            for waiter in waiters {
                assert!(waiter.await.unwrap_err().is_cancelled(), "{strategy}: a waiter was admitted");
            }
            let after = patient.limiter().snapshot();
            assert!(after.reset <= before.reset, "{strategy}: {before:?} then {after:?}");
        });
    }
}

#[tokio::test(start_paused = true)]
async fn reset_gives_every_key_and_the_shared_state_a_full_quota_again_for_every_strategy() {
    for strategy in STRATEGIES {
        let limiter = RateLimiter::new("tests::reset", Quota::per_minute(3).with_strategy(strategy));
        let exhaust = |key: Option<&str>| {
            let check = || match key {
                Some(key) => limiter.check_key(key),
                None => limiter.check(),
            };
            while check().is_ok() {}
            assert!(check().is_err(), "{strategy:?}: {key:?} exhausted");
        };
        for key in [None, Some("alice"), Some("bob")] {
            exhaust(key);
        }
        assert!(limiter.keys() >= 2);
        limiter.reset();
        assert_eq!(limiter.keys(), 0, "{strategy:?}");
        assert_eq!(limiter.snapshot().remaining, 3, "{strategy:?}");
        assert_eq!(limiter.snapshot_key("alice").remaining, 3, "{strategy:?}");
        for key in [None, Some("alice")] {
            let admitted = (0..5)
                .filter(|_| match key {
                    Some(key) => limiter.check_key(key).is_ok(),
                    None => limiter.check().is_ok(),
                })
                .count();
            // A leaky bucket lets only the call whose turn is now go at once, however full the bucket.
            let at_once = if strategy == Strategy::LeakyBucket { 1 } else { 3 };
            assert_eq!(admitted, at_once, "{strategy:?}: {key:?} has its full quota, and no more");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_limiter_reset_while_its_policy_is_in_use_keeps_serving_the_policy() {
    let policy = policy("tests::reset-policy", Quota::per_minute(1));
    assert!(call_as(policy, "alice", 1).await.is_ok());
    assert!(call_as(policy, "alice", 1).await.is_err());
    policy.limiter().reset();
    assert!(call_as(policy, "alice", 1).await.is_ok(), "the limiter the policy holds is the one reset");
    assert!(call_as(policy, "alice", 1).await.is_err());
}
