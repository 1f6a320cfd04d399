//! The limiter instance: one quota, the state of every key, shared by every function that names it.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use foldhash::fast::FixedState;
use tokio::time::Instant;

use super::algorithm::{Algorithm, Start, Verdict};
use super::rate::Quota;
use super::store::{KeyedStore, SingleStore, Store};
use super::telemetry::{self, Decision, Telemetry};
use crate::error::Error;

/// A rate limiter: a [`Quota`] applied to calls without a key (one shared state) and to keyed calls (one state per
/// key, created on a key's first admitted call and dropped by the limiter itself once it has refilled).
///
/// Instances are shared by name through the registry (`adk_runtime::registry().rate_limiter("openai")`); build one
/// directly with [`RateLimiter::new`] for use apart from the attributes. Time follows tokio's clock, so paused-time
/// tests step through refills.
///
/// Keys are hashed to 64 bits with foldhash, seeded per limiter, and only the hash is kept: state costs 16 bytes a key
/// whatever the key's type, and nothing is allocated for a key already seen. Two keys whose hashes collide share one
/// state, which can only make the pair stricter, never admit more; among a million live keys the chance that any two
/// collide is about 3 in 100 million, and the seed keeps an outsider from choosing colliding keys on purpose.
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
pub struct RateLimiter {
    name: String,
    quota: Quota,
    algorithm: Algorithm,
    epoch: Instant,
    hasher: FixedState,
    global: SingleStore,
    keyed: OnceLock<KeyedStore>,
    telemetry: Telemetry,
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// Not now: the same call would be accepted after `retry_after`.
    #[error("rate limited: {remaining} of {limit} left, retry after {retry_after:?}")]
    #[non_exhaustive]
    Limited {
        /// Time until the same call would be accepted.
        retry_after: Duration,
        /// The limiter's capacity ([`Quota::limit`]).
        limit: u64,
        /// Units that could be spent now.
        remaining: u64,
        /// Time until the key is back to full capacity.
        reset: Duration,
    },
    /// Never: the call costs more than the limiter holds at once.
    #[error("a call costing {cost} units can never be admitted: the limit is {limit}")]
    #[non_exhaustive]
    CostAboveLimit {
        /// The call's cost.
        cost: u64,
        /// The limiter's capacity.
        limit: u64,
    },
}

impl Denied {
    /// Time until the same call would be accepted; `None` when it never would.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Denied::Limited { retry_after, .. } => Some(*retry_after),
            Denied::CostAboveLimit { .. } => None,
        }
    }

    /// The refusal as an [`Error`] naming limiter `name`: [`Error::RateLimited`] or [`Error::CostAboveLimit`].
    pub fn into_error(self, name: &str) -> Error {
        match self {
            Denied::Limited { retry_after, limit, remaining, reset } => {
                Error::RateLimited { name: name.to_owned(), retry_after, limit, remaining, reset }
            }
            Denied::CostAboveLimit { cost, limit } => Error::cost_above_limit(name, cost, limit),
        }
    }
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

/// Whose state a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Global,
    /// A key's hash, low bit clear (the sliding window's two cells sit at `key` and `key | 1`).
    Key(u64),
}

impl RateLimiter {
    /// A limiter called `name` (in metrics and refusals) enforcing `quota`. It is not entered in the registry; the
    /// attributes and [`RateLimitPolicy`](super::RateLimitPolicy) do that.
    pub fn new(name: impl Into<String>, quota: Quota) -> Arc<Self> {
        let name = name.into();
        let limiter = Arc::new(RateLimiter {
            telemetry: Telemetry::new(&name),
            name,
            quota,
            algorithm: Algorithm::new(quota),
            epoch: Instant::now(),
            hasher: FixedState::with_seed(fastrand::u64(..)),
            global: SingleStore::default(),
            keyed: OnceLock::new(),
        });
        telemetry::track(&limiter);
        limiter
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it enforces.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Spends one unit of the shared (keyless) state now, or says why not. Never waits: a leaky bucket admits only a
    /// call that can go at once.
    #[inline]
    pub fn check(&self) -> Result<(), Denied> {
        self.check_target(Target::Global, 1)
    }

    /// Spends `cost` units of the shared state now, or says why not.
    #[inline]
    pub fn check_n(&self, cost: u64) -> Result<(), Denied> {
        self.check_target(Target::Global, cost)
    }

    /// Spends one unit of `key`'s state now, or says why not.
    #[inline]
    pub fn check_key<K: Hash + ?Sized>(&self, key: &K) -> Result<(), Denied> {
        self.check_target(self.target(Some(key)), 1)
    }

    /// Spends `cost` units of `key`'s state now, or says why not.
    #[inline]
    pub fn check_key_n<K: Hash + ?Sized>(&self, key: &K, cost: u64) -> Result<(), Denied> {
        self.check_target(self.target(Some(key)), cost)
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
        self.snapshot_target(Target::Global)
    }

    /// `key`'s state, as of now.
    pub fn snapshot_key<K: Hash + ?Sized>(&self, key: &K) -> Snapshot {
        self.snapshot_target(self.target(Some(key)))
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
        self.global.clear();
        if let Some(keyed) = self.keyed.get() {
            keyed.clear();
        }
    }

    /// Keys whose state the limiter holds now (a sliding window may hold two entries for a key used in consecutive
    /// windows). Also exported as `adk_rate_limit_keys{limiter}`.
    pub fn keys(&self) -> usize {
        self.keyed.get().map_or(0, KeyedStore::len)
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    #[inline]
    pub(crate) fn target<K: Hash + ?Sized>(&self, key: Option<&K>) -> Target {
        match key {
            None => Target::Global,
            Some(key) => Target::Key(self.hasher.hash_one(key) & !1),
        }
    }

    /// Nanoseconds since the limiter was built, on tokio's clock.
    #[inline]
    fn now(&self) -> u64 {
        Instant::now().saturating_duration_since(self.epoch).as_nanos() as u64
    }

    #[inline]
    fn keyed(&self) -> &KeyedStore {
        self.keyed.get_or_init(|| KeyedStore::new(self.algorithm))
    }

    #[inline]
    pub(crate) fn decide(&self, target: Target, cost: u64, start: Start) -> Verdict {
        let now = self.now();
        let cells = self.algorithm.cells(now);
        let transition = |cell, other| self.algorithm.decide(cell, other, now, cost, start);
        match target {
            Target::Global => self.global.update(cells.write, cells.read, now, transition),
            Target::Key(key) => {
                self.keyed().update(key | cells.write, cells.read.map(|read| key | read), now, transition)
            }
        }
    }

    /// Gives back `cost` units charged ahead for a call that never started.
    pub(crate) fn refund(&self, target: Target, cost: u64) {
        let now = self.now();
        let transition = |cell, _| {
            let refunded = self.algorithm.refund(cell, cost);
            ((), (refunded != cell).then_some(refunded))
        };
        match target {
            Target::Global => self.global.update(0, None, now, transition),
            Target::Key(key) => self.keyed().update(key, None, now, transition),
        }
    }

    /// The refusal for a verdict that did not admit.
    pub(crate) fn denied(&self, verdict: Verdict, cost: u64) -> Denied {
        match verdict {
            Verdict::Limited { retry_after, remaining, reset } => Denied::Limited {
                retry_after: Duration::from_nanos(retry_after),
                limit: self.algorithm.limit(),
                remaining,
                reset: Duration::from_nanos(reset),
            },
            Verdict::TooCostly | Verdict::Admit { .. } => {
                Denied::CostAboveLimit { cost, limit: self.algorithm.limit() }
            }
        }
    }

    #[inline]
    fn check_target(&self, target: Target, cost: u64) -> Result<(), Denied> {
        match self.decide(target, cost, Start::Immediately) {
            Verdict::Admit { .. } => {
                self.telemetry.record(Decision::Admitted);
                Ok(())
            }
            verdict => {
                self.telemetry.record(Decision::Refused);
                Err(self.denied(verdict, cost))
            }
        }
    }

    fn snapshot_target(&self, target: Target) -> Snapshot {
        let now = self.now();
        let cells = self.algorithm.cells(now);
        let (cell, other) = match target {
            Target::Global => (self.global.load(cells.write), cells.read.map_or(0, |read| self.global.load(read))),
            Target::Key(key) => match self.keyed.get() {
                None => (0, 0),
                Some(store) => (store.load(key | cells.write), cells.read.map_or(0, |read| store.load(key | read))),
            },
        };
        let level = self.algorithm.level(cell, other, now);
        Snapshot { limit: self.algorithm.limit(), remaining: level.remaining, reset: Duration::from_nanos(level.reset) }
    }
}

impl Drop for RateLimiter {
    fn drop(&mut self) {
        self.telemetry.flush();
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}
