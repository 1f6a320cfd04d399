//! `#[cached]`: memoised calls with a time to live, a time to idle, a bounded size, single flight and invalidation by
//! name.
//!
//! A function's [`CachePolicy`] is a `static` built at compile time. On its first call it declares its cache name in
//! the [`registry`](crate::registry()) (the function's path unless `name` is given) and keeps the shared store; each
//! call then costs a lookup in that store and, on a miss, one run of the body for all the callers missing on the same
//! key at once.
//!
//! # Behaviour
//! - **What is stored**: with [`OkValues`], the `Ok` value of a `Result`; errors pass through and the next caller
//!   runs the body again. With [`Outputs`], whatever the body returns (for functions that do not return `Result`).
//! - **Single flight**: concurrent callers missing on one key wait for one run of the body (the leader's) and share its
//!   value, so at most one body per key runs at a time. If that run fails (errors are not `Clone`: the leader keeps
//!   its own) or is cancelled (its future dropped, or it panicked), the caller that has waited longest takes over and
//!   runs its body, while the others keep waiting for its value, or for the next turn if it fails too. So a failing
//!   dependency sees one call per key at a time, not every waiter at once; the price is that the last of `n`
//!   waiters may wait through `n - 1` failed runs before its own, so a `#[timeout]` above `#[cached]` is what bounds a
//!   caller's whole wait (one below it bounds each run). A waiter that is dropped gives up its place, and a turn
//!   handed to it passes to the next. Nobody is left waiting.
//! - **Expiry**: an entry is served while younger than `ttl` and, with `tti`, while read at least once per `tti` (its
//!   insertion counts as a read; reads refresh it with 1 ms resolution). Both are measured on tokio's clock
//!   ([`tokio::time::Instant`]), so `#[tokio::test(start_paused = true)]` steps through them. Without either, an
//!   entry stays until evicted or invalidated.
//! - **Bounded memory**: at most about `max_entries` entries per key and value type (default
//!   [`CachePolicy::DEFAULT_MAX_ENTRIES`]); the bound is split evenly among the table's internal shards, so one shard
//!   may evict a little before the total is reached. Eviction keeps frequently read entries over one-off ones (CLOCK-Pro,
//!   close to S3-FIFO). Expired entries are dropped when read; those nobody reads again are reclaimed by the cache's
//!   own traffic, on tokio's clock like the reads: every 16th miss or insertion of a store looks at up to 64 of its
//!   entries past their deadline (earliest first) and removes them, so memory returns after expiry without reads of
//!   the same keys, and a paused-time test is never raced by a clock of another kind. A store that sees no traffic
//!   at all keeps its expired entries (at most `max_entries`) until its next miss or insertion.
//! - **Invalidation**: [`Registry::cache`](crate::Registry::cache) gives a [`CacheHandle`] to remove one key or all of
//!   them. A value being computed during an invalidation still answers its callers but is not stored; callers
//!   arriving after the invalidation start a run of their own beside it (and, should the first run fail, its waiters
//!   join the new one).
//! - **Sync callers**: [`CachePolicy::get_or_run_sync`] has the same hits, expiry and metrics, without single flight:
//!   concurrent sync misses each run the body.
//! - **Metrics**: `adk_cache_requests_total{cache,result="hit"|"miss"}` (a caller that waited for a leader counts as a
//!   miss), `adk_cache_entries{cache}` (read from the stores when the metrics are gathered, and published at once
//!   after an invalidation; it counts expired entries not yet reclaimed),
//!   `adk_cache_evictions_total{cache}` (entries dropped for size or expiry, not invalidations).
//!
//! # The store
//! Entries live in a [`quick_cache`] table; single flight is a small map of the fills in progress, touched only on a
//! miss; each entry carries its deadline on tokio's clock, checked on read. In `benches/cache.rs` (one thread, `u64`
//! keys, `Arc<str>` values) a `quick_cache` get took about 12 ns and a `moka` `sync::Cache` get about 110 ns, with or
//! without moka's own expiry. moka's expiry runs on its own clock, not tokio's, so it would have been paid for and then
//! bypassed; its `future::Cache::get_with` brings single flight, but on a store ten times slower to hit, where single
//! flight here costs nothing on a hit. A hit here costs about 2 to 2.5 times a bare
//! `quick_cache` get (the typed store behind the name, the hit counter, the entry's bookkeeping), and a cache with a
//! `ttl` or `tti` adds one read of tokio's clock (about 25 ns on the same machine).
//!
//! Reclaiming expired entries keeps, beside the table, a min-heap of `(deadline, key)` for the entries that expire,
//! filled on insertion (a clone of the key, on the miss path) and never touched by a hit. A step pops the keys whose
//! deadline has passed and looks at each entry under its shard's lock: gone (evicted, replaced, invalidated) or
//! expired, the key is forgotten; read since (a `tti`) or replaced with a later deadline, it goes back at its new
//! deadline. The heap may hold keys of entries long gone; once it holds more than twice `max_entries`, one step goes
//! through all of it and keeps one element per key still held. Reclaiming has no thread of its own: a thread has
//! only the real clock, which races tokio's paused clock in tests, and a task would die with whichever runtime
//! spawned it.
//!
//! # Backends
//! Where a cache's entries live is a [`Backend`]: the in-memory store above, and later a store a fleet shares
//! (Redis). Every backend passes one conformance suite (`cache/conformance.rs`). The decisions behind the trait:
//! - **Typed, not bytes**: `Backend<K, V>` takes the cache's own key and value types, so the in-memory store keeps
//!   values as they are (no serialisation) and a remote backend does its own encoding (serde, as `backend = "redis"`
//!   will require of the output type).
//! - **Boxed futures, behind `dyn`**: every method answers a [`BoxFuture`], so a remote backend can be held as
//!   `Arc<dyn Backend<K, V>>` and chosen at run time (from configuration). The in-memory store implements the trait
//!   too, but the policy reaches it directly: a hit stays a table lookup, a clone and a counter, with no future to
//!   box and no dynamic call. No remote backend exists yet, so the policy holds only in-memory stores; one will be a
//!   second kind of store the policy tells apart after its in-memory lookup, reached from the boxed miss path, so the
//!   in-memory hit pays one branch at most.
//! - **`ttl` per insertion**: a remote store expires keys itself (PX on Redis), and a `ttl` changed by a configuration
//!   reload applies from the next insertion without rebuilding the backend. `tti` is the backend's own setting: it
//!   is a write on every read, which a remote backend may do differently (or not at all) and says so.
//! - **Invalidation revokes leases**: [`Backend::invalidate`] and [`Backend::invalidate_all`] also end the leases of
//!   what they remove, so a value computed before an invalidation (anywhere in the fleet) is not stored after it, as
//!   here. On Redis, `invalidate_all` is expected to move the name to a new generation of keys (one `INCR`) rather than
//!   scan and delete.
//! - **Single flight across processes is a lease**: within a process, the map of flights makes concurrent misses wait
//!   for one caller (today it sits in the in-memory store; in front of a remote one, it will stay in the process).
//!   That caller then takes the key's [`Lease`] (a short-lived `SET NX PX` on Redis,
//!   with a random token), runs the body and [`fill`](Backend::fill)s: the value is stored only if the lease still
//!   holds, and the lease ends in the same step. A caller that finds the lease held polls [`get`](Backend::get) until
//!   the value appears or the lease is free. A failed run [`release`](Backend::release)s the lease, so the next
//!   process takes over at once; a crashed one delays the others by the lease's hold at most. Tokens tell holders
//!   apart, so a holder whose lease lapsed can neither store over nor release its successor's.
//! - **`len` is for operators**: on a remote store it may be a scan, so no call's path uses it.
//! - **The in-memory store keeps leases too**, on tokio's clock, though its own callers never need them: so it
//!   passes the same suite, and code written against the trait behaves the same over it as over Redis.
//!
//! ```
//! use std::time::Duration;
//! use adk_runtime::cache::{CachePolicy, OkValues};
//!
//! static FORECASTS: CachePolicy = CachePolicy::new("weather::forecast", "src/weather.rs:12")
//!     .with_ttl(Duration::from_secs(300))
//!     .with_max_entries(1_000);
//!
//! async fn forecast(city: &str) -> Result<String, std::io::Error> {
//!     FORECASTS.get_or_run((city.to_owned(),), async { Ok(format!("sunny in {city}")) }, OkValues).await
//! }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! assert_eq!(forecast("Paris").await.unwrap(), "sunny in Paris");
//! # });
//! ```

mod backend;
mod builder;
#[cfg(test)]
mod conformance;
mod expiry;
mod flight;
mod named;
#[cfg(feature = "redis")]
mod redis;
mod registered;
mod store;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[cfg(feature = "redis")]
pub use self::redis::{RedisBackend, RedisCacheable};
pub use backend::{Backend, BackendError, BoxFuture, Lease};
pub use builder::CachePolicyBuilder;
pub use named::CacheHandle;

use crate::registry::{Declaration, Kind, Settings, registry};
pub(crate) use named::NamedCache;
pub use store::CacheKey;
use store::{CacheValue, Role, Store, Waited};

/// The settings of a named cache.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::cache::CachePolicy;
///
/// static POLICY: CachePolicy = CachePolicy::new("doc::settings", "doc.rs:1").with_tti(Duration::from_secs(60));
/// assert_eq!(POLICY.settings().tti, Some(Duration::from_secs(60)));
/// assert_eq!(POLICY.settings().max_entries, CachePolicy::DEFAULT_MAX_ENTRIES);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Longest time an entry is served after it was stored.
    pub ttl: Option<Duration>,
    /// Longest time an entry is kept without being read.
    pub tti: Option<Duration>,
    /// Bound on the entries held (per key and value type).
    pub max_entries: u64,
}

/// The cache of one function. Construct it in a `static` with [`CachePolicy::new`] and the `with_*` builders (all
/// `const`); the named cache behind it is declared on the first call and kept, so later calls do no lookup by name.
///
/// One policy serves any key and value types (they are inferred at each call): a generic function gets one store
/// per instantiation, all under its name. The first instantiation to run is reached directly; others pay a read
/// lock per call to find their store.
///
/// ```
/// use adk_runtime::cache::{CachePolicy, OkValues};
///
/// static SQUARES: CachePolicy = CachePolicy::new("doc::square", "doc.rs:1");
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut runs = 0;
/// for _ in 0..3 {
///     let n: Result<u64, std::io::Error> = SQUARES.get_or_run(12_u64, async { runs += 1; Ok(144) }, OkValues).await;
///     assert_eq!(n.unwrap(), 144);
/// }
/// assert_eq!(runs, 1);
/// # });
/// ```
pub struct CachePolicy {
    function: &'static str,
    call_site: &'static str,
    name: Option<&'static str>,
    settings: CacheSettings,
    resolved: OnceLock<Resolved>,
    /// Set for a cache of its own, in no registry ([`CachePolicyBuilder::private`](builder::CachePolicyBuilder::private)).
    private: Option<OnceLock<Arc<NamedCache>>>,
}

struct Resolved {
    named: Arc<NamedCache>,
    /// The store of the first key and value types used, reached without a lock.
    first: Arc<dyn Any + Send + Sync>,
}

/// Defaults, documented on `#[adk::cached]`.
impl CachePolicy {
    /// Bound on the entries of a cache that does not set `max_entries`: memory stays bounded unless asked otherwise.
    pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

    /// The cache of `function` (its path, used as the cache's name unless [`CachePolicy::with_name`] is given), declared
    /// at `call_site` (`file:line`): no expiry, at most [`CachePolicy::DEFAULT_MAX_ENTRIES`] entries.
    pub const fn new(function: &'static str, call_site: &'static str) -> Self {
        CachePolicy {
            function,
            call_site,
            name: None,
            settings: CacheSettings { ttl: None, tti: None, max_entries: Self::DEFAULT_MAX_ENTRIES },
            resolved: OnceLock::new(),
            private: None,
        }
    }

    /// Shares the cache called `name` (with every function naming it) and makes it reachable by that name.
    pub const fn with_name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// Serves an entry for at most `ttl` after it was stored.
    pub const fn with_ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = Some(ttl);
        self
    }

    /// Drops an entry not read for `tti`.
    pub const fn with_tti(mut self, tti: Duration) -> Self {
        self.settings.tti = Some(tti);
        self
    }

    /// Holds at most about `max_entries` entries (0 stores nothing, leaving only single flight).
    pub const fn with_max_entries(mut self, max_entries: u64) -> Self {
        self.settings.max_entries = max_entries;
        self
    }

    /// The cache's name: the one given, else the function's path.
    pub fn name(&self) -> &'static str {
        self.name.unwrap_or(self.function)
    }

    /// The settings this policy declares (the name's first declaration wins if they differ).
    pub fn settings(&self) -> CacheSettings {
        self.settings
    }

    /// The named cache, declaring it if no call has yet.
    pub fn handle(&self) -> CacheHandle {
        CacheHandle::new(self.named())
    }

    /// Answers from the cache, or runs `call` (once for all concurrent callers missing on `key`) and stores what
    /// `mode` says is worth storing. `call` is not polled on a hit, so build it lazily: `async { <body> }`.
    ///
    /// ```
    /// use adk_runtime::cache::{CachePolicy, Outputs};
    ///
    /// static GREETINGS: CachePolicy = CachePolicy::new("doc::greet", "doc.rs:1");
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let greeting: String = GREETINGS.get_or_run(("Ada".to_owned(),), async { "hello Ada".to_owned() }, Outputs).await;
    /// assert_eq!(greeting, "hello Ada");
    /// # });
    /// ```
    #[inline]
    pub async fn get_or_run<K, R, M>(&self, key: K, call: impl Future<Output = R>, mode: M) -> R
    where
        K: CacheKey,
        M: Cacheable<R>,
    {
        let _ = mode;
        let store = self.store::<K, M::Value>();
        if let Some(value) = store.get(&key) {
            return M::from_cached(value);
        }
        // Boxed so the miss path's state (waiting, leading) does not inflate every caller's future: inline, it doubled
        // the cost of a hit.
        Box::pin(fill::<K, R, M>(&store, &key, call)).await
    }

    /// [`CachePolicy::get_or_run`] for sync code: the same hits, expiry and metrics, but concurrent misses each run
    /// `call` (no single flight).
    ///
    /// ```
    /// use adk_runtime::cache::{CachePolicy, OkValues};
    ///
    /// static PARSED: CachePolicy = CachePolicy::new("doc::parse", "doc.rs:1");
    ///
    /// let parse = |s: &str| PARSED.get_or_run_sync(s.to_owned(), || s.parse::<u32>(), OkValues);
    /// assert_eq!(parse("42"), Ok(42));
    /// assert!(parse("x").is_err());
    /// ```
    #[inline]
    pub fn get_or_run_sync<K, R, M>(&self, key: K, call: impl FnOnce() -> R, mode: M) -> R
    where
        K: CacheKey,
        M: Cacheable<R>,
    {
        let _ = mode;
        let store = self.store::<K, M::Value>();
        if let Some(value) = store.get(&key) {
            return M::from_cached(value);
        }
        let epoch = store.epoch();
        let output = call();
        if let Some(value) = M::cached_value(&output) {
            store.insert(key, value.clone(), epoch);
        }
        output
    }

    /// The fresh value under `key`, counted as a hit or a miss.
    ///
    /// ```
    /// use adk_runtime::cache::CachePolicy;
    ///
    /// static RATES: CachePolicy = CachePolicy::new("doc::rates", "doc.rs:1");
    ///
    /// RATES.insert("EUR", 1.08_f64.to_bits());
    /// assert_eq!(RATES.get::<_, u64>(&"EUR").map(f64::from_bits), Some(1.08));
    /// assert_eq!(RATES.get::<_, u64>(&"GBP"), None);
    /// ```
    #[inline]
    pub fn get<K, V>(&self, key: &K) -> Option<V>
    where
        K: CacheKey,
        V: Clone + Send + Sync + 'static,
    {
        self.store::<K, V>().get(key)
    }

    /// Stores `value` under `key`, replacing any entry.
    pub fn insert<K, V>(&self, key: K, value: V)
    where
        K: CacheKey,
        V: Clone + Send + Sync + 'static,
    {
        let store = self.store::<K, V>();
        let epoch = store.epoch();
        store.insert(key, value, epoch);
    }

    #[inline]
    fn store<K: CacheKey, V: CacheValue>(&self) -> StoreRef<'_, K, V> {
        let resolved = self.resolved.get_or_init(|| self.resolve::<K, V>());
        match resolved.first.downcast_ref::<Store<K, V>>() {
            Some(store) => StoreRef::First(store),
            None => StoreRef::Other(resolved.named.store()),
        }
    }

    fn named(&self) -> Arc<NamedCache> {
        match self.resolved.get() {
            Some(resolved) => resolved.named.clone(),
            None => self.declare(),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve<K: CacheKey, V: CacheValue>(&self) -> Resolved {
        let named = self.declare();
        let first = named.store::<K, V>();
        Resolved { named, first }
    }

    fn declare(&self) -> Arc<NamedCache> {
        if let Some(own) = &self.private {
            return own.get_or_init(|| Arc::new(NamedCache::new(self.name(), self.settings))).clone();
        }
        let (_, name, declaration) = self.declared();
        registry()
            .instances::<NamedCache>()
            .declare(name, declaration, || Arc::new(NamedCache::new(name, self.settings)))
    }

    /// What this policy declares about its shared cache (collected at start-up to find conflicting names).
    pub fn declared(&self) -> (Kind, &'static str, Declaration) {
        (Kind::CACHE, self.name(), Declaration { call_site: self.call_site, settings: Settings::new(self.settings) })
    }
}

impl fmt::Debug for CachePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachePolicy")
            .field("function", &self.function)
            .field("name", &self.name())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The miss path: join the call in flight for `key`, or lead one.
async fn fill<K, R, M>(store: &Store<K, M::Value>, key: &K, call: impl Future<Output = R>) -> R
where
    K: CacheKey,
    M: Cacheable<R>,
{
    let leader = loop {
        match store.join_or_lead(key) {
            Role::Hit(value) => return M::from_cached(value),
            Role::Lead(leader) => break leader,
            Role::Wait(waiter) => match waiter.wait().await {
                Waited::Ready(value) => return M::from_cached(value),
                Waited::Lead(leader) => break leader,
                Waited::Ended => continue,
            },
        }
    };
    let output = call.await;
    match M::cached_value(&output) {
        Some(value) => leader.succeed(value.clone()),
        None => leader.fail(),
    }
    output
}

enum StoreRef<'p, K: CacheKey, V: CacheValue> {
    First(&'p Store<K, V>),
    Other(Arc<Store<K, V>>),
}

impl<K: CacheKey, V: CacheValue> Deref for StoreRef<'_, K, V> {
    type Target = Store<K, V>;

    #[inline]
    fn deref(&self) -> &Store<K, V> {
        match self {
            StoreRef::First(store) => store,
            StoreRef::Other(store) => store,
        }
    }
}

/// Which part of a call's output `R` is stored, and how a stored value answers a later call.
///
/// ```
/// use adk_runtime::cache::{Cacheable, OkValues, Outputs};
///
/// let failed: Result<u32, String> = Err("down".into());
/// assert_eq!(OkValues::cached_value(&failed), None);
/// assert_eq!(<OkValues as Cacheable<Result<u32, String>>>::from_cached(7), Ok(7));
/// assert_eq!(Outputs::cached_value(&"any".to_owned()), Some(&"any".to_owned()));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cache the output `{R}`",
    label = "the output must be `Clone + Send + Sync + 'static` (with `OkValues`, a `Result` whose `Ok` type is)",
    note = "#[cached] stores the `Ok` value of a function returning `Result`, and the whole output otherwise; derive `Clone` or wrap the value in an `Arc`"
)]
pub trait Cacheable<R> {
    /// What is stored.
    type Value: Clone + Send + Sync + 'static;
    /// The part of `output` worth storing, if any.
    fn cached_value(output: &R) -> Option<&Self::Value>;
    /// The output answering a hit.
    fn from_cached(value: Self::Value) -> R;
}

/// Store the `Ok` values of a `Result`; errors pass through uncached.
#[derive(Debug, Clone, Copy, Default)]
pub struct OkValues;

impl<T: Clone + Send + Sync + 'static, E> Cacheable<Result<T, E>> for OkValues {
    type Value = T;

    #[inline]
    fn cached_value(output: &Result<T, E>) -> Option<&T> {
        output.as_ref().ok()
    }

    #[inline]
    fn from_cached(value: T) -> Result<T, E> {
        Ok(value)
    }
}

/// Store every output, whatever it is (for functions that do not return `Result`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Outputs;

impl<R: Clone + Send + Sync + 'static> Cacheable<R> for Outputs {
    type Value = R;

    #[inline]
    fn cached_value(output: &R) -> Option<&R> {
        Some(output)
    }

    #[inline]
    fn from_cached(value: R) -> R {
        value
    }
}

#[cfg(test)]
mod tests;
