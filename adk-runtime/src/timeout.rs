//! `#[timeout]`: bound one call on tokio's clock.

use std::future::Future;
use std::time::Duration;

use std::sync::OnceLock;

use prometheus::IntCounter;
use tokio::time::Instant;

use crate::deadline;
use crate::error::Error;
use crate::metrics::family;

family! {
    /// `adk_timeouts_total{function}`
    static TIMEOUTS_TOTAL: counter("adk_timeouts_total", "Calls that exceeded their timeout.", ["function"]);
}

/// A timeout bound to a function, built at compile time.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::timeout::TimeoutPolicy;
///
/// static BOUND: TimeoutPolicy = TimeoutPolicy::new("slow", Duration::from_millis(10));
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let r: Result<(), adk_runtime::Error> = BOUND.run(async { tokio::time::sleep(Duration::from_secs(1)).await; Ok(()) }, |e| Err(e)).await;
/// assert!(matches!(r, Err(adk_runtime::Error::Timeout { .. })));
/// # });
/// ```
#[derive(Debug)]
pub struct TimeoutPolicy {
    function: &'static str,
    after: Duration,
    fired: OnceLock<IntCounter>,
}

impl TimeoutPolicy {
    /// A bound of `after` for `function`.
    pub const fn new(function: &'static str, after: Duration) -> Self {
        TimeoutPolicy { function, after, fired: OnceLock::new() }
    }

    /// A bound of `after` for `function`, checked as `#[adk::timeout]` checks it at compile time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use adk_runtime::timeout::TimeoutPolicy;
    ///
    /// let bound = TimeoutPolicy::checked("tenant-42::search", Duration::from_millis(250)).unwrap();
    /// assert_eq!(bound.after(), Duration::from_millis(250));
    /// assert_eq!(TimeoutPolicy::checked("x", Duration::ZERO).unwrap_err().setting, "after");
    /// ```
    pub fn checked(function: &'static str, after: Duration) -> Result<Self, crate::SettingsError> {
        let nanos = crate::settings::nanos(after);
        adk_settings::timeout(nanos).map_err(|invalid| crate::SettingsError::new("timeout", invalid))?;
        Ok(TimeoutPolicy::new(function, after))
    }

    /// The bound.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// Runs `call`; if it has not finished after the bound, drops it and answers `refuse(Error::Timeout)`.
    ///
    /// `call` runs under the bound's deadline (or the enclosing one, if earlier; see [`crate::deadline`]), so the
    /// layers and annotated calls inside it never wait past it.
    #[inline]
    pub fn run<R, F, N>(&self, call: F, refuse: N) -> Bounded<'_, F, N>
    where
        F: Future<Output = R>,
        N: FnOnce(Error) -> R,
    {
        let until = Instant::now() + self.after;
        let (timer, deadline) = (tokio::time::sleep_until(until), deadline::nearest(until));
        Bounded { call, timer, deadline, policy: self, refuse: Some(refuse) }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`TimeoutPolicy::run`]: the call, its timer and its deadline in one place. (Wrapping the call
    /// in a deadline future and that in `tokio::time::Timeout` moved the whole inner future once more per layer.)
    #[must_use = "futures do nothing unless polled"]
    pub struct Bounded<'p, F, N> {
        #[pin]
        call: F,
        #[pin]
        timer: tokio::time::Sleep,
        deadline: Instant,
        policy: &'p TimeoutPolicy,
        refuse: Option<N>,
    }
}

impl<R, F, N> Future for Bounded<'_, F, N>
where
    F: Future<Output = R>,
    N: FnOnce(Error) -> R,
{
    type Output = R;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<R> {
        let this = self.project();
        // The call first, as `tokio::time::timeout` does: an answer ready at the bound is not thrown away.
        if let std::task::Poll::Ready(output) = deadline::poll_under(*this.deadline, || this.call.poll(cx)) {
            return std::task::Poll::Ready(output);
        }
        match this.timer.poll(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(()) => {
                let policy = *this.policy;
                policy.fired.get_or_init(|| TIMEOUTS_TOTAL.with(&[policy.function])).inc();
                tracing::debug!(function = policy.function, after = ?policy.after, "timed out");
                let refuse = this.refuse.take().expect("polled after completion");
                std::task::Poll::Ready(refuse(Error::timeout(policy.after)))
            }
        }
    }
}
