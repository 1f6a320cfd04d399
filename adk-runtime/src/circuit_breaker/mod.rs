//! `#[circuit_breaker]`: stop calling a dependency that keeps failing, and try it again later.
//!
//! A [`CircuitBreakerPolicy`] is a function's `static`: its breaker's name, settings and call site. On first use it
//! finds (or creates) the named [`CircuitBreaker`] in the [registry](crate::registry()), which every function naming
//! it shares: one breaker per dependency. A call asks the breaker for a [`BreakerPermit`] and reports its outcome on
//! it; [`CircuitBreakerPolicy::run`] does both around a future.
//!
//! Closed, the breaker judges a sliding [`Window`] of recorded calls after every recorded call once it holds
//! `min_calls` of them, and opens when the failure rate reaches `failure_rate` or the slow-call rate reaches
//! `slow_rate`. Open, it refuses calls with [`Error::CircuitOpen`] (whose `retry_after` is the time left) for
//! `open_for`; the first call after that moves it to half-open, which admits `half_open_calls` trial calls, never more
//! at once, and decides after exactly that many outcomes: below the thresholds it closes with a fresh window,
//! otherwise it opens again (for longer each time if `max_open_for` is set).
//!
//! Which errors count is said by [`Record`]: [`by_class`] by default, or a `record = path` predicate through
//! [`by_predicate`].
//!
//! Cost: a successful call through a closed breaker with a count window takes no lock and writes no memory shared with
//! other threads (it reads the state word and counts itself in a per-thread stripe), so calls on many threads do not
//! slow each other down. Failures and slow calls take the window's lock; a time window or `slow_call` reads the clock
//! once per call (twice with `slow_call`). Count windows are exact when calls do not race each other; under
//! concurrency a call being recorded while another is judged may fall on either side of the window's edge. Time
//! windows slide in steps of 1/60 of their length.

mod algorithm;
mod breaker;
mod builder;
mod config;
#[cfg(all(test, loom))]
mod loom;
mod registered;
mod window;

use std::future::Future;
use std::sync::{Arc, OnceLock};

pub use breaker::{BreakerPermit, CircuitBreaker, WindowSnapshot};
pub use builder::CircuitBreakerBuilder;
pub use config::{CircuitBreakerConfig, Window};

use crate::error::{Classify, Error, ErrorClass};
use crate::registry::{Declaration, Kind, Settings, registry};

/// The state of a breaker.
///
/// ```
/// use adk_runtime::CircuitState;
///
/// assert_eq!(CircuitState::HalfOpen.as_str(), "half_open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls go through and are recorded.
    Closed,
    /// Calls are refused without being made.
    Open,
    /// A few trial calls go through; their outcome decides between closed and open.
    HalfOpen,
}

impl CircuitState {
    /// `"closed"`, `"open"` or `"half_open"`, as in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// The value of `adk_circuit_breaker_state`.
    fn gauge(self) -> i64 {
        self.index() as i64
    }

    fn index(self) -> usize {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }
}

/// What a breaker makes of one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A failure of the dependency: it counts toward opening the breaker.
    Failure,
    /// Says nothing about the dependency: neither a failure nor a success.
    Ignore,
}

/// The default judgement of an error:
/// - refusals by adk's own policies (`RateLimited`, `BulkheadFull`, and `CircuitOpen` from another breaker), found
///   through [`Classify::adk_error`], are ignored: the dependency was not called, or was not at fault;
/// - a `Timeout` counts;
/// - otherwise transient and critical errors count and permanent ones (bad input, not found) are ignored.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::Error;
/// use adk_runtime::circuit_breaker::{Record, by_class};
///
/// assert_eq!(by_class(&Error::timeout(Duration::from_secs(1))), Record::Failure);
/// assert_eq!(by_class(&Error::rate_limited("openai", Duration::from_secs(1), 10, 0)), Record::Ignore);
/// assert_eq!(by_class(&std::io::Error::from(std::io::ErrorKind::NotFound)), Record::Ignore);
/// assert_eq!(by_class(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)), Record::Failure);
/// ```
#[inline]
pub fn by_class<E: Classify + ?Sized>(error: &E) -> Record {
    match error.adk_error() {
        Some(
            Error::RateLimited { .. }
            | Error::BulkheadFull { .. }
            | Error::CircuitOpen { .. }
            | Error::BackendUnavailable { .. },
        ) => Record::Ignore,
        Some(Error::Timeout { .. }) => Record::Failure,
        _ => match error.class() {
            ErrorClass::Transient | ErrorClass::Critical => Record::Failure,
            ErrorClass::Permanent => Record::Ignore,
        },
    }
}

/// A `record = path` predicate's answer: `true` counts the error as a failure, `false` ignores it. The predicate
/// replaces [`by_class`] entirely, so it also sees adk's refusals wrapped in the error.
///
/// ```
/// use adk_runtime::circuit_breaker::{Record, by_predicate};
///
/// fn is_server_error(status: &u16) -> bool { *status >= 500 }
/// assert_eq!(by_predicate(is_server_error(&503)), Record::Failure);
/// assert_eq!(by_predicate(is_server_error(&404)), Record::Ignore);
/// ```
#[inline]
pub fn by_predicate(counts: bool) -> Record {
    if counts { Record::Failure } else { Record::Ignore }
}

/// A function's circuit breaker: the name it shares, the settings, and where it was declared. Built at compile time in
/// a `static`; the named breaker is found in the registry on first use and kept.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::circuit_breaker::{self, CircuitBreakerConfig, CircuitBreakerPolicy};
///
/// static OPENAI: CircuitBreakerPolicy = CircuitBreakerPolicy::new(
///     "doc-openai",
///     concat!(file!(), ":", line!()),
///     CircuitBreakerConfig::new().with_failure_rate(0.5).with_open_for(Duration::from_secs(30)),
/// );
///
/// async fn complete(prompt: &str) -> Result<String, adk_runtime::Error> {
///     OPENAI.run(async { Ok(format!("echo: {prompt}")) }, circuit_breaker::by_class, Err).await
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(complete("hi").await.unwrap(), "echo: hi");
/// assert_eq!(adk_runtime::registry().circuit_breaker("doc-openai").unwrap().snapshot().calls, 1);
/// # });
/// ```
#[derive(Debug)]
pub struct CircuitBreakerPolicy {
    name: &'static str,
    call_site: &'static str,
    config: CircuitBreakerConfig,
    breaker: OnceLock<Arc<CircuitBreaker>>,
}

impl CircuitBreakerPolicy {
    /// The breaker `name` (by default the function's path), with `config`, declared at `call_site` (`file:line`).
    pub const fn new(name: &'static str, call_site: &'static str, config: CircuitBreakerConfig) -> Self {
        CircuitBreakerPolicy { name, call_site, config, breaker: OnceLock::new() }
    }

    /// The shared breaker, found or created in the registry on first use. If the name was first declared with other
    /// settings, that breaker is used and the disagreement is reported (see [`Registry::conflicts`]).
    ///
    /// [`Registry::conflicts`]: crate::Registry::conflicts
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static A: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-shared", "a.rs:1", CircuitBreakerConfig::new());
    /// static B: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-shared", "b.rs:1", CircuitBreakerConfig::new());
    /// assert!(std::ptr::eq(A.breaker(), B.breaker()));
    /// ```
    #[inline]
    pub fn breaker(&self) -> &CircuitBreaker {
        self.breaker.get_or_init(|| {
            let (_, name, declaration) = self.declared();
            registry()
                .instances::<CircuitBreaker>()
                .declare(name, declaration, || CircuitBreaker::new(self.name, self.config))
        })
    }

    /// What this policy declares about its shared breaker (collected at start-up to find conflicting names).
    pub fn declared(&self) -> (Kind, &'static str, Declaration) {
        (
            Kind::CIRCUIT_BREAKER,
            self.name,
            Declaration { call_site: self.call_site, settings: Settings::new(self.config) },
        )
    }

    /// Asks the shared breaker to make one call; see [`CircuitBreaker::acquire`].
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-policy-acquire", "a.rs:1", CircuitBreakerConfig::new());
    /// DB.acquire().unwrap().success();
    /// ```
    #[inline]
    pub fn acquire(&self) -> Result<BreakerPermit<'_>, Error> {
        self.breaker().acquire()
    }

    /// Runs `call` through the shared breaker; see [`CircuitBreaker::run`]. This is what `#[circuit_breaker]`
    /// expands to, with `record` bound to [`by_class`] or to the `record = path` predicate.
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{self, CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-policy-run", "a.rs:1", CircuitBreakerConfig::new());
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let not_found = async { Err(std::io::ErrorKind::NotFound.into()) };
    /// let r: Result<(), std::io::Error> =
    ///     DB.run(not_found, circuit_breaker::by_class, |refusal| Err(std::io::Error::other(refusal))).await;
    /// assert!(r.is_err());
    /// assert_eq!(DB.breaker().snapshot().calls, 0, "a permanent error is not recorded");
    /// # });
    /// ```
    #[inline]
    pub fn run<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
        record: impl FnOnce(&E) -> Record,
        refuse: impl FnOnce(Error) -> Result<T, E>,
    ) -> impl Future<Output = Result<T, E>> {
        // The breaker's own future, returned as it is, so the expansion awaits one state machine, not two.
        self.breaker().run(call, record, refuse)
    }
}

#[cfg(test)]
mod tests;
