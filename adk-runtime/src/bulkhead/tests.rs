use std::sync::atomic::{AtomicBool, AtomicUsize};

use tokio::time::{sleep, timeout};

use super::*;

fn bulkhead(name: &str, max_concurrent: usize) -> Arc<Bulkhead> {
    Bulkhead::new(name, max_concurrent)
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_refuses_at_once_by_default() {
    static POOL: BulkheadPolicy = BulkheadPolicy::new("test-refuse", "tests.rs:1", 2);
    let _held = (POOL.acquire().await.unwrap(), POOL.acquire().await.unwrap());
    let ran = AtomicBool::new(false);
    let started = Instant::now();
    let result: Result<(), Error> = POOL
        .run(
            async {
                ran.store(true, SeqCst);
                Ok(())
            },
            Err,
        )
        .await;
    assert!(!ran.load(SeqCst), "the body must not run");
    assert_eq!(started.elapsed(), Duration::ZERO);
    match result {
        Err(Error::BulkheadFull { name, max_concurrent, .. }) => {
            assert_eq!((name.as_str(), max_concurrent), ("test-refuse", 2))
        }
        other => panic!("expected BulkheadFull, got {other:?}"),
    }
    assert!(metrics::render().contains(r#"adk_bulkhead_rejections_total{bulkhead="test-refuse"} 1"#));
    assert!(metrics::render().contains(r#"adk_bulkhead_in_use{bulkhead="test-refuse"} 2"#));
}

#[tokio::test(start_paused = true)]
async fn a_call_waits_up_to_max_wait_for_a_slot() {
    let pool = bulkhead("test-wait", 1);
    let held = pool.try_acquire().unwrap();
    let started = Instant::now();
    let (waited, ()) = tokio::join!(pool.acquire(Duration::from_secs(5)), async {
        sleep(Duration::from_secs(2)).await;
        drop(held);
    });
    assert!(waited.is_ok());
    assert_eq!(started.elapsed(), Duration::from_secs(2), "admitted as soon as the slot was freed");

    let started = Instant::now();
    let refused = pool.acquire(Duration::from_secs(5)).await;
    assert!(refused.is_err(), "the slot is still held by the waiter's permit");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(pool.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_gives_its_slot_back_while_running_and_while_waiting() {
    let pool = bulkhead("test-cancel", 1);
    let running = pool.run(Duration::ZERO, std::future::pending::<()>(), |_| ());
    assert!(timeout(Duration::from_secs(1), running).await.is_err());
    assert_eq!(pool.in_use(), 0, "the cancelled call's slot was given back");

    let held = pool.try_acquire().unwrap();
    assert!(timeout(Duration::from_secs(1), pool.acquire(Duration::from_secs(60))).await.is_err());
    assert_eq!((pool.waiting(), pool.in_use()), (0, 1), "the cancelled waiter left nothing behind");
    drop(held);
    assert!(pool.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_waiter_cancelled_after_being_woken_passes_the_slot_on() {
    let pool = bulkhead("test-cancel-woken", 1);
    let held = pool.try_acquire().unwrap();
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire(Duration::from_secs(60)).await.map(drop) }
    });
    tokio::task::yield_now().await;
    let second = tokio::spawn({
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            let permit = pool.acquire(Duration::from_secs(60)).await;
            (permit.map(drop), started.elapsed())
        }
    });
    tokio::task::yield_now().await;
    assert_eq!(pool.waiting(), 2);
    drop(held); // wakes the first waiter...
    first.abort(); // ...which goes away before taking the slot
    let (admitted, waited) = second.await.unwrap();
    assert!(admitted.is_ok());
    assert_eq!(waited, Duration::ZERO, "the second waiter got the wake-up at once");
}

#[test]
fn one_name_is_one_bulkhead_and_another_bound_is_reported() {
    static FIRST: BulkheadPolicy = BulkheadPolicy::new("test-shared-pool", "first.rs:1", 3);
    static OTHER: BulkheadPolicy = BulkheadPolicy::new("test-shared-pool", "other.rs:2", 5);
    assert!(std::ptr::eq(FIRST.bulkhead(), OTHER.bulkhead()));
    assert_eq!(OTHER.bulkhead().max_concurrent(), 3);
    let conflict = registry().conflicts().into_iter().find(|c| c.name == "test-shared-pool").expect("reported");
    assert_eq!(
        (conflict.kind, conflict.first.call_site, conflict.second.call_site),
        ("bulkhead", "first.rs:1", "other.rs:2")
    );
    assert!(std::ptr::eq(&*registry().bulkhead("test-shared-pool").unwrap(), FIRST.bulkhead()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bound_holds_under_contention() {
    const MAX: usize = 4;
    let pool = bulkhead("test-contention", MAX);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (pool, running, most, done) = (pool.clone(), running.clone(), most.clone(), done.clone());
            // Half the tasks wait for a slot, half are refused when it is full.
            let max_wait = if i % 2 == 0 { Duration::from_secs(30) } else { Duration::ZERO };
            tokio::spawn(async move {
                for _ in 0..200 {
                    let body = async {
                        most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                        tokio::task::yield_now().await;
                        running.fetch_sub(1, SeqCst);
                        done.fetch_add(1, SeqCst);
                    };
                    pool.run(max_wait, body, |_| ()).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(most.load(SeqCst) <= MAX, "{} calls ran at once", most.load(SeqCst));
    assert!(done.load(SeqCst) >= 16 * 200, "every waiting call got a slot");
    assert_eq!((pool.in_use(), pool.waiting()), (0, 0));
}
