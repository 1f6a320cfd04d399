//! `#[rate_limited]`: admit, refuse or delay calls by rate, per key, shared by name, with costs.
//!
//! A function's [`RateLimitPolicy`] is a `static` built at compile time. On its first call it resolves its
//! [`RateLimiter`] from the registry by name (the function's path when unnamed), so functions naming one limiter
//! share its state; after that a call reads the clock, hashes its key and compare-and-swaps one cell.
//!
//! # Behaviour
//! - **Rate and burst.** A [`Quota`] is a [`Rate`] (`count` per `period`), a burst (default: one period's worth,
//!   `count`) and a [`Strategy`] (default [`Strategy::Gcra`]; see each variant for its exact semantics).
//! - **Keys.** Calls with a key spend that key's own state; calls without one share the limiter's single state. A key's
//!   state is created by its first admitted call and dropped by the limiter once it has refilled, so memory follows
//!   the keys active within the last refill period (about 16 bytes each), however many keys pass through.
//! - **Cost.** A call spends `cost` units (default 1), e.g. the tokens a request may use. A cost above the limiter's
//!   [`limit`](Quota::limit) can never be admitted and is refused at once with [`Error::CostAboveLimit`], which is
//!   [`Permanent`](crate::ErrorClass::Permanent). A cost of 0 is always admitted and spends nothing.
//! - **On limit.** [`OnLimit::Reject`] (default) answers [`Error::RateLimited`] with the exact `retry_after`;
//!   [`OnLimit::Wait`] sleeps until admitted, up to `max_wait` (default [`RateLimitPolicy::DEFAULT_MAX_WAIT`]), and
//!   refuses at once when admission is further away than that or than the deadline the call runs under (an
//!   enclosing `#[timeout]`; see [`crate::deadline`]).
//! - **Waiting and cancellation.** GCRA, token and leaky buckets reserve the waiting call's turn when it is granted
//!   (first come, first served, exact); a waiting call that is dropped gives its units back, so the limiter is never
//!   charged for a call that did not happen. Window strategies reserve nothing: a waiting call sleeps until its
//!   `retry_after` and asks again, so dropping it leaves nothing behind.
//! - **Metrics.** `adk_rate_limit_decisions_total{limiter, decision}` with `decision` one of `admitted`, `delayed`
//!   (admitted after waiting), `refused`; `adk_rate_limit_keys{limiter}`. Keys are never labels.
//! - **Backends.** A limiter's state lives in a [`Backend`]. The policies use [`MemoryBackend`], this process's
//!   memory; [`RateLimiter::with_backend`] builds a limiter over another one, which answers one
//!   [`decide`](RateLimiter::decide) at a time.
//!
//! # Design
//! The strategies are pure functions from a key's 64-bit cells, the time and the cost to a verdict and the new cells
//! (`algorithm.rs`). The memory backend (`memory.rs`) applies them atomically to cells in `store.rs` (a
//! compare-and-swap on one cell, the keyed cells in sharded tables), reading tokio's clock once per decision; the
//! limiter calls it directly, with no future, box or dynamic call between a policy and its cells. Another backend
//! applies the same transitions in its own store, on its own clock, and the conformance suite (`conformance.rs`) holds
//! every backend to the memory backend's answers.

mod algorithm;
mod backend;
mod builder;
#[cfg(test)]
pub(crate) mod conformance;
mod limiter;
mod memory;
mod rate;
#[cfg(feature = "redis")]
mod redis;
mod registered;
mod store;
mod telemetry;

use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;
use crate::registry::{Declaration, Kind, Settings, registry};
use algorithm::{Outcome, Patience};
use telemetry::Decision;

#[cfg(feature = "redis")]
pub use self::redis::{OnBackendError, RedisBackend};
pub use backend::{Backend, Denied, KeyHash, LimiterSpec, Start, Verdict};
pub use builder::RateLimiterBuilder;
pub use limiter::{RateLimiter, Snapshot};
pub use memory::MemoryBackend;
pub use rate::{Quota, Rate, Strategy};

/// What a call does when the limiter has no room for it now.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::rate_limit::OnLimit;
///
/// assert_eq!(OnLimit::default(), OnLimit::Reject);
/// let patient = OnLimit::Wait { max_wait: Duration::from_secs(2) };
/// # let _ = patient;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLimit {
    /// Refuse with [`Error::RateLimited`] (a leaky bucket still queues a call its bucket has room for).
    #[default]
    Reject,
    /// Sleep until admitted, refusing at once when that is more than `max_wait` away.
    Wait {
        /// The longest a call waits.
        max_wait: Duration,
    },
}

/// A function's rate limit, built at compile time in a `static`.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::rate_limit::{OnLimit, Quota, RateLimitPolicy};
///
/// static LIMIT: RateLimitPolicy = RateLimitPolicy::new("doc::complete", "src/lib.rs:10", Quota::per_second(2))
///     .with_name("doc-provider");
///
/// async fn complete(user: &str) -> Result<String, adk_runtime::Error> {
///     LIMIT.run_with(Some(user), 1u32, async { Ok(format!("hello {user}")) }, Err).await
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// assert!(complete("alice").await.is_ok());
/// assert!(complete("alice").await.is_ok());
/// let refusal = complete("alice").await.unwrap_err();
/// assert!(matches!(refusal, adk_runtime::Error::RateLimited { retry_after, .. } if retry_after == Duration::from_millis(500)));
/// assert!(complete("bob").await.is_ok());
/// let shared = adk_runtime::registry().rate_limiter("doc-provider").unwrap();
/// assert_eq!(shared.snapshot_key("alice").remaining, 0);
/// # });
/// ```
#[derive(Debug)]
pub struct RateLimitPolicy {
    function: &'static str,
    call_site: &'static str,
    name: Option<&'static str>,
    quota: Quota,
    on_limit: OnLimit,
    limiter: OnceLock<Arc<RateLimiter>>,
    #[cfg(feature = "redis")]
    remote: self::redis::RemotePolicy,
}

impl RateLimitPolicy {
    /// How long `on_limit = "wait"` waits when `max_wait` is not given.
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

    /// The rate limit of `function` (its path, used as the limiter's name unless [`with_name`](Self::with_name) is
    /// given), declared at `call_site` (`file:line`), enforcing `quota`; refusing when over.
    pub const fn new(function: &'static str, call_site: &'static str, quota: Quota) -> Self {
        RateLimitPolicy {
            function,
            call_site,
            name: None,
            quota,
            on_limit: OnLimit::Reject,
            limiter: OnceLock::new(),
            #[cfg(feature = "redis")]
            remote: self::redis::RemotePolicy::none(),
        }
    }

    /// Shares the limiter called `name` with every function naming it. The quota must agree; a differing one is
    /// reported in [`Registry::conflicts`](crate::Registry::conflicts) and the first declaration's is used.
    pub const fn with_name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// What a call does when the limiter is out of room. This is the function's own choice, not the shared
    /// limiter's.
    pub const fn with_on_limit(mut self, on_limit: OnLimit) -> Self {
        self.on_limit = on_limit;
        self
    }

    /// Keeps the limiter's state in Redis ([`RedisBackend`] over [`crate::redis::connection`]): every process
    /// sharing the Redis spends one quota. `on_backend_error` and `fleet_size` say what a call does when Redis
    /// cannot answer (see [`RedisBackend`]); a `fleet_size` of 0 counts as 1.
    ///
    /// ```no_run
    /// use adk_runtime::rate_limit::{OnBackendError, Quota, RateLimitPolicy};
    ///
    /// static LIMIT: RateLimitPolicy = RateLimitPolicy::new("doc::f", "src/lib.rs:1", Quota::per_minute(3_500))
    ///     .with_name("openai")
    ///     .with_redis(OnBackendError::Local, 4);
    /// ```
    #[cfg(feature = "redis")]
    pub const fn with_redis(mut self, on_backend_error: OnBackendError, fleet_size: u32) -> Self {
        self.remote.redis = Some((on_backend_error, fleet_size));
        self
    }

    /// The limiter's name: the shared name, else the function's path.
    pub fn name(&self) -> &'static str {
        match self.name {
            Some(name) => name,
            None => self.function,
        }
    }

    /// The limiter, resolved from the registry on first use.
    #[inline]
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        self.limiter.get_or_init(|| {
            let (_, name, declaration) = self.declared();
            registry().instances::<RateLimiter>().declare(name, declaration, || RateLimiter::new(name, self.quota))
        })
    }

    /// What this policy declares about its shared limiter (collected at start-up to find conflicting names).
    pub fn declared(&self) -> (Kind, &'static str, Declaration) {
        // The quota, and where decisions are made: the backend and what to do when it fails.
        #[cfg(feature = "redis")]
        let settings = Settings::new((self.quota, self.remote.redis));
        #[cfg(not(feature = "redis"))]
        let settings = Settings::new(self.quota);
        (Kind::RATE_LIMITER, self.name(), Declaration { call_site: self.call_site, settings })
    }

    /// Runs `call` once admitted with cost 1 and no key; a refusal is answered with `refuse(error)`.
    #[inline]
    pub fn run<'p, R, F, G>(&'p self, call: F, refuse: G) -> impl Future<Output = R> + use<'p, R, F, G>
    where
        F: Future<Output = R>,
        G: FnOnce(Error) -> R,
    {
        self.run_with(None::<&()>, 1u64, call, refuse)
    }

    /// Runs `call` once admitted, spending `cost` units of `key`'s state (of the shared state when `key` is `None`);
    /// a refusal is answered with `refuse(error)`, where `error` is [`Error::RateLimited`] or
    /// [`Error::CostAboveLimit`]. The key is hashed at once and not held. Dropping the returned future while it waits
    /// gives back whatever it reserved.
    #[inline]
    pub fn run_with<'p, K, C, F, R, G>(
        &'p self,
        key: Option<&K>,
        cost: C,
        call: F,
        refuse: G,
    ) -> impl Future<Output = R> + use<'p, K, C, F, R, G>
    where
        K: Hash + ?Sized,
        C: Cost,
        F: Future<Output = R>,
        G: FnOnce(Error) -> R,
    {
        #[cfg(feature = "redis")]
        {
            if self.remote.is_set() {
                return self::redis::Run::Remote { future: self.run_remote(key, cost.units(), call, refuse) };
            }
            self::redis::Run::Memory { future: self.run_memory(key, cost, call, refuse) }
        }
        #[cfg(not(feature = "redis"))]
        self.run_memory(key, cost, call, refuse)
    }

    /// The in-memory path: decisions on this process's cells, without a future between the policy and them.
    #[inline]
    fn run_memory<'p, K, C, F, R, G>(
        &'p self,
        key: Option<&K>,
        cost: C,
        call: F,
        refuse: G,
    ) -> impl Future<Output = R> + use<'p, K, C, F, R, G>
    where
        K: Hash + ?Sized,
        C: Cost,
        F: Future<Output = R>,
        G: FnOnce(Error) -> R,
    {
        let limiter = self.limiter();
        let key = limiter.key(key);
        let cost = cost.units();
        let max_wait = match self.on_limit {
            OnLimit::Reject => None,
            OnLimit::Wait { max_wait } => Some(max_wait),
        };
        let windows = self.quota.strategy().uses_windows();
        async move {
            // A waiting call never waits past the deadline it runs under.
            let deadline = max_wait.map(|max_wait| crate::deadline::nearest(Instant::now() + max_wait));
            let mut waited = false;
            loop {
                let patience = deadline.map_or(0, |deadline| nanos(deadline.saturating_duration_since(Instant::now())));
                match limiter.decide_now(key, cost, Patience::Within(patience)) {
                    Outcome::Admit { wait: 0 } => {
                        limiter.telemetry().record(if waited { Decision::Delayed } else { Decision::Admitted });
                        return call.await;
                    }
                    Outcome::Admit { wait } => {
                        let reservation = Reservation { limiter, key, cost };
                        tokio::time::sleep(Duration::from_nanos(wait)).await;
                        reservation.keep();
                        limiter.telemetry().record(Decision::Delayed);
                        return call.await;
                    }
                    Outcome::Limited { retry_after, .. }
                        if windows
                            && deadline.is_some_and(|deadline| {
                                Instant::now() + Duration::from_nanos(retry_after) <= deadline
                            }) =>
                    {
                        tokio::time::sleep(Duration::from_nanos(retry_after)).await;
                        waited = true;
                    }
                    outcome => {
                        limiter.telemetry().record(Decision::Refused);
                        let denied = limiter.denied(outcome, cost);
                        tracing::trace!(limiter = limiter.name(), ?denied, "rate limited");
                        return refuse(denied.into_error(limiter.name()));
                    }
                }
            }
        }
    }
}

/// A turn charged ahead for a call still waiting; given back if the wait is abandoned.
struct Reservation<'l> {
    limiter: &'l RateLimiter,
    key: Option<KeyHash>,
    cost: u64,
}

impl Reservation<'_> {
    /// The call starts: its units stay spent.
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.limiter.refund_now(self.key, self.cost);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A call's cost in units: any integer. Negative costs count as 0; costs beyond `u64` as `u64::MAX`.
///
/// ```
/// use adk_runtime::rate_limit::Cost;
/// assert_eq!(4096u32.units(), 4096);
/// assert_eq!((-3i64).units(), 0);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a rate limit cost",
    label = "not a whole number of units",
    note = "a cost counts units such as tokens or cents: give an integer (e.g. `cost = req.max_tokens`)"
)]
pub trait Cost {
    /// The cost in units.
    fn units(self) -> u64;
}

macro_rules! unsigned_cost {
    ($($t:ty),*) => {$(
        impl Cost for $t {
            #[inline]
            fn units(self) -> u64 {
                u64::try_from(self).unwrap_or(u64::MAX)
            }
        }
    )*};
}

macro_rules! signed_cost {
    ($($t:ty),*) => {$(
        impl Cost for $t {
            #[inline]
            fn units(self) -> u64 {
                if self < 0 { 0 } else { u64::try_from(self).unwrap_or(u64::MAX) }
            }
        }
    )*};
}

unsigned_cost!(u8, u16, u32, u64, u128, usize);
signed_cost!(i8, i16, i32, i64, i128, isize);

#[cfg(test)]
mod tests;
