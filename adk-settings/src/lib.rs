//! The rules every setting of adk's policies obeys, in one place: the attributes check them at compile time (an
//! error on the offending token) and the runtime's builders in `build()` (a typed error), with the same words, so a
//! value one rejects the other rejects too. Durations are nanoseconds, as the attributes parse them.
//!
//! ```
//! assert!(adk_settings::share("failure_rate", 0.5).is_ok());
//! let error = adk_settings::share("failure_rate", 1.5).unwrap_err();
//! assert_eq!(error.setting, "failure_rate");
//! assert!(error.reason.contains("in (0, 1]"));
//! ```

use std::fmt;

/// A setting's value that a policy cannot work with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The setting, as the attribute's parameter is named (`failure_rate`, `max_concurrent`, ...).
    pub setting: &'static str,
    /// What is wrong and how to fix it, in a sentence for the user.
    pub reason: String,
}

impl Invalid {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Invalid { setting, reason: reason.into() }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Invalid {}

/// A share of the calls in a breaker's window (`failure_rate`, `slow_rate`): in (0, 1].
pub fn share(setting: &'static str, value: f64) -> Result<f64, Invalid> {
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(Invalid::new(
            setting,
            format!(
                "`{setting}` is a share of the calls in the window, in (0, 1]: e.g. `{setting} = 0.5` for half of them"
            ),
        ))
    }
}

/// A count of at least 1 that fits a `u32`; `why_not_zero` says what 0 would do.
pub fn count(setting: &'static str, value: u64, why_not_zero: &str) -> Result<u32, Invalid> {
    match value {
        0 => Err(Invalid::new(setting, format!("`{setting} = 0` {why_not_zero}; give at least 1"))),
        n => u32::try_from(n).map_err(|_| Invalid::new(setting, format!("`{setting}` is too large"))),
    }
}

/// A breaker's `min_calls`.
pub fn min_calls(value: u64) -> Result<u32, Invalid> {
    count("min_calls", value, "would judge the dependency on no calls at all")
}

/// A breaker's `half_open_calls`.
pub fn half_open_calls(value: u64) -> Result<u32, Invalid> {
    count("half_open_calls", value, "would never let a trial call through, so the breaker could never close again")
}

/// The longest count window a breaker keeps.
pub const MAX_CALL_WINDOW: u32 = 1_000_000;
/// The shortest time window a breaker keeps, in nanoseconds.
pub const MIN_TIME_WINDOW: u64 = 1_000_000_000;

/// A breaker's count window: the last `value` calls, 1 to [`MAX_CALL_WINDOW`].
pub fn call_window(value: u64) -> Result<u32, Invalid> {
    let n = count("window", value, "would hold no calls")?;
    if n > MAX_CALL_WINDOW {
        return Err(Invalid::new("window", "a count window holds at most 1,000,000 calls"));
    }
    Ok(n)
}

/// A breaker's time window, at least [`MIN_TIME_WINDOW`].
pub fn time_window(nanos: u64) -> Result<u64, Invalid> {
    if nanos < MIN_TIME_WINDOW {
        return Err(Invalid::new("window", "a time window must be at least \"1s\""));
    }
    Ok(nanos)
}

/// A duration that must be above zero (`open_for`, `slow_call`, `max_open_for`, `max_delay`, `max_elapsed`).
pub fn above_zero(setting: &'static str, nanos: u64) -> Result<u64, Invalid> {
    if nanos == 0 {
        return Err(Invalid::new(setting, format!("`{setting}` must be above zero")));
    }
    Ok(nanos)
}

/// A breaker's `max_open_for`, which caps how far `open_for` grows: not below `open_for`.
pub fn max_open_for(open_for: u64, max_open_for: u64) -> Result<u64, Invalid> {
    if max_open_for < open_for {
        return Err(Invalid::new(
            "max_open_for",
            "`max_open_for` is shorter than `open_for`; it caps how far `open_for` grows on repeated opens",
        ));
    }
    Ok(max_open_for)
}

/// A breaker's `slow_rate`, which means nothing without `slow_call`.
pub fn slow_rate_needs_slow_call(slow_call: Option<u64>) -> Result<(), Invalid> {
    match slow_call {
        Some(_) => Ok(()),
        None => Err(Invalid::new(
            "slow_rate",
            "`slow_rate` needs `slow_call`, the duration above which a call counts as slow",
        )),
    }
}

/// The most attempts a retry makes.
pub const MAX_ATTEMPTS: u32 = 100;

/// A retry's `attempts`: every call, the first included, 1 to [`MAX_ATTEMPTS`].
pub fn attempts(value: u64) -> Result<u32, Invalid> {
    match u32::try_from(value) {
        Ok(n) if (1..=MAX_ATTEMPTS).contains(&n) => Ok(n),
        _ => Err(Invalid::new(
            "attempts",
            "`attempts` counts every call, the first included: use 1 to 100 (3 retries = `attempts = 4`)",
        )),
    }
}

/// A retry's exponential `multiplier`: at least 1.
pub fn multiplier(value: f64) -> Result<f64, Invalid> {
    if value.is_finite() && value >= 1.0 {
        Ok(value)
    } else {
        Err(Invalid::new("multiplier", "`multiplier` must be at least 1 (each wait grows by this factor)"))
    }
}

/// A retry budget's ratio: in (0, 10].
pub fn budget(value: f64) -> Result<f64, Invalid> {
    if value > 0.0 && value <= 10.0 {
        Ok(value)
    } else {
        Err(Invalid::new(
            "budget",
            "`budget` is the fraction of calls retries may add, in (0, 10]: e.g. `budget = 0.2` for at most 20% extra load",
        ))
    }
}

/// A retry's `max_delay`, which caps every wait: not below `base`.
pub fn max_delay(base: u64, max_delay: u64) -> Result<u64, Invalid> {
    if max_delay < base {
        return Err(Invalid::new(
            "max_delay",
            "`max_delay` is shorter than `base`: every wait would be cut to `max_delay`; raise it or lower `base`",
        ));
    }
    Ok(max_delay)
}

/// A timeout's bound: above zero.
pub fn timeout(nanos: u64) -> Result<u64, Invalid> {
    if nanos == 0 {
        return Err(Invalid::new("after", "a timeout of zero would fail every call"));
    }
    Ok(nanos)
}

/// A rate limit's count per period: at least 1.
pub fn rate(count: u64) -> Result<u64, Invalid> {
    if count == 0 {
        return Err(Invalid::new(
            "rate",
            "a rate of zero would refuse every call; give at least 1 (or remove the attribute)",
        ));
    }
    Ok(count)
}

/// A rate limit's `burst`: at least 1.
pub fn burst(value: u64) -> Result<u64, Invalid> {
    if value == 0 {
        return Err(Invalid::new("burst", "`burst` below 1 would refuse every call; give at least 1"));
    }
    Ok(value)
}

/// A bulkhead's `max_concurrent`: at least 1, within `u32`.
pub fn max_concurrent(value: u64) -> Result<u32, Invalid> {
    count("max_concurrent", value, "would refuse every call")
}

/// A cache's `ttl` or `tti`: above zero.
pub fn expiry(setting: &'static str, nanos: u64) -> Result<u64, Invalid> {
    if nanos == 0 {
        return Err(Invalid::new(setting, format!("`{setting}` of zero would never serve a hit")));
    }
    Ok(nanos)
}

/// A cache's `max_entries`: at least 1.
pub fn max_entries(value: u64) -> Result<u64, Invalid> {
    if value == 0 {
        return Err(Invalid::new("max_entries", "`max_entries = 0` would store nothing; give at least 1"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_rejects_its_edge_and_accepts_inside_it() {
        assert!(share("failure_rate", 0.0).is_err() && share("failure_rate", 1.0).is_ok());
        assert!(min_calls(0).is_err() && min_calls(1).is_ok());
        assert_eq!(count("x", u64::from(u32::MAX) + 1, "").unwrap_err().reason, "`x` is too large");
        assert!(call_window(1_000_001).is_err() && call_window(1_000_000).is_ok());
        assert!(time_window(999_999_999).is_err() && time_window(1_000_000_000).is_ok());
        assert!(max_open_for(10, 9).is_err() && max_open_for(10, 10).is_ok());
        assert!(slow_rate_needs_slow_call(None).is_err());
        assert!(attempts(0).is_err() && attempts(101).is_err() && attempts(100).is_ok());
        assert!(multiplier(0.5).is_err() && multiplier(f64::NAN).is_err() && multiplier(1.0).is_ok());
        assert!(budget(0.0).is_err() && budget(10.0).is_ok());
        assert!(max_delay(5, 4).is_err() && max_delay(5, 5).is_ok());
        assert!(timeout(0).is_err() && rate(0).is_err() && burst(0).is_err() && max_concurrent(0).is_err());
        assert!(expiry("ttl", 0).is_err() && max_entries(0).is_err() && max_entries(1).is_ok());
    }

    #[test]
    fn a_reason_names_its_setting_and_the_fix() {
        let error = max_concurrent(0).unwrap_err();
        assert_eq!(error.setting, "max_concurrent");
        assert_eq!(error.to_string(), "`max_concurrent = 0` would refuse every call; give at least 1");
    }
}
