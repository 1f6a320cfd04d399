//! `#[timeout]`: bound one call on tokio's clock.

use std::future::Future;
use std::time::Duration;

use std::sync::OnceLock;

use prometheus::IntCounter;

use crate::error::Error;
use crate::metrics::families;

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

    /// The bound.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// Runs `call`; if it has not finished after the bound, drops it and answers `refuse(Error::Timeout)`.
    #[inline]
    pub async fn run<R, F>(&self, call: F, refuse: impl FnOnce(Error) -> R) -> R
    where
        F: Future<Output = R>,
    {
        match tokio::time::timeout(self.after, call).await {
            Ok(output) => output,
            Err(_) => {
                self.fired.get_or_init(|| families().timeouts_total.with_label_values(&[self.function])).inc();
                tracing::debug!(function = self.function, after = ?self.after, "timed out");
                refuse(Error::timeout(self.after))
            }
        }
    }
}
