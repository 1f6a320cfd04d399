//! The strategies as pure functions over a key's cells: no clock, no atomics, no storage. A backend applies them
//! atomically (a compare-and-swap loop in memory; a server-side script or statement for a shared backend, mirroring
//! these functions), the caller supplies the time in nanoseconds since the backend's epoch. Everything here is integer
//! arithmetic, so another implementation can reproduce it exactly, and the conformance suite (`conformance.rs`) holds
//! every backend to the answers these functions give.
//!
//! Every strategy keeps one `u64` cell per key, except the sliding window, which keeps one per window parity (the
//! current window's and the previous one's). A cell of 0 is a key never seen, and a cell that
//! [`Algorithm::is_fresh`] is indistinguishable from 0, so it can be dropped at any time without changing a decision.

use super::rate::{Quota, Strategy};

/// How long a call may wait before it starts: [`Start`](super::Start) in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patience {
    /// Now or never (a non-waiting check).
    Immediately,
    /// Within this many nanoseconds (0 with `on_limit = "reject"`, `max_wait` with `"wait"`). A leaky bucket also
    /// queues the call when its bucket has room, however long its turn takes.
    Within(u64),
}

/// The answer for one call: [`Verdict`](super::Verdict) in nanoseconds, before the limit is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Admitted: the call starts after `wait` nanoseconds (0: at once). A positive wait has been charged ahead and must
    /// be refunded if the call never starts.
    Admit { wait: u64 },
    /// Refused for now.
    Limited {
        /// Nanoseconds until the same call would be accepted.
        retry_after: u64,
        /// Units that could be spent now.
        remaining: u64,
        /// Nanoseconds until the key is back to full capacity.
        reset: u64,
    },
    /// The cost is above the limit: never admitted.
    TooCostly,
}

/// Units left and time to full capacity, for snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level {
    pub(crate) remaining: u64,
    pub(crate) reset: u64,
}

/// Which cells a decision at some instant reads and writes, as offsets added to the key's base (whose low bit is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cells {
    pub(crate) write: u64,
    pub(crate) read: Option<u64>,
}

/// A [`Quota`] compiled to integer nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Algorithm {
    strategy: Strategy,
    /// Nanoseconds per unit.
    interval: u64,
    /// Capacity in units: the burst, or the units per window.
    limit: u64,
    /// `limit x interval`: how far ahead of now a bucket's theoretical arrival time may run.
    tolerance: u64,
    /// Window length in nanoseconds.
    window: u64,
}

const LOW: u64 = u32::MAX as u64;

fn pack(window_id: u32, used: u64) -> u64 {
    (u64::from(window_id) << 32) | used
}

fn window_id(cell: u64) -> u32 {
    (cell >> 32) as u32
}

fn used(cell: u64) -> u64 {
    cell & LOW
}

impl Algorithm {
    pub(crate) const fn new(quota: Quota) -> Self {
        let rate = quota.rate();
        let strategy = quota.strategy();
        let interval = rate.interval_nanos();
        let mut limit = quota.limit();
        if strategy.uses_windows() && limit > LOW {
            limit = LOW;
        }
        Algorithm { strategy, interval, limit, tolerance: limit.saturating_mul(interval), window: rate.period_nanos() }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// What a backend mirroring these transitions elsewhere needs: the strategy, the interval and window in
    /// nanoseconds, and the limit.
    #[cfg(feature = "redis")]
    pub(crate) fn parameters(&self) -> (Strategy, u64, u64, u64) {
        (self.strategy, self.interval, self.limit, self.window)
    }

    /// The longest a key's state lasts after its last call (without calls charged ahead): the time until its cell is
    /// fresh.
    pub(crate) fn memory(&self) -> u64 {
        match self.strategy {
            Strategy::Gcra | Strategy::LeakyBucket => self.tolerance,
            Strategy::TokenBucket => self.tolerance.saturating_add(self.interval),
            Strategy::FixedWindow => self.window,
            Strategy::SlidingWindow => self.window.saturating_mul(2),
        }
    }

    pub(crate) fn cells(&self, now: u64) -> Cells {
        match self.strategy {
            Strategy::SlidingWindow => {
                let parity = (now / self.window) & 1;
                Cells { write: parity, read: Some(parity ^ 1) }
            }
            _ => Cells { write: 0, read: None },
        }
    }

    /// Decides a call costing `cost` at `now` against `cell` (and `other`, the previous window's cell, for the sliding
    /// window); returns the verdict and the cell's new value when it changes.
    #[inline]
    pub(crate) fn decide(&self, cell: u64, other: u64, now: u64, cost: u64, start: Patience) -> (Outcome, Option<u64>) {
        if cost > self.limit {
            return (Outcome::TooCostly, None);
        }
        if cost == 0 {
            return (Outcome::Admit { wait: 0 }, None);
        }
        match self.strategy {
            Strategy::Gcra | Strategy::LeakyBucket => self.gcra(cell, now, cost, start),
            Strategy::TokenBucket => self.token_bucket(cell, now, cost, start),
            Strategy::FixedWindow => self.fixed_window(cell, now, cost),
            Strategy::SlidingWindow => self.sliding_window(cell, other, now, cost),
        }
    }

    /// The cell after giving back a charge-ahead of `cost` that was never used.
    pub(crate) fn refund(&self, cell: u64, cost: u64) -> u64 {
        match self.strategy {
            Strategy::Gcra | Strategy::LeakyBucket => cell.saturating_sub(cost.saturating_mul(self.interval)),
            Strategy::TokenBucket => cell.saturating_sub(cost),
            Strategy::FixedWindow | Strategy::SlidingWindow => cell,
        }
    }

    /// Whether `cell` holds nothing a decision at `now` or later would read.
    pub(crate) fn is_fresh(&self, cell: u64, now: u64) -> bool {
        match self.strategy {
            Strategy::Gcra | Strategy::LeakyBucket => cell <= now,
            Strategy::TokenBucket => cell <= now / self.interval,
            Strategy::FixedWindow => window_id(cell) != (now / self.window + 1) as u32,
            Strategy::SlidingWindow => {
                let window = now / self.window;
                let id = window_id(cell);
                id != (window + 1) as u32 && id != window as u32
            }
        }
    }

    pub(crate) fn level(&self, cell: u64, other: u64, now: u64) -> Level {
        match self.strategy {
            Strategy::Gcra | Strategy::LeakyBucket => {
                let ahead = cell.max(now) - now;
                Level { remaining: self.tolerance.saturating_sub(ahead) / self.interval, reset: ahead }
            }
            Strategy::TokenBucket => {
                let tick = now / self.interval;
                let base = cell.max(tick);
                Level {
                    remaining: self.limit.saturating_sub(base - tick),
                    reset: base.saturating_mul(self.interval).saturating_sub(now),
                }
            }
            Strategy::FixedWindow => {
                let window = now / self.window;
                let current = if window_id(cell) == (window + 1) as u32 { used(cell) } else { 0 };
                let reset = if current > 0 { (window + 1).saturating_mul(self.window) - now } else { 0 };
                Level { remaining: self.limit.saturating_sub(current), reset }
            }
            Strategy::SlidingWindow => {
                let (window, previous, current) = self.windows(cell, other, now);
                let spent = self.weighted(previous, now - window * self.window) + current;
                let reset = if current > 0 {
                    (window + 2).saturating_mul(self.window) - now
                } else if previous > 0 {
                    (window + 1).saturating_mul(self.window) - now
                } else {
                    0
                };
                Level { remaining: self.limit.saturating_sub(spent), reset }
            }
        }
    }

    /// GCRA and the leaky bucket share the conformance test on the theoretical arrival time `tat`: a call is accepted
    /// when the bucket, refilled up to now, has room for it. GCRA lets it go at once; the leaky bucket lets it go at
    /// `max(tat, now)`, so admitted calls leave evenly spaced.
    fn gcra(&self, tat: u64, now: u64, cost: u64, start: Patience) -> (Outcome, Option<u64>) {
        let base = tat.max(now);
        let new_tat = base.saturating_add(cost.saturating_mul(self.interval));
        let conforms_in = new_tat.saturating_sub(self.tolerance).saturating_sub(now);
        let turn_in = base - now;
        let (admitted, retry_after) = if self.strategy == Strategy::LeakyBucket {
            match start {
                Patience::Immediately => ((turn_in == 0).then_some(0), turn_in),
                Patience::Within(patience) => {
                    ((conforms_in == 0 || turn_in <= patience).then_some(turn_in), conforms_in)
                }
            }
        } else {
            let patience = match start {
                Patience::Immediately => 0,
                Patience::Within(patience) => patience,
            };
            ((conforms_in <= patience).then_some(conforms_in), conforms_in)
        };
        match admitted {
            Some(wait) => (Outcome::Admit { wait }, Some(new_tat)),
            None => {
                let remaining = self.tolerance.saturating_sub(turn_in) / self.interval;
                (Outcome::Limited { retry_after, remaining, reset: turn_in }, None)
            }
        }
    }

    /// The same bucket on a discrete clock: `tat` counts ticks of `interval` since the epoch, and a token only exists
    /// once its tick has struck.
    fn token_bucket(&self, tat: u64, now: u64, cost: u64, start: Patience) -> (Outcome, Option<u64>) {
        let tick = now / self.interval;
        let base = tat.max(tick);
        let new_tat = base.saturating_add(cost);
        let conforming_tick = new_tat.saturating_sub(self.limit);
        let conforms_in =
            if conforming_tick <= tick { 0 } else { conforming_tick.saturating_mul(self.interval).saturating_sub(now) };
        let patience = match start {
            Patience::Immediately => 0,
            Patience::Within(patience) => patience,
        };
        if conforms_in <= patience {
            (Outcome::Admit { wait: conforms_in }, Some(new_tat))
        } else {
            let remaining = self.limit.saturating_sub(base - tick);
            let reset = base.saturating_mul(self.interval).saturating_sub(now);
            (Outcome::Limited { retry_after: conforms_in, remaining, reset }, None)
        }
    }

    fn fixed_window(&self, cell: u64, now: u64, cost: u64) -> (Outcome, Option<u64>) {
        let window = now / self.window;
        let id = (window + 1) as u32;
        let current = if window_id(cell) == id { used(cell) } else { 0 };
        if current + cost <= self.limit {
            return (Outcome::Admit { wait: 0 }, Some(pack(id, current + cost)));
        }
        let next = (window + 1).saturating_mul(self.window) - now;
        (Outcome::Limited { retry_after: next, remaining: self.limit - current, reset: next }, None)
    }

    fn sliding_window(&self, cell: u64, other: u64, now: u64, cost: u64) -> (Outcome, Option<u64>) {
        let (window, previous, current) = self.windows(cell, other, now);
        let start = window * self.window;
        let spent = self.weighted(previous, now - start) + current;
        if spent + cost <= self.limit {
            return (Outcome::Admit { wait: 0 }, Some(pack((window + 1) as u32, current + cost)));
        }
        // The earliest instant at which the weighted count leaves room for `cost`, assuming no other call: later in
        // this window if this window's own units leave room, else in the next one, where they become the previous
        // window's.
        let admitted_at = if current + cost <= self.limit {
            start + self.elapsed_until_room(previous, self.limit - cost - current)
        } else {
            (start + self.window).saturating_add(self.elapsed_until_room(current, self.limit - cost))
        };
        let reset = if current > 0 { start.saturating_add(2 * self.window) - now } else { start + self.window - now };
        (
            Outcome::Limited {
                retry_after: admitted_at.saturating_sub(now),
                remaining: self.limit.saturating_sub(spent),
                reset,
            },
            None,
        )
    }

    /// `(window index, previous window's units, this window's units)` at `now`.
    fn windows(&self, cell: u64, other: u64, now: u64) -> (u64, u64, u64) {
        let window = now / self.window;
        let current = if window_id(cell) == (window + 1) as u32 { used(cell) } else { 0 };
        let previous = if window > 0 && window_id(other) == window as u32 { used(other) } else { 0 };
        (window, previous, current)
    }

    /// The previous window's units still counted `elapsed` nanoseconds into this window, rounded down: rounding up
    /// would keep the last unit of every window out of reach, and a saturated limiter would admit one unit per window
    /// less than its rate.
    fn weighted(&self, previous: u64, elapsed: u64) -> u64 {
        let window = u128::from(self.window);
        (u128::from(previous) * (window - u128::from(elapsed)) / window) as u64
    }

    /// The first `elapsed` at which `weighted(previous, elapsed) <= room`, i.e. `previous x (window - elapsed) <
    /// (room + 1) x window`.
    fn elapsed_until_room(&self, previous: u64, room: u64) -> u64 {
        if previous <= room {
            return 0;
        }
        let window = u128::from(self.window);
        (window - ((u128::from(room) + 1) * window - 1) / u128::from(previous)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::Rate;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;

    fn algorithm(quota: Quota) -> Algorithm {
        Algorithm::new(quota)
    }

    /// One key's cells driven by hand, as a store would.
    struct Key {
        algorithm: Algorithm,
        cells: [u64; 2],
    }

    impl Key {
        fn new(quota: Quota) -> Self {
            Key { algorithm: algorithm(quota), cells: [0; 2] }
        }

        fn call(&mut self, now: u64, cost: u64, start: Patience) -> Outcome {
            let cells = self.algorithm.cells(now);
            let other = cells.read.map_or(0, |read| self.cells[read as usize]);
            let (verdict, new) = self.algorithm.decide(self.cells[cells.write as usize], other, now, cost, start);
            if let Some(new) = new {
                self.cells[cells.write as usize] = new;
            }
            verdict
        }

        fn admitted(&mut self, now: u64) -> bool {
            self.call(now, 1, Patience::Within(0)) == Outcome::Admit { wait: 0 }
        }

        fn retry_after(&mut self, now: u64) -> u64 {
            match self.call(now, 1, Patience::Within(0)) {
                Outcome::Limited { retry_after, .. } => retry_after,
                other => panic!("expected a refusal at {now}, got {other:?}"),
            }
        }
    }

    const STRATEGIES: [Strategy; 5] =
        [Strategy::Gcra, Strategy::TokenBucket, Strategy::LeakyBucket, Strategy::FixedWindow, Strategy::SlidingWindow];

    #[test]
    fn gcra_refills_continuously_from_the_last_call_and_token_bucket_on_a_fixed_grid() {
        let one_per_second = Quota::per_second(1).with_burst(1);
        let mut gcra = Key::new(one_per_second);
        let mut tokens = Key::new(one_per_second.with_strategy(Strategy::TokenBucket));
        assert!(gcra.admitted(300 * MS) && tokens.admitted(300 * MS));
        // GCRA's next cell is due one interval after the call; the token bucket's next token strikes at 1 s.
        assert_eq!(gcra.retry_after(1000 * MS), 300 * MS);
        assert!(tokens.admitted(1000 * MS));
        assert_eq!(tokens.retry_after(1500 * MS), 500 * MS);
    }

    #[test]
    fn leaky_bucket_spaces_a_burst_evenly_where_gcra_lets_it_through() {
        let quota = Quota::per_second(1).with_burst(3);
        let mut gcra = Key::new(quota);
        let mut leaky = Key::new(quota.with_strategy(Strategy::LeakyBucket));
        let waits = |key: &mut Key| (0..3).map(|_| key.call(0, 1, Patience::Within(0))).collect::<Vec<_>>();
        assert_eq!(waits(&mut gcra), vec![Outcome::Admit { wait: 0 }; 3]);
        assert_eq!(
            waits(&mut leaky),
            [0, SEC, 2 * SEC].map(|wait| Outcome::Admit { wait }).to_vec(),
            "one call per interval"
        );
        assert_eq!(gcra.retry_after(0), SEC);
        assert_eq!(leaky.retry_after(0), SEC, "the bucket has room again once the first call has left");
        // A check that cannot wait only passes once the bucket is empty.
        assert!(
            matches!(leaky.call(0, 1, Patience::Immediately), Outcome::Limited { retry_after, .. } if retry_after == 3 * SEC)
        );
    }

    #[test]
    fn fixed_window_allows_a_double_burst_at_the_boundary_and_sliding_window_does_not() {
        let quota = Quota::per_second(10);
        let mut fixed = Key::new(quota.with_strategy(Strategy::FixedWindow));
        let mut sliding = Key::new(quota.with_strategy(Strategy::SlidingWindow));
        let admitted = |key: &mut Key, now| (0..20).filter(|_| key.admitted(now)).count();
        assert_eq!(admitted(&mut fixed, 990 * MS), 10);
        assert_eq!(admitted(&mut sliding, 990 * MS), 10);
        assert_eq!(admitted(&mut fixed, 1000 * MS), 10, "a fresh window, 20 calls within 10 ms");
        assert_eq!(admitted(&mut sliding, 1000 * MS), 0, "the previous window still counts in full");
        assert_eq!(admitted(&mut sliding, 1500 * MS), 5, "half of it counts halfway through");
        assert_eq!(fixed.retry_after(1500 * MS), 500 * MS, "until the next window");
    }

    #[test]
    fn a_cost_above_the_limit_is_never_admitted_and_the_limit_is_reachable() {
        for strategy in STRATEGIES {
            let mut key = Key::new(Quota::per_minute(90_000).with_strategy(strategy));
            assert_eq!(key.call(0, 90_001, Patience::Within(u64::MAX)), Outcome::TooCostly, "{strategy}");
            assert!(matches!(key.call(0, 90_000, Patience::Within(0)), Outcome::Admit { .. }), "{strategy}");
        }
    }

    #[test]
    fn retry_after_is_exact_for_every_strategy() {
        let mut rng = fastrand::Rng::with_seed(7);
        for strategy in STRATEGIES {
            let quota = Quota::new(Rate::per_second(7)).with_burst(3).with_strategy(strategy);
            let mut key = Key::new(quota);
            let mut now = 0;
            let mut refusals = 0;
            for _ in 0..2_000 {
                now += rng.u64(0..400 * MS);
                let cost = rng.u64(1..=3);
                if let Outcome::Limited { retry_after, .. } = key.call(now, cost, Patience::Within(0)) {
                    refusals += 1;
                    if retry_after > MS {
                        let early = key.call(now + retry_after - MS, cost, Patience::Within(0));
                        assert!(matches!(early, Outcome::Limited { .. }), "{strategy}: admitted 1 ms early");
                    }
                    now += retry_after;
                    let on_time = key.call(now, cost, Patience::Within(0));
                    assert!(matches!(on_time, Outcome::Admit { .. }), "{strategy}: refused after retry_after");
                }
            }
            assert!(refusals > 100, "{strategy}: the test must exercise refusals ({refusals})");
        }
    }

    #[test]
    fn a_refund_restores_the_capacity_a_reservation_took() {
        for strategy in [Strategy::Gcra, Strategy::TokenBucket, Strategy::LeakyBucket] {
            let algorithm = algorithm(Quota::per_second(2).with_burst(2).with_strategy(strategy));
            let (_, full) = algorithm.decide(0, 0, 0, 2, Patience::Within(0));
            let full = full.unwrap();
            let (verdict, reserved) = algorithm.decide(full, 0, 0, 1, Patience::Within(10 * SEC));
            assert!(matches!(verdict, Outcome::Admit { wait } if wait > 0), "{strategy}: {verdict:?}");
            assert_eq!(algorithm.refund(reserved.unwrap(), 1), full, "{strategy}");
        }
    }

    #[test]
    fn a_fresh_cell_decides_exactly_as_a_missing_one() {
        let mut rng = fastrand::Rng::with_seed(11);
        for strategy in STRATEGIES {
            let algorithm = algorithm(Quota::per_second(5).with_burst(4).with_strategy(strategy));
            let mut cells = [0u64; 2];
            let mut now = 0;
            let mut dropped = 0;
            for _ in 0..5_000 {
                now += rng.u64(0..600 * MS);
                let at = algorithm.cells(now);
                let decide = |cells: [u64; 2]| {
                    let other = at.read.map_or(0, |read| cells[read as usize]);
                    algorithm.decide(cells[at.write as usize], other, now, 1, Patience::Within(0))
                };
                let kept = decide(cells);
                for cell in &mut cells {
                    if *cell != 0 && algorithm.is_fresh(*cell, now) {
                        *cell = 0;
                        dropped += 1;
                    }
                }
                assert_eq!(decide(cells), kept, "{strategy} at {now}");
                if let (_, Some(new)) = kept {
                    cells[at.write as usize] = new;
                }
            }
            assert!(dropped > 100, "{strategy}: the test must drop cells ({dropped})");
        }
    }

    #[test]
    fn level_reports_what_is_left_and_when_it_is_full_again() {
        let mut key = Key::new(Quota::per_second(10));
        for _ in 0..4 {
            assert!(key.admitted(0));
        }
        let level = key.algorithm.level(key.cells[0], 0, 0);
        assert_eq!(level, Level { remaining: 6, reset: 400 * MS });
    }
}
