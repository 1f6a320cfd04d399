//! `#[retry]`: re-run a call on transient failure, with backoff, jitter, a retry budget and `retry_after` hints.
//!
//! The policy is a `static` built at compile time; a call walks it with an [`Attempts`] cursor that decides, after
//! each outcome, whether to stop or to wait and go again. The loop itself lives in the caller (the macro expansion, or
//! [`RetryPolicy::run`]), so the body can re-borrow the caller's arguments on every attempt.

mod backoff;
mod budget;
mod builder;
#[cfg(all(test, loom))]
mod loom;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::IntCounter;

use tokio::time::Instant;

pub use backoff::{Backoff, Jitter};
pub use budget::RetryBudget;
pub use builder::RetryPolicyBuilder;

use crate::deadline;
use crate::error::{Classify, ErrorClass};
use crate::metrics::family;

family! {
    /// `adk_retry_attempts_total{function,outcome}`
    static RETRY_ATTEMPTS_TOTAL: counter(
        "adk_retry_attempts_total",
        "Attempts made under a retry policy by outcome.",
        ["function", "outcome"]
    );
}

/// A retry policy. Construct it in a `static` with [`RetryPolicy::new`] and the `with_*` builders (all `const`).
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::retry::{Backoff, RetryPolicy};
///
/// static POLICY: RetryPolicy = RetryPolicy::new("fetch")
///     .with_attempts(4)
///     .with_backoff(Backoff::Constant)
///     .with_base(Duration::from_millis(50));
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let mut calls = 0;
/// let result: Result<u32, std::io::Error> = POLICY
///     .run(|| { calls += 1; let n = calls; async move {
///         if n < 3 { Err(std::io::ErrorKind::ConnectionReset.into()) } else { Ok(n) }
///     } })
///     .await;
/// assert_eq!(result.unwrap(), 3);
/// # });
/// ```
#[derive(Debug)]
pub struct RetryPolicy {
    function: &'static str,
    attempts: u32,
    backoff: Backoff,
    base: Duration,
    max_delay: Duration,
    jitter: Jitter,
    max_elapsed: Option<Duration>,
    budget: Option<RetryBudget>,
    metrics: OnceLock<RetryMetrics>,
}

/// `adk_retry_attempts_total{function,outcome}` handles, resolved on the first failure. First-try successes are not
/// counted here (they are plain calls); every attempt after a failure is.
#[derive(Debug)]
struct RetryMetrics {
    /// An attempt failed and another follows.
    retried: IntCounter,
    /// A retry succeeded.
    recovered: IntCounter,
    /// The error was not worth retrying (permanent, critical, or the `when` predicate said no).
    not_retryable: IntCounter,
    /// The attempts ran out, or the next wait would end past `max_elapsed` or the deadline.
    exhausted: IntCounter,
    /// The error's `retry_after` was longer than `max_delay` or ended past the deadline: not worth waiting for.
    hint_too_long: IntCounter,
    /// The retry budget refused the retry.
    budget_exhausted: IntCounter,
}

/// Defaults, documented on `#[adk::retry]`.
impl RetryPolicy {
    /// Total calls, the first included.
    pub const DEFAULT_ATTEMPTS: u32 = 3;
    /// Wait before the first retry.
    pub const DEFAULT_BASE: Duration = Duration::from_millis(100);
    /// Upper bound of any single wait; a `retry_after` hint beyond it ends the retries.
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
    /// Growth factor of the exponential backoff.
    pub const DEFAULT_MULTIPLIER: f64 = 2.0;

    /// The default policy for `function` (used in metrics and logs): 3 attempts, exponential backoff from 100 ms
    /// doubling up to 30 s, no jitter, no budget, no overall deadline.
    pub const fn new(function: &'static str) -> Self {
        RetryPolicy {
            function,
            attempts: Self::DEFAULT_ATTEMPTS,
            backoff: Backoff::Exponential { multiplier: Self::DEFAULT_MULTIPLIER },
            base: Self::DEFAULT_BASE,
            max_delay: Self::DEFAULT_MAX_DELAY,
            jitter: Jitter::None,
            max_elapsed: None,
            budget: None,
            metrics: OnceLock::new(),
        }
    }

    /// Total calls, the first included (at least 1).
    pub const fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = if attempts == 0 { 1 } else { attempts };
        self
    }

    /// The delay schedule.
    pub const fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The first retry's delay.
    pub const fn with_base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Cap on any single wait.
    pub const fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Randomisation of each wait.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Overall deadline: no retry starts if its wait would end later than `max_elapsed` after the first call began.
    pub const fn with_max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// Shares a retry budget among all calls of this policy.
    pub const fn with_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The function this policy belongs to.
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// The budget, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// Starts one logical call.
    #[inline]
    pub fn start(&self) -> Attempts<'_> {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        Attempts {
            policy: self,
            calls: 0,
            started: self.max_elapsed.map(|_| Instant::now()),
            previous_delay: Duration::ZERO,
        }
    }

    /// Runs `op` under this policy, retrying errors that [`Classify`] calls transient.
    ///
    /// For code that owns its closure; the macro expands the same loop inline so the body can re-borrow `&mut self`
    /// and other arguments on each attempt.
    pub async fn run<T, E, F, Fut>(&self, mut op: F) -> Result<T, E>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempts = self.start();
        loop {
            let result = attempts.attempt(op()).await;
            match attempts.next(result, by_class) {
                Step::Done(result) => return result,
                Step::Retry(delay) => pause(delay).await,
            }
        }
    }
}

/// The wait before the next attempt, boxed: it is only built on the retry path, and keeping the timer out of the
/// caller's future keeps that future small (and the first-try path fast).
#[cold]
pub fn pause(delay: Duration) -> std::pin::Pin<Box<tokio::time::Sleep>> {
    Box::pin(tokio::time::sleep(delay))
}

/// What a predicate says about one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again, no sooner than the hint if there is one.
    Retry {
        /// The dependency's own `retry_after`.
        hint: Option<Duration>,
    },
    /// Return this error now.
    Stop,
}

/// The default predicate: transient errors are retried (honouring their `retry_after`), permanent and critical ones
/// are returned at once.
#[inline]
pub fn by_class<E: Classify>(error: &E) -> Verdict {
    match error.class() {
        ErrorClass::Transient => Verdict::Retry { hint: error.retry_after() },
        ErrorClass::Permanent | ErrorClass::Critical => Verdict::Stop,
    }
}

/// A `when = path` predicate: `true` means worth retrying.
#[inline]
pub fn by_predicate(retry: bool) -> Verdict {
    if retry { Verdict::Retry { hint: None } } else { Verdict::Stop }
}

/// What to do after one attempt.
#[derive(Debug)]
pub enum Step<T, E> {
    /// Return this result.
    Done(Result<T, E>),
    /// Sleep this long, then call again.
    Retry(Duration),
}

/// The cursor of one logical call through a [`RetryPolicy`].
#[derive(Debug)]
pub struct Attempts<'p> {
    policy: &'p RetryPolicy,
    calls: u32,
    started: Option<Instant>,
    previous_delay: Duration,
}

impl Attempts<'_> {
    /// Decides what follows `result`: return it, or wait and call again. `verdict` judges errors.
    #[inline]
    pub fn next<T, E>(&mut self, result: Result<T, E>, verdict: impl FnOnce(&E) -> Verdict) -> Step<T, E> {
        match result {
            Ok(value) => {
                if self.calls > 0 {
                    self.metrics().recovered.inc();
                }
                Step::Done(Ok(value))
            }
            Err(error) => match self.delay_after_failure(verdict(&error)) {
                Some(delay) => Step::Retry(delay),
                None => Step::Done(Err(error)),
            },
        }
    }

    /// Number of calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// The time by which this call must be done: the earlier of `max_elapsed` after its start and the deadline it
    /// runs under ([`crate::deadline`]). No wait between attempts ends after it.
    pub fn deadline(&self) -> Option<Instant> {
        let own = self.started.zip(self.policy.max_elapsed).map(|(started, max_elapsed)| started + max_elapsed);
        deadline::earliest(own)
    }

    /// Runs one attempt under [`Attempts::deadline`] when `max_elapsed` is set, so the layers inside it (a rate
    /// limiter's wait, a bulkhead's queue) and the calls it makes never wait past it. Without `max_elapsed` the
    /// attempt already runs under the enclosing deadline, if any, and is polled as it is.
    #[inline]
    pub async fn attempt<F: Future>(&self, attempt: F) -> F::Output {
        match self.started.zip(self.policy.max_elapsed) {
            Some((started, max_elapsed)) => deadline::within(started + max_elapsed, attempt).await,
            None => attempt.await,
        }
    }

    #[cold]
    fn metrics(&self) -> &RetryMetrics {
        let function = self.policy.function;
        self.policy.metrics.get_or_init(|| {
            let counter = |outcome| RETRY_ATTEMPTS_TOTAL.with(&[function, outcome]);
            RetryMetrics {
                retried: counter("retried"),
                recovered: counter("recovered"),
                not_retryable: counter("not_retryable"),
                exhausted: counter("exhausted"),
                hint_too_long: counter("retry_after_too_long"),
                budget_exhausted: counter("budget_exhausted"),
            }
        })
    }

    #[cold]
    fn delay_after_failure(&mut self, verdict: Verdict) -> Option<Duration> {
        self.calls += 1;
        let metrics = self.metrics();
        let Verdict::Retry { hint } = verdict else {
            metrics.not_retryable.inc();
            return None;
        };
        let policy = self.policy;
        if self.calls >= policy.attempts {
            metrics.exhausted.inc();
            return None;
        }
        let computed = policy.backoff.delay(policy.base, self.calls, policy.max_delay);
        let mut delay = policy.jitter.apply(computed, self.previous_delay, policy.base, policy.max_delay);
        let left = self.deadline().map(|deadline| deadline.saturating_duration_since(Instant::now()));
        if let Some(hint) = hint {
            if hint > policy.max_delay {
                tracing::debug!(function = policy.function, ?hint, "retry_after beyond max_delay; giving up");
                metrics.hint_too_long.inc();
                return None;
            }
            if left.is_some_and(|left| hint > left) {
                tracing::debug!(function = policy.function, ?hint, ?left, "retry_after beyond the deadline; giving up");
                metrics.hint_too_long.inc();
                return None;
            }
            delay = delay.max(hint);
        }
        if let Some(left) = left
            && delay > left
        {
            tracing::debug!(
                function = policy.function,
                ?delay,
                ?left,
                "the next wait would pass the deadline; giving up"
            );
            metrics.exhausted.inc();
            return None;
        }
        if let Some(budget) = &policy.budget
            && !budget.withdraw()
        {
            tracing::debug!(function = policy.function, "retry budget exhausted; giving up");
            metrics.budget_exhausted.inc();
            return None;
        }
        metrics.retried.inc();
        self.previous_delay = delay;
        tracing::debug!(function = policy.function, attempt = self.calls + 1, ?delay, "retrying");
        Some(delay)
    }
}
