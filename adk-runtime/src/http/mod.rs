//! axum (0.8) integration, with the `axum` feature: refusals as HTTP answers, a per-client rate limit, and the probes
//! and `/metrics` as routes of an application's own router.
//!
//! - **[`Error`](crate::Error) implements [`IntoResponse`](axum::response::IntoResponse)**, so a handler returning
//!   `Result<_, adk::Error>` (or converting its own error to one) answers every refusal with the status that means
//!   it:
//!
//!   | refusal | status | headers | `error` in the JSON body |
//!   |---|---|---|---|
//!   | `RateLimited` | 429 | `Retry-After`, `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` | `rate_limit_exceeded` |
//!   | `CircuitOpen` | 503 | `Retry-After` (the time left open) | `circuit_open` |
//!   | `BulkheadFull` | 503 | `Retry-After: 1` | `bulkhead_full` |
//!   | `Timeout` | 504 | | `timeout` |
//!   | `CostAboveLimit` | 413 | | `cost_above_limit` |
//!
//!   `Retry-After` is in whole seconds, rounded up and never 0 (a refusal that would be admitted in 300 ms says 1);
//!   `X-RateLimit-Reset` is the Unix time, in seconds rounded up, at which the client's quota is full again. The body
//!   is JSON: `{"error":"rate_limit_exceeded","message":"...","retry_after":42,"limit":100,"remaining":0,
//!   "reset":1767225642}`, the numbers equal to the headers. A 429 relayed from a provider that did not say its limit
//!   (`limit` 0) leaves out `X-RateLimit-Limit`, `X-RateLimit-Remaining` and their JSON fields rather than claim a
//!   limit of 0. `message` is the error's `Display`, which names the policy instance (`rate limit `api` exceeded`).
//!   A cost above what a limiter holds at once can never be admitted, whatever the wait: 413, with `cost` and
//!   `limit` in the body and no `Retry-After`.
//! - **[`RateLimitByKey`]** is a `tower` layer that limits each client by a key taken from a header (such as
//!   `x-api-key`), from the peer's IP address, or from a function of the request, and sets `X-RateLimit-Limit`,
//!   `X-RateLimit-Remaining` and `X-RateLimit-Reset` on admitted responses too.
//! - **[`router()`]** is `/metrics`, `/health/live`, `/health/ready` and `/health/startup` as an axum
//!   [`Router`](axum::Router), answered by the same code as the standalone
//!   [`HealthServer`](crate::health::HealthServer).
//!
//! ```
//! use std::net::SocketAddr;
//! use axum::Router;
//! use axum::http::HeaderName;
//! use axum::routing::post;
//! use adk_runtime::http::RateLimitByKey;
//! use adk_runtime::rate_limit::RateLimiter;
//!
//! async fn answer() -> Result<String, adk_runtime::Error> {
//!     Ok("42".to_owned())
//! }
//!
//! let per_key = RateLimiter::builder("doc-http-api").rpm(60).build().unwrap();
//! let app: Router = Router::new()
//!     .route("/v1/answer", post(answer))
//!     .layer(RateLimitByKey::new(per_key).by_header(HeaderName::from_static("x-api-key")))
//!     .merge(adk_runtime::http::router());
//! // axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//! # let _ = app.into_make_service_with_connect_info::<SocketAddr>();
//! ```

mod per_client;
mod response;
mod router;

pub use per_client::{MissingKey, RateLimitByKey, RateLimitByKeyService};
pub use response::{X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET};
pub use router::{router, router_for};
