//! One typed cache in memory: the entries (a `quick_cache` table holding each value with its birth instant on tokio's
//! clock), the calls in flight per key, the keys to look at when reclaiming expired entries, and the metric handles
//! of the name it belongs to. It is also the in-memory [`Backend`].

use std::any::Any;
use std::collections::HashMap;
use std::future::ready;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quick_cache::sync::Cache as Table;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, UnitWeighter};
use tokio::time::Instant;

use super::CacheSettings;
use super::backend::{Backend, BackendError, BoxFuture, Lease};
use super::expiry::{ExpiryQueue, Verdict};
use super::flight::{Flight, Outcome};
use super::named::CacheMetrics;
use crate::metrics::Refresh;

/// What a cache key must be: `Hash + Eq + Clone + Send + Sync + 'static`.
///
/// ```
/// fn usable<K: adk_runtime::cache::CacheKey>() {}
/// usable::<(String, u8)>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a cache key: it must be `Hash + Eq + Clone + Send + Sync + 'static`",
    label = "not usable as a cache key",
    note = "the key is every argument, owned, unless `key = ...` chooses it"
)]
pub trait CacheKey: Hash + Eq + Clone + Send + Sync + 'static {}
impl<K: Hash + Eq + Clone + Send + Sync + 'static> CacheKey for K {}

/// What the per-call path needs of a value type.
pub(crate) trait CacheValue: Clone + Send + Sync + 'static {}
impl<V: Clone + Send + Sync + 'static> CacheValue for V {}

/// A stored value. Its instants are on tokio's clock, so expiry follows paused time in tests.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    /// `born + ttl`, kept whole so a read compares instants instead of subtracting them.
    expires_at: Option<Instant>,
    born: Instant,
    /// Nanoseconds after `born` of the latest read; present only when the cache has a `tti`.
    last_read: Option<Arc<AtomicU64>>,
}

/// A read refreshes the idle clock only when it moves it by at least this much, so hot keys read from many threads
/// do not all write the same cache line.
const IDLE_RESOLUTION: Duration = Duration::from_millis(1);

/// Counts the table's size evictions into `adk_cache_evictions_total`.
#[derive(Clone)]
struct CountEvictions(prometheus::IntCounter);

impl<K, V> Lifecycle<K, V> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: K, _: V) {
        self.0.inc();
    }
}

/// How a call that missed takes part in filling the entry.
pub(crate) enum Role<'s, K: CacheKey, V: CacheValue> {
    /// Another call filled the entry while this one looked.
    Hit(V),
    /// Run the body; others wait for it.
    Lead(Leader<'s, K, V>),
    /// Wait for the leader's value, or for this caller's turn.
    Wait(Waiter<'s, K, V>),
}

/// A fill in progress, as the map of flights holds it.
struct InFlight<V> {
    flight: Arc<Flight<V>>,
    /// Callers waiting, counted so the last caller out retires the flight.
    waiters: usize,
    /// Whether a caller holds the turn; false between a run that ended without a value and the next waiter taking
    /// over.
    leading: bool,
}

type Flights<K, V> = HashMap<K, InFlight<V>, DefaultHashBuilder>;

/// A lease granted through [`Backend::lease`].
struct Held {
    token: u64,
    /// `None` when the hold is too long to represent: it lasts until the lease is used or revoked.
    until: Option<Instant>,
}

impl Held {
    fn holds_at(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

/// Who is filling which key: this process's callers (the flights) and the holders of [`Backend`] leases.
struct Fills<K, V> {
    flights: Flights<K, V>,
    leases: HashMap<K, Held, DefaultHashBuilder>,
}

pub(crate) struct Store<K: CacheKey, V: CacheValue> {
    table: Table<K, Entry<V>, UnitWeighter, DefaultHashBuilder, CountEvictions>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    /// Whether reads must check the clock: set from the start with a `ttl` or `tti`, and by the first entry stored
    /// with a deadline of its own. Never cleared, so a read that sees an entry with a deadline sees it set.
    expires: AtomicBool,
    metrics: CacheMetrics,
    /// The table's length as last added to the shared `adk_cache_entries` gauge.
    reported_len: AtomicI64,
    /// Also the lock that makes "insert the leader's value and retire its flight" one step for callers that miss, and
    /// that orders insertions after invalidations.
    fills: Mutex<Fills<K, V>>,
    /// Bumped (under the `fills` lock) by every invalidation; an insertion computed before one is dropped.
    epoch: AtomicU64,
    expiry: ExpiryQueue<K>,
    /// The token of the next lease granted.
    next_lease: AtomicU64,
}

impl<K: CacheKey, V: CacheValue> Store<K, V> {
    pub(crate) fn new(settings: CacheSettings, metrics: CacheMetrics) -> Self {
        let capacity = settings.max_entries;
        let options = OptionsBuilder::new()
            .estimated_items_capacity(usize::try_from(capacity).unwrap_or(usize::MAX))
            .weight_capacity(capacity)
            .build()
            .expect("both capacities are set");
        let evictions = CountEvictions(metrics.evictions.clone());
        Store {
            table: Table::with_options(options, UnitWeighter, DefaultHashBuilder::default(), evictions),
            ttl: settings.ttl,
            tti: settings.tti,
            expires: AtomicBool::new(settings.ttl.is_some() || settings.tti.is_some()),
            metrics,
            reported_len: AtomicI64::new(0),
            fills: Mutex::new(Fills { flights: HashMap::default(), leases: HashMap::default() }),
            epoch: AtomicU64::new(0),
            expiry: ExpiryQueue::new(capacity),
            next_lease: AtomicU64::new(1),
        }
    }

    #[inline]
    pub(crate) fn expires(&self) -> bool {
        self.expires.load(Ordering::Relaxed)
    }

    /// The fresh value under `key`, counted as a hit or a miss.
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let found = self.lookup(key);
        if found.is_some() {
            self.metrics.hits.inc()
        } else {
            self.metrics.misses.inc();
            self.count_op();
        }
        found
    }

    /// The fresh value under `key`. An expired entry is removed and reported as absent.
    #[inline]
    fn lookup(&self, key: &K) -> Option<V> {
        let entry = self.table.get(key)?;
        if !self.expires() {
            return Some(entry.value);
        }
        let now = Instant::now();
        if !self.fresh(&entry, now) {
            self.expire(key, now);
            return None;
        }
        if let Some(last_read) = &entry.last_read {
            let age = nanos(now.saturating_duration_since(entry.born));
            if age >= last_read.load(Ordering::Relaxed).saturating_add(nanos(IDLE_RESOLUTION)) {
                last_read.fetch_max(age, Ordering::Relaxed);
            }
        }
        Some(entry.value)
    }

    fn fresh(&self, entry: &Entry<V>, now: Instant) -> bool {
        if entry.expires_at.is_some_and(|expires_at| now >= expires_at) {
            return false;
        }
        match (self.tti, &entry.last_read) {
            (Some(tti), Some(last_read)) => {
                let age = now.saturating_duration_since(entry.born);
                age.saturating_sub(Duration::from_nanos(last_read.load(Ordering::Relaxed))) < tti
            }
            _ => true,
        }
    }

    /// The instant `entry` stops being [`fresh`](Self::fresh), if it ever does.
    fn deadline(&self, entry: &Entry<V>) -> Option<Instant> {
        let idle = match (self.tti, &entry.last_read) {
            // An unrepresentable instant never comes.
            (Some(tti), Some(last_read)) => Duration::from_nanos(last_read.load(Ordering::Relaxed))
                .checked_add(tti)
                .and_then(|idle| entry.born.checked_add(idle)),
            _ => None,
        };
        match (entry.expires_at, idle) {
            (Some(expires_at), Some(idle)) => Some(expires_at.min(idle)),
            (expires_at, idle) => expires_at.or(idle),
        }
    }

    #[cold]
    fn expire(&self, key: &K, now: Instant) {
        // Conditional, so a fresh value inserted since our read survives.
        if self.table.remove_if(key, |entry| !self.fresh(entry, now)).is_some() {
            self.metrics.evictions.inc();
        }
    }

    /// Stores `value` now, unless an invalidation happened after `epoch` was read (the value may predate it).
    pub(crate) fn insert(&self, key: K, value: V, epoch: u64) {
        // Under the fills lock, so an invalidation comes wholly before or after.
        let fills = self.lock_fills();
        if self.epoch.load(Ordering::Relaxed) == epoch {
            self.put(key, self.entry(value, self.ttl));
        }
        drop(fills);
        self.count_op();
    }

    /// The epoch to pass to [`Store::insert`] for a value about to be computed.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    fn entry(&self, value: V, ttl: Option<Duration>) -> Entry<V> {
        let born = Instant::now();
        Entry {
            value,
            // An unrepresentable deadline (a ttl of centuries) never comes.
            expires_at: ttl.and_then(|ttl| born.checked_add(ttl)),
            born,
            last_read: self.tti.map(|_| Arc::new(AtomicU64::new(0))),
        }
    }

    /// Puts `entry` in the table and, if it expires, its key in the expiry queue. Callers hold the fills lock.
    fn put(&self, key: K, entry: Entry<V>) {
        let Some(at) = self.deadline(&entry) else {
            self.table.insert(key, entry);
            return;
        };
        if !self.expires() {
            self.expires.store(true, Ordering::Relaxed);
        }
        let queued = key.clone();
        self.table.insert(key, entry);
        // Queued after the insertion, so a step that finds the key due finds its entry too.
        self.expiry.push(at, queued);
    }

    /// Counts a miss or an insertion, running a maintenance step on every [`EVERY`](super::expiry::EVERY)-th.
    #[inline]
    fn count_op(&self) {
        if self.expiry.tick() {
            self.maintain();
        }
    }

    /// One bounded step of reclaiming: entries past their deadline on tokio's clock, and lapsed leases.
    #[cold]
    #[inline(never)]
    fn maintain(&self) {
        let now = Instant::now();
        let mut reclaimed = 0;
        self.expiry.step(now, |key| {
            let (verdict, removed) = self.reclaim(key, now);
            reclaimed += u64::from(removed);
            verdict
        });
        if reclaimed > 0 {
            self.metrics.evictions.inc_by(reclaimed);
        }
        let mut fills = self.lock_fills();
        if !fills.leases.is_empty() {
            fills.leases.retain(|_, held| held.holds_at(now));
        }
    }

    /// Removes the entry under `key` if it has expired at `now`; says when to look again if it has not.
    fn reclaim(&self, key: &K, now: Instant) -> (Verdict, bool) {
        let mut verdict = Verdict::Forget;
        let removed = self.table.remove_if(key, |entry| match self.deadline(entry) {
            Some(at) if at <= now => true,
            Some(at) => {
                verdict = Verdict::Requeue(at);
                false
            }
            None => false,
        });
        (verdict, removed.is_some())
    }

    /// After a miss: wait for the call already filling `key`, or lead a new one.
    pub(crate) fn join_or_lead<'s>(&'s self, key: &'s K) -> Role<'s, K, V> {
        let mut fills = self.lock_fills();
        if let Some(in_flight) = fills.flights.get_mut(key) {
            in_flight.waiters += 1;
            return Role::Wait(Waiter { store: self, key, flight: in_flight.flight.clone(), waiting: true });
        }
        // A leader inserts its value and retires its flight under this lock, so a value that landed since our miss
        // is visible here.
        if let Some(value) = self.lookup(key) {
            return Role::Hit(value);
        }
        let flight = Arc::new(Flight::new());
        fills.flights.insert(key.clone(), InFlight { flight: flight.clone(), waiters: 0, leading: true });
        Role::Lead(Leader { store: self, key, flight, finished: false })
    }

    pub(crate) fn invalidate(&self, key: &K) -> bool {
        let mut fills = self.lock_fills();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        // Detach the call in flight: its callers still get its value, later callers start afresh, nothing is stored.
        fills.flights.remove(key);
        fills.leases.remove(key);
        let removed = self.table.remove(key).is_some();
        drop(fills);
        self.report_len();
        removed
    }

    pub(crate) fn invalidate_all(&self) {
        let mut fills = self.lock_fills();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        fills.flights.clear();
        fills.leases.clear();
        self.table.clear();
        self.expiry.clear();
        drop(fills);
        self.report_len();
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Brings the shared entries gauge up to date with this table (several tables may share one name). Not on the
    /// insert path: the length costs a read lock per shard, so it is published when the metrics are gathered, and
    /// at once after an invalidation.
    fn report_len(&self) {
        let len = i64::try_from(self.table.len()).unwrap_or(i64::MAX);
        let previous = self.reported_len.swap(len, Ordering::Relaxed);
        self.metrics.entries.add(len - previous);
    }

    fn lock_fills(&self) -> MutexGuard<'_, Fills<K, V>> {
        self.fills.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn waiters(&self, key: &K) -> Option<usize> {
        self.lock_fills().flights.get(key).map(|in_flight| in_flight.waiters)
    }

    /// Keys in the expiry queue, duplicates and keys no longer held included.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.expiry.len()
    }
}

/// The table's length is published when the metrics are gathered: cheaper to read then than to track on every
/// insertion and eviction.
impl<K: CacheKey, V: CacheValue> Refresh for Store<K, V> {
    fn refresh(&self) {
        self.report_len();
    }
}

impl<K: CacheKey, V: CacheValue> Drop for Store<K, V> {
    fn drop(&mut self) {
        // Takes its entries out of the shared gauge, which would otherwise count them for ever.
        self.metrics.entries.sub(self.reported_len.load(Ordering::Relaxed));
    }
}

/// The in-memory store through the seam every backend implements. The policy reaches it directly instead (a hit is
/// a lookup and a clone, with no future to box), and single-flights its own callers with the flights, so leases here
/// serve whatever else shares the store through this trait.
impl<K: CacheKey, V: CacheValue> Backend<K, V> for Store<K, V> {
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<Option<V>, BackendError>> {
        let found = self.lookup(key);
        if found.is_none() {
            self.count_op();
        }
        Box::pin(ready(Ok(found)))
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> BoxFuture<'_, Result<(), BackendError>> {
        let fills = self.lock_fills();
        self.put(key, self.entry(value, ttl));
        drop(fills);
        self.count_op();
        Box::pin(ready(Ok(())))
    }

    fn invalidate<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(ready(Ok(Store::invalidate(self, key))))
    }

    fn invalidate_all(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Store::invalidate_all(self);
        Box::pin(ready(Ok(())))
    }

    fn len(&self) -> BoxFuture<'_, Result<usize, BackendError>> {
        Box::pin(ready(Ok(Store::len(self))))
    }

    fn lease<'a>(&'a self, key: &'a K, hold: Duration) -> BoxFuture<'a, Result<Option<Lease>, BackendError>> {
        let now = Instant::now();
        let mut fills = self.lock_fills();
        let granted = match fills.leases.get(key) {
            Some(held) if held.holds_at(now) => None,
            _ => {
                let token = self.next_lease.fetch_add(1, Ordering::Relaxed);
                fills.leases.insert(key.clone(), Held { token, until: now.checked_add(hold) });
                Some(Lease::new(token))
            }
        };
        Box::pin(ready(Ok(granted)))
    }

    fn fill(&self, key: K, value: V, ttl: Option<Duration>, lease: Lease) -> BoxFuture<'_, Result<bool, BackendError>> {
        let now = Instant::now();
        let mut fills = self.lock_fills();
        let holds = fills.leases.get(&key).is_some_and(|held| held.token == lease.token() && held.holds_at(now));
        if holds {
            fills.leases.remove(&key);
            self.put(key, self.entry(value, ttl));
        }
        drop(fills);
        self.count_op();
        Box::pin(ready(Ok(holds)))
    }

    fn release<'a>(&'a self, key: &'a K, lease: Lease) -> BoxFuture<'a, Result<(), BackendError>> {
        let mut fills = self.lock_fills();
        if fills.leases.get(key).is_some_and(|held| held.token == lease.token()) {
            fills.leases.remove(key);
        }
        drop(fills);
        Box::pin(ready(Ok(())))
    }
}

/// The call that runs the body for everyone missing on one key. Failing or being dropped unfinished (the caller was
/// cancelled or panicked) passes the turn to the next waiter, or retires the flight when nobody waits.
pub(crate) struct Leader<'s, K: CacheKey, V: CacheValue> {
    store: &'s Store<K, V>,
    key: &'s K,
    flight: Arc<Flight<V>>,
    finished: bool,
}

impl<K: CacheKey, V: CacheValue> Leader<'_, K, V> {
    /// Stores `value` (unless an invalidation detached the flight) and hands it to the waiters.
    pub(crate) fn succeed(mut self, value: V) {
        self.finished = true;
        let store = self.store;
        let mut fills = store.lock_fills();
        if attached(&mut fills.flights, self.key, &self.flight).is_some()
            && let Some((key, in_flight)) = fills.flights.remove_entry(self.key)
        {
            store.put(key, store.entry(value.clone(), store.ttl));
            tracing::trace!(waiters = in_flight.waiters, "cache filled");
        }
        drop(fills);
        self.flight.end(Some(value));
        store.count_op();
    }

    /// Stores nothing; the next waiter runs its body.
    pub(crate) fn fail(mut self) {
        self.hand_over();
    }

    fn hand_over(&mut self) {
        self.finished = true;
        let mut fills = self.store.lock_fills();
        match attached(&mut fills.flights, self.key, &self.flight) {
            Some(in_flight) if in_flight.waiters > 0 => {
                in_flight.leading = false;
                self.flight.hand_over();
                tracing::trace!(waiters = in_flight.waiters, "cache fill failed, the next waiter takes over");
            }
            Some(_) => {
                fills.flights.remove(self.key);
                self.flight.end(None);
            }
            // Detached by an invalidation: its waiters join whatever fills the key now.
            None => self.flight.end(None),
        }
    }
}

impl<K: CacheKey, V: CacheValue> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            self.hand_over();
        }
    }
}

/// A caller waiting on a fill. Dropped while waiting (cancelled), it leaves the count, and the last one out of a
/// flight nobody runs retires it.
pub(crate) struct Waiter<'s, K: CacheKey, V: CacheValue> {
    store: &'s Store<K, V>,
    key: &'s K,
    flight: Arc<Flight<V>>,
    waiting: bool,
}

/// How a wait ended.
pub(crate) enum Waited<'s, K: CacheKey, V: CacheValue> {
    /// A run succeeded: its value.
    Ready(V),
    /// The run before this caller's ended without a value: run the body, as the leader.
    Lead(Leader<'s, K, V>),
    /// The flight ended without a value for anyone: miss again.
    Ended,
}

impl<'s, K: CacheKey, V: CacheValue> Waiter<'s, K, V> {
    pub(crate) async fn wait(mut self) -> Waited<'s, K, V> {
        let outcome = self.flight.outcome().await;
        self.waiting = false;
        match outcome {
            Outcome::Ready(value) => Waited::Ready(value),
            Outcome::Ended => Waited::Ended,
            Outcome::Turn => {
                let (store, key) = (self.store, self.key);
                if let Some(in_flight) = attached(&mut store.lock_fills().flights, key, &self.flight) {
                    in_flight.waiters -= 1;
                    in_flight.leading = true;
                }
                Waited::Lead(Leader { store, key, flight: self.flight.clone(), finished: false })
            }
        }
    }
}

impl<K: CacheKey, V: CacheValue> Drop for Waiter<'_, K, V> {
    fn drop(&mut self) {
        if !self.waiting {
            return;
        }
        let mut fills = self.store.lock_fills();
        let Some(in_flight) = attached(&mut fills.flights, self.key, &self.flight) else { return };
        in_flight.waiters -= 1;
        // A turn handed to this waiter goes back to the flight with its permit; with nobody left to take it, the
        // flight ends here.
        if in_flight.waiters == 0 && !in_flight.leading {
            fills.flights.remove(self.key);
            self.flight.end(None);
        }
    }
}

/// The map's entry for `key` if it is still `flight`: an invalidation detaches a flight, and a later one may have
/// taken its key.
fn attached<'f, K: CacheKey, V>(
    flights: &'f mut Flights<K, V>,
    key: &K,
    flight: &Arc<Flight<V>>,
) -> Option<&'f mut InFlight<V>> {
    flights.get_mut(key).filter(|in_flight| Arc::ptr_eq(&in_flight.flight, flight))
}

/// A typed store seen through its name: operators reach it without knowing its key and value types.
pub(crate) trait ErasedStore: Any + Send + Sync {
    /// `None` when `key` is not of this store's key type.
    fn invalidate_any(&self, key: &dyn Any) -> Option<bool>;
    fn invalidate_all(&self);
    fn len(&self) -> usize;
    fn key_type(&self) -> &'static str;
}

impl<K: CacheKey, V: CacheValue> ErasedStore for Store<K, V> {
    fn invalidate_any(&self, key: &dyn Any) -> Option<bool> {
        key.downcast_ref::<K>().map(|key| self.invalidate(key))
    }

    fn invalidate_all(&self) {
        Store::invalidate_all(self);
    }

    fn len(&self) -> usize {
        Store::len(self)
    }

    fn key_type(&self) -> &'static str {
        std::any::type_name::<K>()
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
