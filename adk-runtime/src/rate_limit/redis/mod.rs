//! The Redis backend: a limiter's state in Redis, shared by every process of a fleet, decided by a server-side script
//! that mirrors `algorithm.rs`; and what a decision does when Redis cannot be reached.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use ::redis::Script;
use siphasher::sip::SipHasher13;

use super::algorithm::Patience;
use super::backend::{Backend, Denied, KeyHash, LimiterSpec, Start, Verdict};
use super::memory::MemoryBackend;
use super::rate::{Quota, Rate, Strategy};
use super::{OnLimit, RateLimitPolicy, RateLimiter};
use crate::error::Error;
use crate::redis::{RedisConnection, RedisError};
use crate::registry::{Instance, Kind, registry};
use tokio::time::Instant;

static DECIDE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("decide.lua")));
static REFUND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("refund.lua")));

/// The largest integer a Lua number (a double) holds exactly.
const LUA_MAX: u64 = (1 << 53) - 1;

/// What a decision does when the backend cannot answer (Redis down, too slow, its breaker open).
///
/// ```
/// use adk_runtime::rate_limit::OnBackendError;
///
/// assert_eq!(OnBackendError::default(), OnBackendError::Local);
/// assert_eq!("deny".parse::<OnBackendError>(), Ok(OnBackendError::Deny));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBackendError {
    /// Decide in this process, on a limiter of the same strategy with the quota divided by the fleet's size.
    #[default]
    Local,
    /// Admit the call.
    Allow,
    /// Refuse the call with [`Error::BackendUnavailable`].
    Deny,
}

impl std::str::FromStr for OnBackendError {
    type Err = String;

    /// `"local"`, `"allow"` or `"deny"`, as the attribute's `on_backend_error` takes them.
    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "local" => Ok(OnBackendError::Local),
            "allow" => Ok(OnBackendError::Allow),
            "deny" => Ok(OnBackendError::Deny),
            other => Err(format!("unknown on_backend_error `{other}`: expected one of \"local\", \"allow\", \"deny\"")),
        }
    }
}

/// A limiter's state in Redis (or Redis Cluster), so that every process sharing the Redis spends one quota.
///
/// One decision is one `EVALSHA` of a Lua script (loaded again by itself after a `SCRIPT FLUSH` or on a new
/// server) that reads the server's clock (`TIME`) and applies the strategy's transition, mirroring the memory
/// backend's to the nanosecond; the crate's conformance suite holds both to the same answers.
///
/// **Keys.** A caller's key is hashed with SipHash-1-3 under [`RedisSettings::hash_key`](crate::redis::RedisSettings::hash_key)
/// (a fixed key unless set), fed by the key's `Hash` impl, so every replica built from the same code hashes a key
/// alike. State lives under `<prefix>:rl:{<limiter>}:<hash, 16 hex digits>` (`...:shared` for calls without a key):
/// the braces are a Redis Cluster hash tag, so one limiter's keys share one slot. Every write sets a time to live of
/// at least [`LimiterSpec::idle_after`] (and until a turn reserved ahead has passed), so idle keys disappear by
/// themselves. [`reset`](Backend::reset) raises the limiter's generation (`<prefix>:rl:{<limiter>}:generation`):
/// state written before reads as a key never seen, and expires as usual.
///
/// **Exactness.** Lua's numbers are doubles, so the script keeps absolute times in microseconds since the Unix
/// epoch plus nanoseconds, and computes in nanoseconds only relative to now. Decisions are exact while a limiter's
/// limit × interval stays below 2^53 ns (104 days) and its interval is above 200 ns (up to 5 million units a second);
/// every quota the attribute accepts for a real service lies well inside.
///
/// **When Redis fails** (an error, no answer within the command timeout, or the connection's circuit breaker open
/// after recent failures, when nothing is sent at all): [`OnBackendError::Local`] (default) decides in this process on
/// a limiter of the same strategy whose quota is divided by [`fleet_size`](Self::fleet_size) (buckets refill
/// `fleet_size` times slower and hold `burst / fleet_size`, at least 1; windows admit `count / fleet_size`, at least
/// 1); [`OnBackendError::Allow`] admits; [`OnBackendError::Deny`] answers [`Error::BackendUnavailable`]. Decisions
/// go back to Redis as soon as it answers again.
///
/// It holds one limiter's state in this process (the local fallback): use one backend with one [`LimiterSpec`],
/// over a [`RedisConnection`] that any number of backends share.
///
/// ```no_run
/// use std::num::NonZeroU32;
/// use adk_runtime::rate_limit::{OnBackendError, Quota, RateLimiter, RedisBackend, Start};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = RedisBackend::new(adk_runtime::redis::connection()?)
///     .on_backend_error(OnBackendError::Local)
///     .fleet_size(NonZeroU32::new(4).unwrap());
/// let limiter = RateLimiter::with_backend("openai", Quota::per_minute(3_500), backend);
/// let verdict = limiter.decide(Some("alice"), 1, Start::Immediately).await?;
/// println!("admitted: {}", verdict.is_admitted());
/// # Ok(()) }
/// ```
pub struct RedisBackend {
    connection: RedisConnection,
    on_error: OnBackendError,
    fleet_size: NonZeroU32,
    local: MemoryBackend,
    /// The fallback's limiter, for the quota it was made from.
    local_spec: Mutex<Option<(Quota, LimiterSpec)>>,
    clock: Clock,
}

/// Whose time a decision is taken at.
#[derive(Debug, Clone)]
enum Clock {
    /// The server's (`TIME`), as microseconds since the Unix epoch.
    Server,
    /// Nanoseconds a test sets, counted from the backend's creation.
    #[cfg(test)]
    Manual { now: std::sync::Arc<std::sync::atomic::AtomicU64>, origin: u64 },
}

impl RedisBackend {
    /// A backend over `connection`, deciding locally when Redis fails, as a fleet of one.
    pub fn new(connection: RedisConnection) -> Self {
        RedisBackend {
            connection,
            on_error: OnBackendError::Local,
            fleet_size: NonZeroU32::MIN,
            local: MemoryBackend::new(),
            local_spec: Mutex::new(None),
            clock: Clock::Server,
        }
    }

    /// What a decision does when Redis cannot answer (default [`OnBackendError::Local`]).
    pub fn on_backend_error(mut self, on_error: OnBackendError) -> Self {
        self.on_error = on_error;
        self
    }

    /// How many processes share the quota: a local decision allows each this share of it (default 1).
    pub fn fleet_size(mut self, fleet_size: NonZeroU32) -> Self {
        self.fleet_size = fleet_size;
        self
    }

    /// The connection it decides over.
    pub fn connection(&self) -> &RedisConnection {
        &self.connection
    }

    /// A backend whose decisions are taken at the time `now` holds (nanoseconds), counted from its creation, as the
    /// conformance suite needs: Redis's own clock cannot be stepped.
    #[cfg(test)]
    pub(crate) fn with_manual_clock(mut self, now: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        let origin = now.load(std::sync::atomic::Ordering::SeqCst);
        self.clock = Clock::Manual { now, origin };
        self
    }

    /// `(microseconds, nanoseconds)` for the script, or nothing for the server's clock.
    fn now(&self) -> Option<(u64, u64)> {
        match &self.clock {
            Clock::Server => None,
            #[cfg(test)]
            Clock::Manual { now, origin } => {
                let nanos = now.load(std::sync::atomic::Ordering::SeqCst) - origin;
                Some((nanos / 1_000, nanos % 1_000))
            }
        }
    }

    /// The key's state and the limiter's generation; one hash tag, so one Cluster slot.
    fn keys(&self, limiter: &LimiterSpec, key: Option<KeyHash>) -> (String, String) {
        let base = format!("{}:rl:{{{}}}", self.connection.settings().get_prefix(), limiter.name());
        let state = match key {
            Some(key) => format!("{base}:{:016x}", key.get()),
            None => format!("{base}:shared"),
        };
        (state, format!("{base}:generation"))
    }

    /// The fallback's limiter for `limiter`'s quota now.
    fn local_spec(&self, limiter: &LimiterSpec) -> LimiterSpec {
        let quota = limiter.quota();
        let mut cached = self.local_spec.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((made_from, spec)) if *made_from == quota => spec.clone(),
            _ => {
                let spec = LimiterSpec::new(limiter.name(), share(quota, self.fleet_size.get()));
                *cached = Some((quota, spec.clone()));
                spec
            }
        }
    }

    fn fallback(
        &self,
        limiter: &LimiterSpec,
        key: Option<KeyHash>,
        cost: u64,
        start: Start,
        error: &RedisError,
    ) -> Result<Verdict, Error> {
        tracing::debug!(limiter = limiter.name(), %error, mode = ?self.on_error, "rate limit decided without Redis");
        match self.on_error {
            OnBackendError::Allow => Ok(Verdict::Admit { wait: Duration::ZERO }),
            OnBackendError::Deny => Err(Error::backend_unavailable(limiter.name(), "redis")),
            OnBackendError::Local => {
                let spec = self.local_spec(limiter);
                let algorithm = spec.algorithm();
                let outcome = self.local.decide_now(algorithm, key, cost, start.patience());
                Ok(Verdict::from_outcome(outcome, cost, algorithm.limit()))
            }
        }
    }
}

/// `quota` shared by `fleet_size` processes: each gets its part of the rate and of the burst.
fn share(quota: Quota, fleet_size: u32) -> Quota {
    if fleet_size <= 1 {
        return quota;
    }
    let (rate, strategy) = (quota.rate(), quota.strategy());
    if strategy.uses_windows() {
        let count = (rate.count() / u64::from(fleet_size)).max(1);
        return Quota::new(Rate::new(count, rate.period())).with_strategy(strategy);
    }
    let burst = (quota.burst() / u64::from(fleet_size)).max(1);
    Quota::new(Rate::new(rate.count(), rate.period().saturating_mul(fleet_size)))
        .with_burst(burst)
        .with_strategy(strategy)
}

fn strategy_code(strategy: Strategy) -> u8 {
    match strategy {
        Strategy::Gcra => 0,
        Strategy::TokenBucket => 1,
        Strategy::LeakyBucket => 2,
        Strategy::FixedWindow => 3,
        Strategy::SlidingWindow => 4,
    }
}

/// The script's answer as a verdict: `[0, wait]` or `[1, retry_after, remaining, reset]`, in nanoseconds.
fn verdict(reply: &[i64], limit: u64) -> Result<Verdict, RedisError> {
    let nanos = |i: usize| reply.get(i).map(|&n| u64::try_from(n).unwrap_or(0));
    match (reply.first(), nanos(1), nanos(2), nanos(3)) {
        (Some(0), Some(wait), _, _) => Ok(Verdict::Admit { wait: Duration::from_nanos(wait) }),
        (Some(1), Some(retry_after), Some(remaining), Some(reset)) => Ok(Verdict::Denied(Denied::limited(
            Duration::from_nanos(retry_after),
            limit,
            remaining,
            Duration::from_nanos(reset),
        ))),
        _ => Err(RedisError::Redis(::redis::RedisError::from((
            ::redis::ErrorKind::Parse,
            "unexpected answer from the rate limit script",
        )))),
    }
}

/// Decisions in Redis; see [`RedisBackend`] for keys, clock and failures. A failed refund is given back to the local
/// fallback (where a decision taken without Redis was reserved) and otherwise dropped: the key's time to live bounds
/// what it keeps. A failed reset is [`Error::BackendUnavailable`] whatever the mode.
impl Backend for RedisBackend {
    type Error = Error;

    fn hash_key<K: Hash + ?Sized>(&self, key: &K) -> KeyHash {
        let mut hasher = SipHasher13::new_with_key(self.connection.settings().get_hash_key());
        key.hash(&mut hasher);
        KeyHash::new(hasher.finish())
    }

    async fn decide(
        &self,
        limiter: &LimiterSpec,
        key: Option<KeyHash>,
        cost: u64,
        start: Start,
    ) -> Result<Verdict, Error> {
        let algorithm = limiter.algorithm();
        let (strategy, interval, limit, window) = algorithm.parameters();
        if cost > limit {
            return Ok(Verdict::Denied(Denied::cost_above_limit(cost, limit)));
        }
        if cost == 0 {
            return Ok(Verdict::Admit { wait: Duration::ZERO });
        }
        let patience: i64 = match start.patience() {
            Patience::Immediately => -1,
            Patience::Within(patience) => patience.min(LUA_MAX) as i64,
        };
        let idle_ms = limiter.idle_after().as_millis().min(u128::from(LUA_MAX)) as u64 + 1;
        // A manual clock stands still while real time passes: keys must outlive a slow test run.
        let ttl_floor = if self.now().is_some() { idle_ms.max(60_000) } else { idle_ms };
        let (state, generation) = self.keys(limiter, key);
        let mut invocation = DECIDE.key(state);
        invocation
            .key(generation)
            .arg(strategy_code(strategy))
            .arg(interval.min(LUA_MAX))
            .arg(limit.min(LUA_MAX))
            .arg(window.min(LUA_MAX))
            .arg(cost)
            .arg(patience)
            .arg(ttl_floor);
        if let Some((micros, nanos)) = self.now() {
            invocation.arg(micros).arg(nanos);
        }
        let answer = self
            .connection
            .run("decide", |mut connection| async move { invocation.invoke_async::<Vec<i64>>(&mut connection).await })
            .await
            .and_then(|reply| verdict(&reply, limit));
        match answer {
            Ok(verdict) => Ok(verdict),
            Err(error) => self.fallback(limiter, key, cost, start, &error),
        }
    }

    async fn refund(&self, limiter: &LimiterSpec, key: Option<KeyHash>, cost: u64) -> Result<(), Error> {
        let (strategy, interval, _, _) = limiter.algorithm().parameters();
        if strategy.uses_windows() || cost == 0 {
            return Ok(());
        }
        let (state, generation) = self.keys(limiter, key);
        let mut invocation = REFUND.key(state);
        invocation.key(generation).arg(strategy_code(strategy)).arg(interval.min(LUA_MAX)).arg(cost);
        let answer = self
            .connection
            .run("refund", |mut connection| async move { invocation.invoke_async::<i64>(&mut connection).await })
            .await;
        if let Err(error) = answer {
            tracing::debug!(limiter = limiter.name(), %error, "refund given to the local fallback");
            self.local.refund_now(self.local_spec(limiter).algorithm(), key, cost);
        }
        Ok(())
    }

    async fn reset(&self, limiter: &LimiterSpec) -> Result<(), Error> {
        self.local.clear();
        let (_, generation) = self.keys(limiter, None);
        self.connection
            .run("reset", |mut connection| async move {
                ::redis::cmd("INCR").arg(generation).query_async::<i64>(&mut connection).await
            })
            .await
            .map(drop)
            .map_err(|_| Error::backend_unavailable(limiter.name(), "redis"))
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("connection", &self.connection)
            .field("on_backend_error", &self.on_error)
            .field("fleet_size", &self.fleet_size)
            .finish_non_exhaustive()
    }
}

/// A policy's choice of backend, fixed at compile time: none (memory) or Redis with its failure handling.
#[derive(Debug)]
pub(crate) struct RemotePolicy {
    pub(crate) redis: Option<(OnBackendError, u32)>,
    limiter: OnceLock<Arc<RateLimiter<RedisBackend>>>,
}

impl RemotePolicy {
    pub(crate) const fn none() -> Self {
        RemotePolicy { redis: None, limiter: OnceLock::new() }
    }

    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.redis.is_some()
    }
}

pin_project_lite::pin_project! {
    /// A policy's call on either path: the memory path's future untouched, or the Redis path's.
    #[project = RunProjection]
    pub(crate) enum Run<M, R> {
        Memory { #[pin] future: M },
        Remote { #[pin] future: R },
    }
}

impl<M: Future, R: Future<Output = M::Output>> Future for Run<M, R> {
    type Output = M::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<M::Output> {
        match self.project() {
            RunProjection::Memory { future } => future.poll(cx),
            RunProjection::Remote { future } => future.poll(cx),
        }
    }
}

impl RateLimitPolicy {
    /// The policy's Redis-backed limiter, shared by name through the registry, made on first use over the process's
    /// Redis. Without a usable Redis (an `ADK_REDIS_URL` that is not a Redis URL) it decides as when Redis is down.
    fn remote_limiter(&self) -> &Arc<RateLimiter<RedisBackend>> {
        self.remote.limiter.get_or_init(|| {
            let (_, name, declaration) = self.declared();
            let (on_error, fleet_size) = self.remote.redis.unwrap_or_default();
            registry().instances::<RateLimiter<RedisBackend>>().declare(name, declaration, || {
                let connection = crate::redis::connection().unwrap_or_else(|error| {
                    tracing::error!(limiter = name, %error, "no usable Redis: deciding as when Redis is down");
                    RedisConnection::unusable(error)
                });
                let backend = RedisBackend::new(connection)
                    .on_backend_error(on_error)
                    .fleet_size(NonZeroU32::new(fleet_size).unwrap_or(NonZeroU32::MIN));
                RateLimiter::with_backend(name, self.quota, backend)
            })
        })
    }

    /// The Redis path of [`run_with`](Self::run_with): one round trip per decision, the same waiting rules.
    pub(crate) fn run_remote<'p, K, F, R, G>(
        &'p self,
        key: Option<&K>,
        cost: u64,
        call: F,
        refuse: G,
    ) -> impl Future<Output = R> + use<'p, K, F, R, G>
    where
        K: Hash + ?Sized,
        F: Future<Output = R>,
        G: FnOnce(Error) -> R,
    {
        let limiter = self.remote_limiter();
        let key = key.map(|key| limiter.backend().hash_key(key));
        let max_wait = match self.on_limit {
            OnLimit::Reject => None,
            OnLimit::Wait { max_wait } => Some(max_wait),
        };
        let windows = self.quota.strategy().uses_windows();
        async move {
            let deadline = max_wait.map(|max_wait| crate::deadline::nearest(Instant::now() + max_wait));
            loop {
                let patience =
                    deadline.map_or(Duration::ZERO, |deadline| deadline.saturating_duration_since(Instant::now()));
                match limiter.decide_hashed(key, cost, Start::Within(patience)).await {
                    Ok(Verdict::Admit { wait }) if wait.is_zero() => return call.await,
                    Ok(Verdict::Admit { wait }) => {
                        let reservation = RemoteReservation { limiter: Some(limiter.clone()), key, cost };
                        tokio::time::sleep(wait).await;
                        reservation.keep();
                        return call.await;
                    }
                    Ok(Verdict::Denied(Denied::Limited { retry_after, .. }))
                        if windows && deadline.is_some_and(|deadline| Instant::now() + retry_after <= deadline) =>
                    {
                        tokio::time::sleep(retry_after).await;
                    }
                    Ok(Verdict::Denied(denied)) => return refuse(denied.into_error(limiter.name())),
                    Err(unavailable) => return refuse(unavailable),
                }
            }
        }
    }
}

/// A turn reserved in Redis for a call still waiting: given back, by a task of its own, if the wait is abandoned.
struct RemoteReservation {
    limiter: Option<Arc<RateLimiter<RedisBackend>>>,
    key: Option<KeyHash>,
    cost: u64,
}

impl RemoteReservation {
    fn keep(mut self) {
        self.limiter = None;
    }
}

impl Drop for RemoteReservation {
    fn drop(&mut self) {
        let (Some(limiter), Ok(runtime)) = (self.limiter.take(), tokio::runtime::Handle::try_current()) else { return };
        let (key, cost) = (self.key, self.cost);
        runtime.spawn(async move {
            let _ = limiter.backend().refund(limiter.spec(), key, cost).await;
        });
    }
}

/// Redis-backed limiters in the registry: their own table, apart from the in-memory ones of the same kind.
impl Instance for RateLimiter<RedisBackend> {
    const KIND: Kind = Kind::RATE_LIMITER;

    /// Forgets the local fallback's state at once and, where a runtime runs, the Redis state by a task.
    fn reset(&self) {
        self.backend().local.clear();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (connection, spec) = (self.backend().connection.clone(), self.spec().clone());
        runtime.spawn(async move {
            let backend = RedisBackend::new(connection);
            let _ = backend.reset(&spec).await;
        });
    }
}

#[cfg(test)]
mod tests;
