//! What a limiter enforces: a [`Rate`], a burst and a [`Strategy`], together a [`Quota`].

use std::fmt;
use std::time::Duration;

/// `count` units per `period`, e.g. 3500 requests a minute or 90,000 tokens a minute.
///
/// Built at compile time; a zero count or a zero period does not compile in a `static`.
///
/// ```
/// use std::time::Duration;
/// use adk_runtime::rate_limit::Rate;
///
/// const PER_MINUTE: Rate = Rate::per_minute(3500);
/// assert_eq!(PER_MINUTE, Rate::new(3500, Duration::from_secs(60)));
/// assert_eq!(Rate::per_second(10).interval(), Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u64,
    period: Duration,
}

impl Rate {
    /// `count` units per `period`.
    ///
    /// # Panics
    /// When `count` is 0 or `period` is zero (at compile time when used in a `const` or `static`).
    pub const fn new(count: u64, period: Duration) -> Self {
        assert!(count > 0, "a rate needs a count of at least 1");
        assert!(!period.is_zero(), "a rate needs a non-zero period");
        Rate { count, period }
    }

    /// `count` per second (`rps`).
    pub const fn per_second(count: u64) -> Self {
        Rate::new(count, Duration::from_secs(1))
    }

    /// `count` per minute (`rpm`).
    pub const fn per_minute(count: u64) -> Self {
        Rate::new(count, Duration::from_secs(60))
    }

    /// `count` per hour (`rph`).
    pub const fn per_hour(count: u64) -> Self {
        Rate::new(count, Duration::from_secs(3600))
    }

    /// `count` per day (`rpd`).
    pub const fn per_day(count: u64) -> Self {
        Rate::new(count, Duration::from_secs(86_400))
    }

    /// Units per period.
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// The period.
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// Time between two units at this rate (`period / count`), to the nearest nanosecond and at least 1 ns.
    pub const fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_nanos())
    }

    pub(crate) const fn period_nanos(&self) -> u64 {
        let nanos = self.period.as_nanos();
        if nanos > u64::MAX as u128 { u64::MAX } else { nanos as u64 }
    }

    /// Rounded to the nearest nanosecond: the admitted rate is off by at most half a nanosecond per unit, under 1% for
    /// any rate below 50 million units a second.
    pub(crate) const fn interval_nanos(&self) -> u64 {
        let period = self.period.as_nanos();
        let count = self.count as u128;
        let rounded = (period + count / 2) / count;
        if rounded == 0 {
            1
        } else if rounded > u64::MAX as u128 {
            u64::MAX
        } else {
            rounded as u64
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:?}", self.count, self.period)
    }
}

/// How a limiter spends and refills its capacity. The default is [`Strategy::Gcra`].
///
/// Over any stretch of time `d`, every strategy admits at most about `burst + rate x d` units (the window strategies
/// `2 x count` across a window boundary); they differ in how a burst is shaped and how capacity comes back.
///
/// ```
/// use adk_runtime::rate_limit::Strategy;
/// assert_eq!(Strategy::default(), Strategy::Gcra);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// The generic cell rate algorithm: a bucket of `burst` cells refilling continuously, one cell every `period /
    /// count`, measured from the calls themselves. A refused call's `retry_after` is exact to the nanosecond.
    #[default]
    Gcra,
    /// A bucket of `burst` tokens that gains one whole token at each tick of a fixed grid (every `period / count`):
    /// capacity comes back at tick boundaries, not continuously, so a call may be admitted earlier than under
    /// [`Strategy::Gcra`] when the previous call fell between ticks.
    TokenBucket,
    /// Admitted calls leave the bucket one every `period / count`, evenly spaced: up to `burst` calls wait in the bucket
    /// for their turn (the call is delayed, even with `on_limit = "reject"`), and a call that finds the bucket full is
    /// refused (or, with `on_limit = "wait"`, waits for its turn up to `max_wait`). Like nginx's `limit_req` without
    /// `nodelay`. A non-waiting [`check`](super::RateLimiter::check) admits only when the call can go at once.
    LeakyBucket,
    /// At most `count` units in each window of one `period`, windows aligned to the limiter's creation. Simple and
    /// cheap, but allows up to `2 x count` around a window boundary. `burst` does not apply, and at most
    /// 4,294,967,295 units fit in one window.
    FixedWindow,
    /// As [`Strategy::FixedWindow`], but a call also counts the previous window's units, weighted by how much of the
    /// previous window still overlaps the last `period` (rounded down); this smooths the boundary burst. `burst` does
    /// not apply, and at most 4,294,967,295 units fit in one window.
    SlidingWindow,
}

impl Strategy {
    /// The name used in attributes and settings: `gcra`, `token_bucket`, `leaky_bucket`, `fixed_window`,
    /// `sliding_window`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Strategy::Gcra => "gcra",
            Strategy::TokenBucket => "token_bucket",
            Strategy::LeakyBucket => "leaky_bucket",
            Strategy::FixedWindow => "fixed_window",
            Strategy::SlidingWindow => "sliding_window",
        }
    }

    pub(crate) const fn uses_windows(&self) -> bool {
        matches!(self, Strategy::FixedWindow | Strategy::SlidingWindow)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a limiter enforces: a [`Rate`], a burst capacity and a [`Strategy`].
///
/// The burst defaults to one period's worth (`count`), as governor's `Quota::per_minute(n)` does: `rpm = 60` admits
/// 60 calls at once after a quiet minute, then one a second. Window strategies ignore the burst: they admit `count`
/// units per window.
///
/// ```
/// use adk_runtime::rate_limit::{Quota, Rate, Strategy};
///
/// const PER_USER: Quota = Quota::new(Rate::per_minute(60)).with_burst(10);
/// assert_eq!(PER_USER.limit(), 10);
/// const TOKENS: Quota = Quota::new(Rate::per_minute(90_000)).with_strategy(Strategy::SlidingWindow);
/// assert_eq!(TOKENS.limit(), 90_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    rate: Rate,
    burst: Option<u64>,
    strategy: Strategy,
}

impl Quota {
    /// `rate`, with a burst of one period's worth and the [`Strategy::Gcra`] strategy.
    pub const fn new(rate: Rate) -> Self {
        Quota { rate, burst: None, strategy: Strategy::Gcra }
    }

    /// `count` per second, default burst and strategy.
    pub const fn per_second(count: u64) -> Self {
        Quota::new(Rate::per_second(count))
    }

    /// `count` per minute, default burst and strategy.
    pub const fn per_minute(count: u64) -> Self {
        Quota::new(Rate::per_minute(count))
    }

    /// The burst capacity: how many units can be spent at once after a quiet spell.
    ///
    /// # Panics
    /// When `burst` is 0 (at compile time in a `const` or `static`).
    pub const fn with_burst(mut self, burst: u64) -> Self {
        assert!(burst > 0, "a burst must be at least 1");
        self.burst = Some(burst);
        self
    }

    /// The strategy.
    pub const fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The rate.
    pub const fn rate(&self) -> Rate {
        self.rate
    }

    /// The strategy.
    pub const fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The burst: as set, else one period's worth.
    pub const fn burst(&self) -> u64 {
        match self.burst {
            Some(burst) => burst,
            None => self.rate.count,
        }
    }

    /// The most units one key can hold at once: the burst, or `count` for the window strategies. A call costing more
    /// can never be admitted.
    pub const fn limit(&self) -> u64 {
        if self.strategy.uses_windows() { self.rate.count } else { self.burst() }
    }
}

/// The settings as declared, e.g. `60/60s burst 10 gcra`: compared when two functions share a limiter's name.
impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} burst {} {}", self.rate, self.burst(), self.strategy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_rounded_to_the_nearest_nanosecond() {
        assert_eq!(Rate::per_minute(3500).interval_nanos(), 17_142_857);
        assert_eq!(Rate::new(2, Duration::from_nanos(3)).interval_nanos(), 2);
        assert_eq!(Rate::per_second(u64::MAX).interval_nanos(), 1, "never zero");
    }

    #[test]
    fn the_burst_defaults_to_one_period_and_windows_ignore_it() {
        assert_eq!(Quota::per_minute(60).limit(), 60);
        assert_eq!(Quota::per_minute(60).with_burst(5).limit(), 5);
        let windowed = Quota::per_minute(60).with_burst(5).with_strategy(Strategy::FixedWindow);
        assert_eq!(windowed.limit(), 60);
        assert_eq!(Quota::per_second(10).with_burst(3).to_string(), "10/1s burst 3 gcra");
    }
}
