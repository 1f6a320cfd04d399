use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, advance};

use super::*;

fn hits(cache: &str) -> u64 {
    super::named::REQUESTS_TOTAL.with(&[cache, "hit"]).get()
}

fn misses(cache: &str) -> u64 {
    super::named::REQUESTS_TOTAL.with(&[cache, "miss"]).get()
}

fn evictions(cache: &str) -> u64 {
    super::named::EVICTIONS_TOTAL.with(&[cache]).get()
}

fn entries(cache: &str) -> i64 {
    super::named::ENTRIES.with(&[cache]).get()
}

/// Counts runs of a body and answers with the run number.
#[derive(Default, Clone)]
struct Body(Arc<AtomicUsize>);

impl Body {
    fn runs(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    async fn ok(&self) -> Result<usize, String> {
        Ok(self.0.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn err(&self) -> Result<usize, String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err("down".to_owned())
    }

    /// Runs when `release` says so, then answers `Ok(run number)`, or `Err` if `fail`.
    async fn gated(&self, mut release: watch::Receiver<bool>, fail: bool) -> Result<usize, String> {
        let run = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        release.wait_for(|go| *go).await.expect("the test keeps the sender");
        if fail { Err("down".to_owned()) } else { Ok(run) }
    }
}

/// Counts runs of a body and how many of them run at once; each run takes 100 ms (of paused time).
#[derive(Default, Clone)]
struct Overlap {
    runs: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Overlap {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn most_at_once(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    /// Answers `Ok(run number)`, or an error naming the run if `fails(run number)`.
    async fn run(&self, fails: fn(usize) -> bool) -> Result<usize, String> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = Running::start(&self.running, &self.most);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if fails(run) { Err(format!("run {run} failed")) } else { Ok(run) }
    }

    /// [`Overlap::run`] for real threads: a run yields a few times instead of sleeping.
    async fn run_briefly(&self, fails: fn(usize) -> bool) -> Result<usize, String> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = Running::start(&self.running, &self.most);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        if fails(run) { Err(format!("run {run} failed")) } else { Ok(run) }
    }
}

/// One run counted as running until it ends or is dropped (a cancelled body stops running too).
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn start(running: &'a AtomicUsize, most: &AtomicUsize) -> Self {
        most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        Running(running)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Polls `future` once, from inside the test's task (so its wake-ups are the test's).
async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Yields until `condition` holds; panics instead of hanging if it never does.
async fn until(mut condition: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never held");
}

fn waiters(policy: &'static CachePolicy, key: u32) -> Option<usize> {
    policy.store::<u32, usize>().waiters(&key)
}

#[tokio::test(start_paused = true)]
async fn a_hit_skips_the_body_and_other_keys_miss() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::hit", "tests.rs:1");
    let body = Body::default();
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    assert_eq!(POLICY.get_or_run(2_u32, body.ok(), OkValues).await, Ok(2));
    assert_eq!(body.runs(), 2);
    assert_eq!((hits("cache::tests::hit"), misses("cache::tests::hit")), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn errors_pass_through_and_are_not_cached() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::errors", "tests.rs:1");
    let body = Body::default();
    assert_eq!(POLICY.get_or_run(1_u32, body.err(), OkValues).await, Err("down".to_owned()));
    assert_eq!(POLICY.handle().len(), 0);
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(2), "the next caller runs the body again");
    assert_eq!(POLICY.get_or_run(1_u32, body.err(), OkValues).await, Ok(2), "then the Ok value is served");
}

#[tokio::test(start_paused = true)]
async fn outputs_mode_caches_a_function_that_does_not_return_result() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::outputs", "tests.rs:1");
    let mut runs = 0;
    for _ in 0..2 {
        let answer: Option<String> = POLICY
            .get_or_run(
                ("prompt".to_owned(), 7_u8),
                async {
                    runs += 1;
                    None
                },
                Outputs,
            )
            .await;
        assert_eq!(answer, None);
    }
    assert_eq!(runs, 1, "even a None output is stored in Outputs mode");
}

#[tokio::test(start_paused = true)]
async fn an_entry_expires_when_its_ttl_has_passed() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::ttl", "tests.rs:1").with_ttl(Duration::from_secs(300));
    let body = Body::default();
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    advance(Duration::from_secs(299)).await;
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    advance(Duration::from_secs(1)).await;
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(2));
    assert_eq!(evictions("cache::tests::ttl"), 1, "the expired entry was dropped on read");
    assert_eq!(POLICY.handle().len(), 1, "and replaced by the fresh one");
}

#[tokio::test(start_paused = true)]
async fn reads_keep_an_entry_alive_until_tti_passes_without_one() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::tti", "tests.rs:1").with_tti(Duration::from_secs(60));
    let body = Body::default();
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    for _ in 0..5 {
        advance(Duration::from_secs(50)).await;
        assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    }
    advance(Duration::from_secs(60)).await;
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn ttl_bounds_an_entry_that_is_read_all_the_time() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::tti_ttl", "tests.rs:1")
        .with_tti(Duration::from_secs(60))
        .with_ttl(Duration::from_secs(120));
    let body = Body::default();
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    advance(Duration::from_secs(50)).await;
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    advance(Duration::from_secs(50)).await;
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    advance(Duration::from_secs(20)).await;
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(2));
}

#[test]
fn the_table_holds_at_most_max_entries_and_counts_what_it_evicts() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::bounded", "tests.rs:1").with_max_entries(64);
    for key in 0..1_000_u32 {
        POLICY.get_or_run_sync(key, || key, Outputs);
    }
    let held = POLICY.handle().len();
    assert!(held <= 64 && held > 0, "{held} entries");
    assert_eq!(evictions("cache::tests::bounded"), 1_000 - held as u64);
    let gathered = crate::metrics::render();
    assert!(
        gathered.contains(&format!("adk_cache_entries{{cache=\"cache::tests::bounded\"}} {held}\n")),
        "read from the store as the metrics are gathered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_concurrent_misses_run_the_body_once() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::single_flight", "tests.rs:1");
    let body = Body::default();
    let (release, gate) = watch::channel(false);
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (body, gate) = (body.clone(), gate.clone());
            tokio::spawn(async move { POLICY.get_or_run(7_u32, body.gated(gate, false), OkValues).await })
        })
        .collect();
    until(|| waiters(&POLICY, 7) == Some(99)).await;
    release.send_replace(true);
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Ok(1));
    }
    assert_eq!(body.runs(), 1);
    assert_eq!(misses("cache::tests::single_flight"), 100);
    assert_eq!(POLICY.get_or_run(7_u32, body.ok(), OkValues).await, Ok(1));
}

#[tokio::test(start_paused = true)]
async fn when_the_leader_fails_one_waiter_takes_over_for_the_others() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::leader_fails", "tests.rs:1");
    let body = Body::default();
    let (release, gate) = watch::channel(false);
    let leader = tokio::spawn({
        let (body, gate) = (body.clone(), gate.clone());
        async move { POLICY.get_or_run(1_u32, body.gated(gate, true), OkValues).await }
    });
    until(|| waiters(&POLICY, 1) == Some(0)).await;
    let waiters_: Vec<_> = (0..2)
        .map(|_| {
            let (body, gate) = (body.clone(), gate.clone());
            tokio::spawn(async move { POLICY.get_or_run(1_u32, body.gated(gate, false), OkValues).await })
        })
        .collect();
    until(|| waiters(&POLICY, 1) == Some(2)).await;
    release.send_replace(true);
    assert_eq!(leader.await.unwrap(), Err("down".to_owned()), "the leader's error is its own");
    for waiter in waiters_ {
        assert_eq!(waiter.await.unwrap(), Ok(2), "a waiter does not get the leader's error, but the next run's value");
    }
    assert_eq!(body.runs(), 2, "one waiter ran its body, the other waited for it");
}

#[tokio::test(start_paused = true)]
async fn after_a_failure_five_callers_run_their_bodies_one_at_a_time() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::failure_serial", "tests.rs:1");
    let body = Overlap::default();
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move { POLICY.get_or_run(1_u32, body.run(|run| run == 1), OkValues).await })
        })
        .collect();
    let mut answers = Vec::new();
    for caller in callers {
        answers.push(caller.await.unwrap());
    }
    answers.sort();
    assert_eq!(answers, [Ok(2), Ok(2), Ok(2), Ok(2), Err("run 1 failed".to_owned())]);
    assert_eq!(body.most_at_once(), 1, "the waiters did not rush in together after the failure");
    assert_eq!(body.runs(), 2, "the three callers after the second got its value without running a body");
    assert_eq!(waiters(&POLICY, 1), None, "the flight was retired");
    assert_eq!(POLICY.get_or_run(1_u32, body.run(|_| true), OkValues).await, Ok(2), "and the value stored");
}

#[tokio::test(start_paused = true)]
async fn when_every_run_fails_each_caller_gets_its_own_error_one_run_at_a_time() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::all_fail", "tests.rs:1");
    let body = Overlap::default();
    let started = Instant::now();
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move { POLICY.get_or_run(1_u32, body.run(|_| true), OkValues).await })
        })
        .collect();
    let mut errors = Vec::new();
    for caller in callers {
        errors.push(caller.await.unwrap().expect_err("nothing succeeded"));
    }
    errors.sort();
    assert_eq!(errors, (1..=5).map(|run| format!("run {run} failed")).collect::<Vec<_>>());
    assert_eq!(body.most_at_once(), 1);
    assert!(started.elapsed() >= Duration::from_millis(500), "five runs of 100 ms, one after the other");
    assert_eq!(waiters(&POLICY, 1), None, "nobody was left waiting and the flight was retired");
    assert_eq!(POLICY.get_or_run(1_u32, body.run(|_| false), OkValues).await, Ok(6));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_after_being_handed_the_turn_passes_it_on() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::turn_dropped", "tests.rs:1");
    let body = Body::default();
    let (release, gate) = watch::channel(false);
    let mut leader = pin!(POLICY.get_or_run(1_u32, body.gated(gate.clone(), true), OkValues));
    let mut first = Box::pin(POLICY.get_or_run(1_u32, body.gated(gate.clone(), false), OkValues));
    let mut second = pin!(POLICY.get_or_run(1_u32, body.gated(gate.clone(), false), OkValues));
    assert!(poll_once(leader.as_mut()).await.is_pending());
    assert!(poll_once(first.as_mut()).await.is_pending());
    assert!(poll_once(second.as_mut()).await.is_pending());
    assert_eq!(waiters(&POLICY, 1), Some(2));

    release.send_replace(true);
    assert_eq!(poll_once(leader.as_mut()).await, Poll::Ready(Err("down".to_owned())));
    // The first waiter has the turn but has not taken it yet.
    drop(first);
    assert_eq!(waiters(&POLICY, 1), Some(1));
    assert_eq!(poll_once(second.as_mut()).await, Poll::Ready(Ok(2)), "the second waiter took the turn at once");
    assert_eq!(body.runs(), 2);
    assert_eq!(waiters(&POLICY, 1), None);
}

#[tokio::test(start_paused = true)]
async fn the_last_waiter_dropped_with_the_turn_retires_the_flight() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::last_turn_dropped", "tests.rs:1");
    let body = Body::default();
    let (release, gate) = watch::channel(false);
    let mut leader = pin!(POLICY.get_or_run(1_u32, body.gated(gate.clone(), true), OkValues));
    let mut waiter = Box::pin(POLICY.get_or_run(1_u32, body.gated(gate.clone(), false), OkValues));
    assert!(poll_once(leader.as_mut()).await.is_pending());
    assert!(poll_once(waiter.as_mut()).await.is_pending());
    release.send_replace(true);
    assert!(poll_once(leader.as_mut()).await.is_ready());
    assert_eq!(waiters(&POLICY, 1), Some(1), "the turn is the waiter's");
    drop(waiter);
    assert_eq!(waiters(&POLICY, 1), None, "nobody is left to take it");
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(2), "the next caller leads afresh");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_mid_wait_leaves_the_others_their_turns() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::waiter_dropped", "tests.rs:1");
    let body = Overlap::default();
    let spawn_caller = || {
        let body = body.clone();
        tokio::spawn(async move { POLICY.get_or_run(1_u32, body.run(|run| run <= 2), OkValues).await })
    };
    let leader = spawn_caller();
    until(|| waiters(&POLICY, 1) == Some(0)).await;
    let dropped = spawn_caller();
    let rest = [spawn_caller(), spawn_caller()];
    until(|| waiters(&POLICY, 1) == Some(3)).await;
    dropped.abort();
    assert!(dropped.await.unwrap_err().is_cancelled());
    assert_eq!(waiters(&POLICY, 1), Some(2));

    assert_eq!(leader.await.unwrap(), Err("run 1 failed".to_owned()));
    let mut answers = Vec::new();
    for caller in rest {
        answers.push(caller.await.unwrap());
    }
    answers.sort();
    assert_eq!(answers, [Ok(3), Err("run 2 failed".to_owned())]);
    assert_eq!((body.runs(), body.most_at_once()), (3, 1));
    assert_eq!(waiters(&POLICY, 1), None);
}

#[tokio::test(start_paused = true)]
async fn a_leader_cancelled_mid_call_hands_over_and_the_chain_goes_on() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::cancelled_chain", "tests.rs:1");
    let body = Overlap::default();
    let leader = tokio::spawn({
        let body = body.clone();
        let call = async move { POLICY.get_or_run(1_u32, body.run(|run| run == 2), OkValues).await };
        tokio::time::timeout(Duration::from_millis(50), call)
    });
    until(|| waiters(&POLICY, 1) == Some(0)).await;
    let rest: Vec<_> = (0..3)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move { POLICY.get_or_run(1_u32, body.run(|run| run == 2), OkValues).await })
        })
        .collect();
    assert!(leader.await.unwrap().is_err(), "the leader timed out mid-call");
    let mut answers = Vec::new();
    for caller in rest {
        answers.push(caller.await.unwrap());
    }
    answers.sort();
    assert_eq!(answers, [Ok(3), Ok(3), Err("run 2 failed".to_owned())]);
    assert_eq!((body.runs(), body.most_at_once()), (3, 1), "the cancelled run ended before the next began");
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_panics_hands_over() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::leader_panics", "tests.rs:1");
    let body = Overlap::default();
    let leader = tokio::spawn(async move {
        POLICY
            .get_or_run(
                1_u32,
                async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    panic!("the body panicked");
                },
                OkValues,
            )
            .await
    });
    until(|| waiters(&POLICY, 1) == Some(0)).await;
    let rest: Vec<_> = (0..2)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move { POLICY.get_or_run(1_u32, body.run(|_| false), OkValues).await })
        })
        .collect();
    let panicked: Result<Result<usize, String>, _> = leader.await;
    assert!(panicked.unwrap_err().is_panic());
    for caller in rest {
        assert_eq!(caller.await.unwrap(), Ok(1));
    }
    assert_eq!(body.runs(), 1, "one waiter took over, the other got its value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handovers_on_two_threads_run_one_body_at_a_time_and_leave_nobody_waiting() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::handover_threads", "tests.rs:1");
    for key in 0..50_u32 {
        let body = Overlap::default();
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let body = body.clone();
                tokio::spawn(async move { POLICY.get_or_run(key, body.run_briefly(|run| run < 6), OkValues).await })
            })
            .collect();
        for (n, caller) in callers.iter().enumerate() {
            if n % 4 == 1 {
                caller.abort();
            }
            tokio::task::yield_now().await;
        }
        for caller in callers {
            let answer = tokio::time::timeout(Duration::from_secs(10), caller).await.expect("nobody is left waiting");
            if let Ok(Ok(run)) = answer {
                assert!(run >= 6, "key {key}: an Ok came from run {run}, which failed");
            }
        }
        assert_eq!(body.most_at_once(), 1, "key {key}");
        assert_eq!(waiters(&POLICY, key), None, "key {key}: the flight was retired");
    }
}

#[tokio::test(start_paused = true)]
async fn when_the_leader_is_cancelled_a_waiter_takes_over() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::leader_cancelled", "tests.rs:1");
    let body = Body::default();
    let (release, gate) = watch::channel(false);
    let spawn_caller = || {
        let (body, gate) = (body.clone(), gate.clone());
        tokio::spawn(async move { POLICY.get_or_run(1_u32, body.gated(gate, false), OkValues).await })
    };
    let leader = spawn_caller();
    until(|| waiters(&POLICY, 1) == Some(0)).await;
    let first = spawn_caller();
    let second = spawn_caller();
    until(|| waiters(&POLICY, 1) == Some(2)).await;

    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    until(|| waiters(&POLICY, 1) == Some(1)).await;
    assert_eq!(body.runs(), 2, "one waiter leads anew, the other waits for it");

    release.send_replace(true);
    assert_eq!(first.await.unwrap(), Ok(2));
    assert_eq!(second.await.unwrap(), Ok(2));
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn a_leader_dropped_alone_leaves_nothing_behind() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::dropped", "tests.rs:1");
    let body = Body::default();
    let (_release, gate) = watch::channel(false);
    let call = POLICY.get_or_run(1_u32, body.gated(gate, false), OkValues);
    let timed_out = tokio::time::timeout(Duration::from_secs(1), call).await;
    assert!(timed_out.is_err());
    assert_eq!(waiters(&POLICY, 1), None, "the flight was retired");
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn invalidation_by_name_and_key() {
    static POLICY: CachePolicy =
        CachePolicy::new("cache::tests::invalidation", "tests.rs:1").with_name("tests-invalidation");
    let body = Body::default();
    assert!(crate::registry().cache("tests-invalidation").is_none(), "declared on first use");
    for key in [1_u32, 2, 3] {
        POLICY.get_or_run(key, body.ok(), OkValues).await.unwrap();
    }
    let cache = crate::registry().cache("tests-invalidation").unwrap();
    assert_eq!(cache.len(), 3);
    assert!(crate::registry().cache_names().contains(&"tests-invalidation".to_owned()));

    assert!(cache.invalidate(&1_u32));
    assert!(!cache.invalidate(&1_u32), "already gone");
    assert!(!cache.invalidate(&"1"), "a key of another type is a no-op");
    assert!(!cache.invalidate(&1_u64), "a key of another type is a no-op");
    assert_eq!(cache.len(), 2);
    assert_eq!(entries("tests-invalidation"), 2);
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(4), "the invalidated key runs again");
    assert_eq!(POLICY.get_or_run(2_u32, body.ok(), OkValues).await, Ok(2), "the others stay");

    cache.invalidate_all();
    assert!(cache.is_empty());
    assert_eq!(entries("tests-invalidation"), 0);
    assert_eq!(POLICY.get_or_run(2_u32, body.ok(), OkValues).await, Ok(5));
    assert!(crate::registry().cache("tests-no-such-cache").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_value_computed_across_an_invalidation_is_not_stored() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::invalidated_in_flight", "tests.rs:1");
    let body = Body::default();
    let (release, gate) = watch::channel(false);
    let leader = tokio::spawn({
        let (body, gate) = (body.clone(), gate.clone());
        async move { POLICY.get_or_run(1_u32, body.gated(gate, false), OkValues).await }
    });
    until(|| waiters(&POLICY, 1) == Some(0)).await;
    assert!(!POLICY.handle().invalidate(&1_u32), "nothing stored yet");
    assert_eq!(waiters(&POLICY, 1), None, "later callers do not join the detached call");
    release.send_replace(true);
    assert_eq!(leader.await.unwrap(), Ok(1), "the detached call still answers its caller");
    assert_eq!(POLICY.handle().len(), 0);
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(2));

    let sync_body = || {
        POLICY.handle().invalidate_all();
        Ok::<usize, String>(99)
    };
    assert_eq!(POLICY.get_or_run_sync(5_u32, sync_body, OkValues), Ok(99));
    assert_eq!(POLICY.get::<u32, usize>(&5), None, "a sync value computed across an invalidation is not stored");
}

#[test]
fn sync_callers_hit_and_errors_are_not_cached() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::sync", "tests.rs:1");
    let runs = AtomicUsize::new(0);
    let call = |fail: bool| {
        POLICY.get_or_run_sync(
            ("key".to_owned(),),
            || {
                runs.fetch_add(1, Ordering::SeqCst);
                if fail { Err("down") } else { Ok("value".to_owned()) }
            },
            OkValues,
        )
    };
    assert_eq!(call(true), Err("down"));
    assert_eq!(call(false), Ok("value".to_owned()));
    assert_eq!(call(true), Ok("value".to_owned()));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!((hits("cache::tests::sync"), misses("cache::tests::sync")), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn memory_returns_after_expiry_through_unrelated_traffic() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::reclaim", "tests.rs:1")
        .with_ttl(Duration::from_secs(10))
        .with_max_entries(20_000);
    for key in 0..10_000_u32 {
        POLICY.insert(key, 0_usize);
    }
    let store = POLICY.store::<u32, usize>();
    assert_eq!(store.len(), 10_000);
    advance(Duration::from_secs(11)).await;
    assert_eq!(store.len(), 10_000, "nothing reclaims behind the callers' backs");
    // Other keys, none of the expired ones read again.
    for key in 1_000_000..1_003_000_u32 {
        POLICY.get_or_run_sync(key, || 1_usize, Outputs);
    }
    assert_eq!(store.len(), 3_000, "only the fresh entries are left");
    assert_eq!(evictions("cache::tests::reclaim"), 10_000);
    let gathered = crate::metrics::render();
    assert!(
        gathered.contains("adk_cache_entries{cache=\"cache::tests::reclaim\"} 3000\n"),
        "read from the store as the metrics are gathered"
    );
}

#[test]
fn a_dropped_store_takes_its_entries_out_of_the_gauge() {
    let named = NamedCache::new("cache::tests::dropped-store", CachePolicy::new("f", "tests.rs:1").settings());
    let store = named.store::<u32, u32>();
    store.insert(1, 1, store.epoch());
    store.insert(2, 2, store.epoch());
    crate::metrics::render();
    assert_eq!(entries("cache::tests::dropped-store"), 2);
    drop((store, named));
    // A gathering on another thread may hold the store a moment longer.
    for _ in 0..1_000_000 {
        if entries("cache::tests::dropped-store") == 0 {
            return;
        }
        std::thread::yield_now();
    }
    panic!("the dropped store's entries are still counted");
}

#[tokio::test(start_paused = true)]
async fn reclaiming_follows_tokio_clock_and_spares_fresh_entries() {
    static POLICY: CachePolicy =
        CachePolicy::new("cache::tests::reclaim_fresh", "tests.rs:1").with_ttl(Duration::from_secs(10));
    for key in 0..100_u32 {
        POLICY.insert(key, 0_usize);
    }
    let store = POLICY.store::<u32, usize>();
    let misses_on_other_keys = |from: u32| {
        for key in from..from + 1_000 {
            assert_eq!(POLICY.get::<u32, usize>(&key), None);
        }
    };
    advance(Duration::from_secs(9)).await;
    misses_on_other_keys(1_000);
    assert_eq!(store.len(), 100, "a second before their deadline on tokio's clock, every entry is fresh");
    advance(Duration::from_secs(1)).await;
    misses_on_other_keys(2_000);
    assert_eq!(store.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_entry_read_within_its_tti_survives_reclaiming() {
    static POLICY: CachePolicy =
        CachePolicy::new("cache::tests::reclaim_tti", "tests.rs:1").with_tti(Duration::from_secs(60));
    let body = Body::default();
    let misses_on_other_keys = |from: u32| {
        for key in from..from + 1_000 {
            assert_eq!(POLICY.get::<u32, usize>(&key), None);
        }
    };
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    advance(Duration::from_secs(50)).await;
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    advance(Duration::from_secs(50)).await;
    misses_on_other_keys(1_000);
    assert_eq!(POLICY.handle().len(), 1, "past its first deadline, but read since");
    assert_eq!(POLICY.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    advance(Duration::from_secs(60)).await;
    misses_on_other_keys(2_000);
    assert_eq!(POLICY.handle().len(), 0, "idle for its tti");
}

#[tokio::test(start_paused = true)]
async fn replacing_one_key_over_and_over_keeps_the_expiry_queue_bounded() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::reclaim_queue", "tests.rs:1")
        .with_ttl(Duration::from_secs(10))
        .with_max_entries(100);
    for value in 0..100_000_usize {
        POLICY.insert(1_u32, value);
    }
    let store = POLICY.store::<u32, usize>();
    assert!(store.queued() <= 1_024 + 16, "{} keys queued for one entry", store.queued());
    assert_eq!(POLICY.get::<u32, usize>(&1), Some(99_999));
}

#[tokio::test(start_paused = true)]
async fn one_name_shared_by_functions_shares_entries_and_reports_other_settings() {
    static FIRST: CachePolicy = CachePolicy::new("cache::tests::first", "a.rs:1").with_name("tests-shared");
    static SECOND: CachePolicy = CachePolicy::new("cache::tests::second", "b.rs:2").with_name("tests-shared");
    static THIRD: CachePolicy =
        CachePolicy::new("cache::tests::third", "c.rs:3").with_name("tests-shared").with_max_entries(5);
    let body = Body::default();
    assert_eq!(FIRST.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    assert_eq!(SECOND.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    assert_eq!(THIRD.get_or_run(1_u32, body.ok(), OkValues).await, Ok(1));
    let conflict = crate::registry().conflicts().into_iter().find(|c| c.name == "tests-shared").expect("reported");
    assert_eq!(
        (conflict.kind, conflict.first.call_site, conflict.second.call_site),
        (crate::registry::Kind::CACHE, "a.rs:1", "c.rs:3")
    );
    assert_eq!(crate::registry().cache("tests-shared").unwrap().settings().max_entries, 10_000);
}

#[tokio::test(start_paused = true)]
async fn a_generic_function_gets_one_store_per_type() {
    static POLICY: CachePolicy = CachePolicy::new("cache::tests::generic", "tests.rs:1");
    async fn describe<T: std::fmt::Debug + std::hash::Hash + Eq + Clone + Send + Sync + 'static>(value: T) -> String {
        POLICY.get_or_run(value.clone(), async { format!("{value:?}") }, Outputs).await
    }
    assert_eq!(describe(1_u32).await, "1");
    assert_eq!(describe("one".to_owned()).await, "\"one\"");
    assert_eq!(describe("one".to_owned()).await, "\"one\"");
    let cache = POLICY.handle();
    assert_eq!(cache.len(), 2);
    assert_eq!(hits("cache::tests::generic"), 1);
    assert!(cache.invalidate(&"one".to_owned()));
    assert!(cache.invalidate(&1_u32));
}
