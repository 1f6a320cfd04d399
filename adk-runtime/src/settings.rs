//! What a builder's `build()` answers when a setting is one its policy cannot work with. The rules are the ones the
//! attributes check at compile time (the `adk-settings` crate holds them for both), so the same value is refused the
//! same way, with the same reason, whichever way the policy is made.

use std::fmt;

/// A setting a policy cannot work with, from a builder's `build()`.
///
/// ```
/// use adk_runtime::circuit_breaker::CircuitBreaker;
///
/// let error = CircuitBreaker::builder("payments").failure_rate(1.5).build().unwrap_err();
/// assert_eq!((error.policy, error.setting), ("circuit_breaker", "failure_rate"));
/// assert_eq!(
///     error.to_string(),
///     "invalid circuit_breaker setting `failure_rate`: `failure_rate` is a share of the calls in the window, \
///      in (0, 1]: e.g. `failure_rate = 0.5` for half of them"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SettingsError {
    /// The policy being built: `circuit_breaker`, `rate_limiter`, `bulkhead`, `retry`, `timeout`.
    pub policy: &'static str,
    /// The setting, named as the attribute's parameter is.
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl SettingsError {
    pub(crate) fn new(policy: &'static str, invalid: adk_settings::Invalid) -> Self {
        SettingsError { policy, setting: invalid.setting, reason: invalid.reason }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} setting `{}`: {}", self.policy, self.setting, self.reason)
    }
}

impl std::error::Error for SettingsError {}

/// Nanoseconds of `duration`, saturating, as the rules take durations.
pub(crate) fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
