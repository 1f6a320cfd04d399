//! [`CircuitBreaker::builder`]: a breaker as a value, outside the registry, with its settings checked.

use std::sync::Arc;
use std::time::Duration;

use super::{CircuitBreaker, CircuitBreakerConfig, Window};
use crate::settings::{SettingsError, nanos};

/// Settings of a [`CircuitBreaker`] built by hand (per tenant, per test, behind a tower layer); the same parameters
/// and defaults as `#[adk::circuit_breaker]`, checked by the same rules in [`build`](Self::build).
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::CircuitState;
/// use adk_runtime::circuit_breaker::{CircuitBreaker, Window};
///
/// let breaker = CircuitBreaker::builder("tenant-42:search")
///     .failure_rate(0.5)
///     .min_calls(2)
///     .window(Window::Calls(4))
///     .open_for(Duration::from_secs(30))
///     .build()
///     .unwrap();
/// for _ in 0..2 {
///     breaker.acquire().unwrap().failure();
/// }
/// assert_eq!(breaker.state(), CircuitState::Open);
/// assert!(adk_runtime::registry().circuit_breaker("tenant-42:search").is_none(), "not in the registry");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct CircuitBreakerBuilder {
    name: String,
    failure_rate: Option<f64>,
    min_calls: Option<u32>,
    window: Option<Window>,
    slow_call: Option<(Duration, f64)>,
    open_for: Option<Duration>,
    max_open_for: Option<Duration>,
    half_open_calls: Option<u32>,
}

impl CircuitBreaker {
    /// Starts a breaker called `name` (its metric label) with the defaults of [`CircuitBreakerConfig::new`].
    pub fn builder(name: impl Into<String>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder {
            name: name.into(),
            failure_rate: None,
            min_calls: None,
            window: None,
            slow_call: None,
            open_for: None,
            max_open_for: None,
            half_open_calls: None,
        }
    }
}

impl CircuitBreakerBuilder {
    /// Opens when this share of the window failed, in (0, 1].
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// No verdict before the window holds this many calls (at least 1).
    pub fn min_calls(mut self, calls: u32) -> Self {
        self.min_calls = Some(calls);
        self
    }

    /// The last `n` calls, or the calls of the last duration (at least 1 s).
    pub fn window(mut self, window: Window) -> Self {
        self.window = Some(window);
        self
    }

    /// A call longer than `slow_call` is slow; the breaker also opens when `slow_rate` of the window was slow.
    pub fn slow_call(mut self, slow_call: Duration, slow_rate: f64) -> Self {
        self.slow_call = Some((slow_call, slow_rate));
        self
    }

    /// How long it stays open before letting trial calls through.
    pub fn open_for(mut self, open_for: Duration) -> Self {
        self.open_for = Some(open_for);
        self
    }

    /// The longest `open_for` grows to on repeated failed trials.
    pub fn max_open_for(mut self, max_open_for: Duration) -> Self {
        self.max_open_for = Some(max_open_for);
        self
    }

    /// Trial calls admitted while half-open (at least 1).
    pub fn half_open_calls(mut self, calls: u32) -> Self {
        self.half_open_calls = Some(calls);
        self
    }

    /// The settings, checked as `#[adk::circuit_breaker]` checks them at compile time.
    pub fn config(&self) -> Result<CircuitBreakerConfig, SettingsError> {
        let invalid = |invalid| SettingsError::new("circuit_breaker", invalid);
        let mut config = CircuitBreakerConfig::new();
        if let Some(rate) = self.failure_rate {
            config = config.with_failure_rate(adk_settings::share("failure_rate", rate).map_err(invalid)?);
        }
        if let Some(calls) = self.min_calls {
            config = config.with_min_calls(adk_settings::min_calls(calls.into()).map_err(invalid)?);
        }
        if let Some(window) = self.window {
            config = config.with_window(match window {
                Window::Calls(n) => Window::Calls(adk_settings::call_window(n.into()).map_err(invalid)?),
                Window::Time(d) => {
                    adk_settings::time_window(nanos(d)).map_err(invalid)?;
                    Window::Time(d)
                }
            });
        }
        if let Some((slow_call, slow_rate)) = self.slow_call {
            adk_settings::above_zero("slow_call", nanos(slow_call)).map_err(invalid)?;
            config = config.with_slow_call(slow_call, adk_settings::share("slow_rate", slow_rate).map_err(invalid)?);
        }
        if let Some(open_for) = self.open_for {
            adk_settings::above_zero("open_for", nanos(open_for)).map_err(invalid)?;
            config = config.with_open_for(open_for);
        }
        if let Some(max_open_for) = self.max_open_for {
            adk_settings::above_zero("max_open_for", nanos(max_open_for)).map_err(invalid)?;
            adk_settings::max_open_for(nanos(config.open_for()), nanos(max_open_for)).map_err(invalid)?;
            config = config.with_max_open_for(max_open_for);
        }
        if let Some(calls) = self.half_open_calls {
            config = config.with_half_open_calls(adk_settings::half_open_calls(calls.into()).map_err(invalid)?);
        }
        Ok(config)
    }

    /// A new breaker of its own (not the registry's instance of that name), or the first setting it cannot work with.
    pub fn build(self) -> Result<Arc<CircuitBreaker>, SettingsError> {
        let config = self.config()?;
        Ok(CircuitBreaker::new(&self.name, config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_the_attribute_checks_is_checked_by_build() {
        let refused = |builder: CircuitBreakerBuilder| builder.build().unwrap_err().setting;
        let b = || CircuitBreaker::builder("builder-tests");
        assert_eq!(refused(b().failure_rate(0.0)), "failure_rate");
        assert_eq!(refused(b().min_calls(0)), "min_calls");
        assert_eq!(refused(b().window(Window::Calls(0))), "window");
        assert_eq!(refused(b().window(Window::Calls(1_000_001))), "window");
        assert_eq!(refused(b().window(Window::Time(Duration::from_millis(500)))), "window");
        assert_eq!(refused(b().slow_call(Duration::from_secs(1), 1.5)), "slow_rate");
        assert_eq!(refused(b().slow_call(Duration::ZERO, 0.5)), "slow_call");
        assert_eq!(refused(b().open_for(Duration::ZERO)), "open_for");
        assert_eq!(
            refused(b().open_for(Duration::from_secs(60)).max_open_for(Duration::from_secs(30))),
            "max_open_for"
        );
        assert_eq!(refused(b().half_open_calls(0)), "half_open_calls");
    }

    #[test]
    fn a_valid_builder_gives_the_settings_asked_for() {
        let config = CircuitBreaker::builder("builder-tests-ok")
            .failure_rate(0.3)
            .min_calls(5)
            .window(Window::Time(Duration::from_secs(60)))
            .slow_call(Duration::from_secs(2), 0.8)
            .open_for(Duration::from_secs(20))
            .max_open_for(Duration::from_secs(300))
            .half_open_calls(3)
            .config()
            .unwrap();
        assert_eq!(config.failure_rate(), 0.3);
        assert_eq!(config.min_calls(), 5);
        assert_eq!(config.window(), Window::Time(Duration::from_secs(60)));
        assert_eq!((config.slow_call(), config.slow_rate()), (Some(Duration::from_secs(2)), 0.8));
        assert_eq!(
            (config.open_for(), config.max_open_for()),
            (Duration::from_secs(20), Some(Duration::from_secs(300)))
        );
        assert_eq!(config.half_open_calls(), 3);
    }
}
