//! # adk — production behaviour for async agent functions, by annotation
//!
//! An agent function that calls an LLM, a database or another service gets retries, timeouts and fallbacks (and
//! more policies as they land) from attributes validated at compile time, backed by one runtime that operators can
//! see and steer.
//!
//! ```
//! #[derive(Debug, thiserror::Error, adk::Classify)]
//! enum AgentError {
//!     #[error("provider unavailable")]
//!     Unavailable,                // transient: worth another try
//!     #[error("prompt rejected")]
//!     #[adk(permanent)]
//!     Rejected,                   // returned at once
//!     #[error(transparent)]
//!     Adk(#[from] adk::Error),    // adk's refusals, classified as what they are
//! }
//!
//! async fn cheaper_model(prompt: &str) -> Result<String, AgentError> {
//!     Ok(format!("(short answer to {prompt})"))
//! }
//!
//! #[adk::fallback(cheaper_model)]
//! #[adk::timeout("10s")]
//! #[adk::retry(attempts = 3, backoff = "exponential", base = "200ms", jitter)]
//! #[adk::timeout("2s")]
//! async fn complete(prompt: &str) -> Result<String, AgentError> {
//!     Err(AgentError::Unavailable)
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! assert_eq!(complete("hello").await.unwrap(), "(short answer to hello)");
//! # }
//! ```
//!
//! Written order is wrapping order: the first attribute is the outermost layer. Every policy refusal is an
//! [`Error`] value; the annotated function's error type implements `From<adk::Error>`, and [`Classify`](trait@Classify)
//! says which errors are worth retrying: derive it for your own error types (`#[derive(adk::Classify)]`, see
//! [the derive](derive@Classify)); `anyhow::Error` (feature `anyhow`, on by default), `eyre::Report` (`eyre`),
//! `reqwest::Error` (`reqwest`), `tonic::Status` (`tonic`), `std::io::Error` and [`HttpError`] implement it already.

// The derive shares the trait's name, as serde's derives do: it lives in the macro namespace.
pub use adk_macros::Classify;
pub use adk_macros::{bulkhead, cached, circuit_breaker, fallback, observed, rate_limited, retry, timeout};
pub use adk_runtime::metrics;
pub use adk_runtime::{CircuitState, Classify, Error, ErrorClass, HttpError, Registry, registry};

/// reqwest (0.13) integration, with the `reqwest` feature: `Classify` for `reqwest::Error`, and [`ResponseExt`](
/// reqwest::ResponseExt), which checks a response's status and keeps its `Retry-After`.
#[cfg(feature = "reqwest")]
#[doc(inline)]
pub use adk_runtime::reqwest;

/// The runtime policies, for use without the attributes (builders, registries, metrics, deadlines, telemetry,
/// health).
#[doc(inline)]
pub use adk_runtime as runtime;

/// axum (0.8) integration (feature `axum`): `IntoResponse` for [`Error`], the per-client rate limit
/// [`RateLimitByKey`](http::RateLimitByKey), and [`router()`](http::router), the `/metrics` and `/health/*` routes.
#[cfg(feature = "axum")]
#[doc(inline)]
pub use adk_runtime::http;

/// Redis as a shared backend (feature `redis`): [`connect`](redis::connect) or [`configure`](redis::configure) the
/// process's Redis; `#[rate_limited(..., backend = "redis")]` and [`RedisBackend`](runtime::rate_limit::RedisBackend)
/// decide there.
///
/// ```no_run
/// adk::redis::configure(adk::redis::RedisSettings::url("redis://127.0.0.1:6379").prefix("billing")).unwrap();
/// ```
#[cfg(feature = "redis")]
#[doc(inline)]
pub use adk_runtime::redis;

/// adk's policies as `tower` layers (feature `tower`).
#[cfg(feature = "tower")]
pub use adk_runtime::tower;

/// The `prometheus` crate adk records into: `adk::metrics::register_into(&registry)` takes a
/// `prometheus::Registry` of this version, so use this path rather than a `prometheus` dependency of another version.
///
/// ```
/// let registry = adk::prometheus::Registry::new();
/// adk::metrics::register_into(&registry).unwrap();
/// ```
pub use adk_runtime::prometheus;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[doc(hidden)]
pub mod __private {
    pub use adk_runtime::macro_support::*;

    /// `backend = "redis"` of `#[rate_limited]`: `on_backend_error` is 0 local, 1 allow, 2 deny.
    #[cfg(feature = "redis")]
    pub const fn rate_limit_redis<T>(
        policy: rate_limit::RateLimitPolicy,
        on_backend_error: u8,
        fleet_size: u32,
    ) -> rate_limit::RateLimitPolicy {
        let on_backend_error = match on_backend_error {
            1 => rate_limit::OnBackendError::Allow,
            2 => rate_limit::OnBackendError::Deny,
            _ => rate_limit::OnBackendError::Local,
        };
        policy.with_redis(on_backend_error, fleet_size)
    }

    /// `backend = "redis"` of `#[cached]`: the policy, whose `get_or_run_redis` keeps entries in Redis.
    #[cfg(feature = "redis")]
    pub fn cache_redis<T>(policy: &cache::CachePolicy) -> &cache::CachePolicy {
        policy
    }

    /// Without the `redis` feature, the bound names the feature in the compile error, and the lookup stays in memory
    /// so that no second error follows.
    #[cfg(not(feature = "redis"))]
    pub fn cache_redis<T: RedisFeature>(policy: &cache::CachePolicy) -> InMemory<'_> {
        InMemory(policy)
    }

    /// A cache whose `backend = "redis"` could not be honoured (see [`cache_redis`]).
    #[cfg(not(feature = "redis"))]
    pub struct InMemory<'p>(&'p cache::CachePolicy);

    #[cfg(not(feature = "redis"))]
    impl InMemory<'_> {
        /// The in-memory lookup.
        pub async fn get_or_run_redis<K, R, M>(&self, key: K, call: impl Future<Output = R>, mode: M) -> R
        where
            K: cache::CacheKey,
            M: cache::Cacheable<R>,
        {
            self.0.get_or_run(key, call, mode).await
        }
    }

    /// Holds only where the `redis` feature of `adk` is on.
    #[cfg(not(feature = "redis"))]
    #[diagnostic::on_unimplemented(
        message = "`backend = \"redis\"` needs the `redis` feature of `adk`",
        label = "this limiter keeps its state in Redis",
        note = "turn it on in Cargo.toml: adk = {{ version = \"...\", features = [\"redis\"] }}"
    )]
    pub trait RedisFeature {}

    /// Without the `redis` feature, the bound names the feature in the compile error.
    #[cfg(not(feature = "redis"))]
    pub const fn rate_limit_redis<T: RedisFeature>(
        policy: rate_limit::RateLimitPolicy,
        _on_backend_error: u8,
        _fleet_size: u32,
    ) -> rate_limit::RateLimitPolicy {
        policy
    }
}
