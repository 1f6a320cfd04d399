//! Health of the process for orchestrators: liveness, readiness and startup, from checks the application and the
//! runtime register. With the `http` feature, [`HealthServer`] serves them with `/metrics` on a small HTTP server.
//!
//! The three probes, as Kubernetes uses them:
//! - **liveness** (`/health/live`): is the process worth keeping? Healthy unless a check added with
//!   [`Health::add_liveness_check`] says unhealthy. Dependencies do not belong here: a restart does not fix a
//!   database outage, and failing liveness on one restarts every pod at once.
//! - **readiness** (`/health/ready`): should traffic come here? The checks added with [`Health::add_check`] and
//!   the reports of the sources added with [`Health::add_source`], plus `startup` until [`Health::mark_started`].
//! - **startup** (`/health/startup`): has the application finished starting? Unhealthy until
//!   [`Health::mark_started`].
//!
//! A probe's status is the worst of its checks. `healthy` and `degraded` answer HTTP 200 (a degraded pod still
//! serves, e.g. through fallbacks while a dependency's breaker is open; taking every pod out of rotation because one
//! dependency is down would turn a partial outage into a total one), `unhealthy` answers 503. The body names every
//! check with its status and, when not healthy, its reason (for a breaker that is not closed, `open (failure rate
//! 0.50)` or `half open: trial calls in progress`):
//!
//! ```json
//! {"status":"degraded","checks":[{"name":"postgres","status":"healthy"},
//!  {"name":"circuit_breaker:openai","status":"degraded","reason":"open (failure rate 0.50)"}]}
//! ```
//!
//! Checks of one probe run concurrently, each bounded by the check timeout (1 s by default, the kubelet's own
//! default; [`Health::with_check_timeout`]); a check that times out or panics is unhealthy.

#[cfg(feature = "http")]
mod server;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

#[cfg(feature = "http")]
pub use server::{HealthServer, serve};
#[cfg(feature = "axum")]
pub(crate) use server::{PATHS, respond};

use crate::json;

/// How healthy a check, or a probe, is. Ordered from best to worst, so a probe's status is the maximum.
///
/// ```
/// use adk_runtime::health::HealthStatus;
/// assert!(HealthStatus::Healthy < HealthStatus::Degraded && HealthStatus::Degraded < HealthStatus::Unhealthy);
/// assert_eq!(HealthStatus::Degraded.as_str(), "degraded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthStatus {
    /// Working as intended.
    Healthy,
    /// Working, with something wrong (a dependency down behind a fallback, an open breaker). HTTP 200.
    Degraded,
    /// Not working. HTTP 503.
    Unhealthy,
}

impl HealthStatus {
    /// `"healthy"`, `"degraded"` or `"unhealthy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }

    /// The HTTP status of a probe in this state: 200, or 503 when unhealthy.
    ///
    /// ```
    /// # use adk_runtime::health::HealthStatus;
    /// assert_eq!(HealthStatus::Degraded.http_status(), 200);
    /// assert_eq!(HealthStatus::Unhealthy.http_status(), 503);
    /// ```
    pub fn http_status(self) -> u16 {
        if self == HealthStatus::Unhealthy { 503 } else { 200 }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one check found.
///
/// ```
/// use adk_runtime::health::{CheckResult, HealthStatus};
///
/// let found = CheckResult::degraded("replica lag 12s");
/// assert_eq!(found.status, HealthStatus::Degraded);
/// assert_eq!(found.reason.as_deref(), Some("replica lag 12s"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The verdict.
    pub status: HealthStatus,
    /// Why, when not healthy (shown in the probe's body).
    pub reason: Option<String>,
}

impl CheckResult {
    /// Healthy, no reason.
    ///
    /// ```
    /// # use adk_runtime::health::{CheckResult, HealthStatus};
    /// assert_eq!(CheckResult::healthy().status, HealthStatus::Healthy);
    /// ```
    pub fn healthy() -> Self {
        CheckResult { status: HealthStatus::Healthy, reason: None }
    }

    /// Degraded, because `reason`.
    ///
    /// ```
    /// # use adk_runtime::health::{CheckResult, HealthStatus};
    /// assert_eq!(CheckResult::degraded("slow").status, HealthStatus::Degraded);
    /// ```
    pub fn degraded(reason: impl Into<String>) -> Self {
        CheckResult { status: HealthStatus::Degraded, reason: Some(reason.into()) }
    }

    /// Unhealthy, because `reason`.
    ///
    /// ```
    /// # use adk_runtime::health::{CheckResult, HealthStatus};
    /// assert_eq!(CheckResult::unhealthy("connection refused").status, HealthStatus::Unhealthy);
    /// ```
    pub fn unhealthy(reason: impl Into<String>) -> Self {
        CheckResult { status: HealthStatus::Unhealthy, reason: Some(reason.into()) }
    }
}

/// A named result, as a probe reports it and as a source yields it.
///
/// ```
/// use adk_runtime::health::{CheckReport, CheckResult};
///
/// let report = CheckReport::new("circuit_breaker:openai", CheckResult::degraded("open"));
/// assert_eq!(report.name, "circuit_breaker:openai");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// Its verdict and reason.
    pub result: CheckResult,
}

impl CheckReport {
    /// `result`, named `name`.
    pub fn new(name: impl Into<String>, result: CheckResult) -> Self {
        CheckReport { name: name.into(), result }
    }
}

/// A probe's answer: the worst status among its checks, and every check.
///
/// ```
/// use adk_runtime::health::{CheckReport, CheckResult, HealthStatus, ProbeReport};
///
/// let report = ProbeReport::from_checks(vec![
///     CheckReport::new("db", CheckResult::healthy()),
///     CheckReport::new("cache", CheckResult::degraded("evicting")),
/// ]);
/// assert_eq!(report.status, HealthStatus::Degraded);
/// assert_eq!(
///     report.to_json(),
///     r#"{"status":"degraded","checks":[{"name":"db","status":"healthy"},{"name":"cache","status":"degraded","reason":"evicting"}]}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The worst status of [`checks`](Self::checks), healthy when there are none.
    pub status: HealthStatus,
    /// Every check, in registration order (sources after checks).
    pub checks: Vec<CheckReport>,
}

impl ProbeReport {
    /// The report of `checks`.
    pub fn from_checks(checks: Vec<CheckReport>) -> Self {
        let status = checks.iter().map(|c| c.result.status).max().unwrap_or(HealthStatus::Healthy);
        ProbeReport { status, checks }
    }

    /// The JSON body served for this report.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 + 64 * self.checks.len());
        self.write_json(&mut out).expect("writing to a String cannot fail");
        out
    }

    fn write_json(&self, out: &mut String) -> fmt::Result {
        use fmt::Write as _;
        write!(out, r#"{{"status":"{}","checks":["#, self.status)?;
        for (i, check) in self.checks.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"name":"#);
            json::string(out, &check.name)?;
            write!(out, r#","status":"{}""#, check.result.status)?;
            if let Some(reason) = &check.result.reason {
                out.push_str(r#","reason":"#);
                json::string(out, reason)?;
            }
            out.push('}');
        }
        out.push_str("]}");
        Ok(())
    }
}

/// A health check: an async probe of one thing (a database, a queue, a model endpoint).
///
/// Implement it on a type, or pass an async closure: every `Fn() -> impl Future<Output = CheckResult>` is a check.
///
/// ```
/// use adk_runtime::health::{CheckResult, Health, HealthCheck};
///
/// struct Postgres;
///
/// impl HealthCheck for Postgres {
///     async fn check(&self) -> CheckResult {
///         // e.g. `SELECT 1` with a short timeout
///         CheckResult::healthy()
///     }
/// }
///
/// let health = Health::new();
/// health.add_check("postgres", Postgres);
/// health.add_check("queue", || async { CheckResult::degraded("consumer lag 40s") });
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// Looks, and says what it found. Bounded by the check timeout.
    fn check(&self) -> impl Future<Output = CheckResult> + Send;
}

impl<F, Fut> HealthCheck for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send,
{
    fn check(&self) -> impl Future<Output = CheckResult> + Send {
        self()
    }
}

/// [`HealthCheck`] behind a pointer.
trait DynCheck: Send + Sync {
    fn check_boxed(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>>;
}

impl<T: HealthCheck> DynCheck for T {
    fn check_boxed(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>> {
        Box::pin(self.check())
    }
}

type Source = Arc<dyn Fn() -> Vec<CheckReport> + Send + Sync>;

/// The probes of a process: its checks, its sources and whether it has started. Cheap to clone (a shared handle).
///
/// ```
/// use adk_runtime::health::{CheckResult, Health, HealthStatus};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let health = Health::new();
/// health.add_check("model", || async { CheckResult::healthy() });
/// assert_eq!(health.readiness().await.status, HealthStatus::Unhealthy, "not started yet");
/// health.mark_started();
/// assert_eq!(health.readiness().await.status, HealthStatus::Healthy);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    started: AtomicBool,
    /// Zero means the default.
    check_timeout_ms: AtomicU64,
    readiness: RwLock<Vec<(String, Arc<dyn DynCheck>)>>,
    liveness: RwLock<Vec<(String, Arc<dyn DynCheck>)>>,
    sources: RwLock<Vec<Source>>,
}

/// The process-wide probes, where adk's own components (breakers, backends) report. Serve this one unless you
/// need several.
///
/// ```
/// let health = adk_runtime::health::global();
/// health.add_check("doc", || async { adk_runtime::health::CheckResult::healthy() });
/// ```
pub fn global() -> &'static Health {
    static GLOBAL: LazyLock<Health> = LazyLock::new(|| {
        let health = Health::new();
        health.add_source(breaker_reports);
        health
    });
    &GLOBAL
}

/// Every circuit breaker that is not closed, as a `degraded` readiness report: the process still answers (through
/// fallbacks, or by refusing fast), but a dependency is down.
fn breaker_reports() -> Vec<CheckReport> {
    use crate::circuit_breaker::CircuitState;
    crate::registry()
        .circuit_breakers()
        .iter()
        .filter_map(|breaker| {
            let reason = match breaker.state() {
                CircuitState::Closed => return None,
                CircuitState::Open => format!("open (failure rate {:.2})", breaker.snapshot().failure_rate),
                CircuitState::HalfOpen => "half open: trial calls in progress".to_owned(),
            };
            Some(CheckReport::new(format!("circuit_breaker:{}", breaker.name()), CheckResult::degraded(reason)))
        })
        .collect()
}

impl Health {
    /// The default bound of one check.
    pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

    /// Probes with no checks, not started.
    ///
    /// ```
    /// # use adk_runtime::health::Health;
    /// assert!(!Health::new().is_started());
    /// ```
    pub fn new() -> Self {
        Health::default()
    }

    /// Bounds each check to `timeout` (at least 1 ms); a check still running then is unhealthy.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use adk_runtime::health::Health;
    /// let health = Health::new().with_check_timeout(Duration::from_millis(500));
    /// assert_eq!(health.check_timeout(), Duration::from_millis(500));
    /// ```
    pub fn with_check_timeout(self, timeout: Duration) -> Self {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        self.inner.check_timeout_ms.store(ms, Ordering::Relaxed);
        self
    }

    /// The bound of one check.
    ///
    /// ```
    /// # use adk_runtime::health::Health;
    /// assert_eq!(Health::new().check_timeout(), Health::DEFAULT_CHECK_TIMEOUT);
    /// ```
    pub fn check_timeout(&self) -> Duration {
        match self.inner.check_timeout_ms.load(Ordering::Relaxed) {
            0 => Self::DEFAULT_CHECK_TIMEOUT,
            ms => Duration::from_millis(ms),
        }
    }

    /// Adds a readiness check.
    ///
    /// ```
    /// # use adk_runtime::health::{CheckResult, Health};
    /// Health::new().add_check("redis", || async { CheckResult::unhealthy("connection refused") });
    /// ```
    pub fn add_check(&self, name: impl Into<String>, check: impl HealthCheck) {
        self.inner.readiness.write().unwrap_or_else(|e| e.into_inner()).push((name.into(), Arc::new(check)));
    }

    /// Adds a liveness check: only for states a restart fixes (a deadlocked worker, a wedged event loop).
    ///
    /// ```
    /// # use adk_runtime::health::{CheckResult, Health};
    /// Health::new().add_liveness_check("worker", || async { CheckResult::healthy() });
    /// ```
    pub fn add_liveness_check(&self, name: impl Into<String>, check: impl HealthCheck) {
        self.inner.liveness.write().unwrap_or_else(|e| e.into_inner()).push((name.into(), Arc::new(check)));
    }

    /// Adds a source of readiness reports: a function called at each readiness probe that returns any number of
    /// named results, for components that know their state without asking anyone (open circuit breakers, a lost
    /// backend connection). It runs on the probe's task, so it must not block.
    ///
    /// ```
    /// use adk_runtime::health::{CheckReport, CheckResult, Health};
    ///
    /// let health = Health::new();
    /// health.add_source(|| {
    ///     let open = ["openai"]; // e.g. the breakers now open
    ///     open.iter().map(|name| CheckReport::new(format!("circuit_breaker:{name}"), CheckResult::degraded("open"))).collect()
    /// });
    /// ```
    pub fn add_source(&self, source: impl Fn() -> Vec<CheckReport> + Send + Sync + 'static) {
        self.inner.sources.write().unwrap_or_else(|e| e.into_inner()).push(Arc::new(source));
    }

    /// Declares the application started: the startup probe turns healthy and readiness stops reporting `startup`.
    ///
    /// ```
    /// # use adk_runtime::health::{Health, HealthStatus};
    /// let health = Health::new();
    /// assert_eq!(health.startup().status, HealthStatus::Unhealthy);
    /// health.mark_started();
    /// assert_eq!(health.startup().status, HealthStatus::Healthy);
    /// ```
    pub fn mark_started(&self) {
        self.inner.started.store(true, Ordering::Release);
    }

    /// Whether [`mark_started`](Self::mark_started) was called.
    ///
    /// ```
    /// # use adk_runtime::health::Health;
    /// let health = Health::new();
    /// health.mark_started();
    /// assert!(health.is_started());
    /// ```
    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// The startup probe.
    ///
    /// ```
    /// # use adk_runtime::health::Health;
    /// assert_eq!(Health::new().startup().to_json(),
    ///     r#"{"status":"unhealthy","checks":[{"name":"startup","status":"unhealthy","reason":"not started"}]}"#);
    /// ```
    pub fn startup(&self) -> ProbeReport {
        ProbeReport::from_checks(vec![self.startup_report()])
    }

    /// The liveness probe: the liveness checks.
    ///
    /// ```
    /// # use adk_runtime::health::{Health, HealthStatus};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// assert_eq!(Health::new().liveness().await.status, HealthStatus::Healthy);
    /// # });
    /// ```
    pub async fn liveness(&self) -> ProbeReport {
        let checks = self.inner.liveness.read().unwrap_or_else(|e| e.into_inner()).clone();
        ProbeReport::from_checks(self.run_checks(checks).await)
    }

    /// The readiness probe: `startup` until started, the readiness checks, then the sources' reports.
    ///
    /// ```
    /// # use adk_runtime::health::{CheckResult, Health, HealthStatus};
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let health = Health::new();
    /// health.mark_started();
    /// health.add_check("search", || async { CheckResult::degraded("index rebuilding") });
    /// let report = health.readiness().await;
    /// assert_eq!(report.status, HealthStatus::Degraded);
    /// assert_eq!(report.checks[0].result.reason.as_deref(), Some("index rebuilding"));
    /// # });
    /// ```
    pub async fn readiness(&self) -> ProbeReport {
        let checks = self.inner.readiness.read().unwrap_or_else(|e| e.into_inner()).clone();
        let sources = self.inner.sources.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut reports = Vec::with_capacity(checks.len() + 1);
        if !self.is_started() {
            reports.push(self.startup_report());
        }
        reports.extend(self.run_checks(checks).await);
        for source in sources {
            reports.extend(source());
        }
        ProbeReport::from_checks(reports)
    }

    fn startup_report(&self) -> CheckReport {
        let result = if self.is_started() { CheckResult::healthy() } else { CheckResult::unhealthy("not started") };
        CheckReport::new("startup", result)
    }

    /// Runs `checks` concurrently, each on its own task (so a panic is contained) and within the check timeout.
    async fn run_checks(&self, checks: Vec<(String, Arc<dyn DynCheck>)>) -> Vec<CheckReport> {
        let timeout = self.check_timeout();
        let mut running = tokio::task::JoinSet::new();
        for (i, (_, check)) in checks.iter().enumerate() {
            let check = check.clone();
            running.spawn(async move { (i, tokio::time::timeout(timeout, check.check_boxed()).await) });
        }
        let mut results: Vec<Option<CheckResult>> = vec![None; checks.len()];
        while let Some(joined) = running.join_next().await {
            // A panicked task has no index; its slot stays empty and is reported below.
            if let Ok((i, outcome)) = joined {
                results[i] =
                    Some(outcome.unwrap_or_else(|_| {
                        CheckResult::unhealthy(format!("no answer within {}ms", timeout.as_millis()))
                    }));
            }
        }
        checks
            .into_iter()
            .zip(results)
            .map(|((name, _), result)| {
                CheckReport::new(name, result.unwrap_or_else(|| CheckResult::unhealthy("the check panicked")))
            })
            .collect()
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |checks: &RwLock<Vec<(String, Arc<dyn DynCheck>)>>| {
            checks.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(name, _)| name.clone()).collect::<Vec<_>>()
        };
        f.debug_struct("Health")
            .field("started", &self.is_started())
            .field("readiness", &names(&self.inner.readiness))
            .field("liveness", &names(&self.inner.liveness))
            .field("sources", &self.inner.sources.read().unwrap_or_else(|e| e.into_inner()).len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_check_that_hangs_is_unhealthy_after_the_timeout_and_others_still_report() {
        let health = Health::new().with_check_timeout(Duration::from_millis(200));
        health.mark_started();
        health.add_check("hangs", std::future::pending::<CheckResult>);
        health.add_check("fine", || async { CheckResult::healthy() });
        let report = health.readiness().await;
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.checks[0], CheckReport::new("hangs", CheckResult::unhealthy("no answer within 200ms")));
        assert_eq!(report.checks[1], CheckReport::new("fine", CheckResult::healthy()));
    }

    #[tokio::test]
    async fn a_check_that_panics_is_unhealthy() {
        let health = Health::new();
        health.mark_started();
        health.add_check("broken", || async { panic!("bug in the check") });
        let report = health.readiness().await;
        assert_eq!(report.checks, [CheckReport::new("broken", CheckResult::unhealthy("the check panicked"))]);
    }

    #[tokio::test]
    async fn checks_run_concurrently() {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let health = Health::new();
        health.mark_started();
        for name in ["a", "b"] {
            let barrier = barrier.clone();
            // Each check waits for the other: they only finish if both run at once.
            health.add_check(name, move || {
                let barrier = barrier.clone();
                async move {
                    barrier.wait().await;
                    CheckResult::healthy()
                }
            });
        }
        let report = tokio::time::timeout(Duration::from_secs(5), health.readiness()).await.expect("no deadlock");
        assert_eq!(report.status, HealthStatus::Healthy);
    }

    #[tokio::test]
    async fn readiness_lists_sources_after_checks_and_liveness_ignores_both() {
        let health = Health::new();
        health.mark_started();
        health.add_check("db", || async { CheckResult::healthy() });
        health.add_source(|| vec![CheckReport::new("circuit_breaker:openai", CheckResult::degraded("open"))]);
        let ready = health.readiness().await;
        assert_eq!(ready.status, HealthStatus::Degraded);
        let names: Vec<&str> = ready.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["db", "circuit_breaker:openai"]);
        let live = health.liveness().await;
        assert_eq!((live.status, live.checks.len()), (HealthStatus::Healthy, 0));
    }

    #[test]
    fn reasons_are_escaped_in_the_json_body() {
        let report = ProbeReport::from_checks(vec![CheckReport::new("x", CheckResult::unhealthy("said \"no\"\n"))]);
        assert_eq!(
            report.to_json(),
            r#"{"status":"unhealthy","checks":[{"name":"x","status":"unhealthy","reason":"said \"no\"\n"}]}"#
        );
    }

    #[tokio::test]
    async fn an_open_breaker_makes_the_global_readiness_degraded() {
        use crate::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
        static BREAKER: CircuitBreakerPolicy =
            CircuitBreakerPolicy::new("health-test-breaker", "health.rs:1", CircuitBreakerConfig::new());
        let name = "circuit_breaker:health-test-breaker";
        global().mark_started();
        BREAKER.breaker().force_open();
        let ready = global().readiness().await;
        let report = ready.checks.iter().find(|r| r.name == name).expect("the global readiness reports the breaker");
        assert_eq!(report.result.status, HealthStatus::Degraded);
        assert_ne!(ready.status, HealthStatus::Healthy, "an open breaker is not a healthy process");
        BREAKER.breaker().reset();
        assert!(!global().readiness().await.checks.iter().any(|r| r.name == name), "a closed breaker is not reported");
    }
}
