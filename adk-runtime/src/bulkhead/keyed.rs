//! `#[bulkhead(key = ...)]`: a bound on the calls in flight for each key (each user, each tenant), its slots held
//! only while a key has calls running or waiting.
//!
//! Each key in use has a tokio [`Semaphore`] of its own (fair, as the unkeyed bulkhead's), in a table sharded by the
//! key's hash. The semaphore is shared, through an `Arc`, by the calls holding or waiting for its slots, and the
//! table's reference is the only other one: whoever gives up a reference looks, under the shard's lock, whether the
//! table's is the last, and if so removes the key. References are only taken under that lock (or from one already
//! held, which keeps the count above one), so a key is never removed while a call uses it, and never left behind once
//! the last one ends: memory follows the keys with calls in flight, however many keys pass through.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::metrics::{self, Refresh};
use crate::registry::{Declaration, Instance, Kind, Registry, Settings, registry};
use crate::settings::SettingsError;

/// Shards of the key table: enough that concurrent calls of different keys rarely meet on one lock.
const SHARDS: usize = 32;

/// The semaphores of the keys in use, by the key's hash.
type Shard = Mutex<HashMap<u64, Arc<Semaphore>, foldhash::fast::RandomState>>;

/// A function's per-key bulkhead, built at compile time in a `static`: what `#[bulkhead(max_concurrent = N, key =
/// expr)]` expands to.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::bulkhead::KeyedBulkheadPolicy;
///
/// static PER_USER: KeyedBulkheadPolicy = KeyedBulkheadPolicy::new("doc-per-user", "a.rs:1", 2);
///
/// async fn search(user: u64, query: &str) -> Result<usize, adk_runtime::Error> {
///     PER_USER.run(&user, async { Ok(query.len()) }, Err).await
/// }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// assert_eq!(search(7, "rust").await, Ok(4));
/// # });
/// ```
#[derive(Debug)]
pub struct KeyedBulkheadPolicy {
    name: &'static str,
    call_site: &'static str,
    max_concurrent: usize,
    max_wait: Duration,
    bulkhead: OnceLock<Arc<KeyedBulkhead>>,
}

impl KeyedBulkheadPolicy {
    /// The per-key bulkhead `name`, admitting `max_concurrent` calls of each key at once, declared at `call_site`.
    /// Without [`with_max_wait`](Self::with_max_wait), a call finding its key's slots taken is refused at once.
    ///
    /// # Panics
    /// If `max_concurrent` is 0 or above [`Semaphore::MAX_PERMITS`] (at compile time when built in a `static`).
    pub const fn new(name: &'static str, call_site: &'static str, max_concurrent: usize) -> Self {
        assert!(max_concurrent > 0, "max_concurrent must be at least 1");
        assert!(max_concurrent <= Semaphore::MAX_PERMITS, "max_concurrent is above what a tokio Semaphore holds");
        KeyedBulkheadPolicy { name, call_site, max_concurrent, max_wait: Duration::ZERO, bulkhead: OnceLock::new() }
    }

    /// How long this function's calls wait for a slot of their key before being refused.
    pub const fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The shared per-key bulkhead, found or created in the registry on first use.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::KeyedBulkheadPolicy;
    /// static A: KeyedBulkheadPolicy = KeyedBulkheadPolicy::new("doc-keyed-shared", "a.rs:1", 4);
    /// static B: KeyedBulkheadPolicy = KeyedBulkheadPolicy::new("doc-keyed-shared", "b.rs:1", 4);
    /// assert!(std::ptr::eq(A.bulkhead(), B.bulkhead()));
    /// ```
    #[inline]
    pub fn bulkhead(&self) -> &KeyedBulkhead {
        self.bulkhead.get_or_init(|| {
            let (_, name, declaration) = self.declared();
            registry()
                .instances::<KeyedBulkhead>()
                .declare(name, declaration, || KeyedBulkhead::new(self.name, self.max_concurrent))
        })
    }

    /// What this policy declares about its shared bulkhead. The kind is `bulkhead`, as for the unkeyed one, so a name
    /// used by both is reported as a conflict.
    pub fn declared(&self) -> (Kind, &'static str, Declaration) {
        let settings = Settings::new(KeyedBulkheadSettings { max_concurrent_per_key: self.max_concurrent });
        (Kind::BULKHEAD, self.name, Declaration { call_site: self.call_site, settings })
    }

    /// Runs `call` in a slot of `key` (waiting up to `max_wait` for one), or answers `refuse(Error::BulkheadFull)`
    /// without running it. The key is hashed at once and not held, so the future does not borrow it.
    #[inline]
    pub fn run<'p, K, R, F, G>(&'p self, key: &K, call: F, refuse: G) -> impl Future<Output = R> + use<'p, K, R, F, G>
    where
        K: BulkheadKey + ?Sized,
        F: Future<Output = R>,
        G: FnOnce(Error) -> R,
    {
        self.run_hashed(self.hash_key(key), call, refuse)
    }

    /// `key`'s hash, for [`run_hashed`](Self::run_hashed). What `#[bulkhead(key = ...)]` expands to: the key is
    /// hashed where it is written, so a key that is not `Hash` is one error on it.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::KeyedBulkheadPolicy;
    /// static PER_USER: KeyedBulkheadPolicy = KeyedBulkheadPolicy::new("doc-keyed-hash", "a.rs:1", 1);
    /// assert_eq!(PER_USER.hash_key("alice"), PER_USER.hash_key("alice"));
    /// ```
    #[inline]
    pub fn hash_key<K: BulkheadKey + ?Sized>(&self, key: &K) -> KeyHash {
        KeyHash(key.hash_with(&self.bulkhead().hasher))
    }

    /// Runs `call` in a slot of the key hashed by [`hash_key`](Self::hash_key), or answers
    /// `refuse(Error::BulkheadFull)` without running it.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::KeyedBulkheadPolicy;
    /// static PER_USER: KeyedBulkheadPolicy = KeyedBulkheadPolicy::new("doc-keyed-run-hashed", "a.rs:1", 1);
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let alice = PER_USER.hash_key("alice");
    /// let r: Result<u8, adk_runtime::Error> = PER_USER.run_hashed(alice, async { Ok(1) }, Err).await;
    /// assert_eq!(r, Ok(1));
    /// # });
    /// ```
    #[inline]
    pub fn run_hashed<'p, R, F, G>(
        &'p self,
        key: KeyHash,
        call: F,
        refuse: G,
    ) -> impl Future<Output = R> + use<'p, R, F, G>
    where
        F: Future<Output = R>,
        G: FnOnce(Error) -> R,
    {
        let bulkhead = self.bulkhead();
        let max_wait = self.max_wait;
        async move {
            match bulkhead.acquire_hash(key.0, max_wait).await {
                Ok(_permit) => call.await,
                Err(refusal) => refuse(refusal),
            }
        }
    }
}

/// A key of a [`KeyedBulkhead`], hashed by the bulkhead's own hasher (seeded at random per bulkhead).
///
/// ```
/// # use adk_runtime::bulkhead::KeyedBulkheadPolicy;
/// static PER_USER: KeyedBulkheadPolicy = KeyedBulkheadPolicy::new("doc-keyed-key-hash", "a.rs:1", 1);
/// assert_ne!(PER_USER.hash_key(&1u64), PER_USER.hash_key(&2u64));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(u64);

/// What a per-key bulkhead's key must be: anything `Hash`.
///
/// ```
/// use adk_runtime::bulkhead::BulkheadKey;
///
/// fn takes_a_key<K: BulkheadKey + ?Sized>(_key: &K) {}
/// takes_a_key("alice");
/// takes_a_key(&(7u64, "eu-west"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a bulkhead key: it is not `Hash`",
    label = "the key of #[adk::bulkhead] must implement `Hash`",
    note = "derive `Hash` for it, or key by a part that is `Hash` (e.g. `key = user.id`)"
)]
pub trait BulkheadKey {
    /// The key's hash under `hasher`.
    fn hash_with<H: BuildHasher>(&self, hasher: &H) -> u64;
}

impl<K: Hash + ?Sized> BulkheadKey for K {
    #[inline]
    fn hash_with<H: BuildHasher>(&self, hasher: &H) -> u64 {
        hasher.hash_one(self)
    }
}

/// A bound on concurrent calls per key: at most `max_concurrent` calls of one key run at once, whatever the other
/// keys do. A key takes memory only while it has calls running or waiting. Metrics are the unkeyed bulkhead's, summed
/// over keys (keys are never labels): `adk_bulkhead_in_use{bulkhead}` counts the slots held by every key,
/// `adk_bulkhead_rejections_total{bulkhead}` the refusals.
///
/// ```
/// use adk_runtime::bulkhead::KeyedBulkhead;
///
/// let per_user = KeyedBulkhead::builder("doc-keyed", 1).build().unwrap();
/// let alice = per_user.try_acquire("alice").unwrap();
/// assert!(per_user.try_acquire("alice").is_err(), "alice's one slot is taken");
/// let bob = per_user.try_acquire("bob").unwrap();
/// assert_eq!((per_user.in_use(), per_user.keys()), (2, 2));
/// drop((alice, bob));
/// assert_eq!((per_user.in_use(), per_user.keys()), (0, 0), "idle keys are dropped");
/// ```
pub struct KeyedBulkhead {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    max_concurrent: usize,
    in_use: AtomicUsize,
    name: String,
    in_use_gauge: IntGauge,
    rejections: IntCounter,
}

impl KeyedBulkhead {
    fn new(name: &str, max_concurrent: usize) -> Arc<Self> {
        let bulkhead = Arc::new(KeyedBulkhead {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            max_concurrent,
            in_use: AtomicUsize::new(0),
            name: name.to_owned(),
            in_use_gauge: super::BULKHEAD_IN_USE.with(&[name]),
            rejections: super::BULKHEAD_REJECTIONS_TOTAL.with(&[name]),
        });
        let weak: Weak<KeyedBulkhead> = Arc::downgrade(&bulkhead);
        metrics::refresh_before_gathering(weak);
        bulkhead
    }

    /// Starts a per-key bulkhead called `name` (its metric label) of `max_concurrent` slots for each key.
    ///
    /// ```
    /// use adk_runtime::bulkhead::KeyedBulkhead;
    /// assert!(KeyedBulkhead::builder("doc-keyed-builder", 0).build().is_err());
    /// ```
    pub fn builder(name: impl Into<String>, max_concurrent: u64) -> KeyedBulkheadBuilder {
        KeyedBulkheadBuilder { name: name.into(), max_concurrent }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound of each key.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Slots held now, over every key.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Relaxed)
    }

    /// Slots `key` holds now.
    ///
    /// ```
    /// # let per_user = adk_runtime::bulkhead::KeyedBulkhead::builder("doc-keyed-in-use", 2).build().unwrap();
    /// let _held = per_user.try_acquire(&42).unwrap();
    /// assert_eq!((per_user.in_use_by(&42), per_user.in_use_by(&7)), (1, 0));
    /// ```
    pub fn in_use_by<K: Hash + ?Sized>(&self, key: &K) -> usize {
        let hash = self.hash(key);
        let shard = self.shard(hash).lock().unwrap_or_else(|e| e.into_inner());
        shard.get(&hash).map_or(0, |slots| self.max_concurrent - slots.available_permits())
    }

    /// Keys with calls running or waiting now: the keys whose state is held.
    pub fn keys(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }

    /// A slot of `key` if one is free now; else [`Error::BulkheadFull`].
    pub fn try_acquire<K: Hash + ?Sized>(&self, key: &K) -> Result<KeyedBulkheadPermit<'_>, Error> {
        let slots = self.slots(self.hash(key));
        match slots.semaphore().clone().try_acquire_owned() {
            Ok(slot) => Ok(self.permit(slots, slot)),
            Err(_) => Err(self.refuse()),
        }
    }

    /// A slot of `key`, waiting up to `max_wait` for one (cut to the deadline the call runs under); else
    /// [`Error::BulkheadFull`]. Waiters of one key are admitted in the order they arrived.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let per_user = adk_runtime::bulkhead::KeyedBulkhead::builder("doc-keyed-acquire", 1).build().unwrap();
    /// let held = per_user.acquire("alice", Duration::ZERO).await.unwrap();
    /// assert!(per_user.acquire("alice", Duration::from_secs(1)).await.is_err(), "not released within 1 s");
    /// assert!(per_user.acquire("bob", Duration::ZERO).await.is_ok());
    /// # });
    /// ```
    pub async fn acquire<K: Hash + ?Sized>(
        &self,
        key: &K,
        max_wait: Duration,
    ) -> Result<KeyedBulkheadPermit<'_>, Error> {
        self.acquire_hash(self.hash(key), max_wait).await
    }

    async fn acquire_hash(&self, hash: u64, max_wait: Duration) -> Result<KeyedBulkheadPermit<'_>, Error> {
        let slots = self.slots(hash);
        if let Ok(slot) = slots.semaphore().clone().try_acquire_owned() {
            return Ok(self.permit(slots, slot));
        }
        let max_wait = if max_wait.is_zero() { max_wait } else { crate::deadline::cut(max_wait) };
        if max_wait.is_zero() {
            return Err(self.refuse());
        }
        let waiting = slots.semaphore().clone().acquire_owned();
        match tokio::time::timeout(max_wait, waiting).await {
            Ok(slot) => Ok(self.permit(slots, slot.expect("a bulkhead's semaphore is never closed"))),
            Err(_) => Err(self.refuse()),
        }
    }

    #[inline]
    fn hash<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        // The high bits pick the shard: the table's own hasher uses the low ones.
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// The key's semaphore, made if the key has none, with a reference that keeps it in the table.
    fn slots(&self, hash: u64) -> KeySlots<'_> {
        let mut shard = self.shard(hash).lock().unwrap_or_else(|e| e.into_inner());
        let semaphore = shard.entry(hash).or_insert_with(|| Arc::new(Semaphore::new(self.max_concurrent))).clone();
        KeySlots { bulkhead: self, hash, semaphore: Some(semaphore) }
    }

    /// Removes the key if the table holds the last reference to its semaphore: no call holds or waits for a slot.
    fn forget_if_idle(&self, hash: u64) {
        let mut shard = self.shard(hash).lock().unwrap_or_else(|e| e.into_inner());
        if shard.get(&hash).is_some_and(|semaphore| Arc::strong_count(semaphore) == 1) {
            shard.remove(&hash);
        }
    }

    fn permit<'a>(&'a self, slots: KeySlots<'a>, slot: OwnedSemaphorePermit) -> KeyedBulkheadPermit<'a> {
        self.in_use.fetch_add(1, Relaxed);
        KeyedBulkheadPermit { slot: Some(slot), slots }
    }

    #[cold]
    fn refuse(&self) -> Error {
        self.rejections.inc();
        Error::bulkhead_full(self.name.clone(), self.max_concurrent)
    }
}

impl fmt::Debug for KeyedBulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkhead")
            .field("name", &self.name)
            .field("in_use", &self.in_use())
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

/// What a keyed bulkhead's declarations compare: its bound per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedBulkheadSettings {
    /// At most this many calls at once for one key.
    pub max_concurrent_per_key: usize,
}

impl Refresh for KeyedBulkhead {
    fn refresh(&self) {
        self.in_use_gauge.set(i64::try_from(self.in_use()).unwrap_or(i64::MAX));
    }
}

impl Instance for KeyedBulkhead {
    const KIND: Kind = Kind::BULKHEAD;

    /// Its slots are the calls in flight: nothing to reset, as for the unkeyed bulkhead.
    fn reset(&self) {}
}

/// The registry's view of per-key bulkheads.
impl Registry {
    /// The per-key bulkhead called `name`, once a function declares it (`#[bulkhead(key = ...)]`) or it was first
    /// used.
    ///
    /// ```
    /// use adk_runtime::bulkhead::KeyedBulkheadPolicy;
    ///
    /// static PER_USER: KeyedBulkheadPolicy = KeyedBulkheadPolicy::new("doc-registry-keyed", "a.rs:1", 3);
    /// PER_USER.bulkhead();
    /// let found = adk_runtime::registry().keyed_bulkhead("doc-registry-keyed").unwrap();
    /// assert_eq!((found.max_concurrent(), found.keys()), (3, 0));
    /// ```
    pub fn keyed_bulkhead(&self, name: &str) -> Option<Arc<KeyedBulkhead>> {
        self.lookup::<KeyedBulkhead>(name)
    }
}

/// A reference to a key's semaphore that takes the key out of the table when it is the last one given up.
struct KeySlots<'a> {
    bulkhead: &'a KeyedBulkhead,
    hash: u64,
    semaphore: Option<Arc<Semaphore>>,
}

impl KeySlots<'_> {
    fn semaphore(&self) -> &Arc<Semaphore> {
        self.semaphore.as_ref().expect("held until dropped")
    }
}

impl Drop for KeySlots<'_> {
    fn drop(&mut self) {
        self.semaphore = None;
        self.bulkhead.forget_if_idle(self.hash);
    }
}

/// One slot of a key of a [`KeyedBulkhead`], given back when dropped (and the key forgotten if it was its last use).
#[must_use = "the slot is given back as soon as the permit is dropped"]
pub struct KeyedBulkheadPermit<'a> {
    slot: Option<OwnedSemaphorePermit>,
    slots: KeySlots<'a>,
}

impl Drop for KeyedBulkheadPermit<'_> {
    fn drop(&mut self) {
        // The slot (and its reference) goes first, so that `slots`, dropped next, can see whether the key is idle.
        self.slot = None;
        self.slots.bulkhead.in_use.fetch_sub(1, Relaxed);
    }
}

impl fmt::Debug for KeyedBulkheadPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheadPermit").field("bulkhead", &self.slots.bulkhead.name).finish()
    }
}

/// Settings of a [`KeyedBulkhead`] built by hand (per tenant, per test), checked by the rules `#[adk::bulkhead]`
/// checks at compile time.
///
/// ```
/// let per_user = adk_runtime::bulkhead::KeyedBulkhead::builder("doc-keyed-settings", 4).build().unwrap();
/// assert_eq!(per_user.max_concurrent(), 4);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct KeyedBulkheadBuilder {
    name: String,
    max_concurrent: u64,
}

impl KeyedBulkheadBuilder {
    /// A new per-key bulkhead of its own (not the registry's instance of that name), or the setting it cannot work
    /// with.
    pub fn build(self) -> Result<Arc<KeyedBulkhead>, SettingsError> {
        let max = adk_settings::max_concurrent(self.max_concurrent)
            .map_err(|invalid| SettingsError::new("bulkhead", invalid))?;
        Ok(KeyedBulkhead::new(&self.name, max as usize))
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_waiter_keeps_its_key_and_takes_the_slot_freed_for_it() {
        let per_user = KeyedBulkhead::builder("keyed-waiter", 1).build().unwrap();
        let held = per_user.try_acquire("alice").unwrap();
        let mut waiter = pin!(per_user.acquire("alice", Duration::from_secs(5)));
        assert!(futures_poll(&mut waiter).is_none(), "waits for alice's slot");
        drop(held);
        assert_eq!(per_user.keys(), 1, "the waiter keeps the key");
        let permit = futures_poll(&mut waiter).expect("admitted once the slot is free").unwrap();
        assert_eq!((per_user.in_use(), per_user.keys()), (1, 1));
        drop(permit);
        assert_eq!((per_user.in_use(), per_user.keys()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_or_abandoned_call_leaves_no_key_behind() {
        let per_user = KeyedBulkhead::builder("keyed-abandoned", 1).build().unwrap();
        let held = per_user.try_acquire(&1u64).unwrap();
        assert!(per_user.acquire(&1u64, Duration::from_millis(10)).await.is_err());
        {
            let mut waiter = pin!(per_user.acquire(&1u64, Duration::from_secs(5)));
            assert!(futures_poll(&mut waiter).is_none());
        }
        assert_eq!(per_user.keys(), 1, "only the holder's key");
        drop(held);
        assert_eq!(per_user.keys(), 0);
    }

    #[test]
    fn many_keys_used_one_after_another_leave_an_empty_table() {
        let per_user = KeyedBulkhead::builder("keyed-many", 2).build().unwrap();
        for user in 0..10_000u32 {
            let _permit = per_user.try_acquire(&user).unwrap();
        }
        assert_eq!((per_user.keys(), per_user.in_use()), (0, 0));
    }

    #[test]
    fn concurrent_calls_never_exceed_the_bound_of_a_key_nor_leave_keys() {
        let per_user = KeyedBulkhead::builder("keyed-threads", 2).build().unwrap();
        let peak = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for thread in 0..4u32 {
                let (per_user, peak) = (&per_user, &peak);
                scope.spawn(move || {
                    for i in 0..5_000u32 {
                        if let Ok(_permit) = per_user.try_acquire(&((i + thread) % 3)) {
                            let held = per_user.in_use_by(&((i + thread) % 3));
                            peak.fetch_max(held, Relaxed);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Relaxed) <= 2, "at most two of one key at once");
        assert_eq!((per_user.keys(), per_user.in_use()), (0, 0));
    }

    /// Polls once: the output if ready.
    fn futures_poll<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        match std::pin::Pin::new(future).poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        }
    }
}
