//! Dead letters: calls that failed for good, kept with their arguments and error so they can be listed, replayed
//! and deleted.
//!
//! What exists so far is the storage seam: the [`DeadLetter`] record, the [`Backend`] trait a store implements, and
//! [`MemoryBackend`], a bounded store in this process. No attribute writes dead letters yet.
//!
//! The module is behind the `dead_letter` feature of `adk-runtime` (it brings in `serde_json` for the arguments).
//!
//! # Replaying across a fleet
//! Several replicas share one queue, and each entry must be replayed by one of them, not by all: a replayer first
//! [claims](Backend::claim) the entry for a lease, replays it, then [completes](Backend::complete) or
//! [fails](Backend::fail) its claim. While the claim holds, no other replica can claim the entry; a replayer that
//! dies leaves the entry in place, claimable again once its lease has run out. Every claim carries a fresh token, and
//! `complete` and `fail` act only while the token still holds the entry, so a replayer whose lease ran out cannot
//! undo the work of the one that took over. A shared backend gets this from its store:
//! - **Redis**: the queue is a stream with one consumer group, each replica a consumer. `XREADGROUP` hands a new
//!   entry to exactly one consumer, `XAUTOCLAIM` with the lease as its idle time takes over entries whose consumer
//!   went silent, and `XACK` with `XDEL` completes one.
//! - **PostgreSQL**: the queue is a table. A claim is `SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1` over the rows
//!   whose lease has expired, updating the row's lease and token in the same transaction, so concurrent replicas
//!   skip each other's rows instead of waiting on them; `complete` deletes, and `fail` updates, the row only where
//!   the token still matches.
//!
//! ```
//! use adk_runtime::ErrorClass;
//! use adk_runtime::dead_letter::{Backend, DeadLetter, MemoryBackend};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let queue = MemoryBackend::new(1_000);
//! let failed = DeadLetter::new("agent::complete", serde_json::json!({ "prompt": "hi" }), "upstream 503", ErrorClass::Transient);
//! let Ok(id) = queue.push(failed).await;
//! let Ok(Some(claim)) = queue.claim(&id, std::time::Duration::from_secs(60)).await else { panic!() };
//! assert_eq!(claim.letter.args["prompt"], "hi");
//! // ... the call succeeds this time:
//! assert_eq!(queue.complete(&claim).await, Ok(true));
//! assert_eq!(queue.len().await, Ok(0));
//! # });
//! ```

mod memory;

use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::error::ErrorClass;

pub use memory::MemoryBackend;

/// A call that failed for good, as kept in a dead-letter queue.
///
/// Timestamps are wall-clock time ([`SystemTime`]): entries outlive the process that wrote them and are read by
/// others.
///
/// ```
/// use adk_runtime::ErrorClass;
/// use adk_runtime::dead_letter::DeadLetter;
///
/// let letter = DeadLetter::new("agent::complete", serde_json::json!(["hi", 3]), "timed out after 10s", ErrorClass::Transient);
/// assert_eq!((letter.tries, letter.first_failed), (1, letter.last_failed));
/// assert!(letter.id.is_empty(), "a backend gives it an id when it is pushed");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The entry's id in its queue, given by the backend when it is pushed.
    pub id: String,
    /// The failed function's path.
    pub function: String,
    /// The call's arguments.
    pub args: serde_json::Value,
    /// The last error, as its `Display` showed it.
    pub error: String,
    /// The last error's class.
    pub class: ErrorClass,
    /// Calls made so far, the first included: 1 when pushed after the call's own attempts, one more per failed replay.
    pub tries: u32,
    /// When the call first failed for good.
    pub first_failed: SystemTime,
    /// When the call, or its latest replay, last failed.
    pub last_failed: SystemTime,
}

impl DeadLetter {
    /// A call to `function` with `args` that has just failed with `error` of class `class`, after one try.
    pub fn new(
        function: impl Into<String>,
        args: serde_json::Value,
        error: impl Into<String>,
        class: ErrorClass,
    ) -> Self {
        let now = SystemTime::now();
        DeadLetter {
            id: String::new(),
            function: function.into(),
            args,
            error: error.into(),
            class,
            tries: 1,
            first_failed: now,
            last_failed: now,
        }
    }
}

/// An entry held for replay by one replayer until it completes or fails the claim, or until the lease runs out.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Claim {
    /// The entry, as it was when claimed.
    pub letter: DeadLetter,
    /// Tells this claim from any later one on the same entry.
    pub token: u64,
}

impl Claim {
    /// The claim `token` on `letter`, for a backend to answer with.
    pub fn new(letter: DeadLetter, token: u64) -> Self {
        Claim { letter, token }
    }
}

/// Where a dead-letter queue keeps its entries: in this process ([`MemoryBackend`]) or in a store that survives it
/// and that a fleet shares.
///
/// Every method is one operation on the store, atomic on its own; ids are the backend's. Entries are ordered by when
/// they were pushed, oldest first.
pub trait Backend: Send + Sync + 'static {
    /// Why the store could not do what was asked. The memory backend cannot fail:
    /// [`Infallible`](std::convert::Infallible).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Adds `letter` under a new id, which it returns (any id `letter` carries is replaced). The entry is durable
    /// before this returns, as far as the store is: the memory backend's entries last as long as the process, a
    /// PostgreSQL backend's survive a killed process once `push` has returned.
    fn push(&self, letter: DeadLetter) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// Up to `limit` entries, oldest first, claimed or not.
    fn list(&self, limit: usize) -> impl Future<Output = Result<Vec<DeadLetter>, Self::Error>> + Send;

    /// The entry `id`, if the queue holds it.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<DeadLetter>, Self::Error>> + Send;

    /// Claims entry `id` for replay for `lease`; `None` when the queue does not hold it or another claim holds it.
    fn claim(&self, id: &str, lease: Duration) -> impl Future<Output = Result<Option<Claim>, Self::Error>> + Send;

    /// Claims the oldest entry no claim holds, for `lease`; `None` when there is none.
    fn claim_next(&self, lease: Duration) -> impl Future<Output = Result<Option<Claim>, Self::Error>> + Send;

    /// The replay succeeded: removes the entry. `false` (and nothing done) when `claim` no longer holds it.
    fn complete(&self, claim: &Claim) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// The replay failed with `error` of class `class`: keeps the entry with one more try, this error and the time
    /// of this failure, and releases the claim. `false` (and nothing done) when `claim` no longer holds it.
    fn fail(
        &self,
        claim: &Claim,
        error: &str,
        class: ErrorClass,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Removes entry `id`, claimed or not; `false` when the queue did not hold it.
    fn delete(&self, id: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Entries held.
    fn len(&self) -> impl Future<Output = Result<usize, Self::Error>> + Send;

    /// Whether the queue holds no entry.
    fn is_empty(&self) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        async { Ok(self.len().await? == 0) }
    }

    /// Removes the entries whose last failure is more than `retention` ago, except those a claim holds (their
    /// replay decides); returns how many were removed.
    fn purge_expired(&self, retention: Duration) -> impl Future<Output = Result<usize, Self::Error>> + Send;
}
