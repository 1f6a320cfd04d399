//! [`RateLimiter::builder`]: a limiter as a value, outside the registry, with its settings checked.

use std::sync::Arc;
use std::time::Duration;

use super::{Backend, MemoryBackend, Quota, Rate, RateLimiter, Strategy};
use crate::settings::{SettingsError, nanos};

/// Settings of a [`RateLimiter`] built by hand (per tenant, per test, behind a tower layer); the same parameters and
/// defaults as `#[adk::rate_limited]`, checked by the same rules in [`build`](Self::build).
///
/// ```
/// use adk_runtime::rate_limit::{RateLimiter, Strategy};
///
/// let limiter = RateLimiter::builder("tenant-42:api")
///     .rpm(60)
///     .burst(2)
///     .strategy(Strategy::Gcra)
///     .build()
///     .unwrap();
/// assert!(limiter.check().is_ok() && limiter.check().is_ok());
/// assert!(limiter.check().is_err(), "the burst of 2 is spent");
/// assert!(adk_runtime::registry().rate_limiter("tenant-42:api").is_none(), "not in the registry");
/// assert!(RateLimiter::builder("x").rps(0).build().is_err());
/// ```
///
/// [`backend`](Self::backend) keeps the limiter's state elsewhere, such as in Redis (`RedisBackend`, feature `redis`):
///
/// ```
/// use adk_runtime::rate_limit::{MemoryBackend, RateLimiter};
///
/// let limiter = RateLimiter::builder("tenant-7:api").rps(5).backend(MemoryBackend::new()).build().unwrap();
/// assert_eq!(limiter.quota().limit(), 5);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct RateLimiterBuilder<B = MemoryBackend> {
    backend: B,
    name: String,
    /// Count and period in nanoseconds, checked before a `Rate` (which refuses them by panicking) is made.
    rate: Option<(u64, u64)>,
    burst: Option<u64>,
    strategy: Strategy,
}

impl RateLimiter {
    /// Starts a limiter called `name` (its metric label); give it a rate, then optionally a burst (default: one
    /// period's worth) and a strategy (default [`Strategy::Gcra`]).
    pub fn builder(name: impl Into<String>) -> RateLimiterBuilder {
        RateLimiterBuilder {
            backend: MemoryBackend::new(),
            name: name.into(),
            rate: None,
            burst: None,
            strategy: Strategy::Gcra,
        }
    }
}

impl<B: Backend> RateLimiterBuilder<B> {
    /// Keeps the limiter's state in `backend` (default: this process's memory, [`MemoryBackend`]).
    pub fn backend<T: Backend>(self, backend: T) -> RateLimiterBuilder<T> {
        let RateLimiterBuilder { name, rate, burst, strategy, .. } = self;
        RateLimiterBuilder { backend, name, rate, burst, strategy }
    }

    /// `count` calls per `period` (`rate = "5/30s"`).
    pub fn rate(mut self, count: u64, period: Duration) -> Self {
        self.rate = Some((count, nanos(period)));
        self
    }

    /// Calls per second.
    pub fn rps(self, count: u64) -> Self {
        self.rate(count, Duration::from_secs(1))
    }

    /// Calls per minute.
    pub fn rpm(self, count: u64) -> Self {
        self.rate(count, Duration::from_secs(60))
    }

    /// Calls per hour.
    pub fn rph(self, count: u64) -> Self {
        self.rate(count, Duration::from_secs(3_600))
    }

    /// Calls per day.
    pub fn rpd(self, count: u64) -> Self {
        self.rate(count, Duration::from_secs(86_400))
    }

    /// Calls admitted at once from a full bucket (at least 1).
    pub fn burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The algorithm.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The quota, checked as `#[adk::rate_limited]` checks it at compile time.
    pub fn quota(&self) -> Result<Quota, SettingsError> {
        let invalid = |invalid| SettingsError::new("rate_limiter", invalid);
        let (count, period) = self.rate.ok_or_else(|| SettingsError {
            policy: "rate_limiter",
            setting: "rate",
            reason: "a rate limiter needs a rate: one of `rps`, `rpm`, `rph`, `rpd` or `rate(count, period)`".into(),
        })?;
        let count = adk_settings::rate(count).map_err(invalid)?;
        let period = adk_settings::above_zero("rate", period).map_err(invalid)?;
        let mut quota = Quota::new(Rate::new(count, Duration::from_nanos(period))).with_strategy(self.strategy);
        if let Some(burst) = self.burst {
            quota = quota.with_burst(adk_settings::burst(burst).map_err(invalid)?);
        }
        Ok(quota)
    }

    /// A new limiter of its own (not the registry's instance of that name), or the first setting it cannot work with.
    pub fn build(self) -> Result<Arc<RateLimiter<B>>, SettingsError> {
        let quota = self.quota()?;
        Ok(RateLimiter::with_backend(self.name, quota, self.backend))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_the_attribute_checks_is_checked_by_build() {
        let refused = |builder: RateLimiterBuilder| builder.build().unwrap_err().setting;
        assert_eq!(refused(RateLimiter::builder("b")), "rate");
        assert_eq!(refused(RateLimiter::builder("b").rps(0)), "rate");
        assert_eq!(refused(RateLimiter::builder("b").rate(1, Duration::ZERO)), "rate");
        assert_eq!(refused(RateLimiter::builder("b").rps(1).burst(0)), "burst");
        let quota = RateLimiter::builder("b").rph(10).burst(3).strategy(Strategy::FixedWindow).quota().unwrap();
        assert_eq!((quota.rate().count(), quota.rate().period()), (10, Duration::from_secs(3_600)));
        assert_eq!((quota.burst(), quota.strategy()), (3, Strategy::FixedWindow));
    }
}
