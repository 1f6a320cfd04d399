//! `#[observed]`: the metrics of one logical call, and its error logged once.
//!
//! The attribute creates the call's `tracing` span itself (a span's callsite, target and module must be the user's,
//! so the span macro expands in the user's crate) and brackets the call with [`ObservedFn::start`] and one of the
//! [`ObservedCall`] finishers, inside that span. Per call the runtime records:
//!
//! - `adk_calls_in_flight{function}`: up while the call runs, down when it ends or is dropped;
//! - `adk_calls_total{function,outcome}`: `outcome` is `ok`, `error`, or `cancelled` when the future was dropped
//!   before it finished (a caller's `select!`, an outer timeout, a closed connection);
//! - `adk_call_duration_seconds{function}`: calls that finished, `ok` and `error` alike (a cancelled call has no
//!   meaningful duration); measured on tokio's clock, so paused-time tests see virtual durations;
//! - on error, one event with the fields `function` and `error` (the error's `Display`), target `adk::observed`,
//!   so `RUST_LOG=adk::observed=off` silences it; and the fields `otel.status_code = "ERROR"` and
//!   `otel.status_description` recorded on the current span, which marks it failed in OpenTelemetry when the span
//!   declares those fields (as the attribute's span does).
//!
//! # The level of the error event
//!
//! By default it follows the error's [`ErrorClass`]: a [`Permanent`](ErrorClass::Permanent) error (bad input, not
//! found, refused credentials) is the caller's to fix and is logged at `WARN`; [`Transient`](ErrorClass::Transient)
//! and [`Critical`](ErrorClass::Critical) errors, and errors whose class is unknown, at `ERROR`.
//! [`ObservedFn::with_error_level`] fixes one level for every error of the function, and
//! [`ObservedFn::without_error_log`] logs none. The class is known when the call is finished with
//! [`ObservedCall::finish_classified`] or [`ObservedCall::err_with_class`] (as `#[observed]` does for error types
//! that implement [`Classify`]); [`ObservedCall::finish`] and [`ObservedCall::err`] do not know it.
//!
//! The shape of the expansion, for `async fn complete(prompt: &str) -> Result<String, AgentError>`:
//!
//! ```
//! use adk_runtime::observed::ObservedFn;
//! use tracing::Instrument as _;
//! # #[derive(Debug)] struct AgentError;
//! # impl std::fmt::Display for AgentError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("failed") } }
//! # async fn inner(prompt: &str) -> Result<String, AgentError> { Ok(prompt.to_uppercase()) }
//!
//! async fn complete(prompt: &str) -> Result<String, AgentError> {
//!     static __ADK_OBSERVED: ObservedFn = ObservedFn::new("my_agent::complete", "src/agent.rs:12");
//!     let __adk_span = tracing::info_span!(
//!         "complete",
//!         otel.status_code = tracing::field::Empty,
//!         otel.status_description = tracing::field::Empty,
//!     );
//!     async move {
//!         let __adk_call = __ADK_OBSERVED.start();
//!         let __adk_result = inner(prompt).await; // the rest of the stack, then the body
//!         __adk_call.finish(&__adk_result);
//!         __adk_result
//!     }
//!     .instrument(__adk_span)
//!     .await
//! }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! assert_eq!(complete("hi").await.unwrap(), "HI");
//! # });
//! ```
//!
//! # Constant labels
//!
//! `#[observed(labels(team = "search"))]` adds `team="search"` to every series of the function in the three
//! families: `adk_calls_total{function="...",outcome="ok",team="search"}`. Prometheus' client wants one set of label
//! names per registered family, so functions with constant labels record into families of the same names created
//! for their label set (once, when the function first runs, shared by every function with the same set) and
//! exposed alongside the unlabelled ones by [`crate::metrics::render`]. Queries that aggregate by `function` see
//! both; a label name must match `[a-zA-Z_][a-zA-Z0-9_]*`, must not start with `__` and must not be `function`,
//! `outcome`, `le` or `quantile`. An invalid set (which the attribute rejects at compile time) is logged once and
//! the function records without its constant labels.

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;

use prometheus::{Histogram, IntCounter, IntGauge};
use tokio::time::Instant;
use tracing::Level;

use crate::error::{Classify, ErrorClass};
use crate::metrics;

/// The observation settings of one function, built at compile time. Its metric handles are resolved when it first
/// runs and kept here, so a call touches only atomics.
///
/// ```
/// use adk_runtime::observed::ObservedFn;
///
/// static OBSERVED: ObservedFn = ObservedFn::new("doc::lookup", "src/lib.rs:10").with_labels(&[("team", "docs")]);
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// async fn lookup(id: u32) -> Result<String, std::io::Error> { Ok(format!("user {id}")) }
///
/// let call = OBSERVED.start();
/// let result = lookup(7).await;
/// call.finish(&result);
///
/// let text = adk_runtime::metrics::render();
/// assert!(text.contains(r#"adk_calls_total{function="doc::lookup",outcome="ok",team="docs"} 1"#), "{text}");
/// # });
/// ```
pub struct ObservedFn {
    function: &'static str,
    call_site: &'static str,
    labels: &'static [(&'static str, &'static str)],
    error_log: ErrorLog,
    handles: OnceLock<Handles>,
}

/// How a function's errors are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorLog {
    /// `WARN` for a permanent error, `ERROR` for any other or an unknown class.
    ByClass,
    At(Level),
    Off,
}

/// The labelled children of the call families for one function.
struct Handles {
    ok: IntCounter,
    error: IntCounter,
    cancelled: IntCounter,
    duration: Histogram,
    in_flight: IntGauge,
}

impl ObservedFn {
    /// The observation of `function` (its path, `module_path!()::name`, the `function` label), declared at
    /// `call_site` (`file:line`): no constant labels, errors logged at the level of their class (see the
    /// [module docs](self#the-level-of-the-error-event)).
    pub const fn new(function: &'static str, call_site: &'static str) -> Self {
        ObservedFn { function, call_site, labels: &[], error_log: ErrorLog::ByClass, handles: OnceLock::new() }
    }

    /// Constant labels added to every series of this function (see the [module docs](self) for the rules).
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::labels", "src/lib.rs:1").with_labels(&[("tier", "gold")]);
    /// assert_eq!(OBSERVED.labels(), &[("tier", "gold")]);
    /// ```
    pub const fn with_labels(mut self, labels: &'static [(&'static str, &'static str)]) -> Self {
        self.labels = labels;
        self
    }

    /// The level of the event logged when a call fails, whatever the error's class.
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// use adk_runtime::ErrorClass;
    ///
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::level", "src/lib.rs:1").with_error_level(tracing::Level::INFO);
    /// assert_eq!(OBSERVED.error_level(Some(ErrorClass::Critical)), Some(tracing::Level::INFO));
    /// assert_eq!(OBSERVED.error_level(None), Some(tracing::Level::INFO));
    /// ```
    pub const fn with_error_level(mut self, level: Level) -> Self {
        self.error_log = ErrorLog::At(level);
        self
    }

    /// Logs nothing when a call fails (errors are still counted and mark the span failed).
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::quiet", "src/lib.rs:1").without_error_log();
    /// assert_eq!(OBSERVED.error_level(None), None);
    /// ```
    pub const fn without_error_log(mut self) -> Self {
        self.error_log = ErrorLog::Off;
        self
    }

    /// The `function` label.
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::name", "src/lib.rs:1");
    /// assert_eq!(OBSERVED.function(), "doc::name");
    /// ```
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// Where the function was declared (`file:line`).
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::site", "src/agent.rs:3");
    /// assert_eq!(OBSERVED.call_site(), "src/agent.rs:3");
    /// ```
    pub fn call_site(&self) -> &'static str {
        self.call_site
    }

    /// The constant labels.
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::no_labels", "src/lib.rs:1");
    /// assert!(OBSERVED.labels().is_empty());
    /// ```
    pub fn labels(&self) -> &'static [(&'static str, &'static str)] {
        self.labels
    }

    /// The level of the event logged for an error of `class` (`None`: a class not known), `None` when errors are
    /// not logged.
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// use adk_runtime::ErrorClass;
    /// use tracing::Level;
    ///
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::default_level", "src/lib.rs:1");
    /// assert_eq!(OBSERVED.error_level(Some(ErrorClass::Permanent)), Some(Level::WARN));
    /// assert_eq!(OBSERVED.error_level(Some(ErrorClass::Transient)), Some(Level::ERROR));
    /// assert_eq!(OBSERVED.error_level(Some(ErrorClass::Critical)), Some(Level::ERROR));
    /// assert_eq!(OBSERVED.error_level(None), Some(Level::ERROR));
    /// ```
    pub fn error_level(&self, class: Option<ErrorClass>) -> Option<Level> {
        match self.error_log {
            ErrorLog::ByClass => match class {
                Some(ErrorClass::Permanent) => Some(Level::WARN),
                Some(ErrorClass::Transient | ErrorClass::Critical) | None => Some(Level::ERROR),
            },
            ErrorLog::At(level) => Some(level),
            ErrorLog::Off => None,
        }
    }

    /// Starts one call: counts it in flight and starts its clock. Finish it with [`ObservedCall::finish`],
    /// [`ok`](ObservedCall::ok) or [`err`](ObservedCall::err); dropping it unfinished counts the call `cancelled`.
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::start", "src/lib.rs:1");
    /// let call = OBSERVED.start();
    /// assert!(adk_runtime::metrics::render().contains(r#"adk_calls_in_flight{function="doc::start"} 1"#));
    /// call.ok();
    /// assert!(adk_runtime::metrics::render().contains(r#"adk_calls_in_flight{function="doc::start"} 0"#));
    /// ```
    #[inline]
    pub fn start(&self) -> ObservedCall<'_> {
        let handles = self.handles.get_or_init(|| self.resolve());
        handles.in_flight.inc();
        ObservedCall { observed: self, handles, started: Instant::now(), finished: false }
    }

    /// Runs `call` observed (metrics and the error event; the span is the caller's, e.g. with
    /// `tracing::Instrument`).
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::run", "src/lib.rs:1");
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let answer: Result<u32, std::io::Error> = OBSERVED.run(async { Ok(42) }).await;
    /// assert_eq!(answer.unwrap(), 42);
    /// # });
    /// ```
    pub async fn run<T, E, F>(&self, call: F) -> Result<T, E>
    where
        E: fmt::Display,
        F: Future<Output = Result<T, E>>,
    {
        let observed = self.start();
        let result = call.await;
        observed.finish(&result);
        result
    }

    fn resolve(&self) -> Handles {
        let families = metrics::families();
        let calls = families.calls_with_labels(self.labels).unwrap_or_else(|invalid| {
            tracing::error!(
                target: "adk::observed",
                function = self.function,
                call_site = self.call_site,
                %invalid,
                "constant labels ignored"
            );
            families.calls_with_labels(&[]).expect("no labels is a valid label set")
        });
        Handles {
            ok: calls.calls_total.with_label_values(&[self.function, "ok"]),
            error: calls.calls_total.with_label_values(&[self.function, "error"]),
            cancelled: calls.calls_total.with_label_values(&[self.function, "cancelled"]),
            duration: calls.call_duration_seconds.with_label_values(&[self.function]),
            in_flight: calls.calls_in_flight.with_label_values(&[self.function]),
        }
    }

    #[cold]
    fn report_error(&self, error: &dyn fmt::Display, class: Option<ErrorClass>) {
        let span = tracing::Span::current();
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", tracing::field::display(error));
        let Some(level) = self.error_level(class) else { return };
        let function = self.function;
        // The event macros need their level as a constant.
        if level == Level::ERROR {
            tracing::error!(target: "adk::observed", function, error = %error, "call failed");
        } else if level == Level::WARN {
            tracing::warn!(target: "adk::observed", function, error = %error, "call failed");
        } else if level == Level::INFO {
            tracing::info!(target: "adk::observed", function, error = %error, "call failed");
        } else if level == Level::DEBUG {
            tracing::debug!(target: "adk::observed", function, error = %error, "call failed");
        } else {
            tracing::trace!(target: "adk::observed", function, error = %error, "call failed");
        }
    }
}

impl fmt::Debug for ObservedFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedFn")
            .field("function", &self.function)
            .field("call_site", &self.call_site)
            .field("labels", &self.labels)
            .field("error_log", &self.error_log)
            .finish_non_exhaustive()
    }
}

/// One call in flight, from [`ObservedFn::start`]. Finish it once; dropping it unfinished (the call's future was
/// dropped) counts the call `cancelled`. Either way it leaves the in-flight gauge when dropped.
///
/// ```
/// # use adk_runtime::observed::ObservedFn;
/// static OBSERVED: ObservedFn = ObservedFn::new("doc::cancelled", "src/lib.rs:1");
/// drop(OBSERVED.start());
/// let text = adk_runtime::metrics::render();
/// assert!(text.contains(r#"adk_calls_total{function="doc::cancelled",outcome="cancelled"} 1"#));
/// assert!(text.contains(r#"adk_calls_in_flight{function="doc::cancelled"} 0"#));
/// ```
#[must_use = "finish the call with `finish`, `ok` or `err`; dropping it counts the call cancelled"]
pub struct ObservedCall<'a> {
    observed: &'a ObservedFn,
    handles: &'a Handles,
    started: Instant,
    finished: bool,
}

impl ObservedCall<'_> {
    /// Records the call's result: `ok`, or `error` with the error event.
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::finish", "src/lib.rs:1");
    /// let result: Result<(), String> = Err("quota exhausted".into());
    /// OBSERVED.start().finish(&result);
    /// assert!(adk_runtime::metrics::render().contains(r#"adk_calls_total{function="doc::finish",outcome="error"} 1"#));
    /// ```
    #[inline]
    pub fn finish<T, E: fmt::Display>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.ok(),
            Err(error) => self.err(error),
        }
    }

    /// As [`finish`](Self::finish), for error types that implement [`Classify`]: the error event's level follows the
    /// error's class (see the [module docs](self#the-level-of-the-error-event)).
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::finish_classified", "src/lib.rs:1");
    /// let not_found = std::io::Error::from(std::io::ErrorKind::NotFound); // permanent: logged at WARN
    /// OBSERVED.start().finish_classified(&Err::<(), _>(not_found));
    /// ```
    #[inline]
    pub fn finish_classified<T, E: fmt::Display + Classify>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.ok(),
            Err(error) => self.err_with_class(error, Some(error.class())),
        }
    }

    /// As [`finish`](Self::finish), for error types that only implement `Debug` (logged with `{:?}`).
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::finish_debug", "src/lib.rs:1");
    /// #[derive(Debug)]
    /// struct Opaque;
    /// OBSERVED.start().finish_debug(&Err::<(), _>(Opaque));
    /// ```
    #[inline]
    pub fn finish_debug<T, E: fmt::Debug>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.ok(),
            Err(error) => self.err(&DebugAsDisplay(error)),
        }
    }

    /// Records a successful call (for functions that do not return `Result`).
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::ok", "src/lib.rs:1");
    /// OBSERVED.start().ok();
    /// assert!(adk_runtime::metrics::render().contains(r#"adk_calls_total{function="doc::ok",outcome="ok"} 1"#));
    /// ```
    #[inline]
    pub fn ok(mut self) {
        self.record(true);
    }

    /// Records a failed call and reports `error` (the event and the span status), an error of unknown class.
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::err", "src/lib.rs:1");
    /// OBSERVED.start().err("upstream closed the stream");
    /// assert!(adk_runtime::metrics::render().contains(r#"adk_calls_total{function="doc::err",outcome="error"} 1"#));
    /// ```
    #[inline]
    pub fn err<E: fmt::Display + ?Sized>(self, error: &E) {
        self.err_with_class(error, None);
    }

    /// As [`err`](Self::err), for an error of `class` (`None`: not known), which sets the event's level by default.
    ///
    /// ```
    /// # use adk_runtime::observed::ObservedFn;
    /// use adk_runtime::ErrorClass;
    ///
    /// static OBSERVED: ObservedFn = ObservedFn::new("doc::err_with_class", "src/lib.rs:1");
    /// OBSERVED.start().err_with_class("prompt too long", Some(ErrorClass::Permanent)); // logged at WARN
    /// ```
    #[inline]
    pub fn err_with_class<E: fmt::Display + ?Sized>(mut self, error: &E, class: Option<ErrorClass>) {
        self.record(false);
        self.observed.report_error(&error, class);
    }

    #[inline]
    fn record(&mut self, ok: bool) {
        self.finished = true;
        self.handles.duration.observe(self.started.elapsed().as_secs_f64());
        if ok { &self.handles.ok } else { &self.handles.error }.inc();
    }
}

impl Drop for ObservedCall<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            self.handles.cancelled.inc();
        }
        self.handles.in_flight.dec();
    }
}

impl fmt::Debug for ObservedCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedCall")
            .field("function", &self.observed.function)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

struct DebugAsDisplay<'a, E>(&'a E);

impl<E: fmt::Debug> fmt::Display for DebugAsDisplay<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::metrics::families;

    fn calls(function: &str, outcome: &str) -> u64 {
        families().calls_total.with_label_values(&[function, outcome]).get()
    }

    fn in_flight(function: &str) -> i64 {
        families().calls_in_flight.with_label_values(&[function]).get()
    }

    fn durations(function: &str) -> Histogram {
        families().call_duration_seconds.with_label_values(&[function])
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_counted_by_outcome_and_timed_on_tokios_clock() {
        static OBSERVED: ObservedFn = ObservedFn::new("observed::tests::timed", "observed.rs:1");
        let ok: Result<u8, String> = OBSERVED
            .run(async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok(1)
            })
            .await;
        assert_eq!(ok, Ok(1));
        let failed: Result<u8, String> = OBSERVED.run(async { Err("refused".to_owned()) }).await;
        assert!(failed.is_err());

        let function = "observed::tests::timed";
        assert_eq!((calls(function, "ok"), calls(function, "error"), calls(function, "cancelled")), (1, 1, 0));
        assert_eq!(durations(function).get_sample_count(), 2);
        assert_eq!(durations(function).get_sample_sum(), 1.5);
        assert_eq!(in_flight(function), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_call_leaves_the_in_flight_gauge_and_counts_as_cancelled() {
        static OBSERVED: ObservedFn = ObservedFn::new("observed::tests::dropped", "observed.rs:1");
        let function = "observed::tests::dropped";
        let slow = OBSERVED.run(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<(), String>(())
        });
        let mut slow = Box::pin(slow);
        assert!(tokio::time::timeout(Duration::from_secs(1), &mut slow).await.is_err());
        assert_eq!(in_flight(function), 1, "still running until dropped");
        drop(slow);
        assert_eq!(in_flight(function), 0);
        assert_eq!((calls(function, "cancelled"), calls(function, "ok")), (1, 0));
        assert_eq!(durations(function).get_sample_count(), 0, "a cancelled call has no duration");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_are_all_counted_and_in_flight_returns_to_zero() {
        static OBSERVED: ObservedFn = ObservedFn::new("observed::tests::concurrent", "observed.rs:1");
        let function = "observed::tests::concurrent";
        let tasks = 8;
        let all_started = Arc::new(tokio::sync::Barrier::new(tasks + 1));
        let release = Arc::new(tokio::sync::Barrier::new(tasks + 1));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (all_started, release) = (all_started.clone(), release.clone());
            handles.push(tokio::spawn(async move {
                for _ in 0..999 {
                    OBSERVED.start().ok();
                }
                let held = OBSERVED.start();
                all_started.wait().await;
                release.wait().await;
                held.ok();
            }));
        }
        all_started.wait().await;
        assert_eq!(in_flight(function), tasks as i64);
        release.wait().await;
        for handle in handles {
            handle.await.unwrap();
        }
        assert_eq!((calls(function, "ok"), in_flight(function)), (tasks as u64 * 1000, 0));
    }

    #[test]
    fn functions_with_one_label_set_share_families_and_each_keeps_its_series() {
        static SEARCH: ObservedFn =
            ObservedFn::new("observed::tests::search", "observed.rs:1").with_labels(&[("team", "core"), ("tier", "1")]);
        static RANK: ObservedFn =
            ObservedFn::new("observed::tests::rank", "observed.rs:2").with_labels(&[("tier", "1"), ("team", "core")]);
        SEARCH.start().ok();
        RANK.start().err("no candidates");
        RANK.start().ok();
        let text = metrics::render();
        for series in [
            r#"adk_calls_total{function="observed::tests::search",outcome="ok",team="core",tier="1"} 1"#,
            r#"adk_calls_total{function="observed::tests::rank",outcome="error",team="core",tier="1"} 1"#,
            r#"adk_calls_in_flight{function="observed::tests::rank",team="core",tier="1"} 0"#,
            r#"adk_call_duration_seconds_count{function="observed::tests::rank",team="core",tier="1"} 2"#,
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE adk_calls_total counter").count(), 1, "one family, merged");
    }

    #[test]
    fn an_invalid_label_set_is_dropped_and_the_function_still_records() {
        static CLASHING: ObservedFn =
            ObservedFn::new("observed::tests::clashing", "observed.rs:1").with_labels(&[("outcome", "x")]);
        CLASHING.start().ok();
        assert_eq!(calls("observed::tests::clashing", "ok"), 1);
    }

    #[cfg(feature = "telemetry")]
    #[test]
    fn an_error_is_logged_once_at_the_chosen_level_inside_the_callers_span() {
        use crate::telemetry::TelemetryConfig;
        use crate::telemetry::tests::capture;

        static WARNS: ObservedFn =
            ObservedFn::new("observed::tests::warns", "observed.rs:1").with_error_level(Level::WARN);
        static QUIET: ObservedFn = ObservedFn::new("observed::tests::quiet", "observed.rs:2").without_error_log();
        let lines = capture(&TelemetryConfig::default().with_filter("trace"), || {
            let span = tracing::info_span!("complete", request_id = "r-5");
            let _entered = span.enter();
            WARNS.start().finish(&Err::<(), _>("rate limited by provider"));
            WARNS.start().finish(&Ok::<(), &str>(()));
            QUIET.start().finish(&Err::<(), _>("not logged"));
        })
        .json_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!((&line["level"], &line["target"]), (&"WARN".into(), &"adk::observed".into()));
        assert_eq!(
            (&line["function"], &line["error"]),
            (&"observed::tests::warns".into(), &"rate limited by provider".into())
        );
        assert_eq!((&line["span"], &line["request_id"]), (&"complete".into(), &"r-5".into()));
    }

    #[cfg(feature = "telemetry")]
    #[test]
    fn the_error_level_follows_the_class_unless_one_level_is_chosen() {
        use std::io::{Error as IoError, ErrorKind};

        use crate::telemetry::TelemetryConfig;
        use crate::telemetry::tests::capture;

        static BY_CLASS: ObservedFn = ObservedFn::new("observed::tests::by_class", "observed.rs:1");
        static FIXED: ObservedFn =
            ObservedFn::new("observed::tests::fixed", "observed.rs:2").with_error_level(Level::INFO);
        let lines = capture(&TelemetryConfig::default().with_filter("trace"), || {
            BY_CLASS.start().finish_classified(&Err::<(), _>(IoError::from(ErrorKind::NotFound)));
            BY_CLASS.start().finish_classified(&Err::<(), _>(IoError::from(ErrorKind::OutOfMemory)));
            BY_CLASS.start().finish_classified(&Err::<(), _>(IoError::from(ErrorKind::TimedOut)));
            BY_CLASS.start().err("class unknown");
            FIXED.start().err_with_class("bad prompt", Some(ErrorClass::Permanent));
            FIXED.start().err_with_class("corrupted index", Some(ErrorClass::Critical));
        })
        .json_lines();
        let levels: Vec<(&str, &str)> =
            lines.iter().map(|l| (l["function"].as_str().unwrap(), l["level"].as_str().unwrap())).collect();
        assert_eq!(
            levels,
            [
                ("observed::tests::by_class", "WARN"),
                ("observed::tests::by_class", "ERROR"),
                ("observed::tests::by_class", "ERROR"),
                ("observed::tests::by_class", "ERROR"),
                ("observed::tests::fixed", "INFO"),
                ("observed::tests::fixed", "INFO"),
            ]
        );
    }
}
