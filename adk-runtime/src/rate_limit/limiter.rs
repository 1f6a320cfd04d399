//! The limiter instance: one quota, the state of every key (in a backend), shared by every function that names it.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::algorithm::{Outcome, Patience};
use super::backend::{Backend, Denied, KeyHash, LimiterSpec, Start, Verdict};
use super::memory::MemoryBackend;
use super::rate::Quota;
use super::telemetry::{self, Decision, Telemetry, Tracked};

/// A rate limiter: a [`Quota`] applied to calls without a key (one shared state) and to keyed calls (one state per
/// key), the state held by a [`Backend`]. By default that is this process's memory ([`MemoryBackend`]), where a key's
/// state is created on its first admitted call and dropped by the limiter itself once it has refilled.
///
/// Instances are shared by name through the registry (`adk_runtime::registry().rate_limiter("openai")`); build one
/// directly with [`RateLimiter::new`] for use apart from the attributes, or with [`RateLimiter::with_backend`] over
/// another backend. Time follows the backend's clock: for the memory backend tokio's, so paused-time tests step
/// through refills.
///
/// Keys are hashed as a call starts and only the hash is kept ([`KeyHash`] says how, and what a collision costs): in
/// memory, state costs 16 bytes a key whatever the key's type, and nothing is allocated for a key already seen.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::rate_limit::{Denied, Quota, RateLimiter};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let limiter = RateLimiter::new("per-user", Quota::per_second(2));
/// assert!(limiter.check_key("alice").is_ok());
/// assert!(limiter.check_key("alice").is_ok());
/// let Err(Denied::Limited { retry_after, .. }) = limiter.check_key("alice") else { panic!() };
/// assert_eq!(retry_after, Duration::from_millis(500));
/// assert!(limiter.check_key("bob").is_ok(), "bob has his own budget");
/// # });
/// ```
pub struct RateLimiter<B = MemoryBackend> {
    spec: LimiterSpec,
    backend: B,
    telemetry: Telemetry,
}

/// A limiter's state for one key (or for calls without a key), as seen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// The capacity ([`Quota::limit`]).
    pub limit: u64,
    /// Units that could be spent now.
    pub remaining: u64,
    /// Time until back to full capacity.
    pub reset: Duration,
}

/// The in-memory limiter: decisions without waiting, made in this process.
impl RateLimiter {
    /// A limiter called `name` (in metrics and refusals) enforcing `quota`, its state in memory. It is not entered in
    /// the registry; the attributes and [`RateLimitPolicy`](super::RateLimitPolicy) do that.
    pub fn new(name: impl Into<String>, quota: Quota) -> Arc<Self> {
        RateLimiter::with_backend(name, quota, MemoryBackend::new())
    }

    /// Spends one unit of the shared (keyless) state now, or says why not. Never waits: a leaky bucket admits only a
    /// call that can go at once.
    #[inline]
    pub fn check(&self) -> Result<(), Denied> {
        self.check_target(None, 1)
    }

    /// Spends `cost` units of the shared state now, or says why not.
    #[inline]
    pub fn check_n(&self, cost: u64) -> Result<(), Denied> {
        self.check_target(None, cost)
    }

    /// Spends one unit of `key`'s state now, or says why not.
    #[inline]
    pub fn check_key<K: Hash + ?Sized>(&self, key: &K) -> Result<(), Denied> {
        self.check_target(Some(self.backend.hash(key)), 1)
    }

    /// Spends `cost` units of `key`'s state now, or says why not.
    #[inline]
    pub fn check_key_n<K: Hash + ?Sized>(&self, key: &K, cost: u64) -> Result<(), Denied> {
        self.check_target(Some(self.backend.hash(key)), cost)
    }

    /// The shared state, as of now.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let limiter = adk_runtime::rate_limit::RateLimiter::new("snapshot", adk_runtime::rate_limit::Quota::per_minute(60));
    /// limiter.check_n(10).unwrap();
    /// let snapshot = limiter.snapshot();
    /// assert_eq!((snapshot.limit, snapshot.remaining), (60, 50));
    /// # });
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_target(None)
    }

    /// `key`'s state, as of now.
    pub fn snapshot_key<K: Hash + ?Sized>(&self, key: &K) -> Snapshot {
        self.snapshot_target(Some(self.backend.hash(key)))
    }

    /// Forgets every key and the shared state: every caller has its full quota again, as if the limiter had just
    /// been built. For tests, and for an operator lifting a quota after an incident. Calls admitted before the reset
    /// are not charged to the fresh state; a call waiting for a turn it was granted keeps it and starts when its wait
    /// ends (if it is dropped instead, the units it gives back cannot lift anyone above full quota). Metrics are
    /// left alone; [`Registry::reset`](crate::Registry::reset) resets them too.
    ///
    /// ```
    /// use adk_runtime::rate_limit::{Quota, RateLimiter};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let limiter = RateLimiter::new("doc-reset", Quota::per_minute(2));
    /// for _ in 0..2 {
    ///     limiter.check_key("alice").unwrap();
    /// }
    /// assert!(limiter.check_key("alice").is_err());
    /// limiter.reset();
    /// assert_eq!(limiter.snapshot_key("alice").remaining, 2);
    /// assert_eq!(limiter.keys(), 0);
    /// assert!(limiter.check_key("alice").is_ok());
    /// # });
    /// ```
    pub fn reset(&self) {
        self.backend.clear();
    }

    /// Keys whose state the limiter holds now (a sliding window may hold two entries for a key used in consecutive
    /// windows). Also exported as `adk_rate_limit_keys{limiter}`.
    pub fn keys(&self) -> usize {
        self.backend.keys()
    }

    /// The key's hash, taken at once so that the key itself is not held.
    #[inline]
    pub(crate) fn key<K: Hash + ?Sized>(&self, key: Option<&K>) -> Option<KeyHash> {
        key.map(|key| self.backend.hash(key))
    }

    #[inline]
    pub(crate) fn decide_now(&self, key: Option<KeyHash>, cost: u64, start: Patience) -> Outcome {
        self.backend.decide_now(self.spec.algorithm(), key, cost, start)
    }

    /// Gives back `cost` units charged ahead for a call that never started.
    pub(crate) fn refund_now(&self, key: Option<KeyHash>, cost: u64) {
        self.backend.refund_now(self.spec.algorithm(), key, cost);
    }

    /// The refusal for an outcome that did not admit.
    pub(crate) fn denied(&self, outcome: Outcome, cost: u64) -> Denied {
        Denied::from_outcome(outcome, cost, self.spec.algorithm().limit())
    }

    #[inline]
    fn check_target(&self, key: Option<KeyHash>, cost: u64) -> Result<(), Denied> {
        match self.decide_now(key, cost, Patience::Immediately) {
            Outcome::Admit { .. } => {
                self.telemetry.record(Decision::Admitted);
                Ok(())
            }
            outcome => {
                self.telemetry.record(Decision::Refused);
                Err(self.denied(outcome, cost))
            }
        }
    }

    fn snapshot_target(&self, key: Option<KeyHash>) -> Snapshot {
        let algorithm = self.spec.algorithm();
        let level = self.backend.level(algorithm, key);
        Snapshot { limit: algorithm.limit(), remaining: level.remaining, reset: Duration::from_nanos(level.reset) }
    }
}

/// Any limiter, over any backend: one decision at a time.
impl<B: Backend> RateLimiter<B> {
    /// A limiter called `name` (in metrics and refusals) enforcing `quota`, its state held by `backend`. It is not
    /// entered in the registry.
    ///
    /// ```
    /// use adk_runtime::rate_limit::{MemoryBackend, Quota, RateLimiter};
    ///
    /// let limiter = RateLimiter::with_backend("doc-with-backend", Quota::per_second(5), MemoryBackend::new());
    /// assert_eq!(limiter.spec().name(), "doc-with-backend");
    /// ```
    pub fn with_backend(name: impl Into<String>, quota: Quota, backend: B) -> Arc<Self> {
        let spec = LimiterSpec::new(name, quota);
        let limiter = Arc::new(RateLimiter { telemetry: Telemetry::new(spec.name()), spec, backend });
        telemetry::track(&limiter);
        limiter
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        self.spec.name()
    }

    /// What it enforces.
    pub fn quota(&self) -> Quota {
        self.spec.quota()
    }

    /// The limiter as its backend sees it.
    pub fn spec(&self) -> &LimiterSpec {
        &self.spec
    }

    /// Where its state lives.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Decides one call of `cost` units of `key`'s state (of the shared state when `key` is `None`) through the
    /// backend, waiting for a turn up to what `start` allows. The key is hashed at once and not held, so the future is
    /// `Send` whatever the key. The decision is counted in `adk_rate_limit_decisions_total` as `admitted`, `delayed`
    /// (a turn granted ahead) or `refused`. A turn granted ahead ([`Verdict::Admit`] with a non-zero wait) is the
    /// caller's to wait for, or to give back with [`Backend::refund`] if the call does not start.
    ///
    /// ```
    /// use std::time::Duration;
    /// use adk_runtime::rate_limit::{Quota, RateLimiter, Start, Verdict};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let limiter = RateLimiter::new("doc-decide", Quota::per_second(1).with_burst(1));
    /// let Ok(first) = limiter.decide(Some("alice"), 1, Start::Immediately).await;
    /// assert_eq!(first, Verdict::Admit { wait: Duration::ZERO });
    /// let Ok(second) = limiter.decide(Some("alice"), 1, Start::Within(Duration::from_secs(5))).await;
    /// assert_eq!(second, Verdict::Admit { wait: Duration::from_secs(1) });
    /// # });
    /// ```
    pub fn decide<'l, K: Hash + ?Sized>(
        &'l self,
        key: Option<&K>,
        cost: u64,
        start: Start,
    ) -> impl Future<Output = Result<Verdict, B::Error>> + Send + use<'l, K, B> {
        let key = key.map(|key| self.backend.hash_key(key));
        self.decide_hashed(key, cost, start)
    }

    /// [`decide`](Self::decide) for a key already hashed by this limiter's backend.
    pub(crate) async fn decide_hashed(
        &self,
        key: Option<KeyHash>,
        cost: u64,
        start: Start,
    ) -> Result<Verdict, B::Error> {
        let verdict = self.backend.decide(&self.spec, key, cost, start).await?;
        self.telemetry.record(match verdict {
            Verdict::Admit { wait } if wait.is_zero() => Decision::Admitted,
            Verdict::Admit { .. } => Decision::Delayed,
            Verdict::Denied(_) => Decision::Refused,
        });
        Ok(verdict)
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }
}

impl<B: Backend> Tracked for RateLimiter<B> {
    fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// A remote backend's keys live in its store: this process holds none of them.
    fn keys(&self) -> usize {
        (&self.backend as &dyn Any).downcast_ref::<MemoryBackend>().map_or(0, MemoryBackend::keys)
    }
}

impl<B> Drop for RateLimiter<B> {
    fn drop(&mut self) {
        self.telemetry.flush();
    }
}

impl<B: fmt::Debug> fmt::Debug for RateLimiter<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.spec.name())
            .field("quota", &self.spec.quota())
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}
