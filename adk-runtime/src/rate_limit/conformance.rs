//! The suite every rate limit [`Backend`] must pass, so that a limiter answers alike whichever backend holds its
//! state: for each strategy, the exact sequence of admissions and refusals with their `retry_after`, `remaining` and
//! `reset`; costs, including one above the limit; waiting with patience and giving a reserved turn back; keys
//! independent of one another; and `reset`.
//!
//! The expected answers are worked out by hand from the semantics in `rate.rs`, not recorded from a run. Times are
//! measured from the backend's creation, which is where window strategies start their first window: a backend with its
//! own clock runs the suite on a clock that starts there and moves only by `advance`.

use std::future::Future;
use std::time::Duration;

use super::{Backend, Denied, LimiterSpec, MemoryBackend, Quota, Start, Strategy, Verdict};

/// 4 units a second; buckets hold 2 (one unit every 250 ms), windows admit 4 per 1 s window.
const QUOTA: Quota = Quota::per_second(4).with_burst(2);

const STRATEGIES: [Strategy; 5] =
    [Strategy::Gcra, Strategy::TokenBucket, Strategy::LeakyBucket, Strategy::FixedWindow, Strategy::SlidingWindow];

const NOW: Start = Start::Within(Duration::ZERO);

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

const fn ns(nanos: u64) -> Duration {
    Duration::from_nanos(nanos)
}

fn admit(wait: Duration) -> Verdict {
    Verdict::Admit { wait }
}

/// Runs every check against backends made by `new_backend`, moving their clock with `advance`.
pub(crate) async fn run<B, A, F>(new_backend: impl Fn() -> B, advance: A)
where
    B: Backend,
    A: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    for strategy in STRATEGIES {
        let mut subject = Subject::new(new_backend(), strategy, &advance);
        exact_sequence(&mut subject).await;
        costs(&mut Subject::new(new_backend(), strategy, &advance)).await;
        patience(&mut Subject::new(new_backend(), strategy, &advance)).await;
        keys_are_independent(&mut Subject::new(new_backend(), strategy, &advance)).await;
        reset(&mut Subject::new(new_backend(), strategy, &advance)).await;
    }
}

/// One backend under test with one limiter, and the time elapsed on its clock.
struct Subject<'a, B, A> {
    backend: B,
    spec: LimiterSpec,
    advance: &'a A,
    elapsed: Duration,
}

impl<'a, B, A, F> Subject<'a, B, A>
where
    B: Backend,
    A: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    fn new(backend: B, strategy: Strategy, advance: &'a A) -> Self {
        let spec = LimiterSpec::new(format!("conformance-{strategy}"), QUOTA.with_strategy(strategy));
        Subject { backend, spec, advance, elapsed: Duration::ZERO }
    }

    fn strategy(&self) -> Strategy {
        self.spec.quota().strategy()
    }

    fn limit(&self) -> u64 {
        self.spec.quota().limit()
    }

    /// Moves the clock to `at` after the backend's creation.
    async fn at(&mut self, at: Duration) {
        assert!(at >= self.elapsed, "the script goes forward in time");
        (self.advance)(at - self.elapsed).await;
        self.elapsed = at;
    }

    async fn decide(&self, key: Option<&str>, cost: u64, start: Start) -> Verdict {
        let key = key.map(|key| self.backend.hash_key(key));
        self.backend.decide(&self.spec, key, cost, start).await.expect("the backend decides")
    }

    async fn refund(&self, key: Option<&str>, cost: u64) {
        let key = key.map(|key| self.backend.hash_key(key));
        self.backend.refund(&self.spec, key, cost).await.expect("the backend refunds");
    }

    fn limited(&self, retry_after: Duration, remaining: u64, reset: Duration) -> Verdict {
        Verdict::Denied(Denied::limited(retry_after, self.limit(), remaining, reset))
    }
}

/// `(at, cost, start, expected)` for one key, step by step.
async fn exact_sequence<B, A, F>(s: &mut Subject<'_, B, A>)
where
    B: Backend,
    A: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let strategy = s.strategy();
    let script: Vec<(Duration, u64, Start, Verdict)> = match strategy {
        // A bucket of 2 refilling continuously from each call: the third call at 100 ms waits for the first cell, due
        // one interval after the first call.
        Strategy::Gcra => vec![
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, s.limited(ms(250), 0, ms(500))),
            (ms(200), 1, NOW, s.limited(ms(150), 0, ms(400))),
            (ms(350), 1, NOW, admit(ms(0))),
            (ms(350), 2, NOW, s.limited(ms(500), 0, ms(500))),
            (ms(1000), 2, NOW, admit(ms(0))),
            (ms(1250), 2, NOW, s.limited(ms(250), 1, ms(250))),
            (ms(1250), 1, NOW, admit(ms(0))),
            (ms(1250), 1, Start::Immediately, s.limited(ms(250), 0, ms(500))),
        ],
        // The same bucket on a grid of 250 ms ticks: the first token comes back at the 250 ms tick, 150 ms after
        // the third call, where GCRA waits 250 ms.
        Strategy::TokenBucket => vec![
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, s.limited(ms(150), 0, ms(400))),
            (ms(200), 1, NOW, s.limited(ms(50), 0, ms(300))),
            (ms(350), 1, NOW, admit(ms(0))),
            (ms(350), 2, NOW, s.limited(ms(400), 0, ms(400))),
            (ms(1000), 2, NOW, admit(ms(0))),
            (ms(1250), 2, NOW, s.limited(ms(250), 1, ms(250))),
            (ms(1250), 1, NOW, admit(ms(0))),
            (ms(1250), 1, Start::Immediately, s.limited(ms(250), 0, ms(500))),
        ],
        // Admitted calls leave one every 250 ms: the second waits in the bucket for its turn, the third finds it full.
        // A check that cannot wait gets in only when the bucket is empty: at 1250 ms that is 500 ms away.
        Strategy::LeakyBucket => vec![
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, admit(ms(250))),
            (ms(100), 1, NOW, s.limited(ms(250), 0, ms(500))),
            (ms(200), 1, NOW, s.limited(ms(150), 0, ms(400))),
            (ms(350), 1, NOW, admit(ms(250))),
            (ms(350), 2, NOW, s.limited(ms(500), 0, ms(500))),
            (ms(1000), 2, NOW, admit(ms(0))),
            (ms(1250), 2, NOW, s.limited(ms(250), 1, ms(250))),
            (ms(1250), 1, NOW, admit(ms(250))),
            (ms(1250), 1, Start::Immediately, s.limited(ms(500), 0, ms(500))),
        ],
        // 4 per aligned second: refused until the window ends at 1000 ms, then 4 again.
        Strategy::FixedWindow => vec![
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(200), 1, NOW, admit(ms(0))),
            (ms(350), 1, NOW, s.limited(ms(650), 0, ms(650))),
            (ms(350), 2, NOW, s.limited(ms(650), 0, ms(650))),
            (ms(1000), 2, NOW, admit(ms(0))),
            (ms(1250), 3, NOW, s.limited(ms(750), 2, ms(750))),
            (ms(1250), 2, NOW, admit(ms(0))),
            (ms(1250), 1, Start::Immediately, s.limited(ms(750), 0, ms(750))),
        ],
        // The previous window's 4 units count for 4 x (1 - elapsed / 1 s), rounded down: at 1000 ms they still
        // count in full, at 1250 ms as 3. Room for a unit comes 1 ns after the weighted count drops below the limit.
        Strategy::SlidingWindow => vec![
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(100), 1, NOW, admit(ms(0))),
            (ms(200), 1, NOW, admit(ms(0))),
            (ms(350), 1, NOW, s.limited(ms(650) + ns(1), 0, ms(1650))),
            (ms(350), 2, NOW, s.limited(ms(900) + ns(1), 0, ms(1650))),
            (ms(1000), 2, NOW, s.limited(ms(250) + ns(1), 0, ms(1000))),
            (ms(1250), 2, NOW, s.limited(ns(1), 1, ms(750))),
            (ms(1250), 1, NOW, admit(ms(0))),
            (ms(1500), 2, Start::Immediately, s.limited(ns(1), 1, ms(1500))),
        ],
    };
    for (step, (at, cost, start, expected)) in script.into_iter().enumerate() {
        s.at(at).await;
        let verdict = s.decide(Some("alice"), cost, start).await;
        assert_eq!(verdict, expected, "{strategy}, step {step}: {cost} at {at:?} ({start:?})");
    }
}

async fn costs<B, A, F>(s: &mut Subject<'_, B, A>)
where
    B: Backend,
    A: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let (strategy, limit) = (s.strategy(), s.limit());
    let too_costly = Verdict::Denied(Denied::cost_above_limit(limit + 1, limit));
    for key in [Some("alice"), None] {
        let patient = Start::Within(Duration::from_secs(3600));
        assert_eq!(s.decide(key, limit + 1, patient).await, too_costly, "{strategy} {key:?}: never, however patient");
        assert_eq!(s.decide(key, limit, NOW).await, Verdict::Admit { wait: ms(0) }, "{strategy} {key:?}: the limit");
        assert!(!s.decide(key, 1, Start::Immediately).await.is_admitted(), "{strategy} {key:?}: all spent");
        assert_eq!(s.decide(key, 0, Start::Immediately).await, Verdict::Admit { wait: ms(0) }, "{strategy}: free");
    }
    // A cost of 0, a refusal and a cost above the limit spent nothing: two seconds later (when even the sliding
    // window has forgotten the first one), exactly the limit is back.
    s.at(ms(2000)).await;
    for key in [Some("alice"), None] {
        assert_eq!(s.decide(key, limit, NOW).await, Verdict::Admit { wait: ms(0) }, "{strategy} {key:?}: refilled");
    }
}

async fn patience<B, A, F>(s: &mut Subject<'_, B, A>)
where
    B: Backend,
    A: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let strategy = s.strategy();
    let alice = Some("alice");
    let limit = s.limit();
    assert_eq!(s.decide(alice, limit, NOW).await, Verdict::Admit { wait: ms(0) }, "{strategy}");
    if strategy.uses_windows() {
        // Windows reserve nothing: they say when there is room, and a patient caller asks again then.
        let room_in = if strategy == Strategy::FixedWindow { ms(1000) } else { ms(1000) + ns(1) };
        let reset = if strategy == Strategy::FixedWindow { ms(1000) } else { ms(2000) };
        let refused = s.limited(room_in, 0, reset);
        assert_eq!(s.decide(alice, 1, Start::Within(Duration::from_secs(3600))).await, refused, "{strategy}");
        assert_eq!(s.decide(alice, 1, NOW).await, refused, "{strategy}: the patient refusal took nothing");
        s.at(room_in - ns(1)).await;
        assert!(!s.decide(alice, 1, NOW).await.is_admitted(), "{strategy}: not a nanosecond early");
        s.at(room_in).await;
        assert_eq!(s.decide(alice, 1, NOW).await, Verdict::Admit { wait: ms(0) }, "{strategy}: room on time");
        return;
    }
    // The bucket is empty; the next unit is 250 ms away (the leaky bucket's next turn, 500 ms: it lets the first
    // call out of the bucket before the next one).
    let refused = s.limited(ms(250), 0, ms(500));
    assert_eq!(s.decide(alice, 1, Start::Within(ms(200))).await, refused, "{strategy}: not patient enough");
    let turn = if strategy == Strategy::LeakyBucket { ms(500) } else { ms(250) };
    let patient = Start::Within(Duration::from_secs(1));
    assert_eq!(s.decide(alice, 1, patient).await, Verdict::Admit { wait: turn }, "{strategy}: a turn reserved");
    s.refund(alice, 1).await;
    assert_eq!(s.decide(alice, 1, NOW).await, refused, "{strategy}: the turn given back, as if never taken");
    // Reserved turns are first come, first served: the second patient caller goes one interval after the first.
    assert_eq!(s.decide(alice, 1, patient).await, Verdict::Admit { wait: turn }, "{strategy}");
    assert_eq!(s.decide(alice, 1, patient).await, Verdict::Admit { wait: turn + ms(250) }, "{strategy}");
    s.at(turn + ms(250)).await;
    assert!(!s.decide(alice, 1, Start::Immediately).await.is_admitted(), "{strategy}: both turns were taken");
}

async fn keys_are_independent<B, A, F>(s: &mut Subject<'_, B, A>)
where
    B: Backend,
    A: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let (strategy, limit) = (s.strategy(), s.limit());
    assert_eq!(s.backend.hash_key("alice"), s.backend.hash_key("alice"), "{strategy}: one key, one hash");
    assert_ne!(s.backend.hash_key("alice"), s.backend.hash_key("bob"), "{strategy}");
    s.at(ms(100)).await;
    assert!(s.decide(Some("alice"), limit, NOW).await.is_admitted(), "{strategy}");
    let refused = s.decide(Some("alice"), 1, NOW).await;
    assert!(!refused.is_admitted(), "{strategy}: alice has spent her quota");
    for key in [Some("bob"), None] {
        assert_eq!(s.decide(key, limit, NOW).await, Verdict::Admit { wait: ms(0) }, "{strategy}: {key:?} is full");
    }
    assert_eq!(s.decide(Some("alice"), 1, NOW).await, refused, "{strategy}: the others' calls left alice as she was");
    assert!(s.decide(Some("carol"), 1, NOW).await.is_admitted(), "{strategy}");
}

async fn reset<B, A, F>(s: &mut Subject<'_, B, A>)
where
    B: Backend,
    A: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let (strategy, limit) = (s.strategy(), s.limit());
    let keys = [Some("alice"), Some("bob"), None];
    for round in ["before", "after"] {
        for key in keys {
            assert_eq!(s.decide(key, limit, NOW).await, Verdict::Admit { wait: ms(0) }, "{strategy} {key:?} {round}");
            assert!(!s.decide(key, 1, NOW).await.is_admitted(), "{strategy} {key:?} {round}: spent");
        }
        s.backend.reset(&s.spec).await.expect("the backend resets");
    }
}

#[tokio::test(start_paused = true)]
async fn the_memory_backend_conforms() {
    run(MemoryBackend::new, tokio::time::advance).await;
}
