//! The metric families every policy records into, in one Prometheus registry.
//!
//! Label values are bounded: function names, instance names and outcomes, never a user key or an argument. Policies
//! resolve their labelled handles once (when their `static` state is built), so a call touches only atomics.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Buckets for calls to LLMs and services: milliseconds to minutes.
pub const DURATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// adk's metric families. Reach them with [`families()`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Families {
    /// `adk_calls_total{function,outcome}`
    pub calls_total: IntCounterVec,
    /// `adk_call_duration_seconds{function}`
    pub call_duration_seconds: HistogramVec,
    /// `adk_calls_in_flight{function}`
    pub calls_in_flight: IntGaugeVec,
    /// `adk_rate_limit_decisions_total{limiter,decision}`, `decision` one of `admitted`, `delayed`, `refused`.
    /// Limiters count in per-thread stripes and fold them in here when the metrics are gathered.
    pub rate_limit_decisions_total: IntCounterVec,
    /// `adk_rate_limit_keys{limiter}`: keys whose state a limiter holds, read when the metrics are gathered.
    pub rate_limit_keys: IntGaugeVec,
    /// `adk_circuit_breaker_state{breaker}`: 0 closed, 1 open, 2 half-open.
    pub circuit_breaker_state: IntGaugeVec,
    /// `adk_circuit_breaker_transitions_total{breaker,from,to}`
    pub circuit_breaker_transitions_total: IntCounterVec,
    /// `adk_circuit_breaker_calls_total{breaker,outcome}`
    pub circuit_breaker_calls_total: IntCounterVec,
    /// `adk_retry_attempts_total{function,outcome}`
    pub retry_attempts_total: IntCounterVec,
    /// `adk_cache_requests_total{cache,result}`
    pub cache_requests_total: IntCounterVec,
    /// `adk_cache_entries{cache}`
    pub cache_entries: IntGaugeVec,
    /// `adk_cache_evictions_total{cache}`
    pub cache_evictions_total: IntCounterVec,
    /// `adk_bulkhead_in_use{bulkhead}`
    pub bulkhead_in_use: IntGaugeVec,
    /// `adk_bulkhead_rejections_total{bulkhead}`
    pub bulkhead_rejections_total: IntCounterVec,
    /// `adk_timeouts_total{function}`
    pub timeouts_total: IntCounterVec,
    /// `adk_fallbacks_total{function}`
    pub fallbacks_total: IntCounterVec,
    /// The call families of functions with constant labels, one set per distinct label set.
    labelled_calls: LabelledCalls,
    registry: Registry,
    refreshers: Mutex<Vec<Weak<dyn Refresh>>>,
}

/// A policy instance that keeps some of its numbers in its own atomics (striped per thread, so that hot paths do not
/// share a cache line) and copies them into its metric handles when metrics are gathered.
pub(crate) trait Refresh: Send + Sync {
    /// Brings the instance's metric handles up to date.
    fn refresh(&self);
}

/// Has `instance` refreshed before every gathering of `adk_circuit_breaker_calls_total` or `adk_bulkhead_in_use`,
/// whichever registry gathers them.
pub(crate) fn refresh_before_gathering(instance: Weak<dyn Refresh>) {
    families().refreshers.lock().unwrap_or_else(|e| e.into_inner()).push(instance);
}

/// A family whose values some instances keep elsewhere until it is gathered.
struct Refreshed<C>(C);

impl<C: Collector> Collector for Refreshed<C> {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut refreshers = families().refreshers.lock().unwrap_or_else(|e| e.into_inner());
        refreshers.retain(|instance| match instance.upgrade() {
            Some(instance) => {
                instance.refresh();
                true
            }
            None => false,
        });
        drop(refreshers);
        self.0.collect()
    }
}

/// The process-wide families, registered in adk's own registry.
pub fn families() -> &'static Families {
    static FAMILIES: LazyLock<Families> = LazyLock::new(Families::new);
    &FAMILIES
}

/// The Prometheus text exposition of everything adk records.
///
/// ```
/// adk_runtime::metrics::families().timeouts_total.with_label_values(&["doc::example"]).inc();
/// assert!(adk_runtime::metrics::render().contains("adk_timeouts_total{function=\"doc::example\"} 1"));
/// ```
pub fn render() -> String {
    let mut out = Vec::new();
    let families = families().registry.gather();
    // Encoding into a Vec cannot fail for well-formed families.
    if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(%error, "encoding metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// adk's own registry, for users who gather it alongside theirs (or use [`register_into`]).
pub fn registry() -> &'static Registry {
    &families().registry
}

/// Registers adk's collectors into the user's registry, so one `/metrics` endpoint serves both.
pub fn register_into(target: &Registry) -> prometheus::Result<()> {
    for collector in families().collectors() {
        target.register(collector)?;
    }
    Ok(())
}

impl Families {
    fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition")
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition")
        };
        let families = Families {
            calls_total: counter("adk_calls_total", CALLS_TOTAL_HELP, &["function", "outcome"]),
            call_duration_seconds: HistogramVec::new(
                HistogramOpts::new("adk_call_duration_seconds", CALL_DURATION_HELP).buckets(DURATION_BUCKETS.to_vec()),
                &["function"],
            )
            .expect("valid metric definition"),
            calls_in_flight: gauge("adk_calls_in_flight", CALLS_IN_FLIGHT_HELP, &["function"]),
            rate_limit_decisions_total: counter(
                "adk_rate_limit_decisions_total",
                "Rate limiter decisions.",
                &["limiter", "decision"],
            ),
            rate_limit_keys: gauge("adk_rate_limit_keys", "Keys whose state a rate limiter holds.", &["limiter"]),
            circuit_breaker_state: gauge(
                "adk_circuit_breaker_state",
                "Breaker state: 0 closed, 1 open, 2 half-open.",
                &["breaker"],
            ),
            circuit_breaker_transitions_total: counter(
                "adk_circuit_breaker_transitions_total",
                "Breaker state transitions.",
                &["breaker", "from", "to"],
            ),
            circuit_breaker_calls_total: counter(
                "adk_circuit_breaker_calls_total",
                "Calls seen by a breaker by outcome.",
                &["breaker", "outcome"],
            ),
            retry_attempts_total: counter(
                "adk_retry_attempts_total",
                "Attempts made under a retry policy by outcome.",
                &["function", "outcome"],
            ),
            cache_requests_total: counter("adk_cache_requests_total", "Cache lookups by result.", &["cache", "result"]),
            cache_entries: gauge("adk_cache_entries", "Entries held by a cache.", &["cache"]),
            cache_evictions_total: counter("adk_cache_evictions_total", "Entries evicted from a cache.", &["cache"]),
            bulkhead_in_use: gauge("adk_bulkhead_in_use", "Bulkhead permits held now.", &["bulkhead"]),
            bulkhead_rejections_total: counter(
                "adk_bulkhead_rejections_total",
                "Calls refused by a full bulkhead.",
                &["bulkhead"],
            ),
            timeouts_total: counter("adk_timeouts_total", "Calls that exceeded their timeout.", &["function"]),
            fallbacks_total: counter(
                "adk_fallbacks_total",
                "Calls whose failure was handed to a fallback (counted once per call, whether or not the fallback then succeeded).",
                &["function"],
            ),
            labelled_calls: LabelledCalls::default(),
            registry: Registry::new(),
            refreshers: Mutex::new(Vec::new()),
        };
        for collector in families.collectors() {
            families.registry.register(collector).expect("adk's metric names are unique");
        }
        families
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.calls_total.clone()),
            Box::new(self.call_duration_seconds.clone()),
            Box::new(self.calls_in_flight.clone()),
            Box::new(RefreshedBeforeGather {
                collectors: vec![
                    Box::new(self.rate_limit_decisions_total.clone()),
                    Box::new(self.rate_limit_keys.clone()),
                ],
                refresh: crate::rate_limit::refresh_metrics,
            }),
            Box::new(self.circuit_breaker_state.clone()),
            Box::new(self.circuit_breaker_transitions_total.clone()),
            Box::new(Refreshed(self.circuit_breaker_calls_total.clone())),
            Box::new(self.retry_attempts_total.clone()),
            Box::new(self.cache_requests_total.clone()),
            Box::new(self.cache_entries.clone()),
            Box::new(self.cache_evictions_total.clone()),
            Box::new(Refreshed(self.bulkhead_in_use.clone())),
            Box::new(self.bulkhead_rejections_total.clone()),
            Box::new(self.timeouts_total.clone()),
            Box::new(self.fallbacks_total.clone()),
            Box::new(self.labelled_calls.clone()),
        ]
    }

    /// The call families (`adk_calls_total`, `adk_call_duration_seconds`, `adk_calls_in_flight`) for functions
    /// declared with the constant labels `labels`: the same family names, with the constant labels added to every
    /// series. Created on first request and shared by every function with the same label set.
    pub(crate) fn calls_with_labels(&self, labels: &[(&str, &str)]) -> Result<CallFamilies, InvalidLabel> {
        if labels.is_empty() {
            return Ok(CallFamilies {
                calls_total: self.calls_total.clone(),
                call_duration_seconds: self.call_duration_seconds.clone(),
                calls_in_flight: self.calls_in_flight.clone(),
            });
        }
        self.labelled_calls.families(labels)
    }
}

/// Families whose values are brought up to date from their sources just before they are gathered, for values that
/// are too hot to publish on every change or cheaper to read than to track.
struct RefreshedBeforeGather {
    collectors: Vec<Box<dyn Collector>>,
    refresh: fn(),
}

impl Collector for RefreshedBeforeGather {
    fn desc(&self) -> Vec<&Desc> {
        self.collectors.iter().flat_map(|collector| collector.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        (self.refresh)();
        self.collectors.iter().flat_map(|collector| collector.collect()).collect()
    }
}

/// The three families an observed function records into.
#[derive(Debug, Clone)]
pub(crate) struct CallFamilies {
    pub(crate) calls_total: IntCounterVec,
    pub(crate) call_duration_seconds: HistogramVec,
    pub(crate) calls_in_flight: IntGaugeVec,
}

/// A constant label that cannot be added to the call families.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` cannot be a constant label: {reason}")]
pub(crate) struct InvalidLabel {
    pub(crate) name: String,
    pub(crate) reason: &'static str,
}

/// Label names the call families use themselves, or that Prometheus reserves.
const RESERVED_LABELS: &[&str] = &["function", "outcome", "le", "quantile"];

/// The call families with constant labels. Prometheus' registry wants one set of label names per family, so these
/// families are not registered one by one: this single collector is registered instead and yields them at gather
/// time, where the registry merges them with the unlabelled series of the same names (the text format allows
/// series of one family to carry different labels).
#[derive(Debug, Clone, Default)]
struct LabelledCalls {
    by_labels: Arc<Mutex<HashMap<LabelSet, CallFamilies>>>,
}

/// Constant labels, sorted by name.
type LabelSet = Vec<(String, String)>;

impl LabelledCalls {
    fn families(&self, labels: &[(&str, &str)]) -> Result<CallFamilies, InvalidLabel> {
        let mut key: LabelSet = Vec::with_capacity(labels.len());
        for &(name, value) in labels {
            if RESERVED_LABELS.contains(&name) || name.starts_with("__") {
                return Err(InvalidLabel { name: name.to_owned(), reason: "the name is reserved" });
            }
            let valid = name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if name.is_empty() || !valid {
                return Err(InvalidLabel { name: name.to_owned(), reason: "a label name is [a-zA-Z_][a-zA-Z0-9_]*" });
            }
            if key.iter().any(|(seen, _)| seen == name) {
                return Err(InvalidLabel { name: name.to_owned(), reason: "the name is given twice" });
            }
            key.push((name.to_owned(), value.to_owned()));
        }
        key.sort();
        let mut by_labels = self.by_labels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(families) = by_labels.get(&key) {
            return Ok(families.clone());
        }
        let constant: HashMap<String, String> = key.iter().cloned().collect();
        let families = CallFamilies {
            calls_total: IntCounterVec::new(
                Opts::new("adk_calls_total", CALLS_TOTAL_HELP).const_labels(constant.clone()),
                &["function", "outcome"],
            )
            .expect("valid metric definition"),
            call_duration_seconds: HistogramVec::new(
                HistogramOpts::new("adk_call_duration_seconds", CALL_DURATION_HELP)
                    .const_labels(constant.clone())
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["function"],
            )
            .expect("valid metric definition"),
            calls_in_flight: IntGaugeVec::new(
                Opts::new("adk_calls_in_flight", CALLS_IN_FLIGHT_HELP).const_labels(constant),
                &["function"],
            )
            .expect("valid metric definition"),
        };
        by_labels.insert(key, families.clone());
        Ok(families)
    }
}

impl Collector for LabelledCalls {
    /// None: an unchecked collector, so its families may share names with the registered ones.
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let by_labels = self.by_labels.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(by_labels.len() * 3);
        for families in by_labels.values() {
            out.extend(families.calls_total.collect());
            out.extend(families.call_duration_seconds.collect());
            out.extend(families.calls_in_flight.collect());
        }
        out
    }
}

const CALLS_TOTAL_HELP: &str = "Calls of observed functions by outcome.";
const CALL_DURATION_HELP: &str = "Duration of observed calls.";
const CALLS_IN_FLIGHT_HELP: &str = "Observed calls running now.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_can_serve_adk_metrics_from_their_own_registry() {
        families().fallbacks_total.with_label_values(&["metrics::tests"]).inc();
        let mine = Registry::new();
        register_into(&mine).unwrap();
        let names: Vec<String> = mine.gather().iter().map(|f| f.name().to_owned()).collect();
        assert!(names.contains(&"adk_fallbacks_total".to_owned()), "{names:?}");
    }
}
