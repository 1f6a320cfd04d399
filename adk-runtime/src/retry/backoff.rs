//! Delay schedules: the n-th retry's wait, before and after jitter.

use std::time::Duration;

/// How the wait grows from one retry to the next (before jitter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// Every retry waits `base`.
    Constant,
    /// The n-th retry waits `base x n`.
    Linear,
    /// The n-th retry waits `base x multiplier^(n-1)`.
    Exponential {
        /// Growth factor per retry (2 by default).
        multiplier: f64,
    },
}

/// How the computed wait is randomised, so that many clients failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Wait exactly the computed delay.
    None,
    /// Wait a uniformly random time in `0..=delay`.
    Full,
    /// Wait a uniformly random time in `delay/2..=delay`.
    Equal,
    /// AWS's "decorrelated jitter": `min(max_delay, random(base..=previous x 3))`, independent of the backoff kind.
    Decorrelated,
}

impl Backoff {
    /// The delay before the `retry`-th retry (1-based), capped at `max_delay`, saturating instead of overflowing.
    pub fn delay(&self, base: Duration, retry: u32, max_delay: Duration) -> Duration {
        let retry = retry.max(1);
        let raw = match *self {
            Backoff::Constant => Some(base),
            Backoff::Linear => base.checked_mul(retry),
            Backoff::Exponential { multiplier } => {
                let factor = multiplier.powi(i32::try_from(retry - 1).unwrap_or(i32::MAX));
                Duration::try_from_secs_f64(base.as_secs_f64() * factor).ok()
            }
        };
        raw.map_or(max_delay, |d| d.min(max_delay))
    }
}

impl Jitter {
    /// Applies the jitter to `delay`; `previous` is the last wait (for decorrelated jitter), `base` and `max_delay` the
    /// policy's bounds.
    pub fn apply(&self, delay: Duration, previous: Duration, base: Duration, max_delay: Duration) -> Duration {
        match *self {
            Jitter::None => delay,
            Jitter::Full => random_between(Duration::ZERO, delay),
            Jitter::Equal => random_between(delay / 2, delay),
            Jitter::Decorrelated => {
                let upper = previous.max(base).saturating_mul(3).min(max_delay);
                random_between(base.min(upper), upper)
            }
        }
    }
}

fn random_between(low: Duration, high: Duration) -> Duration {
    let (low, high) = (low.as_nanos() as u64, high.as_nanos().min(u64::MAX as u128) as u64);
    if high <= low { Duration::from_nanos(low) } else { Duration::from_nanos(fastrand::u64(low..=high)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn schedules_follow_the_documented_formulas() {
        let cap = Duration::from_secs(60);
        let exp = Backoff::Exponential { multiplier: 2.0 };
        assert_eq!([1, 2, 3, 4].map(|n| exp.delay(100 * MS, n, cap)), [100 * MS, 200 * MS, 400 * MS, 800 * MS]);
        assert_eq!([1, 2, 3].map(|n| Backoff::Linear.delay(100 * MS, n, cap)), [100 * MS, 200 * MS, 300 * MS]);
        assert_eq!([1, 5].map(|n| Backoff::Constant.delay(100 * MS, n, cap)), [100 * MS, 100 * MS]);
        let triple = Backoff::Exponential { multiplier: 3.0 };
        assert_eq!(triple.delay(10 * MS, 3, cap), 90 * MS);
    }

    #[test]
    fn delays_saturate_at_max_delay_instead_of_overflowing() {
        let exp = Backoff::Exponential { multiplier: 2.0 };
        assert_eq!(exp.delay(Duration::from_secs(1), 10_000, Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(Backoff::Linear.delay(Duration::MAX, u32::MAX, Duration::from_secs(5)), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_its_range() {
        let d = Duration::from_millis(400);
        for _ in 0..1000 {
            assert!(Jitter::Full.apply(d, d, d, d) <= d);
            let equal = Jitter::Equal.apply(d, d, d, d);
            assert!(equal >= d / 2 && equal <= d);
            let dec = Jitter::Decorrelated.apply(d, 100 * MS, 100 * MS, Duration::from_secs(1));
            assert!(dec >= 100 * MS && dec <= 300 * MS, "{dec:?}");
        }
        assert_eq!(Jitter::None.apply(d, d, d, d), d);
    }
}
