//! A cache name as the registry holds it: its settings, its metric handles and its typed stores, reachable by
//! operators without knowing the key and value types.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, RwLock, Weak};

use prometheus::{IntCounter, IntGauge};

use super::CacheSettings;
use super::store::{CacheKey, CacheValue, ErasedStore, Store};
use crate::metrics::{self, Refresh, family};

family! {
    /// `adk_cache_requests_total{cache,result}`
    pub(crate) static REQUESTS_TOTAL: counter("adk_cache_requests_total", "Cache lookups by result.", ["cache", "result"]);
}
family! {
    /// `adk_cache_entries{cache}`
    pub(crate) static ENTRIES: gauge("adk_cache_entries", "Entries held by a cache.", ["cache"]);
}
family! {
    /// `adk_cache_evictions_total{cache}`
    pub(crate) static EVICTIONS_TOTAL: counter("adk_cache_evictions_total", "Entries evicted from a cache.", ["cache"]);
}

/// Metric handles of one cache name, resolved when the name is first declared.
#[derive(Clone)]
pub(crate) struct CacheMetrics {
    pub(crate) hits: IntCounter,
    pub(crate) misses: IntCounter,
    pub(crate) entries: IntGauge,
    pub(crate) evictions: IntCounter,
}

impl CacheMetrics {
    pub(crate) fn new(name: &str) -> Self {
        CacheMetrics {
            hits: REQUESTS_TOTAL.with(&[name, "hit"]),
            misses: REQUESTS_TOTAL.with(&[name, "miss"]),
            entries: ENTRIES.with(&[name]),
            evictions: EVICTIONS_TOTAL.with(&[name]),
        }
    }
}

/// Everything cached under one name. Usually one store; a name shared by functions with different key or value types
/// (or a generic function) holds one store per type pair, all with the name's settings.
pub(crate) struct NamedCache {
    name: String,
    settings: CacheSettings,
    metrics: CacheMetrics,
    stores: RwLock<Vec<Arc<dyn ErasedStore>>>,
}

impl NamedCache {
    pub(crate) fn new(name: &str, settings: CacheSettings) -> Self {
        NamedCache {
            name: name.to_owned(),
            settings,
            metrics: CacheMetrics::new(name),
            stores: RwLock::new(Vec::new()),
        }
    }

    /// The store for keys `K` and values `V`, created on first use.
    pub(crate) fn store<K: CacheKey, V: CacheValue>(&self) -> Arc<Store<K, V>> {
        if let Some(store) = self.find::<K, V>() {
            return store;
        }
        let mut stores = self.stores.write().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = stores.iter().find_map(downcast::<K, V>) {
            return store;
        }
        let store = Arc::new(Store::<K, V>::new(self.settings, self.metrics.clone()));
        let weak: Weak<dyn Refresh> = Arc::downgrade(&store) as _;
        metrics::refresh_before_gathering(weak);
        stores.push(store.clone());
        store
    }

    fn find<K: CacheKey, V: CacheValue>(&self) -> Option<Arc<Store<K, V>>> {
        self.stores.read().unwrap_or_else(|e| e.into_inner()).iter().find_map(downcast::<K, V>)
    }

    fn each_store(&self) -> Vec<Arc<dyn ErasedStore>> {
        self.stores.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Removes every entry of every store, detaching the calls in flight.
    pub(crate) fn invalidate_all(&self) {
        for store in self.each_store() {
            store.invalidate_all();
        }
    }
}

fn downcast<K: CacheKey, V: CacheValue>(store: &Arc<dyn ErasedStore>) -> Option<Arc<Store<K, V>>> {
    let any: Arc<dyn Any + Send + Sync> = store.clone();
    any.downcast().ok()
}

/// An operator's view of a named cache, from [`Registry::cache`](crate::Registry::cache).
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::cache::{CachePolicy, OkValues};
///
/// static WEATHER: CachePolicy = CachePolicy::new("doc::weather", "doc.rs:1")
///     .with_name("doc-weather")
///     .with_ttl(Duration::from_secs(300));
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let city = "Paris".to_string();
/// let forecast: Result<String, std::io::Error> =
///     WEATHER.get_or_run(city.clone(), async { Ok("sunny".to_string()) }, OkValues).await;
/// assert_eq!(forecast.unwrap(), "sunny");
///
/// let cache = adk_runtime::registry().cache("doc-weather").expect("declared on first call");
/// assert_eq!(cache.len(), 1);
/// assert!(cache.invalidate(&city));
/// assert!(!cache.invalidate(&42_u32), "a key of another type matches nothing");
/// cache.invalidate_all();
/// assert!(cache.is_empty());
/// # });
/// ```
#[derive(Clone)]
pub struct CacheHandle {
    named: Arc<NamedCache>,
}

impl CacheHandle {
    pub(crate) fn new(named: Arc<NamedCache>) -> Self {
        CacheHandle { named }
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.named.name
    }

    /// The settings in force (those of the first declaration of the name).
    pub fn settings(&self) -> CacheSettings {
        self.named.settings
    }

    /// Removes the entry under `key`; returns whether there was one. A call filling `key` at this moment still answers
    /// its callers, but its value is not stored and later callers run the body afresh.
    ///
    /// `key` must have the cache's key type (for `#[cached]` without `key = ...`, the tuple of the arguments as owned
    /// values); a key of another type matches nothing: it returns `false` and logs a warning.
    pub fn invalidate<K: Any>(&self, key: &K) -> bool {
        let mut matched = false;
        let mut removed = false;
        for store in self.named.each_store() {
            if let Some(found) = store.invalidate_any(key) {
                matched = true;
                removed |= found;
            }
        }
        if !matched {
            let expected: Vec<&str> = self.named.each_store().iter().map(|store| store.key_type()).collect();
            tracing::warn!(
                cache = %self.named.name,
                key_type = std::any::type_name::<K>(),
                ?expected,
                "invalidate with a key of another type than the cache's; nothing removed"
            );
        }
        removed
    }

    /// Removes every entry, and detaches the calls in flight as [`CacheHandle::invalidate`] does.
    pub fn invalidate_all(&self) {
        self.named.invalidate_all();
    }

    /// The same as [`invalidate_all`](Self::invalidate_all): a cache's state is its entries. Named as the other
    /// handles' resets are, for code that resets instances by kind.
    ///
    /// ```
    /// use adk_runtime::cache::CachePolicy;
    ///
    /// static SESSIONS: CachePolicy = CachePolicy::new("doc::session", "doc.rs:1").with_name("doc-reset-sessions");
    /// SESSIONS.insert(1_u64, "token".to_owned());
    /// let sessions = SESSIONS.handle();
    /// sessions.reset();
    /// assert!(sessions.is_empty());
    /// ```
    pub fn reset(&self) {
        self.invalidate_all();
    }

    /// Entries held, including expired ones not yet reclaimed.
    pub fn len(&self) -> usize {
        self.named.each_store().iter().map(|store| store.len()).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheHandle").field("name", &self.named.name).field("settings", &self.named.settings).finish()
    }
}
