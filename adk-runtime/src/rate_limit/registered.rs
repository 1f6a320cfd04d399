//! Named rate limiters in the registry, and the registry's view of them.

use std::sync::Arc;

use super::RateLimiter;
use crate::registry::{Instance, Kind, Registry};

impl Kind {
    /// Rate limiters.
    pub const RATE_LIMITER: Kind = Kind::new("rate_limiter");
}

impl Instance for RateLimiter {
    const KIND: Kind = Kind::RATE_LIMITER;

    fn reset(&self) {
        RateLimiter::reset(self);
    }
}

/// The registry's view of RateLimiters.
impl Registry {
    /// The rate limiter called `name` (a `name = "..."` of `#[rate_limited]`, or the path of a function limited
    /// without one), once a function declares it: the instance is made from an annotated function's declaration,
    /// with its settings, before any call.
    ///
    /// ```
    /// use adk_runtime::rate_limit::{Quota, RateLimitPolicy};
    ///
    /// static LIMIT: RateLimitPolicy = RateLimitPolicy::new("doc::f", "src/lib.rs:1", Quota::per_minute(60)).with_name("doc-registry");
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let _: Result<(), adk_runtime::Error> = LIMIT.run(async { Ok(()) }, Err).await;
    /// let limiter = adk_runtime::registry().rate_limiter("doc-registry").unwrap();
    /// assert_eq!(limiter.snapshot().remaining, 59);
    /// assert!(adk_runtime::registry().rate_limiter("missing").is_none());
    /// # });
    /// ```
    pub fn rate_limiter(&self, name: &str) -> Option<Arc<RateLimiter>> {
        self.lookup::<RateLimiter>(name)
    }

    /// The names of all rate limiters in use, sorted.
    pub fn rate_limiter_names(&self) -> Vec<String> {
        self.instances::<RateLimiter>().names()
    }
}
