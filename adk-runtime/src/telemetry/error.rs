//! Why [`init`](super::init) refused to install.

use tracing_subscriber::filter::ParseError;
use tracing_subscriber::util::TryInitError;

/// A telemetry setup that cannot be installed. Nothing is installed when one is returned.
///
/// ```
/// use adk_runtime::telemetry::{self, TelemetryConfig, TelemetryError};
///
/// let bad = TelemetryConfig::default().with_debug_sample_rate(1.5);
/// let error = telemetry::init(&bad).unwrap_err();
/// assert!(matches!(error, TelemetryError::Ratio { field: "debug_sample_rate", .. }));
/// assert_eq!(error.to_string(), "`debug_sample_rate` must be within [0, 1], got 1.5");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The filter is not valid `EnvFilter` syntax.
    #[error("invalid log filter `{filter}`: {source}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// What the parser said.
        #[source]
        source: ParseError,
    },
    /// A ratio outside `[0, 1]` (or NaN).
    #[error("`{field}` must be within [0, 1], got {value}")]
    Ratio {
        /// The config key.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A global subscriber (or `log` logger) was installed before.
    #[error("a global tracing subscriber or log logger is already installed")]
    AlreadyInstalled(#[source] TryInitError),
    /// `otel` is configured but this build of adk-runtime lacks the `otel` feature.
    #[error("`otel` export is configured, but adk-runtime was built without its `otel` feature")]
    OtelNotBuilt,
    /// The OTLP exporter needs a tokio runtime (its gRPC channel runs on it); call `init` inside one.
    #[error("`otel` export needs a tokio runtime: call telemetry::init from within one")]
    NoRuntime,
    /// The OTLP exporter could not be built (a malformed endpoint, for one).
    #[error("cannot export spans to `{endpoint}`: {source}")]
    Exporter {
        /// The endpoint as configured.
        endpoint: String,
        /// The exporter's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Spans could not be flushed at shutdown.
    #[error("flushing spans at shutdown failed: {0}")]
    Shutdown(#[source] Box<dyn std::error::Error + Send + Sync>),
}
