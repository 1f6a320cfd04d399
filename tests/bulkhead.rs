//! #[adk::bulkhead]: a bound on calls in flight, refusal or waiting, and release on cancellation.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
enum PoolError {
    #[error(transparent)]
    Adk(#[from] adk::Error),
}

#[adk::bulkhead(max_concurrent = 2, name = "test-pool")]
async fn hold(release: Arc<Notify>) -> Result<(), PoolError> {
    release.notified().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_refuses_at_once_and_a_dropped_call_frees_its_slot() {
    let release = Arc::new(Notify::new());
    let a = tokio::spawn(hold(release.clone()));
    let b = tokio::spawn(hold(release.clone()));
    tokio::task::yield_now().await;
    match hold(release.clone()).await {
        Err(PoolError::Adk(adk::Error::BulkheadFull { name, max_concurrent, .. })) => {
            assert_eq!((name.as_str(), max_concurrent), ("test-pool", 2))
        }
        other => panic!("expected BulkheadFull, got {other:?}"),
    }
    a.abort();
    let _ = a.await;
    let pool = adk::registry().bulkhead("test-pool").unwrap();
    assert_eq!(pool.in_use(), 1, "the cancelled call gave its slot back");
    release.notify_waiters();
    b.await.unwrap().unwrap();
    assert_eq!(pool.in_use(), 0);
}

#[adk::bulkhead(max_concurrent = 1, max_wait = "1s")]
async fn patient(work: Duration) -> Result<(), PoolError> {
    tokio::time::sleep(work).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_call_waits_up_to_max_wait_for_a_slot() {
    let first = tokio::spawn(patient(Duration::from_millis(500)));
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    patient(Duration::ZERO).await.expect("a slot frees within max_wait");
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    first.await.unwrap().unwrap();

    let first = tokio::spawn(patient(Duration::from_secs(5)));
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    assert!(matches!(patient(Duration::ZERO).await, Err(PoolError::Adk(adk::Error::BulkheadFull { .. }))));
    assert_eq!(start.elapsed(), Duration::from_secs(1), "refused once max_wait passed");
    first.await.unwrap().unwrap();
}

#[adk::bulkhead(max_concurrent = 1, max_wait = "10s", name = "test-fair-pool")]
async fn in_turn(who: &'static str, admitted: Arc<Mutex<Vec<&'static str>>>) -> Result<(), PoolError> {
    admitted.lock().unwrap().push(who);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn waiting_calls_are_admitted_in_arrival_order_and_a_newcomer_queues_behind_them() {
    let admitted = Arc::new(Mutex::new(Vec::new()));
    in_turn("first use", admitted.clone()).await.unwrap();
    let pool = adk::registry().bulkhead("test-fair-pool").unwrap();
    let held = pool.try_acquire().unwrap();
    let waiters: Vec<_> = ["first", "second", "third"]
        .into_iter()
        .map(|who| {
            let waiter = tokio::spawn(in_turn(who, admitted.clone()));
            (waiter, who)
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(pool.waiting(), 3);

    drop(held);
    // Polled once as the slot frees, before the first waiter runs again: an unfair bulkhead would run it now.
    let mut newcomer = pin!(in_turn("newcomer", admitted.clone()));
    assert!(poll_fn(|cx| Poll::Ready(newcomer.as_mut().poll(cx))).await.is_pending());
    newcomer.await.unwrap();
    for (waiter, who) in waiters {
        waiter.await.unwrap().unwrap_or_else(|e| panic!("{who} was refused: {e:?}"));
    }
    assert_eq!(*admitted.lock().unwrap(), ["first use", "first", "second", "third", "newcomer"]);
}

pub struct User {
    pub id: u64,
}

#[adk::bulkhead(max_concurrent = 2, key = user.id, name = "test-per-user")]
async fn per_user(user: User, release: Arc<Notify>) -> Result<u64, PoolError> {
    release.notified().await;
    Ok(user.id)
}

#[tokio::test(start_paused = true)]
async fn a_key_with_n_calls_in_flight_is_refused_while_another_key_passes() {
    let release = Arc::new(Notify::new());
    let alice: Vec<_> = (0..2).map(|_| tokio::spawn(per_user(User { id: 1 }, release.clone()))).collect();
    tokio::task::yield_now().await;
    let pool = adk::registry().keyed_bulkhead("test-per-user").unwrap();
    assert_eq!((pool.in_use_by(&1u64), pool.keys()), (2, 1));

    match per_user(User { id: 1 }, release.clone()).await {
        Err(PoolError::Adk(adk::Error::BulkheadFull { name, max_concurrent, .. })) => {
            assert_eq!((name.as_str(), max_concurrent), ("test-per-user", 2))
        }
        other => panic!("the third call of user 1 should be refused, got {other:?}"),
    }
    let bob = tokio::spawn(per_user(User { id: 2 }, release.clone()));
    tokio::task::yield_now().await;
    assert_eq!((pool.in_use_by(&2u64), pool.in_use(), pool.keys()), (1, 3, 2), "user 2 has slots of his own");

    release.notify_waiters();
    for call in alice {
        assert_eq!(call.await.unwrap().unwrap(), 1);
    }
    assert_eq!(bob.await.unwrap().unwrap(), 2);
    assert_eq!((pool.in_use(), pool.keys()), (0, 0), "idle keys are dropped");
}

#[adk::bulkhead(max_concurrent = 1, key = user.id, name = "test-many-users")]
async fn many_users(user: User, release: Arc<Notify>) -> Result<u64, PoolError> {
    release.notified().await;
    Ok(user.id)
}

#[tokio::test(start_paused = true)]
async fn keys_are_dropped_when_idle_so_many_users_leave_nothing_behind() {
    let release = Arc::new(Notify::new());
    // Declared, so the registry has it before any call.
    let pool = adk::registry().keyed_bulkhead("test-many-users").unwrap();
    let mut calls = Vec::new();
    for id in 0..1_000 {
        calls.push(tokio::spawn(many_users(User { id }, release.clone())));
    }
    for _ in 0..100 {
        if pool.in_use() == 1_000 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.keys(), 1_000, "one entry per user with a call in flight");
    let cancelled = calls.split_off(500);
    for call in &cancelled {
        call.abort();
    }
    for call in cancelled {
        let _ = call.await;
    }
    release.notify_waiters();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(pool.keys(), 0, "finished and cancelled calls alike leave no key");
}

#[adk::bulkhead(max_concurrent = 1, max_wait = "1s", key = tenant)]
async fn per_tenant(tenant: &str, work: Duration) -> Result<(), PoolError> {
    tokio::time::sleep(work).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_call_waits_up_to_max_wait_for_a_slot_of_its_key() {
    let first = tokio::spawn(per_tenant("acme", Duration::from_millis(500)));
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    per_tenant("acme", Duration::ZERO).await.expect("acme's slot frees within max_wait");
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    first.await.unwrap().unwrap();

    let first = tokio::spawn(per_tenant("acme", Duration::from_secs(5)));
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    per_tenant("globex", Duration::ZERO).await.expect("another tenant does not wait");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(matches!(per_tenant("acme", Duration::ZERO).await, Err(PoolError::Adk(adk::Error::BulkheadFull { .. }))));
    assert_eq!(start.elapsed(), Duration::from_secs(1), "refused once max_wait passed");
    first.await.unwrap().unwrap();
}

#[adk::bulkhead(max_concurrent = 2, key = user.id, name = "test-keyed-metrics")]
async fn measured(user: User, release: Arc<Notify>) -> Result<u64, PoolError> {
    release.notified().await;
    Ok(user.id)
}

#[tokio::test(start_paused = true)]
async fn a_keyed_bulkhead_reports_the_unkeyed_metrics_without_keys_in_labels() {
    let release = Arc::new(Notify::new());
    let held = tokio::spawn(measured(User { id: 9_001 }, release.clone()));
    let held_too = tokio::spawn(measured(User { id: 9_001 }, release.clone()));
    tokio::task::yield_now().await;
    let _ = measured(User { id: 9_001 }, release.clone()).await.unwrap_err();
    let metrics = adk::metrics::render();
    let rejections = metrics
        .lines()
        .find(|line| line.starts_with(r#"adk_bulkhead_rejections_total{bulkhead="test-keyed-metrics"}"#))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(rejections.split(' ').nth(1).unwrap().parse::<f64>().unwrap() >= 1.0);
    assert!(metrics.contains(r#"adk_bulkhead_in_use{bulkhead="test-keyed-metrics"}"#));
    assert!(!metrics.contains("9001"), "a key is never a label");
    release.notify_waiters();
    held.await.unwrap().unwrap();
    held_too.await.unwrap().unwrap();
}
