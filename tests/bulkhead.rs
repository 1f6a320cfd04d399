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
