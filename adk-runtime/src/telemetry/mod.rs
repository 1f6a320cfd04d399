//! Logs and traces in one call: [`init`] installs a `tracing` subscriber from a [`TelemetryConfig`].
//!
//! What it installs:
//! - JSON lines (or human lines) on stdout, or any [`MakeWriter`] with [`init_with_writer`];
//! - a level filter in `EnvFilter` syntax (`"info,my_agent=debug"`), from the config or `RUST_LOG`;
//! - DEBUG sampling: a configured fraction of DEBUG and TRACE events is written; INFO and above always are;
//! - the ids of the enclosing spans on every line: a field named `request_id`, `trace_id` or `agent_id` on any
//!   enclosing span (the nearest wins; recorded later with `Span::record` works too) appears as a top-level key of
//!   each JSON line (`key=value` in human lines). With OpenTelemetry export on, lines inside an exported span get
//!   that trace's id as `trace_id` when no span names one;
//! - in JSON lines, the fields of the current span and of every span enclosing it, as top-level keys beside the
//!   event's own (flat, as Loki and Elasticsearch index them): `#[adk::observed(fields(user = user.id))]` and the
//!   arguments the attribute records appear on every line logged inside the call. A name given twice goes to the
//!   event's own field, else the nearest span's; `timestamp`, `level`, `target`, `span` and `message` are never
//!   overwritten (a field of one of these names is written as `fields.<name>`). Values keep the JSON type `tracing`
//!   recorded them with: integers, floats and bools as numbers and bools, strings as strings, values recorded with
//!   `?` (`Debug`) or `%` (`Display`) as strings. Fields named `otel.*` are instructions to the OpenTelemetry
//!   exporter and are left out. A span's fields are kept with the span as it is created or recorded into, so a line
//!   does not format them again;
//! - with the `otel` feature and an [`OtelConfig`], spans exported over OTLP/gRPC (see [`OtelConfig`]);
//! - records of the `log` crate, bridged into the same output.
//!
//! ```no_run
//! use adk_runtime::telemetry::{self, TelemetryConfig};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let _telemetry = telemetry::init(&TelemetryConfig::default().with_filter("info,my_agent=debug"))?;
//!     let span = tracing::info_span!("request", request_id = "r-42", user = "ada", attempt = 2);
//!     let _entered = span.enter();
//!     tracing::info!(tokens = 812, "answered");
//!     // {"timestamp":"...","level":"INFO","request_id":"r-42","target":"my_agent","span":"request",
//!     //  "message":"answered","tokens":812,"user":"ada","attempt":2}
//!     Ok(())
//! }
//! ```
//!
//! Keep the returned [`TelemetryGuard`] for the life of the program: dropping it flushes and stops span export.

mod config;
mod error;
mod fields;
mod format;
mod ids;
#[cfg(feature = "otel")]
mod otel;
mod sampling;

use tracing::Dispatch;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::registry::Registry;
use tracing_subscriber::util::SubscriberInitExt;

pub use config::{LogFormat, OtelConfig, TelemetryConfig};
pub use error::TelemetryError;
/// Where log lines go: `std::io::stdout`, `std::io::stderr`, a `Mutex<File>`, or your own (re-exported from
/// `tracing-subscriber`).
pub use tracing_subscriber::fmt::MakeWriter;

use fields::SpanFieldsLayer;
use format::{HumanLines, JsonLines, NoSpanText};
use ids::IdsLayer;
use sampling::DebugSampler;

/// Installs the configured subscriber as the process' global default, writing to stdout.
///
/// With OpenTelemetry export configured, call it inside a tokio runtime (the exporter's gRPC channel runs on it);
/// it also installs the tracer provider and the W3C trace-context propagator as OpenTelemetry's globals.
///
/// ```
/// use adk_runtime::telemetry::{self, TelemetryConfig, TelemetryError};
///
/// let guard = telemetry::init(&TelemetryConfig::default()).expect("first install");
/// tracing::info!("ready");
/// assert!(matches!(telemetry::init(&TelemetryConfig::default()), Err(TelemetryError::AlreadyInstalled(_))));
/// drop(guard);
/// ```
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    init_with_writer(config, std::io::stdout)
}

/// As [`init`], writing log lines to `writer` (a file, a non-blocking appender, a test buffer).
///
/// ```
/// use adk_runtime::telemetry::{self, TelemetryConfig};
///
/// let _guard = telemetry::init_with_writer(&TelemetryConfig::default(), std::io::stderr).unwrap();
/// ```
pub fn init_with_writer<W>(config: &TelemetryConfig, writer: W) -> Result<TelemetryGuard, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (dispatch, guard) = dispatch(config, writer)?;
    dispatch.try_init().map_err(TelemetryError::AlreadyInstalled)?;
    #[cfg(feature = "otel")]
    guard.install_otel_globals();
    Ok(guard)
}

/// Builds the configured subscriber without installing it, for a scope (`tracing::dispatcher::with_default`), a
/// task (`tracing::instrument::WithSubscriber`) or a test.
///
/// ```
/// use adk_runtime::telemetry::{self, TelemetryConfig};
///
/// let (dispatch, _guard) = telemetry::dispatch(&TelemetryConfig::default(), std::io::sink).unwrap();
/// tracing::dispatcher::with_default(&dispatch, || tracing::info!("only inside this scope"));
/// ```
pub fn dispatch<W>(config: &TelemetryConfig, writer: W) -> Result<(Dispatch, TelemetryGuard), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let rate = config.debug_sample_rate;
    if !(0.0..=1.0).contains(&rate) {
        return Err(TelemetryError::Ratio { field: "debug_sample_rate", value: rate });
    }
    let filter = level_filter(config)?;
    #[cfg_attr(not(feature = "otel"), expect(unused_mut))]
    let mut guard = TelemetryGuard::default();
    let mut layers: Vec<Box<dyn Layer<Layered<EnvFilter, Registry>> + Send + Sync>> = vec![IdsLayer.boxed()];

    let otel_trace_ids = config.otel.is_some();
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    match config.format {
        LogFormat::Json => {
            layers.push(SpanFieldsLayer.boxed());
            layers.push(
                lines
                    .with_ansi(false)
                    .fmt_fields(NoSpanText)
                    .event_format(JsonLines { otel_trace_ids })
                    .with_filter(DebugSampler::new(rate))
                    .boxed(),
            );
        }
        LogFormat::Human => layers.push(
            lines
                .with_ansi(config.ansi)
                .event_format(HumanLines { otel_trace_ids })
                .with_filter(DebugSampler::new(rate))
                .boxed(),
        ),
    }

    if let Some(otel) = &config.otel {
        #[cfg(feature = "otel")]
        {
            let provider = otel::provider(config, otel)?;
            layers.push(otel::layer(&provider).boxed());
            guard.provider = Some(provider);
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = otel;
            return Err(TelemetryError::OtelNotBuilt);
        }
    }

    let subscriber = Registry::default().with(filter).with(layers);
    Ok((Dispatch::new(subscriber), guard))
}

fn level_filter(config: &TelemetryConfig) -> Result<EnvFilter, TelemetryError> {
    let filter = match &config.filter {
        Some(filter) => filter.clone(),
        None => std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".to_owned()),
    };
    EnvFilter::builder().parse(&filter).map_err(|source| TelemetryError::Filter { filter, source })
}

/// The exported trace's id of span `id`, when spans are exported and it was sampled.
fn otel_trace_id(id: &tracing::span::Id) -> Option<String> {
    #[cfg(feature = "otel")]
    return otel::trace_id(id);
    #[cfg(not(feature = "otel"))]
    {
        let _ = id;
        None
    }
}

/// Keeps span export running; dropping it flushes the spans not yet sent and stops export. Logs need no guard.
///
/// ```
/// # use adk_runtime::telemetry::{self, TelemetryConfig};
/// let (_, guard) = telemetry::dispatch(&TelemetryConfig::default(), std::io::sink).unwrap();
/// guard.shutdown().unwrap();
/// ```
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops span export"]
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes the spans not yet exported and stops export, reporting a failure. This blocks until the exporter
    /// answers or times out: on a single-threaded tokio runtime call it from `spawn_blocking` (or drop the guard
    /// after the runtime), since the exporter's connection runs on the runtime.
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), TelemetryError> {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            provider.shutdown().map_err(|error| TelemetryError::Shutdown(Box::new(error)))?;
        }
        Ok(())
    }

    #[cfg(feature = "otel")]
    fn install_otel_globals(&self) {
        if let Some(provider) = &self.provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("adk telemetry: {error}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing::dispatcher::with_default;
    use tracing::field::Empty;

    use super::*;

    /// A log sink for tests: every line written, kept in memory.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
            self.text()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// Runs `body` under the subscriber `config` describes, and returns what it wrote.
    pub(crate) fn capture(config: &TelemetryConfig, body: impl FnOnce()) -> Captured {
        let captured = Captured::default();
        let (dispatch, _guard) = dispatch(config, captured.clone()).unwrap();
        with_default(&dispatch, body);
        captured
    }

    fn json(filter: &str) -> TelemetryConfig {
        TelemetryConfig::default().with_filter(filter)
    }

    #[test]
    fn every_json_line_carries_the_ids_of_its_enclosing_spans() {
        let lines = capture(&json("trace"), || {
            let request = tracing::info_span!("request", request_id = "r-1", agent_id = 7);
            let _request = request.enter();
            let step = tracing::info_span!("step", trace_id = %"t-9", attempt = 2);
            let _step = step.enter();
            tracing::info!(tokens = 812_u64, model = "small", cached = false, "answered");
        })
        .json_lines();
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "adk_runtime::telemetry::tests");
        assert_eq!(line["span"], "step");
        assert_eq!(line["message"], "answered");
        assert_eq!(
            (&line["request_id"], &line["trace_id"], &line["agent_id"]),
            (&"r-1".into(), &"t-9".into(), &"7".into())
        );
        assert_eq!((&line["tokens"], &line["model"], &line["cached"]), (&812.into(), &"small".into(), &false.into()));
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
    }

    #[test]
    fn the_nearest_span_wins_ids_recorded_later_count_and_lines_outside_spans_have_none() {
        let lines = capture(&json("info"), || {
            tracing::info!("before");
            let outer = tracing::info_span!("outer", request_id = "outer-id", agent_id = Empty);
            let _outer = outer.enter();
            outer.record("agent_id", "planner");
            let inner = tracing::info_span!("inner", request_id = "inner-id");
            inner.in_scope(|| tracing::info!("inside"));
            tracing::info!(request_id = "own", "own id");
        })
        .json_lines();
        assert!(lines[0].get("request_id").is_none() && lines[0].get("span").is_none(), "{}", lines[0]);
        assert_eq!((&lines[1]["request_id"], &lines[1]["agent_id"]), (&"inner-id".into(), &"planner".into()));
        assert_eq!(lines[2]["request_id"], "own", "an event's own field is not overwritten by its span's");
    }

    #[test]
    fn json_lines_carry_the_fields_of_every_enclosing_span_as_top_level_keys_of_their_json_types() {
        let lines = capture(&json("info"), || {
            let call = tracing::info_span!(
                "complete",
                user = "ada",
                attempt = 2_u64,
                offset = -3_i64,
                temperature = 0.5,
                streamed = true,
                prompt = ?"hi",
                model = %"small",
            );
            let _call = call.enter();
            let step = tracing::info_span!("step", step = "plan");
            step.in_scope(|| tracing::info!(tokens = 812_u64, "answered"));
            tracing::info!("outside the step");
        })
        .json_lines();
        let line = &lines[0];
        assert_eq!(
            (&line["span"], &line["message"], &line["tokens"]),
            (&"step".into(), &"answered".into(), &812.into())
        );
        assert_eq!((&line["step"], &line["user"]), (&"plan".into(), &"ada".into()), "{line}");
        assert_eq!((&line["attempt"], &line["offset"], &line["temperature"]), (&2.into(), &(-3).into(), &0.5.into()));
        assert_eq!(line["streamed"], true, "{line}");
        assert_eq!(
            (&line["prompt"], &line["model"]),
            (&r#""hi""#.into(), &"small".into()),
            "Debug and Display as strings"
        );
        assert!(lines[1].get("step").is_none(), "a span's fields end with it: {}", lines[1]);
        assert_eq!(lines[1]["user"], "ada");
    }

    #[test]
    fn the_nearest_span_wins_a_field_name_and_the_events_own_field_wins_over_every_span() {
        let text = capture(&json("info"), || {
            let outer = tracing::info_span!("outer", user = "outer-user", model = "outer-model", region = "eu");
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", user = "inner-user", model = "inner-model");
            inner.in_scope(|| tracing::info!(model = "own-model", "answered"));
        })
        .text();
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (&line["user"], &line["model"], &line["region"]),
            (&"inner-user".into(), &"own-model".into(), &"eu".into())
        );
        // serde_json keeps the last of duplicate keys, so count them in the text itself.
        assert_eq!((text.matches(r#""user":"#).count(), text.matches(r#""model":"#).count()), (1, 1), "{text}");
    }

    #[test]
    fn span_fields_never_overwrite_the_keys_of_the_line_itself() {
        let text = capture(&json("info"), || {
            let span = tracing::info_span!("call", message = "span message", level = 3, target = "span target");
            span.in_scope(|| tracing::warn!(span = "event span", "event message"));
        })
        .text();
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (&line["message"], &line["level"], &line["span"]),
            (&"event message".into(), &"WARN".into(), &"call".into())
        );
        assert_eq!(line["target"], "adk_runtime::telemetry::tests");
        assert_eq!((&line["fields.message"], &line["fields.level"]), (&"span message".into(), &3.into()), "{line}");
        assert_eq!((&line["fields.target"], &line["fields.span"]), (&"span target".into(), &"event span".into()));
        for key in ["message", "level", "target", "span", "fields.span"] {
            assert_eq!(text.matches(&format!(r#""{key}":"#)).count(), 1, "one `{key}` in {text}");
        }
    }

    #[test]
    fn span_fields_recorded_later_appear_and_exporter_fields_do_not() {
        let lines = capture(&json("info"), || {
            let span = tracing::info_span!("call", user = Empty, otel.status_code = Empty, attempt = 1);
            let _entered = span.enter();
            tracing::info!("before");
            span.record("user", "ada");
            span.record("attempt", 2);
            span.record("otel.status_code", "ERROR");
            tracing::info!("after");
        })
        .json_lines();
        assert!(lines[0].get("user").is_none(), "an empty field is not written: {}", lines[0]);
        assert_eq!(lines[0]["attempt"], 1);
        assert_eq!((&lines[1]["user"], &lines[1]["attempt"]), (&"ada".into(), &2.into()), "{}", lines[1]);
        assert!(lines[1].get("otel.status_code").is_none(), "{}", lines[1]);
    }

    #[test]
    fn the_filter_uses_env_filter_syntax() {
        let lines = capture(&json("warn,adk_runtime::telemetry::tests=error"), || {
            tracing::warn!("dropped: this module is at error");
            tracing::error!("kept");
            tracing::warn!(target: "elsewhere", "kept: the default is warn");
            tracing::info!(target: "elsewhere", "dropped");
        })
        .json_lines();
        let messages: Vec<&str> = lines.iter().map(|l| l["message"].as_str().unwrap()).collect();
        assert_eq!(messages, ["kept", "kept: the default is warn"]);
    }

    #[test]
    fn an_invalid_filter_is_an_error_naming_it() {
        let error = dispatch(&json("info,=[bad"), io::sink).unwrap_err();
        assert!(matches!(&error, TelemetryError::Filter { filter, .. } if filter == "info,=[bad"), "{error}");
    }

    #[test]
    fn debug_sampling_keeps_a_fraction_of_debug_events_and_every_warning() {
        let count = |rate: f64| {
            let lines = capture(&json("trace").with_debug_sample_rate(rate), || {
                fastrand::seed(11);
                for i in 0..4000 {
                    tracing::debug!(i, "detail");
                    if i % 10 == 0 {
                        tracing::warn!(i, "warning");
                        tracing::info!(i, "progress");
                    }
                }
            })
            .json_lines();
            let of = |level: &str| lines.iter().filter(|l| l["level"] == level).count();
            (of("DEBUG"), of("INFO"), of("WARN"))
        };
        assert_eq!(count(0.0), (0, 400, 400));
        assert_eq!(count(1.0), (4000, 400, 400));
        let (debug, info, warn) = count(0.25);
        assert!((800..=1200).contains(&debug), "{debug} of 4000 kept at 0.25");
        assert_eq!((info, warn), (400, 400));
    }

    #[test]
    fn sampling_never_drops_spans_so_sampled_lines_keep_their_ids() {
        let lines = capture(&json("debug").with_debug_sample_rate(0.0), || {
            let span = tracing::debug_span!("job", request_id = "r-7");
            span.in_scope(|| tracing::info!("done"));
        })
        .json_lines();
        assert_eq!((&lines[0]["request_id"], &lines[0]["span"]), (&"r-7".into(), &"job".into()));
    }

    #[test]
    fn human_lines_lead_with_level_and_ids() {
        let text = capture(&json("info").with_format(LogFormat::Human), || {
            let span = tracing::info_span!("request", request_id = "r-1", user = "u");
            span.in_scope(|| tracing::warn!(tokens = 3, "slow answer"));
        })
        .text();
        let line = text.strip_suffix('\n').expect("one line");
        let (timestamp, rest) = line.split_once(' ').unwrap();
        assert!(timestamp.ends_with('Z'), "{line}");
        assert_eq!(
            rest,
            r#" WARN request_id=r-1 request{request_id="r-1" user="u"}: adk_runtime::telemetry::tests: slow answer tokens=3"#
        );
        assert!(!line.contains('\x1b'), "no colours unless asked: {line}");
    }

    #[test]
    fn ratios_outside_zero_to_one_are_refused() {
        for rate in [-0.1, 1.5, f64::NAN] {
            let error = dispatch(&json("info").with_debug_sample_rate(rate), io::sink).unwrap_err();
            assert!(matches!(error, TelemetryError::Ratio { field: "debug_sample_rate", .. }), "{error}");
        }
    }

    #[cfg(not(feature = "otel"))]
    #[test]
    fn export_configured_without_the_otel_feature_is_an_error() {
        let error = dispatch(&json("info").with_otel(OtelConfig::default()), io::sink).unwrap_err();
        assert!(matches!(error, TelemetryError::OtelNotBuilt), "{error}");
    }
}
