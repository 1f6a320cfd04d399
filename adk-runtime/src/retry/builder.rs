//! [`RetryPolicy::builder`]: a retry policy as a value, with its settings checked.

use std::time::Duration;

use super::{Backoff, Jitter, RetryBudget, RetryPolicy};
use crate::settings::{SettingsError, nanos};

/// Settings of a [`RetryPolicy`] built at run time (per tenant, per test, behind a tower layer); the same parameters
/// and defaults as `#[adk::retry]`, checked by the same rules in [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::retry::{Backoff, Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::builder("tenant-42::fetch")
///     .attempts(4)
///     .backoff(Backoff::Exponential { multiplier: 3.0 })
///     .base(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(2))
///     .jitter(Jitter::Full)
///     .build()
///     .unwrap();
/// assert_eq!(policy.function(), "tenant-42::fetch");
/// let error = RetryPolicy::builder("x").attempts(0).build().unwrap_err();
/// assert_eq!(error.setting, "attempts");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct RetryPolicyBuilder {
    function: &'static str,
    attempts: Option<u32>,
    backoff: Option<Backoff>,
    base: Option<Duration>,
    max_delay: Option<Duration>,
    jitter: Jitter,
    budget: Option<f64>,
    max_elapsed: Option<Duration>,
}

impl RetryPolicy {
    /// Starts a policy for `function` (its metric label) with the defaults of [`RetryPolicy::new`].
    pub fn builder(function: &'static str) -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            function,
            attempts: None,
            backoff: None,
            base: None,
            max_delay: None,
            jitter: Jitter::None,
            budget: None,
            max_elapsed: None,
        }
    }
}

impl RetryPolicyBuilder {
    /// Total calls, the first included (1 to 100).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// The delay schedule (an exponential multiplier is at least 1).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The first retry's wait.
    pub fn base(mut self, base: Duration) -> Self {
        self.base = Some(base);
        self
    }

    /// Cap on any single wait (not below `base`).
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }

    /// Randomisation of each wait.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retries may add at most this fraction of calls over 10 s, plus 10 retries a second, in (0, 10].
    pub fn budget(mut self, ratio: f64) -> Self {
        self.budget = Some(ratio);
        self
    }

    /// A deadline this long after the first call: no wait ends past it, and the layers below honour it.
    pub fn max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// The policy, or the first setting it cannot work with.
    pub fn build(self) -> Result<RetryPolicy, SettingsError> {
        let invalid = |invalid| SettingsError::new("retry", invalid);
        let mut policy = RetryPolicy::new(self.function).with_jitter(self.jitter);
        if let Some(attempts) = self.attempts {
            policy = policy.with_attempts(adk_settings::attempts(attempts.into()).map_err(invalid)?);
        }
        if let Some(backoff) = self.backoff {
            if let Backoff::Exponential { multiplier } = backoff {
                adk_settings::multiplier(multiplier).map_err(invalid)?;
            }
            policy = policy.with_backoff(backoff);
        }
        if let Some(max_delay) = self.max_delay {
            adk_settings::above_zero("max_delay", nanos(max_delay)).map_err(invalid)?;
            // As the attribute does: compared only when both are given (a `base` above the default cap is cut to it).
            if let Some(base) = self.base {
                adk_settings::max_delay(nanos(base), nanos(max_delay)).map_err(invalid)?;
            }
            policy = policy.with_max_delay(max_delay);
        }
        if let Some(base) = self.base {
            policy = policy.with_base(base);
        }
        if let Some(ratio) = self.budget {
            let ratio = adk_settings::budget(ratio).map_err(invalid)?;
            policy = policy.with_budget(RetryBudget::new(ratio, 10, Duration::from_secs(10)));
        }
        if let Some(max_elapsed) = self.max_elapsed {
            adk_settings::above_zero("max_elapsed", nanos(max_elapsed)).map_err(invalid)?;
            policy = policy.with_max_elapsed(max_elapsed);
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_the_attribute_checks_is_checked_by_build() {
        let refused = |builder: RetryPolicyBuilder| builder.build().unwrap_err().setting;
        let b = || RetryPolicy::builder("retry::builder::tests");
        assert_eq!(refused(b().attempts(0)), "attempts");
        assert_eq!(refused(b().attempts(101)), "attempts");
        assert_eq!(refused(b().backoff(Backoff::Exponential { multiplier: 0.5 })), "multiplier");
        assert_eq!(refused(b().base(Duration::from_secs(5)).max_delay(Duration::from_secs(1))), "max_delay");
        assert_eq!(refused(b().max_delay(Duration::ZERO)), "max_delay");
        assert_eq!(refused(b().budget(0.0)), "budget");
        assert_eq!(refused(b().max_elapsed(Duration::ZERO)), "max_elapsed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_built_policy_retries_as_configured() {
        let policy = RetryPolicy::builder("retry::builder::tests::run")
            .attempts(3)
            .backoff(Backoff::Constant)
            .base(Duration::from_millis(100))
            .build()
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let result: Result<(), std::io::Error> = policy
            .run(|| {
                calls += 1;
                async { Err(std::io::ErrorKind::ConnectionReset.into()) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!((calls, started.elapsed()), (3, Duration::from_millis(200)));
    }
}
