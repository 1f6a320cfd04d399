//! `#[bulkhead]`: bound how many calls to a dependency run at once.
//!
//! A [`BulkheadPolicy`] is a function's `static`: the bulkhead's name and bound, how long the function may wait for a
//! slot, and where it was declared. On first use it finds (or creates) the named [`Bulkhead`] in the
//! [registry](crate::registry()), shared by every function naming it. `max_concurrent` belongs to the shared bulkhead;
//! `max_wait` to each function, so a background job may queue where a request handler refuses at once. A wait is cut
//! to the deadline the call runs under (an enclosing `#[timeout]`; see [`crate::deadline`]).
//!
//! The slots are the permits of a tokio [`Semaphore`], which is fair: waiters are admitted in the order they arrived,
//! and a freed slot goes straight to the first of them, so a caller arriving just as it is freed queues behind them
//! (or, if it may not wait, is refused) instead of taking it. With an unfair counter, callers that keep arriving could starve a waiter
//! until its `max_wait` ran out. A call that finds a free slot takes it without queueing; one that finds none and may
//! not wait is refused without queueing. The price is that giving a slot back briefly locks the semaphore's queue,
//! waiters or not: about 10 ns more per call than a bare counter (see `benches/README.md`).

mod builder;
mod keyed;
mod registered;

pub use builder::BulkheadBuilder;
pub use keyed::{
    BulkheadKey, KeyHash, KeyedBulkhead, KeyedBulkheadBuilder, KeyedBulkheadPermit, KeyedBulkheadPolicy,
    KeyedBulkheadSettings,
};

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Error;
use crate::metrics::{self, Refresh};
use crate::registry::{Declaration, Kind, Settings, registry};

metrics::family! {
    /// `adk_bulkhead_in_use{bulkhead}`
    pub(crate) static BULKHEAD_IN_USE: gauge("adk_bulkhead_in_use", "Bulkhead permits held now.", ["bulkhead"]);
}
metrics::family! {
    /// `adk_bulkhead_rejections_total{bulkhead}`
    pub(crate) static BULKHEAD_REJECTIONS_TOTAL: counter(
        "adk_bulkhead_rejections_total",
        "Calls refused by a full bulkhead.",
        ["bulkhead"]
    );
}

/// What a bulkhead's declarations compare: its bound. (`max_wait` is each function's own.)
///
/// ```
/// use adk_runtime::bulkhead::{BulkheadPolicy, BulkheadSettings};
///
/// static POLICY: BulkheadPolicy = BulkheadPolicy::new("doc-bulkhead-settings", "a.rs:1", 4);
/// let (_, _, declaration) = POLICY.declared();
/// assert_eq!(declaration.settings.downcast_ref(), Some(&BulkheadSettings { max_concurrent: 4 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadSettings {
    /// At most this many calls at once.
    pub max_concurrent: usize,
}

/// A function's bulkhead: the shared name and bound, its own `max_wait`, and where it was declared. Built at compile
/// time in a `static`.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::bulkhead::BulkheadPolicy;
///
/// static DB: BulkheadPolicy =
///     BulkheadPolicy::new("doc-db", concat!(file!(), ":", line!()), 10).with_max_wait(Duration::from_millis(50));
///
/// async fn query(sql: &str) -> Result<usize, adk_runtime::Error> {
///     DB.run(async { Ok(sql.len()) }, Err).await
/// }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// assert_eq!(query("select 1").await, Ok(8));
/// # });
/// ```
#[derive(Debug)]
pub struct BulkheadPolicy {
    name: &'static str,
    call_site: &'static str,
    max_concurrent: usize,
    max_wait: Duration,
    bulkhead: OnceLock<Arc<Bulkhead>>,
}

impl BulkheadPolicy {
    /// The bulkhead `name`, admitting `max_concurrent` calls at once, declared at `call_site` (`file:line`). Without
    /// [`with_max_wait`](Self::with_max_wait), a call finding it full is refused at once.
    ///
    /// # Panics
    /// If `max_concurrent` is 0 or above [`Semaphore::MAX_PERMITS`] (at compile time when built in a `static`).
    pub const fn new(name: &'static str, call_site: &'static str, max_concurrent: usize) -> Self {
        assert!(max_concurrent > 0, "max_concurrent must be at least 1");
        assert!(max_concurrent <= Semaphore::MAX_PERMITS, "max_concurrent is above what a tokio Semaphore holds");
        BulkheadPolicy { name, call_site, max_concurrent, max_wait: Duration::ZERO, bulkhead: OnceLock::new() }
    }

    /// How long this function's calls wait for a slot before being refused.
    pub const fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// This function's `max_wait`.
    pub const fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The shared bulkhead, found or created in the registry on first use. If the name was first declared with
    /// another `max_concurrent`, that bulkhead is used and the disagreement is reported (see
    /// [`Registry::conflicts`](crate::Registry::conflicts)).
    ///
    /// ```
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static A: BulkheadPolicy = BulkheadPolicy::new("doc-pool", "a.rs:1", 4);
    /// static B: BulkheadPolicy = BulkheadPolicy::new("doc-pool", "b.rs:1", 4);
    /// assert!(std::ptr::eq(A.bulkhead(), B.bulkhead()));
    /// ```
    #[inline]
    pub fn bulkhead(&self) -> &Bulkhead {
        self.bulkhead.get_or_init(|| {
            let (_, name, declaration) = self.declared();
            registry()
                .instances::<Bulkhead>()
                .declare(name, declaration, || Bulkhead::new(self.name, self.max_concurrent))
        })
    }

    /// What this policy declares about its shared bulkhead (collected at start-up to find conflicting names).
    pub fn declared(&self) -> (Kind, &'static str, Declaration) {
        let settings = Settings::new(BulkheadSettings { max_concurrent: self.max_concurrent });
        (Kind::BULKHEAD, self.name, Declaration { call_site: self.call_site, settings })
    }

    /// A slot, waiting up to this function's `max_wait` for one; else [`Error::BulkheadFull`].
    ///
    /// ```
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static ONE: BulkheadPolicy = BulkheadPolicy::new("doc-one", "a.rs:1", 1);
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let held = ONE.acquire().await.unwrap();
    /// assert!(ONE.acquire().await.is_err());
    /// drop(held);
    /// assert!(ONE.acquire().await.is_ok());
    /// # });
    /// ```
    #[inline]
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, Error> {
        self.bulkhead().acquire(self.max_wait).await
    }

    /// Runs `call` in a slot (waiting up to `max_wait` for one), or answers `refuse(Error::BulkheadFull)` without
    /// running it. This is what `#[bulkhead]` expands to.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static POOL: BulkheadPolicy = BulkheadPolicy::new("doc-run", "a.rs:1", 2);
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let r: Result<u8, adk_runtime::Error> = POOL.run(async { Ok(7) }, Err).await;
    /// assert_eq!(r, Ok(7));
    /// # });
    /// ```
    #[inline]
    pub async fn run<R>(&self, call: impl Future<Output = R>, refuse: impl FnOnce(Error) -> R) -> R {
        self.bulkhead().run(self.max_wait, call, refuse).await
    }
}

/// A bound on concurrent calls, shared by every function that names it.
///
/// ```
/// use adk_runtime::bulkhead::BulkheadPolicy;
///
/// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-bulkhead", "a.rs:1", 2);
/// let db = DB.bulkhead();
/// let first = db.try_acquire().unwrap();
/// let second = db.try_acquire().unwrap();
/// assert_eq!(db.in_use(), 2);
/// assert!(matches!(db.try_acquire(), Err(adk_runtime::Error::BulkheadFull { .. })));
/// drop((first, second));
/// assert_eq!(db.in_use(), 0);
/// ```
pub struct Bulkhead {
    slots: Slots,
    max_concurrent: usize,
    name: String,
    in_use_gauge: IntGauge,
    rejections: IntCounter,
}

/// What every call touches, alone on its cache lines so that the counters updated beside it do not slow it down.
#[repr(align(128))]
struct Slots {
    free: Semaphore,
    // The semaphore does not say how many wait; only waiting calls touch this.
    waiting: AtomicUsize,
}

impl Bulkhead {
    pub(crate) fn new(name: &str, max_concurrent: usize) -> Arc<Self> {
        let bulkhead = Arc::new(Bulkhead {
            slots: Slots { free: Semaphore::new(max_concurrent), waiting: AtomicUsize::new(0) },
            max_concurrent,
            name: name.to_owned(),
            in_use_gauge: BULKHEAD_IN_USE.with(&[name]),
            rejections: BULKHEAD_REJECTIONS_TOTAL.with(&[name]),
        });
        let weak: Weak<Bulkhead> = Arc::downgrade(&bulkhead);
        metrics::refresh_before_gathering(weak);
        bulkhead
    }

    /// The bulkhead's name.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-name", "a.rs:1", 2);
    /// assert_eq!(DB.bulkhead().name(), "doc-name");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-max", "a.rs:1", 2);
    /// assert_eq!(DB.bulkhead().max_concurrent(), 2);
    /// ```
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Slots held now.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-in-use", "a.rs:1", 2);
    /// let _held = DB.bulkhead().try_acquire().unwrap();
    /// assert_eq!(DB.bulkhead().in_use(), 1);
    /// ```
    pub fn in_use(&self) -> usize {
        // A slot handed to a waiter that has not run yet counts as held: nobody else can take it.
        self.max_concurrent - self.slots.free.available_permits()
    }

    /// Calls waiting for a slot now.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-waiting", "a.rs:1", 2);
    /// assert_eq!(DB.bulkhead().waiting(), 0);
    /// ```
    pub fn waiting(&self) -> usize {
        self.slots.waiting.load(Relaxed)
    }

    /// A slot if one is free now; else [`Error::BulkheadFull`]. A slot freed while calls wait is theirs, so this does
    /// not take it.
    ///
    /// ```
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-try", "a.rs:1", 1);
    /// let held = DB.bulkhead().try_acquire().unwrap();
    /// assert!(DB.bulkhead().try_acquire().is_err());
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, Error> {
        match self.slots.free.try_acquire() {
            Ok(slot) => Ok(self.permit(slot)),
            Err(_) => Err(self.refuse()),
        }
    }

    /// A slot, waiting up to `max_wait` for one (not at all if it is zero); else [`Error::BulkheadFull`]. Waiters are
    /// admitted in the order they arrived. Dropping the future while it waits leaves nothing behind: a slot handed to
    /// it in the meantime goes to the next waiter.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-acquire", "a.rs:1", 1);
    /// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
    /// let held = DB.bulkhead().acquire(Duration::ZERO).await.unwrap();
    /// assert!(DB.bulkhead().acquire(Duration::from_secs(1)).await.is_err(), "nobody released it within 1 s");
    /// # });
    /// ```
    #[inline]
    pub async fn acquire(&self, max_wait: Duration) -> Result<BulkheadPermit<'_>, Error> {
        if let Ok(slot) = self.slots.free.try_acquire() {
            return Ok(self.permit(slot));
        }
        // A waiting call never waits past the deadline it runs under.
        let max_wait = if max_wait.is_zero() { max_wait } else { crate::deadline::cut(max_wait) };
        if max_wait.is_zero() {
            return Err(self.refuse());
        }
        // Boxed so that the futures of callers that never wait stay small (waiting holds a timer and a queue node).
        Box::pin(self.wait_for_slot(max_wait)).await
    }

    /// Runs `call` in a slot (waiting up to `max_wait` for one), or answers `refuse(Error::BulkheadFull)` without
    /// running it.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use adk_runtime::bulkhead::BulkheadPolicy;
    /// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-bulkhead-run", "a.rs:1", 1);
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let r: Result<(), adk_runtime::Error> = DB.bulkhead().run(Duration::ZERO, async { Ok(()) }, Err).await;
    /// assert!(r.is_ok());
    /// # });
    /// ```
    #[inline]
    pub async fn run<R>(
        &self,
        max_wait: Duration,
        call: impl Future<Output = R>,
        refuse: impl FnOnce(Error) -> R,
    ) -> R {
        match self.acquire(max_wait).await {
            Ok(_permit) => call.await,
            Err(refusal) => refuse(refusal),
        }
    }

    #[inline]
    fn permit<'a>(&'a self, slot: SemaphorePermit<'a>) -> BulkheadPermit<'a> {
        BulkheadPermit { bulkhead: self, _slot: slot }
    }

    #[cold]
    async fn wait_for_slot(&self, max_wait: Duration) -> Result<BulkheadPermit<'_>, Error> {
        let _waiting = Waiting::register(&self.slots.waiting);
        match tokio::time::timeout(max_wait, self.slots.free.acquire()).await {
            Ok(slot) => Ok(self.permit(slot.expect("a bulkhead's semaphore is never closed"))),
            Err(_) => Err(self.refuse()),
        }
    }

    #[cold]
    fn refuse(&self) -> Error {
        self.rejections.inc();
        Error::bulkhead_full(self.name.clone(), self.max_concurrent)
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.name)
            .field("in_use", &self.in_use())
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl Refresh for Bulkhead {
    fn refresh(&self) {
        self.in_use_gauge.set(i64::try_from(self.in_use()).unwrap_or(i64::MAX));
    }
}

/// A waiter, counted while it waits (also when its future is dropped mid-wait).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn register(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Relaxed);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// One slot of a [`Bulkhead`], given back when dropped.
///
/// ```
/// # use adk_runtime::bulkhead::BulkheadPolicy;
/// static DB: BulkheadPolicy = BulkheadPolicy::new("doc-permit", "a.rs:1", 1);
/// {
///     let _permit = DB.bulkhead().try_acquire().unwrap();
///     assert_eq!(DB.bulkhead().in_use(), 1);
/// }
/// assert_eq!(DB.bulkhead().in_use(), 0);
/// ```
#[must_use = "the slot is given back as soon as the permit is dropped"]
pub struct BulkheadPermit<'a> {
    bulkhead: &'a Bulkhead,
    _slot: SemaphorePermit<'a>,
}

impl fmt::Debug for BulkheadPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit").field("bulkhead", &self.bulkhead.name).finish()
    }
}

#[cfg(test)]
mod tests;
