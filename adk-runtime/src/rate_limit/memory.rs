//! The in-memory backend: one limiter's cells in this process, decided without waiting on anything.

use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::OnceLock;

use foldhash::fast::FixedState;
use tokio::time::Instant;

use super::algorithm::{Algorithm, Level, Outcome, Patience};
use super::backend::{Backend, KeyHash, LimiterSpec, Start, Verdict};
use super::store::{KeyedStore, SingleStore, Store};

/// A limiter's state in this process: what [`RateLimiter::new`](super::RateLimiter::new) builds on, and the
/// fastest way to decide (a compare-and-swap on one cell, keyed cells in sharded tables, nothing allocated for a key
/// already seen).
///
/// It holds one limiter's state: use one backend with one [`LimiterSpec`]. Its clock is tokio's, counted from the
/// backend's creation (where window strategies start their first window). Keys are hashed with foldhash under a
/// seed drawn at random for each backend. A key's state is created by its first admitted call and dropped once it
/// has refilled (see [`LimiterSpec::idle_after`]), so memory follows the keys active recently.
///
/// ```
/// use adk_runtime::rate_limit::{Backend, LimiterSpec, MemoryBackend, Quota, Start};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let backend = MemoryBackend::new();
/// let spec = LimiterSpec::new("doc-memory", Quota::per_minute(1));
/// let Ok(first) = backend.decide(&spec, Some(backend.hash_key(&7u64)), 1, Start::Immediately).await;
/// assert!(first.is_admitted());
/// assert_eq!(backend.keys(), 1);
/// # });
/// ```
pub struct MemoryBackend {
    epoch: Instant,
    hasher: FixedState,
    global: SingleStore,
    keyed: OnceLock<KeyedStore>,
}

impl MemoryBackend {
    /// An empty backend: every key has its full quota.
    pub fn new() -> Self {
        MemoryBackend {
            epoch: Instant::now(),
            hasher: FixedState::with_seed(fastrand::u64(..)),
            global: SingleStore::default(),
            keyed: OnceLock::new(),
        }
    }

    /// Keys whose state the backend holds now (a sliding window may hold two entries for a key used in consecutive
    /// windows).
    pub fn keys(&self) -> usize {
        self.keyed.get().map_or(0, KeyedStore::len)
    }

    #[inline]
    pub(crate) fn hash(&self, key: &(impl Hash + ?Sized)) -> KeyHash {
        KeyHash::new(self.hasher.hash_one(key))
    }

    /// Nanoseconds since the backend was built, on tokio's clock.
    #[inline]
    fn now(&self) -> u64 {
        Instant::now().saturating_duration_since(self.epoch).as_nanos() as u64
    }

    #[inline]
    fn keyed(&self, algorithm: &Algorithm) -> &KeyedStore {
        self.keyed.get_or_init(|| KeyedStore::new(*algorithm))
    }

    /// A key's cells sit at its hash with the low bit clear and set: the sliding window's two windows.
    #[inline]
    fn base(key: KeyHash) -> u64 {
        key.get() & !1
    }

    #[inline]
    pub(crate) fn decide_now(
        &self,
        algorithm: &Algorithm,
        key: Option<KeyHash>,
        cost: u64,
        start: Patience,
    ) -> Outcome {
        let now = self.now();
        let cells = algorithm.cells(now);
        let transition = |cell, other| algorithm.decide(cell, other, now, cost, start);
        match key {
            None => self.global.update(cells.write, cells.read, now, transition),
            Some(key) => {
                let base = Self::base(key);
                self.keyed(algorithm).update(base | cells.write, cells.read.map(|read| base | read), now, transition)
            }
        }
    }

    /// Gives back `cost` units charged ahead for a call that never started.
    pub(crate) fn refund_now(&self, algorithm: &Algorithm, key: Option<KeyHash>, cost: u64) {
        let now = self.now();
        let transition = |cell, _| {
            let refunded = algorithm.refund(cell, cost);
            ((), (refunded != cell).then_some(refunded))
        };
        match key {
            None => self.global.update(0, None, now, transition),
            Some(key) => self.keyed(algorithm).update(Self::base(key), None, now, transition),
        }
    }

    /// What `key` has left now, and when it is full again.
    pub(crate) fn level(&self, algorithm: &Algorithm, key: Option<KeyHash>) -> Level {
        let now = self.now();
        let cells = algorithm.cells(now);
        let (cell, other) = match key {
            None => (self.global.load(cells.write), cells.read.map_or(0, |read| self.global.load(read))),
            Some(key) => match self.keyed.get() {
                None => (0, 0),
                Some(store) => {
                    let base = Self::base(key);
                    (store.load(base | cells.write), cells.read.map_or(0, |read| store.load(base | read)))
                }
            },
        };
        algorithm.level(cell, other, now)
    }

    /// Forgets every key and the shared state.
    pub(crate) fn clear(&self) {
        self.global.clear();
        if let Some(keyed) = self.keyed.get() {
            keyed.clear();
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new()
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend").field("keys", &self.keys()).finish_non_exhaustive()
    }
}

/// Each future is ready on its first poll: the decision is made then (not when the future is built, so a future
/// dropped unpolled has taken nothing), without a lock held across it and without allocating.
impl Backend for MemoryBackend {
    type Error = Infallible;

    #[inline]
    fn hash_key<K: Hash + ?Sized>(&self, key: &K) -> KeyHash {
        self.hash(key)
    }

    async fn decide(
        &self,
        limiter: &LimiterSpec,
        key: Option<KeyHash>,
        cost: u64,
        start: Start,
    ) -> Result<Verdict, Infallible> {
        let algorithm = limiter.algorithm();
        let outcome = self.decide_now(algorithm, key, cost, start.patience());
        Ok(Verdict::from_outcome(outcome, cost, algorithm.limit()))
    }

    async fn refund(&self, limiter: &LimiterSpec, key: Option<KeyHash>, cost: u64) -> Result<(), Infallible> {
        self.refund_now(limiter.algorithm(), key, cost);
        Ok(())
    }

    async fn reset(&self, _limiter: &LimiterSpec) -> Result<(), Infallible> {
        self.clear();
        Ok(())
    }
}
