//! The Redis cache backend: entries a fleet shares, serialised with serde, expiring by Redis's own `PX`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use ::redis::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backend::{Backend, BackendError, BoxFuture, Lease};
use crate::redis::{RedisConnection, RedisError};

static FILL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fill.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
static LEN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("len.lua")));

/// A cache's entries in Redis (or Redis Cluster), shared by every process using the same Redis and cache name.
///
/// **Keys.** An entry lives under `<prefix>:cache:{<name>}:<generation>:v:<key as JSON>`, its lease under
/// `...:l:<key as JSON>`: the key itself, not a hash, so two keys never share an entry; the braces are a Cluster hash
/// tag, so one cache is one slot. [`invalidate_all`](Backend::invalidate_all) raises the cache's generation
/// (`<prefix>:cache:{<name>}:generation`, one `INCR`): every entry and lease of the old one is unreachable at once and
/// expires by its own time to live (an entry stored without a ttl stays until Redis evicts it, so give shared caches
/// a ttl).
///
/// **Values** are JSON (serde_json): readable with `redis-cli` when an operator looks, tolerant of a field added by
/// a newer release running beside an older one (with `#[serde(default)]`), and already a dependency; the values a
/// cache of LLM answers holds are text, where a binary format saves little.
///
/// **Single flight** across processes: [`lease`](Backend::lease) is `SET NX PX` of a random token, so one process
/// computes a missing key while the others poll; [`fill`](Backend::fill) and [`release`](Backend::release) act only
/// while the token still holds (one script each).
///
/// Every request goes through the connection's breaker and timeouts; a failure is a [`BackendError`] of backend
/// `redis`.
///
/// ```no_run
/// use std::time::Duration;
/// use adk_runtime::cache::{Backend, RedisBackend};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let answers: RedisBackend<String, String> = RedisBackend::new(adk_runtime::redis::connection()?, "answers");
/// answers.insert("question".to_owned(), "answer".to_owned(), Some(Duration::from_secs(600))).await?;
/// assert_eq!(answers.get(&"question".to_owned()).await?, Some("answer".to_owned()));
/// # Ok(()) }
/// ```
pub struct RedisBackend<K, V> {
    connection: RedisConnection,
    /// `<prefix>:cache:{<name>}:`
    stem: String,
    types: PhantomData<fn(K) -> V>,
}

impl<K, V> RedisBackend<K, V> {
    /// The entries of the cache called `name`, over `connection`.
    pub fn new(connection: RedisConnection, name: &str) -> Self {
        let stem = format!("{}:cache:{{{name}}}:", connection.settings().get_prefix());
        RedisBackend { connection, stem, types: PhantomData }
    }

    fn generation_key(&self) -> String {
        format!("{}generation", self.stem)
    }
}

impl<K: Serialize, V> RedisBackend<K, V> {
    /// The entry's and the lease's names, under the generation now in force (one read of it).
    async fn names(&self, key: &K) -> Result<(String, String), BackendError> {
        let key = serde_json::to_string(key).map_err(failed)?;
        let generation_key = self.generation_key();
        let generation: Option<u64> = self
            .connection
            .run("cache_generation", |mut c| async move {
                ::redis::cmd("GET").arg(generation_key).query_async(&mut c).await
            })
            .await
            .map_err(failed)?;
        let generation = generation.unwrap_or(0);
        Ok((format!("{}{generation}:v:{key}", self.stem), format!("{}{generation}:l:{key}", self.stem)))
    }
}

fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BackendError {
    BackendError::new("redis", error)
}

fn millis(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
}

impl<K, V> Backend<K, V> for RedisBackend<K, V>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<Option<V>, BackendError>> {
        Box::pin(async move {
            let (entry, _) = self.names(key).await?;
            let stored: Option<String> = self
                .connection
                .run("cache_get", |mut c| async move { ::redis::cmd("GET").arg(entry).query_async(&mut c).await })
                .await
                .map_err(failed)?;
            stored.map(|json| serde_json::from_str(&json).map_err(failed)).transpose()
        })
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let (entry, _) = self.names(&key).await?;
            let json = serde_json::to_string(&value).map_err(failed)?;
            let ttl = millis(ttl);
            self.connection
                .run("cache_insert", |mut c| async move {
                    let mut set = ::redis::cmd("SET");
                    set.arg(entry).arg(json);
                    if ttl > 0 {
                        set.arg("PX").arg(ttl);
                    }
                    set.query_async::<()>(&mut c).await
                })
                .await
                .map_err(failed)
        })
    }

    fn invalidate<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let (entry, lease) = self.names(key).await?;
            // Both names carry the generation's hash tag, so one DEL reaches both even on a cluster.
            let entry_again = entry.clone();
            let removed: Vec<i64> = self
                .connection
                .run("cache_invalidate", |mut c| async move {
                    ::redis::pipe()
                        .cmd("EXISTS")
                        .arg(&entry_again)
                        .cmd("DEL")
                        .arg(entry)
                        .arg(lease)
                        .query_async(&mut c)
                        .await
                })
                .await
                .map_err(failed)?;
            Ok(removed.first().is_some_and(|&existed| existed > 0))
        })
    }

    fn invalidate_all(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let generation_key = self.generation_key();
            self.connection
                .run("cache_invalidate_all", |mut c| async move {
                    ::redis::cmd("INCR").arg(generation_key).query_async::<i64>(&mut c).await
                })
                .await
                .map(drop)
                .map_err(failed)
        })
    }

    fn len(&self) -> BoxFuture<'_, Result<usize, BackendError>> {
        Box::pin(async move {
            let (generation_key, stem) = (self.generation_key(), self.stem.clone());
            let count: i64 = self
                .connection
                .run("cache_len", |mut c| async move { LEN.key(generation_key).arg(stem).invoke_async(&mut c).await })
                .await
                .map_err(failed)?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
    }

    fn lease<'a>(&'a self, key: &'a K, hold: Duration) -> BoxFuture<'a, Result<Option<Lease>, BackendError>> {
        Box::pin(async move {
            let (_, lease) = self.names(key).await?;
            // Tokens are never 0, so that no lease matches a missing value.
            let token = fastrand::u64(1..);
            let hold = millis(Some(hold));
            let granted: Option<String> = self
                .connection
                .run("cache_lease", |mut c| async move {
                    ::redis::cmd("SET").arg(lease).arg(token).arg("NX").arg("PX").arg(hold).query_async(&mut c).await
                })
                .await
                .map_err(failed)?;
            Ok(granted.map(|_| Lease::new(token)))
        })
    }

    fn fill(&self, key: K, value: V, ttl: Option<Duration>, lease: Lease) -> BoxFuture<'_, Result<bool, BackendError>> {
        Box::pin(async move {
            let (entry, lease_key) = self.names(&key).await?;
            let json = serde_json::to_string(&value).map_err(failed)?;
            let ttl = millis(ttl);
            let stored: i64 = self
                .connection
                .run("cache_fill", |mut c| async move {
                    FILL.key(entry).key(lease_key).arg(json).arg(ttl).arg(lease.token()).invoke_async(&mut c).await
                })
                .await
                .map_err(failed)?;
            Ok(stored == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a K, lease: Lease) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let (_, lease_key) = self.names(key).await?;
            self.connection
                .run("cache_release", |mut c| async move {
                    RELEASE.key(lease_key).arg(lease.token()).invoke_async::<i64>(&mut c).await
                })
                .await
                .map(drop)
                .map_err(failed)
        })
    }
}

impl<K, V> fmt::Debug for RedisBackend<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend").field("stem", &self.stem).field("connection", &self.connection).finish()
    }
}

/// Why a Redis request failed, as a cache backend's error source.
impl From<RedisError> for BackendError {
    fn from(error: RedisError) -> Self {
        failed(error)
    }
}

#[cfg(test)]
mod tests;

/// What a `backend = "redis"` cache stores must cross the wire: keys and values that serde can write and read.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a `backend = \"redis\"` cache: it must be `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "not serialisable",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`, or keep this cache in memory (leave out `backend`)"
)]
pub trait RedisCacheable: Serialize + DeserializeOwned + Send + Sync {}

impl<T: Serialize + DeserializeOwned + Send + Sync> RedisCacheable for T {}

/// How long a process computing a missing key holds its lease: others wait at most this long if it dies.
const LEASE_HOLD: Duration = Duration::from_secs(5);

/// How often a process waiting for another's computation looks again.
const POLL: Duration = Duration::from_millis(20);

impl super::CachePolicy {
    /// [`get_or_run`](Self::get_or_run) with the entries in the process's Redis ([`crate::redis::connection`]),
    /// shared by every process using it, under the cache's name: a hit is one `GET`; a miss computes the key once
    /// in the whole fleet (a lease in Redis; the others poll for the value every 20 ms, for at most the lease's 5 s)
    /// and stores it with the cache's `ttl`. When Redis fails, `call` runs and its output is returned uncached.
    ///
    /// ```no_run
    /// use adk_runtime::cache::{CachePolicy, OkValues};
    ///
    /// static ANSWERS: CachePolicy = CachePolicy::new("doc::answer", "doc.rs:1");
    ///
    /// async fn answer(question: &str) -> Result<String, std::io::Error> {
    ///     let call = async { Ok(format!("an answer to {question}")) };
    ///     ANSWERS.get_or_run_redis((question.to_owned(),), call, OkValues).await
    /// }
    /// ```
    pub async fn get_or_run_redis<K, R, M>(&self, key: K, call: impl Future<Output = R>, mode: M) -> R
    where
        K: RedisCacheable,
        M: super::Cacheable<R>,
        M::Value: RedisCacheable,
    {
        let _ = mode;
        let connection = match crate::redis::connection() {
            Ok(connection) => connection,
            Err(error) => {
                tracing::debug!(cache = self.name(), %error, "no usable Redis: computed without the cache");
                return call.await;
            }
        };
        let backend: RedisBackend<K, M::Value> = RedisBackend::new(connection, self.name());
        let lease = loop {
            match backend.get(&key).await {
                Ok(Some(value)) => return M::from_cached(value),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(cache = self.name(), %error, "Redis failed: computed without the cache");
                    break None;
                }
            }
            match backend.lease(&key, LEASE_HOLD).await {
                // The holder before may have filled the key between the look and the lease: look once more.
                Ok(Some(lease)) => match backend.get(&key).await {
                    Ok(Some(value)) => {
                        let _ = backend.release(&key, lease).await;
                        return M::from_cached(value);
                    }
                    Ok(None) => break Some(lease),
                    Err(_) => break None,
                },
                Ok(None) => tokio::time::sleep(POLL).await,
                Err(_) => break None,
            }
        };
        let output = call.await;
        if let Some(lease) = lease {
            let stored = match M::cached_value(&output) {
                Some(value) => backend.fill(key, value.clone(), self.settings().ttl, lease).await.map(drop),
                None => backend.release(&key, lease).await,
            };
            if let Err(error) = stored {
                tracing::debug!(cache = self.name(), %error, "the computed value was not stored in Redis");
            }
        }
        output
    }
}
