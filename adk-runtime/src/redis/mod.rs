//! Redis as a shared backend: its settings ([`RedisSettings`]), the connection the backends share
//! ([`RedisConnection`], behind its own circuit breaker `backend:redis`), and the process's default connection
//! ([`connect`], [`configure`], [`connection`]).
//!
//! Every request is bounded: connecting by [`RedisSettings::connect_timeout`], each command by
//! [`RedisSettings::command_timeout`]. Failures open the breaker, and while it is open requests are not sent at all,
//! so a dead Redis costs a caller nothing but the backend's fallback; a trial request every half second (growing to
//! two seconds while Redis stays away) finds it again. Each request is counted in
//! `adk_backend_requests_total{backend="redis",op,outcome}` and the breaker's view in `adk_backend_up{backend="redis"}`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::circuit_breaker::{CircuitBreaker, Window};
use crate::health::{CheckReport, CheckResult};
use crate::metrics::family;

family! {
    /// `adk_backend_requests_total{backend,op,outcome}`: requests to a shared backend (`backend` such as `redis`, `op`
    /// such as `decide`), `outcome` one of `ok`, `error`, `timeout`, `skipped` (not sent: the backend's circuit breaker
    /// is open).
    static BACKEND_REQUESTS_TOTAL: counter(
        "adk_backend_requests_total",
        "Requests to a shared backend by operation and outcome.",
        ["backend", "op", "outcome"]
    );
}
family! {
    /// `adk_backend_up{backend}`: 1 while the backend answers, 0 since it last failed.
    static BACKEND_UP: gauge("adk_backend_up", "1 while a shared backend answers, 0 since it last failed.", ["backend"]);
}

/// Where Redis is, how long adk waits for it, and how adk names and hashes what it writes there.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::redis::RedisSettings;
///
/// let settings = RedisSettings::url("redis://127.0.0.1:6379")
///     .prefix("billing")
///     .command_timeout(Duration::from_millis(50));
/// assert_eq!(settings.get_prefix(), "billing");
/// let cluster = RedisSettings::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
/// assert_eq!(cluster.get_prefix(), "adk");
/// ```
#[derive(Clone)]
pub struct RedisSettings {
    target: RedisTarget,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    hash_key: [u8; 16],
}

/// A standalone server or the nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (or a proxy), as a `redis://` or `rediss://` URL.
    Url(String),
    /// Some nodes of a Redis Cluster; the rest are discovered from them.
    Cluster(Vec<String>),
}

impl RedisSettings {
    /// Where Redis is when nothing says otherwise.
    pub const DEFAULT_URL: &'static str = "redis://127.0.0.1:6379";
    /// The first segment of every key adk writes.
    pub const DEFAULT_PREFIX: &'static str = "adk";
    /// How long a new connection may take.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
    /// How long one command may take.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(100);
    /// The SipHash key that keys are hashed under unless [`hash_key`](Self::hash_key) sets another: fixed, so that
    /// every replica and every release hashes a key alike.
    pub const DEFAULT_HASH_KEY: [u8; 16] = *b"adk:rate_limit:1";

    /// The server at `url`, with the default prefix and timeouts.
    pub fn url(url: impl Into<String>) -> Self {
        RedisSettings::new(RedisTarget::Url(url.into()))
    }

    /// The Redis Cluster reached through `nodes`.
    pub fn cluster<I: IntoIterator<Item = S>, S: Into<String>>(nodes: I) -> Self {
        RedisSettings::new(RedisTarget::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    /// The server named by the environment variable `ADK_REDIS_URL`, else [`DEFAULT_URL`](Self::DEFAULT_URL).
    pub fn from_env() -> Self {
        RedisSettings::url(std::env::var("ADK_REDIS_URL").unwrap_or_else(|_| Self::DEFAULT_URL.to_owned()))
    }

    fn new(target: RedisTarget) -> Self {
        RedisSettings {
            target,
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            hash_key: Self::DEFAULT_HASH_KEY,
        }
    }

    /// Every key adk writes starts with `prefix` and a colon (default `adk`), so applications sharing a Redis
    /// keep apart.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a new connection may take (default 250 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may take before it counts as failed (default 100 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The SipHash-1-3 key that callers' keys are hashed under. Every process sharing a quota must use the same
    /// one; a key of the fleet's own keeps outsiders from choosing keys that collide.
    pub fn hash_key(mut self, key: [u8; 16]) -> Self {
        self.hash_key = key;
        self
    }

    /// Where Redis is.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The prefix of every key.
    pub fn get_prefix(&self) -> &str {
        &self.prefix
    }

    /// The bound on connecting.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The bound on one command.
    pub fn get_command_timeout(&self) -> Duration {
        self.command_timeout
    }

    pub(crate) fn get_hash_key(&self) -> &[u8; 16] {
        &self.hash_key
    }
}

/// The hash key is a secret: it is left out.
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Why a request to Redis did not get an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The settings name no usable server (a malformed URL, an empty cluster).
    #[error("invalid Redis settings: {0}")]
    Invalid(#[source] ::redis::RedisError),
    /// Not sent: the backend's circuit breaker is open after recent failures.
    #[error("Redis is unavailable (its circuit breaker is open for {retry_after:?})")]
    BreakerOpen {
        /// Until the next trial request.
        retry_after: Duration,
    },
    /// No connection could be made within the connect timeout.
    #[error("no connection to Redis within {0:?}")]
    ConnectTimeout(Duration),
    /// No answer within the command timeout.
    #[error("Redis did not answer within {0:?}")]
    CommandTimeout(Duration),
    /// The process's Redis settings could not be used (see [`connection`]); nothing can be sent.
    #[error("no usable Redis: {0}")]
    Unusable(#[source] Arc<RedisError>),
    /// Redis or the connection to it answered with an error.
    #[error("Redis failed: {0}")]
    Redis(#[from] ::redis::RedisError),
}

/// A connection to Redis shared by the backends that use it: cheap to clone, connected on first use, reconnected
/// by itself, and guarded by a circuit breaker of its own (`backend:redis`, [`breaker`](Self::breaker)).
///
/// ```no_run
/// use adk_runtime::redis::{RedisConnection, RedisSettings};
///
/// let connection = RedisConnection::new(RedisSettings::url("redis://127.0.0.1:6379").prefix("app")).unwrap();
/// assert_eq!(connection.settings().get_prefix(), "app");
/// ```
#[derive(Clone)]
pub struct RedisConnection(Arc<Inner>);

struct Inner {
    settings: RedisSettings,
    client: Client,
    connected: RwLock<Option<Connection>>,
    connecting: tokio::sync::Mutex<()>,
    breaker: Arc<CircuitBreaker>,
    /// [`UNKNOWN`] until the first request, then [`UP`] or [`DOWN`] as the last one went.
    state: AtomicU8,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Every live connection, for readiness.
static LIVE: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// Readiness is `degraded` while a connection's last request failed: decisions are taken by the fallback.
fn readiness() -> Vec<CheckReport> {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|inner| inner.strong_count() > 0);
    let down = live.iter().filter_map(Weak::upgrade).any(|inner| inner.state.load(Ordering::Relaxed) == DOWN);
    if !down {
        return Vec::new();
    }
    let reason = "Redis does not answer: decisions follow on_backend_error";
    vec![CheckReport::new(format!("backend:{BACKEND}"), CheckResult::degraded(reason))]
}

enum Client {
    Single(::redis::Client),
    Cluster(Box<ClusterClient>),
    Unusable(Arc<RedisError>),
}

/// A live connection: a standalone server's (reconnecting by itself) or a cluster's (following its slots).
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The name of the backend's circuit breaker and metric label.
const BACKEND: &str = "redis";

impl RedisConnection {
    /// A connection to the Redis `settings` name. Nothing is sent until a backend needs it; only settings that
    /// cannot work (a malformed URL) are refused here.
    pub fn new(settings: RedisSettings) -> Result<Self, RedisError> {
        let client = match &settings.target {
            RedisTarget::Url(url) => Client::Single(::redis::Client::open(url.as_str()).map_err(RedisError::Invalid)?),
            RedisTarget::Cluster(nodes) => Client::Cluster(Box::new(
                ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.command_timeout)
                    .retries(1)
                    .build()
                    .map_err(RedisError::Invalid)?,
            )),
        };
        let breaker = CircuitBreaker::builder(format!("backend:{BACKEND}"))
            .failure_rate(0.5)
            .min_calls(3)
            .window(Window::Calls(20))
            .open_for(Duration::from_millis(500))
            .max_open_for(Duration::from_secs(2))
            .half_open_calls(1)
            .build()
            .expect("the backend breaker's settings are valid");
        BACKEND_UP.with(&[BACKEND]).set(0);
        let inner = Arc::new(Inner {
            settings,
            client,
            connected: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            breaker,
            state: AtomicU8::new(UNKNOWN),
        });
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&inner));
        static READINESS: Once = Once::new();
        READINESS.call_once(|| crate::health::global().add_source(readiness));
        Ok(RedisConnection(inner))
    }

    /// A connection that never connects, for settings that could not be used: every request fails at once with
    /// [`RedisError::Unusable`], so backends over it decide as when Redis is down.
    pub(crate) fn unusable(error: RedisError) -> Self {
        let connection =
            RedisConnection::new(RedisSettings::url(RedisSettings::DEFAULT_URL)).expect("the default URL is valid");
        let inner = Arc::new(Inner {
            client: Client::Unusable(Arc::new(error)),
            settings: connection.0.settings.clone(),
            connected: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            breaker: connection.0.breaker.clone(),
            state: AtomicU8::new(UNKNOWN),
        });
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&inner));
        RedisConnection(inner)
    }

    /// What it was made with.
    pub fn settings(&self) -> &RedisSettings {
        &self.0.settings
    }

    /// The circuit breaker in front of Redis, `backend:redis`: open after repeated failures or timeouts, when no
    /// request is sent.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.0.breaker
    }

    /// Whether the last request Redis was asked got its answer (false before the first). While it did not,
    /// readiness (`adk_runtime::health`) reports `backend:redis` as `degraded`.
    pub fn is_up(&self) -> bool {
        self.0.state.load(Ordering::Relaxed) == UP
    }

    /// Runs one request `op` (a metric label such as `decide`) through the breaker, within the timeouts.
    pub(crate) async fn run<T, F, Fut>(&self, op: &'static str, request: F) -> Result<T, RedisError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let count = |outcome: &str| BACKEND_REQUESTS_TOTAL.with(&[BACKEND, op, outcome]).inc();
        let permit = match self.0.breaker.acquire() {
            Ok(permit) => permit,
            Err(refusal) => {
                count("skipped");
                let retry_after = crate::Classify::retry_after(&refusal).unwrap_or_default();
                return Err(RedisError::BreakerOpen { retry_after });
            }
        };
        let result = match self.connection().await {
            Ok(connection) => {
                let timeout = self.0.settings.command_timeout;
                match tokio::time::timeout(timeout, request(connection)).await {
                    Ok(answer) => answer.map_err(RedisError::Redis),
                    Err(_) => Err(RedisError::CommandTimeout(timeout)),
                }
            }
            Err(error) => Err(error),
        };
        match &result {
            Ok(_) => {
                permit.success();
                count("ok");
                self.mark(true, None);
            }
            Err(error) => {
                permit.failure();
                count(if matches!(error, RedisError::CommandTimeout(_) | RedisError::ConnectTimeout(_)) {
                    "timeout"
                } else {
                    "error"
                });
                self.mark(false, Some(error));
            }
        }
        result
    }

    /// Logs a change between reachable and not, once per change.
    fn mark(&self, up: bool, error: Option<&RedisError>) {
        let state = if up { UP } else { DOWN };
        if self.0.state.swap(state, Ordering::Relaxed) != state {
            BACKEND_UP.with(&[BACKEND]).set(i64::from(up));
            match error {
                None => tracing::info!(backend = BACKEND, "Redis answers again"),
                Some(error) => tracing::warn!(backend = BACKEND, %error, "Redis unavailable; deciding by fallback"),
            }
        }
    }

    /// The live connection, made on first use within the connect timeout.
    async fn connection(&self) -> Result<Connection, RedisError> {
        if let Some(connection) = self.connected() {
            return Ok(connection);
        }
        let timeout = self.0.settings.connect_timeout;
        let _connecting = self.0.connecting.lock().await;
        if let Some(connection) = self.connected() {
            return Ok(connection);
        }
        let connection = match &self.0.client {
            Client::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(self.0.settings.command_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(200));
                Connection::Single(ConnectionManager::new_lazy_with_config(client.clone(), config)?)
            }
            Client::Unusable(error) => return Err(RedisError::Unusable(error.clone())),
            Client::Cluster(client) => match tokio::time::timeout(timeout, client.get_async_connection()).await {
                Ok(connection) => Connection::Cluster(connection?),
                Err(_) => return Err(RedisError::ConnectTimeout(timeout)),
            },
        };
        *self.0.connected.write().unwrap_or_else(|e| e.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    fn connected(&self) -> Option<Connection> {
        self.0.connected.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("settings", &self.0.settings)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

static DEFAULT: RwLock<Option<RedisConnection>> = RwLock::new(None);

/// Makes the server at `url` this process's Redis, with the default prefix and timeouts: see [`configure`].
///
/// ```no_run
/// adk_runtime::redis::connect("redis://127.0.0.1:6379").unwrap();
/// ```
pub fn connect(url: &str) -> Result<RedisConnection, RedisError> {
    configure(RedisSettings::url(url))
}

/// Makes `settings` this process's Redis: the one that limiters with `backend = "redis"` built from now on use.
/// Limiters built before keep the connection they have.
///
/// ```no_run
/// use adk_runtime::redis::{self, RedisSettings};
///
/// redis::configure(RedisSettings::url("redis://127.0.0.1:6379").prefix("billing")).unwrap();
/// assert_eq!(redis::connection().unwrap().settings().get_prefix(), "billing");
/// ```
pub fn configure(settings: RedisSettings) -> Result<RedisConnection, RedisError> {
    let connection = RedisConnection::new(settings)?;
    *DEFAULT.write().unwrap_or_else(|e| e.into_inner()) = Some(connection.clone());
    Ok(connection)
}

/// This process's Redis: the one [`configure`] or [`connect`] set, else the server named by `ADK_REDIS_URL`
/// (default `redis://127.0.0.1:6379`), made on first use. An `ADK_REDIS_URL` that is not a Redis URL is an error
/// here, every time it is asked for.
pub fn connection() -> Result<RedisConnection, RedisError> {
    if let Some(connection) = DEFAULT.read().unwrap_or_else(|e| e.into_inner()).clone() {
        return Ok(connection);
    }
    let mut default = DEFAULT.write().unwrap_or_else(|e| e.into_inner());
    if let Some(connection) = default.clone() {
        return Ok(connection);
    }
    let connection = RedisConnection::new(RedisSettings::from_env())?;
    *default = Some(connection.clone());
    Ok(connection)
}
