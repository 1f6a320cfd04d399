use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::task::Poll;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

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
async fn a_waiter_cancelled_after_being_handed_the_slot_passes_it_on() {
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
    drop(held); // hands the slot to the first waiter...
    first.abort(); // ...which goes away before it runs again
    let (admitted, waited) = second.await.unwrap();
    assert!(admitted.is_ok());
    assert_eq!(waited, Duration::ZERO, "the second waiter got the slot at once");
}

/// A call waiting up to `max_wait` for a slot, holding it for `hold` once admitted; answers whether it was admitted
/// and after how long.
fn queue(pool: &Arc<Bulkhead>, max_wait: Duration, hold: Duration) -> JoinHandle<(Result<(), Error>, Duration)> {
    let pool = pool.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        match pool.acquire(max_wait).await {
            Ok(permit) => {
                let waited = started.elapsed();
                sleep(hold).await;
                drop(permit);
                (Ok(()), waited)
            }
            Err(refusal) => (Err(refusal), started.elapsed()),
        }
    })
}

/// Queues one call per `max_wait`, in that order, each one seen waiting before the next arrives.
async fn queue_in_order<const N: usize>(
    pool: &Arc<Bulkhead>,
    max_waits: [Duration; N],
    hold: Duration,
) -> [JoinHandle<(Result<(), Error>, Duration)>; N] {
    let before = pool.waiting();
    let mut queued = Vec::new();
    for max_wait in max_waits {
        queued.push(queue(pool, max_wait, hold));
        tokio::task::yield_now().await;
        assert_eq!(pool.waiting(), before + queued.len(), "each call is waiting before the next arrives");
    }
    queued.try_into().unwrap_or_else(|_| unreachable!("one call per max_wait"))
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_in_arrival_order_and_a_newcomer_does_not_jump_the_queue() {
    let pool = bulkhead("test-fifo", 1);
    let held = pool.try_acquire().unwrap();
    let [first, second, third] = queue_in_order(&pool, [secs(60); 3], secs(1)).await;
    let started = Instant::now();

    drop(held);
    // Arrives as the slot is freed, before the first waiter has run again: the moment an unfair bulkhead lets a
    // newcomer take the slot, again and again, while a waiter starves.
    let mut newcomer = pin!(pool.acquire(secs(60)));
    let first_poll = poll_fn(|cx| Poll::Ready(newcomer.as_mut().poll(cx))).await;
    assert!(first_poll.is_pending(), "the newcomer took the freed slot ahead of three waiters");
    assert!(pool.try_acquire().is_err(), "a caller that does not wait cannot take it either");
    let permit = newcomer.await.unwrap();
    let newcomer_waited = started.elapsed();
    drop(permit);

    // Each holds its slot for 1 s, so the time each waited says when its turn came.
    let waited = [first.await.unwrap(), second.await.unwrap(), third.await.unwrap()];
    assert_eq!(waited, [(Ok(()), secs(0)), (Ok(()), secs(1)), (Ok(()), secs(2))]);
    assert_eq!(newcomer_waited, secs(3), "the newcomer was admitted after the three");
    assert_eq!((pool.in_use(), pool.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn each_waiter_is_refused_at_exactly_its_max_wait_and_the_queue_moves_on() {
    let pool = bulkhead("test-wait-exact", 1);
    let held = pool.try_acquire().unwrap();
    let [first, second, third] = queue_in_order(&pool, [secs(1), secs(3), secs(10)], Duration::ZERO).await;
    sleep(secs(5)).await;
    drop(held);

    let refused_at = |waited: (Result<(), Error>, Duration)| match waited {
        (Err(Error::BulkheadFull { .. }), at) => at,
        other => panic!("expected BulkheadFull, got {other:?}"),
    };
    assert_eq!(refused_at(first.await.unwrap()), secs(1));
    assert_eq!(refused_at(second.await.unwrap()), secs(3));
    assert_eq!(third.await.unwrap(), (Ok(()), secs(5)), "the waiter behind the two that gave up got the slot");
    assert_eq!((pool.in_use(), pool.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_from_the_middle_of_the_queue_leaves_nothing_behind() {
    let pool = bulkhead("test-drop-queued", 1);
    let held = pool.try_acquire().unwrap();
    let [first, second, third] = queue_in_order(&pool, [secs(60); 3], secs(1)).await;

    second.abort();
    assert!(second.await.unwrap_err().is_cancelled());
    assert_eq!((pool.waiting(), pool.in_use()), (2, 1), "the dropped waiter is no longer counted");

    drop(held);
    assert_eq!(first.await.unwrap(), (Ok(()), secs(0)));
    assert_eq!(third.await.unwrap(), (Ok(()), secs(1)), "the third moved up to the dropped waiter's place");
    assert_eq!((pool.waiting(), pool.in_use()), (0, 0));
    let only = pool.try_acquire().unwrap();
    assert!(pool.try_acquire().is_err(), "no slot was made out of the dropped waiter");
    drop(only);
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
        (crate::registry::Kind::BULKHEAD, "first.rs:1", "other.rs:2")
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
