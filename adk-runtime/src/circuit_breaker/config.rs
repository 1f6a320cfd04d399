//! The settings of one breaker, built at compile time.

use std::time::Duration;

/// Which calls a closed breaker judges.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::circuit_breaker::{CircuitBreakerConfig, Window};
///
/// static LAST_20_CALLS: CircuitBreakerConfig = CircuitBreakerConfig::new().with_window(Window::Calls(20));
/// static LAST_MINUTE: CircuitBreakerConfig =
///     CircuitBreakerConfig::new().with_window(Window::Time(Duration::from_secs(60)));
/// # let _ = (&LAST_20_CALLS, &LAST_MINUTE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last `n` recorded calls, exactly (at most [`Window::MAX_CALLS`]).
    Calls(u32),
    /// The calls recorded during the last duration. The window slides in steps of 1/60 of its length (one second for
    /// a 60 s window): it holds the calls of the current step and of the 59 before it.
    Time(Duration),
}

impl Window {
    /// The largest count window.
    pub const MAX_CALLS: u32 = 1_000_000;
    /// How many steps a time window slides in.
    pub const TIME_STEPS: u32 = 60;
}

/// The settings of a circuit breaker. Construct it in a `static` with [`CircuitBreakerConfig::new`] and the `with_*`
/// builders (all `const`); the defaults are what a resilience4j user expects, adjusted for slow, low-volume
/// dependencies such as LLM APIs:
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `failure_rate` | 0.5 | opens when this share of the window failed (`>=`) |
/// | `min_calls` | 10 | no verdict before the window holds this many calls (resilience4j: 100) |
/// | `window` | last 100 calls | see [`Window`] |
/// | `slow_call` | off | a call lasting longer than this is slow (resilience4j: 60 s) |
/// | `slow_rate` | 1.0 | opens when this share of the window was slow (`>=`) |
/// | `open_for` | 60 s | how long it stays open before letting trial calls through |
/// | `max_open_for` | none | if set, `open_for` doubles each time a trial fails, up to this |
/// | `half_open_calls` | 10 | trial calls in the half-open state, admitted at most this many at once |
///
/// `min_calls` above the size of a count window is lowered to it, as resilience4j does.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::circuit_breaker::{CircuitBreakerConfig, Window};
///
/// static OPENAI: CircuitBreakerConfig = CircuitBreakerConfig::new()
///     .with_failure_rate(0.25)
///     .with_window(Window::Time(Duration::from_secs(30)))
///     .with_slow_call(Duration::from_secs(20), 0.5)
///     .with_open_for(Duration::from_secs(10))
///     .with_max_open_for(Duration::from_secs(300));
/// assert_eq!(OPENAI.failure_rate(), 0.25);
/// assert_eq!(OPENAI.min_calls(), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitBreakerConfig {
    failure_rate: f64,
    min_calls: u32,
    window: Window,
    slow_call: Option<Duration>,
    slow_rate: f64,
    open_for: Duration,
    max_open_for: Option<Duration>,
    half_open_calls: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Defaults, documented on [`CircuitBreakerConfig`].
impl CircuitBreakerConfig {
    /// Opens at this failure rate.
    pub const DEFAULT_FAILURE_RATE: f64 = 0.5;
    /// No verdict with fewer calls in the window.
    pub const DEFAULT_MIN_CALLS: u32 = 10;
    /// The last 100 calls.
    pub const DEFAULT_WINDOW: Window = Window::Calls(100);
    /// Opens when every call in the window was slow (once `slow_call` is set).
    pub const DEFAULT_SLOW_RATE: f64 = 1.0;
    /// Time spent open before the first trial call.
    pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(60);
    /// Trial calls in the half-open state.
    pub const DEFAULT_HALF_OPEN_CALLS: u32 = 10;

    /// The default settings.
    pub const fn new() -> Self {
        CircuitBreakerConfig {
            failure_rate: Self::DEFAULT_FAILURE_RATE,
            min_calls: Self::DEFAULT_MIN_CALLS,
            window: Self::DEFAULT_WINDOW,
            slow_call: None,
            slow_rate: Self::DEFAULT_SLOW_RATE,
            open_for: Self::DEFAULT_OPEN_FOR,
            max_open_for: None,
            half_open_calls: Self::DEFAULT_HALF_OPEN_CALLS,
        }
    }

    /// Opens when at least this share of the window failed.
    ///
    /// # Panics
    /// If `rate` is not in (0, 1] (at compile time when built in a `static`).
    pub const fn with_failure_rate(mut self, rate: f64) -> Self {
        assert!(rate > 0.0 && rate <= 1.0, "failure_rate must be in (0, 1]");
        self.failure_rate = rate;
        self
    }

    /// No verdict until the window holds this many calls.
    ///
    /// # Panics
    /// If `min_calls` is 0.
    pub const fn with_min_calls(mut self, min_calls: u32) -> Self {
        assert!(min_calls > 0, "min_calls must be at least 1");
        self.min_calls = min_calls;
        self
    }

    /// The calls judged while closed.
    ///
    /// # Panics
    /// If the window is empty (0 calls or a zero duration) or longer than [`Window::MAX_CALLS`].
    pub const fn with_window(mut self, window: Window) -> Self {
        match window {
            Window::Calls(n) => assert!(n > 0 && n <= Window::MAX_CALLS, "a count window holds 1 to 1,000,000 calls"),
            Window::Time(d) => assert!(!d.is_zero(), "a time window must be longer than zero"),
        }
        self.window = window;
        self
    }

    /// A call lasting longer than `slow_call` is slow, and the breaker opens when at least `slow_rate` of the window
    /// was slow. Slow calls are counted whether they succeed or fail.
    ///
    /// # Panics
    /// If `slow_rate` is not in (0, 1].
    pub const fn with_slow_call(mut self, slow_call: Duration, slow_rate: f64) -> Self {
        assert!(slow_rate > 0.0 && slow_rate <= 1.0, "slow_rate must be in (0, 1]");
        self.slow_call = Some(slow_call);
        self.slow_rate = slow_rate;
        self
    }

    /// How long the breaker stays open before it lets trial calls through.
    pub const fn with_open_for(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// Each time the trial calls fail and the breaker opens again, it stays open twice as long as the time before, up
    /// to `max_open_for`; it is back to `open_for` once the breaker closes.
    pub const fn with_max_open_for(mut self, max_open_for: Duration) -> Self {
        self.max_open_for = Some(max_open_for);
        self
    }

    /// How many trial calls the half-open state admits (never more at once) and judges before deciding.
    ///
    /// # Panics
    /// If `calls` is 0.
    pub const fn with_half_open_calls(mut self, calls: u32) -> Self {
        assert!(calls > 0, "half_open_calls must be at least 1");
        self.half_open_calls = calls;
        self
    }

    /// Opens at this failure rate.
    pub const fn failure_rate(&self) -> f64 {
        self.failure_rate
    }

    /// No verdict below this many calls in the window (lowered to the size of a smaller count window).
    pub const fn min_calls(&self) -> u32 {
        match self.window {
            Window::Calls(n) if n < self.min_calls => n,
            _ => self.min_calls,
        }
    }

    /// The calls judged while closed.
    pub const fn window(&self) -> Window {
        self.window
    }

    /// The duration beyond which a call is slow, if slow calls are judged.
    pub const fn slow_call(&self) -> Option<Duration> {
        self.slow_call
    }

    /// Opens at this slow-call rate (when `slow_call` is set).
    pub const fn slow_rate(&self) -> f64 {
        self.slow_rate
    }

    /// Time spent open before the first trial call.
    pub const fn open_for(&self) -> Duration {
        self.open_for
    }

    /// The cap of a growing open period, if it grows.
    pub const fn max_open_for(&self) -> Option<Duration> {
        self.max_open_for
    }

    /// Trial calls in the half-open state.
    pub const fn half_open_calls(&self) -> u32 {
        self.half_open_calls
    }
}
