//! The runtime of adk: the policies behind the attributes, usable on their own.
//!
//! Users normally depend on the `adk` facade, which re-exports this crate and the attribute macros.

pub mod bulkhead;
pub mod cache;
pub mod circuit_breaker;
#[cfg(feature = "dead_letter")]
pub mod dead_letter;
pub mod deadline;
pub mod error;
pub mod fallback;
pub mod health;
#[cfg(feature = "axum")]
pub mod http;
mod json;
pub mod metrics;
pub mod observed;
pub mod policy;
pub mod rate_limit;
#[cfg(feature = "redis")]
pub mod redis;
/// Redis servers the unit tests start for themselves (shared with the integration tests in `tests/`).
#[cfg(all(test, feature = "redis"))]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;
pub mod registry;
pub mod retry;
mod settings;
mod sync;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod timeout;
#[cfg(feature = "tower")]
pub mod tower;

#[doc(hidden)]
pub mod macro_support;

pub use circuit_breaker::CircuitState;
#[cfg(feature = "reqwest")]
pub use error::reqwest;
pub use error::{Classify, Error, ErrorClass, HttpError};
/// The `prometheus` crate the metrics are recorded with, for [`metrics::register_into`].
pub use prometheus;
pub use registry::{Registry, registry};
pub use settings::SettingsError;
