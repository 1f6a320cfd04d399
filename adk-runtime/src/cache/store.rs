//! One typed cache: the entries (a `quick_cache` table holding each value with its birth instant on tokio's clock),
//! the calls in flight per key, and the metric handles of the name it belongs to.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quick_cache::sync::Cache as Table;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, UnitWeighter};
use tokio::time::Instant;

use super::CacheSettings;
use super::flight::{Flight, Outcome};
use super::named::CacheMetrics;

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

pub(crate) struct Store<K: CacheKey, V: CacheValue> {
    table: Table<K, Entry<V>, UnitWeighter, DefaultHashBuilder, CountEvictions>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    /// Whether reads must check the clock (`ttl` or `tti` is set).
    expires: bool,
    metrics: CacheMetrics,
    /// The table's length as last added to the shared `adk_cache_entries` gauge.
    reported_len: AtomicI64,
    /// Also the lock that makes "insert the leader's value and retire its flight" one step for callers that miss, and
    /// that orders insertions after invalidations.
    flights: Mutex<Flights<K, V>>,
    /// Bumped (under the `flights` lock) by every invalidation; an insertion computed before one is dropped.
    epoch: AtomicU64,
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
            expires: settings.ttl.is_some() || settings.tti.is_some(),
            metrics,
            reported_len: AtomicI64::new(0),
            flights: Mutex::new(HashMap::default()),
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn expires(&self) -> bool {
        self.expires
    }

    /// The fresh value under `key`, counted as a hit or a miss.
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let found = self.lookup(key);
        if found.is_some() {
            self.metrics.hits.inc()
        } else {
            self.metrics.misses.inc()
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

    #[cold]
    fn expire(&self, key: &K, now: Instant) {
        // Conditional, so a fresh value inserted since our read survives.
        if self.table.remove_if(key, |entry| !self.fresh(entry, now)).is_some() {
            self.metrics.evictions.inc();
        }
    }

    /// Stores `value` now, unless an invalidation happened after `epoch` was read (the value may predate it).
    pub(crate) fn insert(&self, key: K, value: V, epoch: u64) {
        // Under the flights lock, so an invalidation comes wholly before or after.
        let _flights = self.lock_flights();
        if self.epoch.load(Ordering::Relaxed) == epoch {
            self.table.insert(key, self.entry(value));
        }
    }

    /// The epoch to pass to [`Store::insert`] for a value about to be computed.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    fn entry(&self, value: V) -> Entry<V> {
        let born = Instant::now();
        Entry {
            value,
            // An unrepresentable deadline (a ttl of centuries) never comes.
            expires_at: self.ttl.and_then(|ttl| born.checked_add(ttl)),
            born,
            last_read: self.tti.map(|_| Arc::new(AtomicU64::new(0))),
        }
    }

    /// After a miss: wait for the call already filling `key`, or lead a new one.
    pub(crate) fn join_or_lead<'s>(&'s self, key: &'s K) -> Role<'s, K, V> {
        let mut flights = self.lock_flights();
        if let Some(in_flight) = flights.get_mut(key) {
            in_flight.waiters += 1;
            return Role::Wait(Waiter { store: self, key, flight: in_flight.flight.clone(), waiting: true });
        }
        // A leader inserts its value and retires its flight under this lock, so a value that landed since our miss
        // is visible here.
        if let Some(value) = self.lookup(key) {
            return Role::Hit(value);
        }
        let flight = Arc::new(Flight::new());
        flights.insert(key.clone(), InFlight { flight: flight.clone(), waiters: 0, leading: true });
        Role::Lead(Leader { store: self, key, flight, finished: false })
    }

    pub(crate) fn invalidate(&self, key: &K) -> bool {
        let mut flights = self.lock_flights();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        // Detach the call in flight: its callers still get its value, later callers start afresh, nothing is stored.
        flights.remove(key);
        let removed = self.table.remove(key).is_some();
        drop(flights);
        self.report_len();
        removed
    }

    pub(crate) fn invalidate_all(&self) {
        let mut flights = self.lock_flights();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        flights.clear();
        self.table.clear();
        drop(flights);
        self.report_len();
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Removes every entry expired at `now` and publishes the table's length.
    pub(crate) fn sweep(&self, now: Instant) {
        if !self.expires() {
            self.report_len();
            return;
        }
        let expired = Cell::new(0);
        self.table.retain(|_, entry| {
            let keep = self.fresh(entry, now);
            expired.set(expired.get() + u64::from(!keep));
            keep
        });
        self.metrics.evictions.inc_by(expired.get());
        self.report_len();
    }

    /// Brings the shared entries gauge up to date with this table (several tables may share one name). Not on the
    /// insert path: the length costs a read lock per shard, so the sweeper publishes it every second.
    fn report_len(&self) {
        let len = i64::try_from(self.table.len()).unwrap_or(i64::MAX);
        let previous = self.reported_len.swap(len, Ordering::Relaxed);
        self.metrics.entries.add(len - previous);
    }

    fn lock_flights(&self) -> MutexGuard<'_, Flights<K, V>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn waiters(&self, key: &K) -> Option<usize> {
        self.lock_flights().get(key).map(|in_flight| in_flight.waiters)
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
        let mut flights = store.lock_flights();
        if attached(&mut flights, self.key, &self.flight).is_some()
            && let Some((key, in_flight)) = flights.remove_entry(self.key)
        {
            store.table.insert(key, store.entry(value.clone()));
            tracing::trace!(waiters = in_flight.waiters, "cache filled");
        }
        drop(flights);
        self.flight.end(Some(value));
    }

    /// Stores nothing; the next waiter runs its body.
    pub(crate) fn fail(mut self) {
        self.hand_over();
    }

    fn hand_over(&mut self) {
        self.finished = true;
        let mut flights = self.store.lock_flights();
        match attached(&mut flights, self.key, &self.flight) {
            Some(in_flight) if in_flight.waiters > 0 => {
                in_flight.leading = false;
                self.flight.hand_over();
                tracing::trace!(waiters = in_flight.waiters, "cache fill failed, the next waiter takes over");
            }
            Some(_) => {
                flights.remove(self.key);
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
                if let Some(in_flight) = attached(&mut store.lock_flights(), key, &self.flight) {
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
        let mut flights = self.store.lock_flights();
        let Some(in_flight) = attached(&mut flights, self.key, &self.flight) else { return };
        in_flight.waiters -= 1;
        // A turn handed to this waiter goes back to the flight with its permit; with nobody left to take it, the
        // flight ends here.
        if in_flight.waiters == 0 && !in_flight.leading {
            flights.remove(self.key);
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
