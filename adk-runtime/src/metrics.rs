//! The metric families every policy records into, in one Prometheus registry.
//!
//! Label values are bounded: function names, instance names and outcomes, never a user key or an argument. Policies
//! resolve their labelled handles once (when their `static` state is built), so a call touches only atomics.
//!
//! Metrics are a leaf: this module names no policy. A policy that keeps numbers of its own (a limiter's per-thread
//! decision stripes and key count, a breaker's striped outcomes, a bulkhead's slots in use) registers as a refresher,
//! and every gathering (of adk's registry, or of a user's registry through [`register_into`]) first has each live
//! refresher bring its series up to date, once, so no family is read stale. All families sit behind one collector
//! whose descriptors are the families' own, so a user registry that holds other collectors takes it as any other.
//!
//! [`Registry::reset`](crate::Registry::reset) zeroes the counters and histograms, keeping every
//! series and so every handle a policy holds.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
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
    /// `adk_call_duration_seconds{function}`. After [`Registry::reset`](crate::Registry::reset), the exposition
    /// ([`render`], [`registry`], [`register_into`]) shows each series net of what it held at the reset; a handle read
    /// directly still counts from the start.
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
    /// `adk_backend_requests_total{backend,op,outcome}`: requests to a shared backend (`backend` such as `redis`,
    /// `op` such as `decide`), `outcome` one of `ok`, `error`, `timeout`, `skipped` (not sent: the backend's circuit
    /// breaker is open).
    pub backend_requests_total: IntCounterVec,
    /// `adk_backend_up{backend}`: 1 while the backend answers, 0 since it last failed.
    pub backend_up: IntGaugeVec,
    /// The call families of functions with constant labels, one set per distinct label set.
    labelled_calls: LabelledCalls,
    histogram_baselines: HistogramBaselines,
    registry: Registry,
    /// Also the lock under which instances fold their own counts into their series, and under which [`reset`] makes
    /// them forget those counts, so a reset never lands between a refresh reading counts and adding them.
    refreshers: Mutex<Vec<Weak<dyn Refresh>>>,
}

/// A policy instance that keeps some of its numbers in its own atomics (striped per thread, so that hot paths do not
/// share a cache line) and copies them into its metric handles when metrics are gathered.
pub(crate) trait Refresh: Send + Sync {
    /// Brings the instance's metric handles up to date.
    fn refresh(&self);

    /// Forgets the counts kept so far, as the metrics are reset: the next refresh counts from zero. Nothing to do
    /// for an instance whose refresh only mirrors live state.
    fn rebase(&self) {}
}

/// Has `instance` refreshed before every gathering of adk's families, whichever registry gathers them, for as long as
/// it lives. This is how a policy publishes numbers it keeps itself (striped counters, the keys or entries it holds):
/// metrics name no policy.
pub(crate) fn refresh_before_gathering(instance: Weak<dyn Refresh>) {
    families().lock_refreshers().push(instance);
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

/// Zeroes every counter and histogram adk records, keeping every series (and so the handles policies resolved once).
/// Gauges are left as they are: each mirrors live state (calls and permits in flight, a breaker's state, the entries
/// and keys held) and is published from that state, by the instances' own reset or at the next gathering. Counts
/// made by calls running during the reset may land on either side of it.
pub(crate) fn reset() {
    let families = families();
    let refreshers = families.lock_refreshers();
    for instance in refreshers.iter().filter_map(Weak::upgrade) {
        instance.rebase();
    }
    for family in families.counters() {
        zero_counters(family);
    }
    let labelled = families.labelled_calls.all();
    let mut histograms = families.call_duration_seconds.collect();
    for calls in &labelled {
        zero_counters(&calls.calls_total);
        histograms.extend(calls.call_duration_seconds.collect());
    }
    families.histogram_baselines.record(&histograms);
    drop(refreshers);
}

/// Sets every series of `family` back to 0 through its own handle. Removing the series instead would leave the
/// handles policies hold counting into series nobody gathers.
fn zero_counters(family: &IntCounterVec) {
    let Some(desc) = family.desc().into_iter().next() else { return };
    for collected in family.collect() {
        for metric in collected.get_metric() {
            // Constant labels are in the collected series too: pick the variable ones, in their declared order.
            let values: Vec<&str> = desc
                .variable_labels
                .iter()
                .map(|name| metric.get_label().iter().find(|pair| pair.name() == name).map_or("", |pair| pair.value()))
                .collect();
            if let Ok(counter) = family.get_metric_with_label_values(&values) {
                counter.reset();
            }
        }
    }
}

/// adk's own registry, for users who gather it alongside theirs (or use [`register_into`]).
pub fn registry() -> &'static Registry {
    &families().registry
}

/// Registers adk's collectors into the user's registry, so one `/metrics` endpoint serves both.
pub fn register_into(target: &Registry) -> prometheus::Result<()> {
    target.register(Box::new(families().collector()))
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
            backend_requests_total: counter(
                "adk_backend_requests_total",
                "Requests to a shared backend by operation and outcome.",
                &["backend", "op", "outcome"],
            ),
            backend_up: gauge(
                "adk_backend_up",
                "1 while a shared backend answers, 0 since it last failed.",
                &["backend"],
            ),
            labelled_calls: LabelledCalls::default(),
            histogram_baselines: HistogramBaselines::default(),
            registry: Registry::new(),
            refreshers: Mutex::new(Vec::new()),
        };
        families.registry.register(Box::new(families.collector())).expect("adk's metric names are unique");
        families
    }

    /// Every family, as one collector.
    fn collector(&self) -> Collected {
        Collected {
            families: vec![
                Box::new(self.calls_total.clone()),
                Box::new(Rebased(self.call_duration_seconds.clone())),
                Box::new(self.calls_in_flight.clone()),
                Box::new(self.rate_limit_decisions_total.clone()),
                Box::new(self.rate_limit_keys.clone()),
                Box::new(self.circuit_breaker_state.clone()),
                Box::new(self.circuit_breaker_transitions_total.clone()),
                Box::new(self.circuit_breaker_calls_total.clone()),
                Box::new(self.retry_attempts_total.clone()),
                Box::new(self.cache_requests_total.clone()),
                Box::new(self.cache_entries.clone()),
                Box::new(self.cache_evictions_total.clone()),
                Box::new(self.bulkhead_in_use.clone()),
                Box::new(self.bulkhead_rejections_total.clone()),
                Box::new(self.timeouts_total.clone()),
                Box::new(self.fallbacks_total.clone()),
                Box::new(self.backend_requests_total.clone()),
                Box::new(self.backend_up.clone()),
                Box::new(Rebased(self.labelled_calls.clone())),
            ],
        }
    }

    /// Has every live instance copy the numbers it keeps itself into its series; forgets the dropped ones.
    fn refresh_instances(&self) {
        self.lock_refreshers().retain(|instance| match instance.upgrade() {
            Some(instance) => {
                instance.refresh();
                true
            }
            None => false,
        });
    }

    /// Every counter family, for [`reset`].
    fn counters(&self) -> [&IntCounterVec; 11] {
        [
            &self.calls_total,
            &self.rate_limit_decisions_total,
            &self.circuit_breaker_transitions_total,
            &self.circuit_breaker_calls_total,
            &self.retry_attempts_total,
            &self.cache_requests_total,
            &self.cache_evictions_total,
            &self.bulkhead_rejections_total,
            &self.timeouts_total,
            &self.fallbacks_total,
            &self.backend_requests_total,
        ]
    }

    fn lock_refreshers(&self) -> MutexGuard<'_, Vec<Weak<dyn Refresh>>> {
        self.refreshers.lock().unwrap_or_else(|e| e.into_inner())
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

/// Every family behind one collector, so that however a registry gathers them (adk's own, or a user's through
/// [`register_into`]), the instances that keep numbers of their own are brought up to date once, just before, and no
/// family is read stale.
struct Collected {
    families: Vec<Box<dyn Collector>>,
}

impl Collector for Collected {
    fn desc(&self) -> Vec<&Desc> {
        self.families.iter().flat_map(|family| family.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        families().refresh_instances();
        self.families.iter().flat_map(|family| family.collect()).collect()
    }
}

/// Families holding histograms, exposed net of what each series held at the last [`reset`].
struct Rebased<C>(C);

impl<C: Collector> Collector for Rebased<C> {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut collected = self.0.collect();
        families().histogram_baselines.subtract(&mut collected);
        collected
    }
}

/// What each histogram series held at the last [`reset`]. A Prometheus histogram cannot be zeroed, and the series
/// functions observe into must stay the ones exposed, so a reset records the values and the exposition subtracts
/// them: the per-call path is left as it is.
#[derive(Debug, Default)]
struct HistogramBaselines {
    by_series: Mutex<HashMap<SeriesKey, HistogramValues>>,
}

/// A family's name and a series' label pairs, as collected.
type SeriesKey = (String, Vec<(String, String)>);

#[derive(Debug)]
struct HistogramValues {
    count: u64,
    sum: f64,
    /// Cumulative, bucket by bucket.
    buckets: Vec<u64>,
}

impl HistogramBaselines {
    /// Takes the histograms among `collected` as the new zero.
    fn record(&self, collected: &[MetricFamily]) {
        let mut by_series = self.by_series.lock().unwrap_or_else(|e| e.into_inner());
        by_series.clear();
        for family in collected.iter().filter(|family| family.get_field_type() == MetricType::HISTOGRAM) {
            for metric in family.get_metric() {
                let histogram = metric.get_histogram();
                let values = HistogramValues {
                    count: histogram.get_sample_count(),
                    sum: histogram.get_sample_sum(),
                    buckets: histogram.get_bucket().iter().map(|bucket| bucket.cumulative_count()).collect(),
                };
                by_series.insert(series_key(family, metric), values);
            }
        }
    }

    fn subtract(&self, collected: &mut [MetricFamily]) {
        let by_series = self.by_series.lock().unwrap_or_else(|e| e.into_inner());
        if by_series.is_empty() {
            return;
        }
        for family in collected.iter_mut().filter(|family| family.get_field_type() == MetricType::HISTOGRAM) {
            let name = family.name().to_owned();
            for metric in family.mut_metric() {
                let Some(base) = by_series.get(&(name.clone(), label_pairs(metric))) else { continue };
                let mut histogram = proto::Histogram::clone(metric.get_histogram());
                let count = histogram.get_sample_count().saturating_sub(base.count);
                // Without observations since the reset the sum is exactly 0, not a rounding error away from it.
                let sum = if count == 0 { 0.0 } else { histogram.get_sample_sum() - base.sum };
                let buckets = histogram
                    .get_bucket()
                    .iter()
                    .zip(base.buckets.iter().chain(std::iter::repeat(&0)))
                    .map(|(bucket, &base)| {
                        let mut bucket = bucket.clone();
                        bucket.set_cumulative_count(bucket.cumulative_count().saturating_sub(base));
                        bucket
                    })
                    .collect();
                histogram.set_sample_count(count);
                histogram.set_sample_sum(sum);
                histogram.set_bucket(buckets);
                metric.set_histogram(histogram);
            }
        }
    }
}

fn series_key(family: &MetricFamily, metric: &proto::Metric) -> SeriesKey {
    (family.name().to_owned(), label_pairs(metric))
}

fn label_pairs(metric: &proto::Metric) -> Vec<(String, String)> {
    metric.get_label().iter().map(|pair| (pair.name().to_owned(), pair.value().to_owned())).collect()
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
    /// The families of every label set so far.
    fn all(&self) -> Vec<CallFamilies> {
        self.by_labels.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

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

    #[test]
    fn zeroing_a_counter_family_keeps_the_handles_counting_into_the_exposed_series() {
        let constant = HashMap::from([("team".to_owned(), "search".to_owned())]);
        let family =
            IntCounterVec::new(Opts::new("zeroed_total", "zeroed").const_labels(constant), &["function", "outcome"])
                .unwrap();
        let held = family.with_label_values(&["f", "ok"]);
        held.inc_by(3);
        family.with_label_values(&["g", "error"]).inc();
        zero_counters(&family);
        assert_eq!((held.get(), family.with_label_values(&["g", "error"]).get()), (0, 0));
        held.inc();
        let exposed = family.collect()[0].get_metric().iter().map(|m| m.get_counter().get_value()).sum::<f64>();
        assert_eq!(exposed, 1.0, "the handle resolved before the reset is still the series gathered");
    }

    #[test]
    fn histograms_are_exposed_net_of_what_they_held_at_the_reset() {
        let family =
            HistogramVec::new(HistogramOpts::new("rebased_seconds", "rebased").buckets(vec![1.0, 10.0]), &["function"])
                .unwrap();
        let held = family.with_label_values(&["f"]);
        for seconds in [0.5, 5.0, 50.0] {
            held.observe(seconds);
        }
        let baselines = HistogramBaselines::default();
        baselines.record(&family.collect());
        let exposed = |baselines: &HistogramBaselines| {
            let mut collected = family.collect();
            baselines.subtract(&mut collected);
            let histogram = proto::Histogram::clone(collected[0].get_metric()[0].get_histogram());
            let buckets: Vec<u64> = histogram.get_bucket().iter().map(|b| b.cumulative_count()).collect();
            (histogram.get_sample_count(), histogram.get_sample_sum(), buckets)
        };
        assert_eq!(exposed(&baselines), (0, 0.0, vec![0, 0]));
        held.observe(2.0);
        assert_eq!(exposed(&baselines), (1, 2.0, vec![0, 1]));
        assert_eq!(held.get_sample_count(), 4, "the handle itself still counts from the start");
        family.with_label_values(&["g"]).observe(0.1);
        let mut collected = family.collect();
        baselines.subtract(&mut collected);
        let fresh = collected[0].get_metric().iter().find(|m| m.get_label()[0].value() == "g").unwrap();
        assert_eq!(fresh.get_histogram().get_sample_count(), 1, "a series born after the reset is untouched");
    }

    #[test]
    fn a_user_registry_holding_its_own_collectors_gathers_fresh_adk_families() {
        let user = Registry::new();
        let own = IntCounterVec::new(Opts::new("app_requests_total", "The application's own."), &["route"]).unwrap();
        user.register(Box::new(own.clone())).unwrap();
        own.with_label_values(&["/"]).inc();
        register_into(&user).expect("adk's descriptors do not clash with the user's");
        // A limiter counts its decisions in per-thread stripes; the user's gathering must see them, without a render.
        let limiter = crate::rate_limit::RateLimiter::new(
            "metrics::tests::user-registry",
            crate::rate_limit::Quota::per_second(1).with_burst(1),
        );
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
        let gathered = user.gather();
        let decisions = gathered.iter().find(|f| f.name() == "adk_rate_limit_decisions_total").expect("gathered");
        let count = |decision: &str| {
            decisions
                .get_metric()
                .iter()
                .find(|m| {
                    let labels = m.get_label();
                    labels.iter().any(|l| l.value() == "metrics::tests::user-registry")
                        && labels.iter().any(|l| l.value() == decision)
                })
                .map(|m| m.get_counter().get_value())
        };
        assert_eq!((count("admitted"), count("refused")), (Some(1.0), Some(1.0)));
        assert!(gathered.iter().any(|f| f.name() == "app_requests_total"));
        assert!(register_into(&user).is_err(), "registering twice is refused, as for any collector");
    }

    #[test]
    fn every_counter_family_is_zeroed_by_a_reset() {
        let families = families();
        let zeroed: Vec<&str> =
            families.counters().iter().flat_map(|family| family.desc()).map(|desc| desc.fq_name.as_str()).collect();
        let collector = families.collector();
        let counters: Vec<&str> = collector
            .desc()
            .into_iter()
            .map(|desc| desc.fq_name.as_str())
            .filter(|name| name.ends_with("_total"))
            .collect();
        assert!(!counters.is_empty());
        for name in counters {
            assert!(zeroed.contains(&name), "{name} is not zeroed by a reset");
        }
    }
}
