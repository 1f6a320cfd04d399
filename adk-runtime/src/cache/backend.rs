//! The seam between a cache's policy and the place its entries live.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A future a [`Backend`] answers with: boxed, because remote backends are reached through `dyn Backend`, and a
/// network round trip dwarfs the allocation.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a cache's entries live, for keys `K` and values `V`: the in-memory store every cache has today, and later a
/// store shared by a fleet (Redis). Every backend passes the same conformance suite, so a cache behaves the same
/// whichever one holds its entries.
///
/// The contract, which the suite checks:
/// - [`get`](Self::get) answers the value stored under a key until its `ttl` has passed, then nothing. Time is the
///   backend's clock: tokio's for the in-memory store (so paused time steps through expiry), the server's for a
///   remote one.
/// - [`insert`](Self::insert) replaces any entry, value and `ttl` alike; `None` means no time limit.
/// - [`invalidate`](Self::invalidate) removes one key, [`invalidate_all`](Self::invalidate_all) every key, and both
///   revoke the [leases](Lease) on what they remove, so a value computed before an invalidation is not stored after it.
/// - [`len`](Self::len) counts the entries held, possibly including expired ones not yet reclaimed; it may be costly
///   for a remote backend (a scan), so it is for operators, not for a call's path.
/// - [`lease`](Self::lease), [`fill`](Self::fill) and [`release`](Self::release) make single flight hold among
///   everything sharing the backend. Within one process, the policy's own flight map already makes concurrent
///   misses wait for one caller; over a shared backend, that caller asks for the key's lease. With it, it runs the
///   body and [`fill`](Self::fill)s; without it (someone else computes the key), it polls [`get`](Self::get) until
///   the value appears, or until the lease is free and it can take it. A lease is held for a short time only, so a
///   process that dies while holding one delays the others by at most that time.
///
/// A value read from a backend is the caller's own (`V` is moved out, or cloned, or deserialised); the in-memory
/// store also serves the policy's hits directly, without this trait, so that a hit stays a lookup and a clone.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::cache::{Backend, BackendError};
///
/// /// The value under `key`, computing and storing it at most once among everyone sharing `backend`.
/// async fn shared_once<B: Backend<String, u64>>(
///     backend: &B,
///     key: String,
///     compute: impl AsyncFn() -> u64,
/// ) -> Result<u64, BackendError> {
///     loop {
///         if let Some(value) = backend.get(&key).await? {
///             return Ok(value);
///         }
///         if let Some(lease) = backend.lease(&key, Duration::from_secs(5)).await? {
///             let value = compute().await;
///             backend.fill(key, value, Some(Duration::from_secs(60)), lease).await?;
///             return Ok(value);
///         }
///         tokio::time::sleep(Duration::from_millis(20)).await;
///     }
/// }
/// ```
pub trait Backend<K, V>: Send + Sync {
    /// The value under `key` if it has not expired.
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<Option<V>, BackendError>>;

    /// Stores `value` under `key`, replacing any entry, to be served for at most `ttl` (`None`: until evicted or
    /// invalidated).
    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Removes the entry under `key` and revokes its lease; answers whether there was an entry.
    fn invalidate<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Removes every entry and revokes every lease.
    fn invalidate_all(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// The entries held, possibly including expired ones not yet reclaimed.
    fn len(&self) -> BoxFuture<'_, Result<usize, BackendError>>;

    /// Whether no entry is held, from [`len`](Self::len) unless the backend knows a cheaper way.
    fn is_empty(&self) -> BoxFuture<'_, Result<bool, BackendError>> {
        Box::pin(async move { Ok(self.len().await? == 0) })
    }

    /// The lease on filling `key` for `hold`, unless another holder has it: `None` means someone else is computing
    /// the value (poll [`get`](Self::get), then ask again).
    fn lease<'a>(&'a self, key: &'a K, hold: Duration) -> BoxFuture<'a, Result<Option<Lease>, BackendError>>;

    /// Stores `value` under `key` as [`insert`](Self::insert) does, if `lease` still holds (it has not expired, been
    /// released or been revoked by an invalidation), and ends the lease; answers whether the value was stored.
    fn fill(&self, key: K, value: V, ttl: Option<Duration>, lease: Lease) -> BoxFuture<'_, Result<bool, BackendError>>;

    /// Ends `lease` without storing anything (the body failed), so the next caller may take the key at once. A lease
    /// that no longer holds is ignored: it never ends a newer holder's.
    fn release<'a>(&'a self, key: &'a K, lease: Lease) -> BoxFuture<'a, Result<(), BackendError>>;
}

/// The right to fill one key, from [`Backend::lease`]. Its token tells one holder from the next, so a holder whose
/// lease expired cannot store over, or release, its successor's.
///
/// ```
/// use adk_runtime::cache::Lease;
///
/// let lease = Lease::new(0x2a);
/// assert_eq!(lease.token(), 0x2a);
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    token: u64,
}

impl Lease {
    /// A lease with `token`, unique among the leases its backend grants (a remote backend draws it at random).
    pub const fn new(token: u64) -> Self {
        Lease { token }
    }

    /// The token the backend granted this lease with.
    pub const fn token(&self) -> u64 {
        self.token
    }
}

/// A backend could not answer: the store is unreachable, refused the request, or answered with something that does
/// not decode. The in-memory store never fails.
///
/// ```
/// use adk_runtime::cache::BackendError;
///
/// let error = BackendError::new("redis", std::io::Error::other("connection refused"));
/// assert_eq!(error.backend(), "redis");
/// assert_eq!(error.to_string(), "cache backend `redis` failed: connection refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("cache backend `{backend}` failed: {source}")]
pub struct BackendError {
    backend: &'static str,
    #[source]
    source: Box<dyn StdError + Send + Sync>,
}

impl BackendError {
    /// `backend` (its kind, e.g. `"redis"`) failed with `source`.
    pub fn new(backend: &'static str, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        BackendError { backend, source: source.into() }
    }

    /// The kind of backend that failed.
    pub fn backend(&self) -> &'static str {
        self.backend
    }
}
