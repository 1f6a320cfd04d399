//! What [`init`](super::init) installs, as a value: build it in code, or deserialize it with serde (from a TOML file,
//! for example).

use serde::Deserialize;

/// How logs, their filter and sampling, and the optional OpenTelemetry export are set up.
///
/// Every field has a default (JSON lines, `RUST_LOG` or `info`, every DEBUG event kept, no export), and unknown keys
/// are rejected, so a misspelt key in a config file is an error rather than a silent default.
///
/// ```
/// use adk_runtime::telemetry::{LogFormat, TelemetryConfig};
///
/// let config = TelemetryConfig::default().with_format(LogFormat::Human).with_filter("info,my_agent=debug");
/// assert_eq!(config.format, LogFormat::Human);
/// ```
///
/// From a config file:
///
/// ```
/// # use adk_runtime::telemetry::TelemetryConfig;
/// let config: TelemetryConfig = toml::from_str(r#"
///     format = "json"
///     filter = "warn,my_agent=debug"
///     debug_sample_rate = 0.1
///     [otel]
///     endpoint = "http://collector:4317"
///     sample_ratio = 0.25
/// "#).unwrap();
/// assert_eq!(config.otel.unwrap().sample_ratio, 0.25);
/// assert!(toml::from_str::<TelemetryConfig>("filtre = \"debug\"").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// Log line format. Default: [`LogFormat::Json`].
    pub format: LogFormat,
    /// Which spans and events are recorded, in `EnvFilter` syntax (`"warn,my_agent=debug,adk::observed=off"`).
    /// Default: the `RUST_LOG` environment variable if set, else `"info"`. It applies to exported spans too: a span
    /// the filter drops is neither logged nor exported.
    pub filter: Option<String>,
    /// The fraction of DEBUG and TRACE events written to the log, in `[0, 1]` (each kept at random with this
    /// probability; INFO and above are always written). Spans are never sampled, so ids stay on every line.
    /// Exported OpenTelemetry spans are not affected. Default: `1.0`.
    pub debug_sample_rate: f64,
    /// Colours in [`LogFormat::Human`] output. Default: `false`.
    pub ansi: bool,
    /// The `service.name` of exported spans. Default: the OpenTelemetry SDK's (`OTEL_SERVICE_NAME`, else
    /// `unknown_service`).
    pub service_name: Option<String>,
    /// Span export over OTLP; `None` (the default) exports nothing. Needs the `otel` feature.
    pub otel: Option<OtelConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            format: LogFormat::Json,
            filter: None,
            debug_sample_rate: 1.0,
            ansi: false,
            service_name: None,
            otel: None,
        }
    }
}

impl TelemetryConfig {
    /// Sets [`format`](Self::format).
    ///
    /// ```
    /// # use adk_runtime::telemetry::{LogFormat, TelemetryConfig};
    /// assert_eq!(TelemetryConfig::default().with_format(LogFormat::Human).format, LogFormat::Human);
    /// ```
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets [`filter`](Self::filter).
    ///
    /// ```
    /// # use adk_runtime::telemetry::TelemetryConfig;
    /// assert_eq!(TelemetryConfig::default().with_filter("debug").filter.as_deref(), Some("debug"));
    /// ```
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Sets [`debug_sample_rate`](Self::debug_sample_rate).
    ///
    /// ```
    /// # use adk_runtime::telemetry::TelemetryConfig;
    /// assert_eq!(TelemetryConfig::default().with_debug_sample_rate(0.1).debug_sample_rate, 0.1);
    /// ```
    pub fn with_debug_sample_rate(mut self, rate: f64) -> Self {
        self.debug_sample_rate = rate;
        self
    }

    /// Sets [`ansi`](Self::ansi).
    ///
    /// ```
    /// # use adk_runtime::telemetry::TelemetryConfig;
    /// assert!(TelemetryConfig::default().with_ansi(true).ansi);
    /// ```
    pub fn with_ansi(mut self, ansi: bool) -> Self {
        self.ansi = ansi;
        self
    }

    /// Sets [`service_name`](Self::service_name).
    ///
    /// ```
    /// # use adk_runtime::telemetry::TelemetryConfig;
    /// assert_eq!(TelemetryConfig::default().with_service_name("agent").service_name.as_deref(), Some("agent"));
    /// ```
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Sets [`otel`](Self::otel).
    ///
    /// ```
    /// # use adk_runtime::telemetry::{OtelConfig, TelemetryConfig};
    /// let config = TelemetryConfig::default().with_otel(OtelConfig::default().with_sample_ratio(0.5));
    /// assert_eq!(config.otel.unwrap().sample_ratio, 0.5);
    /// ```
    pub fn with_otel(mut self, otel: OtelConfig) -> Self {
        self.otel = Some(otel);
        self
    }
}

/// The shape of a log line.
///
/// ```
/// use adk_runtime::telemetry::LogFormat;
/// assert_eq!(LogFormat::default(), LogFormat::Json);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line: `timestamp`, `level`, the ids, `target`, `span`, `message`, then the event's
    /// fields and the fields of the enclosing spans, all at the top level (see the [module docs](super)).
    #[default]
    Json,
    /// For people: `timestamp LEVEL [ids] spans: target: message fields`.
    Human,
}

/// Where and how much to export over OTLP/gRPC.
///
/// ```
/// use adk_runtime::telemetry::OtelConfig;
///
/// let otel = OtelConfig::default();
/// assert_eq!(otel.endpoint, "http://localhost:4317");
/// assert_eq!(otel.sample_ratio, 1.0);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OtelConfig {
    /// The collector's OTLP/gRPC endpoint. Default: `http://localhost:4317`.
    pub endpoint: String,
    /// The fraction of new traces recorded, in `[0, 1]`; a span whose parent was sampled (in or out) follows its
    /// parent, so traces stay whole. Default: `1.0`.
    pub sample_ratio: f64,
    /// How long one export may take, in milliseconds. Default: `10000`.
    pub timeout_ms: u64,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig { endpoint: "http://localhost:4317".to_owned(), sample_ratio: 1.0, timeout_ms: 10_000 }
    }
}

impl OtelConfig {
    /// Sets [`endpoint`](Self::endpoint).
    ///
    /// ```
    /// # use adk_runtime::telemetry::OtelConfig;
    /// assert_eq!(OtelConfig::default().with_endpoint("http://otel:4317").endpoint, "http://otel:4317");
    /// ```
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Sets [`sample_ratio`](Self::sample_ratio).
    ///
    /// ```
    /// # use adk_runtime::telemetry::OtelConfig;
    /// assert_eq!(OtelConfig::default().with_sample_ratio(0.1).sample_ratio, 0.1);
    /// ```
    pub fn with_sample_ratio(mut self, ratio: f64) -> Self {
        self.sample_ratio = ratio;
        self
    }

    /// Sets [`timeout_ms`](Self::timeout_ms).
    ///
    /// ```
    /// # use adk_runtime::telemetry::OtelConfig;
    /// assert_eq!(OtelConfig::default().with_timeout_ms(500).timeout_ms, 500);
    /// ```
    pub fn with_timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }
}
