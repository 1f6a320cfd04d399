//! Where a limiter's state lives: the [`Backend`] trait and the vocabulary of one decision.

use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use super::algorithm::{Algorithm, Outcome, Patience};
use super::rate::Quota;
use crate::error::Error;

/// The state of rate limiters, wherever it lives: in this process ([`MemoryBackend`](super::MemoryBackend)) or in a
/// store a fleet shares, so that every replica spends one quota.
///
/// One decision is one call of [`decide`](Backend::decide), which reads the state of one key, applies the limiter's
/// strategy and writes the result atomically: for a remote store, one round trip (one `EVALSHA` of a script on Redis,
/// one statement on PostgreSQL). Its answers are the memory backend's to the nanosecond, for every strategy, cost and
/// patience: the transitions are written once in Rust (the memory backend applies them) and a remote backend mirrors
/// them; the crate's conformance suite holds each backend to the same answers. A backend whose arithmetic runs on
/// doubles, as Redis's Lua does, must keep its integers below 2^53 to stay exact.
///
/// # Clock
/// A decision reads the backend's own clock, once, inside its atomic step. The memory backend reads tokio's clock
/// (so `#[tokio::test(start_paused = true)]` steps through refills), counting from the backend's creation. A remote
/// backend reads the server's clock in the same step that applies the decision (Redis `TIME` inside the script,
/// PostgreSQL's `clock_timestamp()` inside the statement), so replicas whose clocks disagree still agree on the state.
/// Every duration in a [`Verdict`] is measured on that clock and relative to the decision; the caller sleeps it on
/// its own clock. Window strategies align their windows to the backend's origin: the memory backend's creation, a
/// remote backend's fixed origin (such as the Unix epoch) that every replica shares.
///
/// # Keys
/// A backend never sees a caller's key, only its [`KeyHash`], computed by [`hash_key`](Backend::hash_key) as the call
/// starts. `None` addresses the limiter's shared state, spent by calls without a key. A remote backend keeps one
/// limiter's keys together (under a Redis Cluster hash tag such as `{prefix}:rl:{<limiter>}:<key hash>`, so a
/// limiter's keys share one slot) and gives each a time to live of at least [`LimiterSpec::idle_after`], so idle
/// keys disappear by themselves.
///
/// # Waiting and cancellation
/// With [`Start::Within`], GCRA, token and leaky buckets reserve a turn up to the patience ahead and answer
/// [`Verdict::Admit`] with the wait; the units are spent from then on. A caller that does not start after all (its
/// future was dropped while it waited) gives them back with [`refund`](Backend::refund). Window strategies never
/// reserve: they answer when there will be room, and the caller asks again then. A `decide` future dropped before it
/// completes may or may not have taken its units (a request may have reached the server): a remote backend bounds
/// that loss by the key's time to live.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::rate_limit::{Backend, Denied, LimiterSpec, MemoryBackend, Quota, Start, Verdict};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let backend = MemoryBackend::new();
/// let spec = LimiterSpec::new("doc-backend", Quota::per_second(2).with_burst(1));
/// let alice = Some(backend.hash_key("alice"));
/// let Ok(verdict) = backend.decide(&spec, alice, 1, Start::Immediately).await;
/// assert_eq!(verdict, Verdict::Admit { wait: Duration::ZERO });
/// // A call that may wait a second is given the next turn, half a second ahead...
/// let patient = Start::Within(Duration::from_secs(1));
/// let Ok(verdict) = backend.decide(&spec, alice, 1, patient).await;
/// assert_eq!(verdict, Verdict::Admit { wait: Duration::from_millis(500) });
/// // ...and gives it back when it does not go after all, so the next call needs to wait no longer than before.
/// let Ok(()) = backend.refund(&spec, alice, 1).await;
/// let Ok(Verdict::Denied(refusal)) = backend.decide(&spec, alice, 1, Start::Immediately).await else { panic!() };
/// assert_eq!(refusal.retry_after(), Some(Duration::from_millis(500)));
/// # });
/// ```
pub trait Backend: Send + Sync + 'static {
    /// Why a decision could not be made (the store could not be reached, say). The memory backend cannot fail:
    /// [`Infallible`](std::convert::Infallible).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Hashes a caller's key as every process sharing this backend's state does.
    ///
    /// The memory backend, whose state is this process's alone, uses foldhash seeded at random per backend, so that
    /// nobody outside can choose keys that collide. A backend a fleet shares must give one key the same hash in every
    /// replica, including replicas of two releases running side by side during a deploy: a keyed hash of fixed
    /// definition (SipHash-1-3 under a secret the fleet shares, say), not one free to change between versions, such
    /// as foldhash or `std`'s `DefaultHasher`. See [`KeyHash`] for what a collision costs.
    fn hash_key<K: Hash + ?Sized>(&self, key: &K) -> KeyHash;

    /// Decides one call of `cost` units of `key`'s state (the shared state when `None`) for `limiter`, at the
    /// backend's time, and applies it atomically. `start` says how long the caller may wait.
    ///
    /// A cost above the limit ([`Quota::limit`]) is [`Denied::CostAboveLimit`] whatever the patience; a cost of 0 is
    /// admitted and spends nothing. A refusal spends nothing.
    fn decide(
        &self,
        limiter: &LimiterSpec,
        key: Option<KeyHash>,
        cost: u64,
        start: Start,
    ) -> impl Future<Output = Result<Verdict, Self::Error>> + Send;

    /// Gives back `cost` units that a [`Verdict::Admit`] with a non-zero wait reserved for a call that never started.
    /// The units come back to the key as if they had not been taken; a limiter [`reset`](Backend::reset) since then
    /// is not undone, and no key is lifted above its full quota.
    fn refund(
        &self,
        limiter: &LimiterSpec,
        key: Option<KeyHash>,
        cost: u64,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Forgets every key's state and the shared state of `limiter`: every caller has its full quota again.
    fn reset(&self, limiter: &LimiterSpec) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The limiter a decision is for, as a backend sees it: its name and its quota, passed with every decision (so a
/// changed quota applies from the next one).
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::rate_limit::{LimiterSpec, Quota};
///
/// let spec = LimiterSpec::new("openai", Quota::per_second(10));
/// assert_eq!((spec.name(), spec.quota().limit()), ("openai", 10));
/// assert_eq!(spec.idle_after(), Duration::from_secs(1), "an empty bucket is full again within a second");
/// ```
#[derive(Debug, Clone)]
pub struct LimiterSpec {
    name: String,
    quota: Quota,
    algorithm: Algorithm,
}

impl LimiterSpec {
    /// The limiter called `name` enforcing `quota`.
    pub fn new(name: impl Into<String>, quota: Quota) -> Self {
        LimiterSpec { name: name.into(), quota, algorithm: Algorithm::new(quota) }
    }

    /// The limiter's name: unique among a process's limiters, and the same in every replica of a fleet.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the limiter enforces.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// How long after its last decision a key's state can still matter: after that it decides exactly as a key never
    /// seen, so a remote backend may let it expire (a turn reserved ahead lengthens it by the reservation).
    pub fn idle_after(&self) -> Duration {
        Duration::from_nanos(self.algorithm.memory())
    }

    pub(crate) fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }
}

/// A caller's key as a backend sees it: 64 bits of hash. Raw keys are never stored or sent anywhere: a limiter hashes
/// a key with [`Backend::hash_key`] as the call starts and keeps only the hash.
///
/// Two keys with one hash share one state, which can only make the pair stricter, never admit more. The memory
/// backend addresses a key by 63 of the bits (the last one tells the sliding window's two windows apart), so with
/// `n` keys live at once the chance that any two collide is at most n² / 2^64: about 5 in 100 million for a million
/// keys, 5 in 10,000 for a hundred million.
///
/// ```
/// use adk_runtime::rate_limit::{Backend, KeyHash, MemoryBackend};
///
/// let backend = MemoryBackend::new();
/// assert_eq!(backend.hash_key("alice"), backend.hash_key("alice"));
/// assert_eq!(KeyHash::new(42).get(), 42);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(u64);

impl KeyHash {
    /// A key whose hash is `hash`.
    pub const fn new(hash: u64) -> Self {
        KeyHash(hash)
    }

    /// The hash.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// How long a call may wait before it starts.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::rate_limit::Start;
///
/// let patient = Start::Within(Duration::from_secs(2));
/// assert_ne!(patient, Start::Immediately);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Now or never: a check that cannot wait. A leaky bucket admits it only into an empty bucket.
    Immediately,
    /// Within this long: GCRA, token and leaky buckets reserve a turn at most this far ahead (a leaky bucket also
    /// queues a call its bucket has room for, however far ahead its turn). `Within(Duration::ZERO)` is what a
    /// call that refuses when over its limit asks for.
    Within(Duration),
}

impl Start {
    #[inline]
    pub(crate) fn patience(self) -> Patience {
        match self {
            Start::Immediately => Patience::Immediately,
            Start::Within(patience) => Patience::Within(u64::try_from(patience.as_nanos()).unwrap_or(u64::MAX)),
        }
    }
}

/// The answer to one call.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::rate_limit::{Denied, Verdict};
///
/// let admitted = Verdict::Admit { wait: Duration::ZERO };
/// assert!(admitted.is_admitted());
/// let refused = Verdict::Denied(Denied::cost_above_limit(101, 100));
/// assert_eq!(refused.denied().and_then(|denied| denied.retry_after()), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Admitted: the call starts after `wait` (zero: at once). A non-zero wait is a turn reserved ahead, already
    /// spent: if the call does not start after all, give it back with [`Backend::refund`].
    Admit {
        /// How long the call waits for its turn.
        wait: Duration,
    },
    /// Not admitted; nothing was spent.
    Denied(Denied),
}

impl Verdict {
    /// Whether the call was admitted (possibly after a wait).
    pub fn is_admitted(&self) -> bool {
        matches!(self, Verdict::Admit { .. })
    }

    /// Why the call was not admitted, if it was not.
    pub fn denied(&self) -> Option<&Denied> {
        match self {
            Verdict::Denied(denied) => Some(denied),
            Verdict::Admit { .. } => None,
        }
    }

    #[inline]
    pub(crate) fn from_outcome(outcome: Outcome, cost: u64, limit: u64) -> Self {
        match outcome {
            Outcome::Admit { wait } => Verdict::Admit { wait: Duration::from_nanos(wait) },
            refused => Verdict::Denied(Denied::from_outcome(refused, cost, limit)),
        }
    }
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
    /// [`Denied::Limited`], for a backend to answer with.
    ///
    /// ```
    /// use std::time::Duration;
    /// use adk_runtime::rate_limit::Denied;
    ///
    /// let denied = Denied::limited(Duration::from_millis(250), 10, 0, Duration::from_secs(2));
    /// assert_eq!(denied.retry_after(), Some(Duration::from_millis(250)));
    /// ```
    pub const fn limited(retry_after: Duration, limit: u64, remaining: u64, reset: Duration) -> Self {
        Denied::Limited { retry_after, limit, remaining, reset }
    }

    /// [`Denied::CostAboveLimit`], for a backend to answer with.
    pub const fn cost_above_limit(cost: u64, limit: u64) -> Self {
        Denied::CostAboveLimit { cost, limit }
    }

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

    /// The refusal for an outcome that did not admit.
    #[inline]
    pub(crate) fn from_outcome(outcome: Outcome, cost: u64, limit: u64) -> Self {
        match outcome {
            Outcome::Limited { retry_after, remaining, reset } => Denied::Limited {
                retry_after: Duration::from_nanos(retry_after),
                limit,
                remaining,
                reset: Duration::from_nanos(reset),
            },
            Outcome::TooCostly | Outcome::Admit { .. } => Denied::CostAboveLimit { cost, limit },
        }
    }
}
