//! The breaker's transitions as pure functions over plain values: the packed state [`Word`], the half-open trial
//! [`Slots`], the counts of the window ([`Tally`]), the time as nanoseconds since the breaker was built, and the
//! settings compiled to [`Rules`]. No atomics, no clock, no metrics: the breaker reads its atomics and the clock once
//! per decision, asks these functions what follows, and writes the answer back (a compare-and-swap of the slots where
//! trial admissions race, its lock around transitions).
//!
//! - [`Rules::admit`]: a call is admitted into the closed window, admitted as a trial, refused (with the time left
//!   open), or finds the open period over and moves the breaker to half-open.
//! - [`Rules::trips`]: a closed window opens the breaker once it holds `min_calls` and a rate reaches its threshold.
//! - [`Rules::trial`]: half-open decides after exactly `half_open_calls` outcomes, with the same thresholds.
//! - [`Rules::transition`]: what a move to another state writes: the next word, the end of the open period, fresh
//!   trial slots, a fresh window, and the open period (growing on failed trials up to `max_open_for`).

use std::time::Duration;

use super::CircuitState;
use super::config::CircuitBreakerConfig;

// The state word: generation << 3 | forced << 2 | state. The generation changes with every transition, so an outcome
// can tell whether the state that admitted its call is still the current one.
const STATE_BITS: u64 = 0b11;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const FORCED: u64 = 0b100;
const GENERATION_SHIFT: u32 = 3;

/// A breaker's state, whether an operator forces it, and its generation, packed in one `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Word(u64);

impl Word {
    /// A new breaker's: closed, not forced, generation 0.
    pub(super) const INITIAL: Word = Word(CLOSED);

    pub(super) const fn from_bits(bits: u64) -> Word {
        Word(bits)
    }

    pub(super) const fn bits(self) -> u64 {
        self.0
    }

    /// Closed, forced or not: [`Rules::admit`] admits the call whatever else it is shown, so the caller need not read
    /// the clock or the slots.
    #[inline]
    pub(super) const fn is_closed(self) -> bool {
        self.0 & STATE_BITS == CLOSED
    }

    /// Closed and not forced: the window's verdict counts.
    #[inline]
    pub(super) const fn is_judged(self) -> bool {
        self.0 & (STATE_BITS | FORCED) == CLOSED
    }

    pub(super) const fn is_forced(self) -> bool {
        self.0 & FORCED != 0
    }

    pub(super) fn state(self) -> CircuitState {
        match self.0 & STATE_BITS {
            CLOSED => CircuitState::Closed,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    pub(super) const fn generation(self) -> u64 {
        self.0 >> GENERATION_SHIFT
    }

    /// The generation as the slots keep it.
    const fn tag(self) -> u64 {
        self.generation() & u32::MAX as u64
    }
}

/// Where a transition goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Closed,
    Open,
    HalfOpen,
    /// Held open by an operator until a reset.
    ForcedOpen,
    /// Held closed by an operator until a reset.
    ForcedClosed,
}

impl Target {
    const fn bits(self) -> u64 {
        match self {
            Target::Closed => CLOSED,
            Target::Open => OPEN,
            Target::HalfOpen => HALF_OPEN,
            Target::ForcedOpen => OPEN | FORCED,
            Target::ForcedClosed => CLOSED | FORCED,
        }
    }
}

/// The trial slots of a half-open breaker: `tag << 32 | trial calls admitted and not given back`, the tag being the
/// low 32 bits of the generation of the half-open word they belong to. A trial whose outcome was decided keeps its
/// slot, so once `half_open_calls` outcomes are in, no further trial is admitted in that generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slots(u64);

impl Slots {
    pub(super) const INITIAL: Slots = Slots(0);

    pub(super) const fn from_bits(bits: u64) -> Slots {
        Slots(bits)
    }

    pub(super) const fn bits(self) -> u64 {
        self.0
    }

    /// No trial taken yet in the half-open state `word`.
    const fn fresh(word: Word) -> Slots {
        Slots(word.tag() << 32)
    }

    const fn belong_to(self, word: Word) -> bool {
        self.0 >> 32 == word.tag()
    }

    const fn taken(self) -> u64 {
        self.0 & u32::MAX as u64
    }

    /// The slots once the trial admitted by `admitted` gives its slot back, or `None` if they have moved on to another
    /// half-open state (or hold no slot to give back).
    pub(super) const fn released(self, admitted: Word) -> Option<Slots> {
        if self.belong_to(admitted) && self.taken() > 0 { Some(Slots(self.0 - 1)) } else { None }
    }
}

/// Calls counted, in a window or among the trial calls of a half-open state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub calls: u64,
    pub failures: u64,
    pub slow: u64,
}

/// The share of a tally that failed or was slow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rates {
    pub calls: u64,
    pub failure_rate: f64,
    pub slow_rate: f64,
}

impl Rates {
    pub(super) fn of(tally: Tally) -> Self {
        let share = |n: u64| if tally.calls == 0 { 0.0 } else { n as f64 / tally.calls as f64 };
        Rates { calls: tally.calls, failure_rate: share(tally.failures), slow_rate: share(tally.slow) }
    }
}

/// What a call asking to be admitted is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// Admitted into the closed window of the word it read.
    Call,
    /// Admitted as a trial call if the slots still hold what it read, replacing them with these.
    Trial(Slots),
    /// Refused; `retry_after` is the time left open, in nanoseconds (0 while half-open trials take every slot).
    Refuse { retry_after: u64 },
    /// The open period is over: move to half-open if the word is still the one read, and ask again.
    HalfOpen,
    /// The slots belong to a later state than the word: read both again.
    Reread,
}

/// What half-open makes of its trial calls so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Verdict {
    /// Fewer than `half_open_calls` outcomes: no decision yet.
    Pending,
    /// Decided: move to `to` ([`Target::Open`] or [`Target::Closed`]), for these rates.
    Decided { to: Target, rates: Rates },
}

/// What a transition writes. Everything but the word is stored before it, so a call that reads the new word finds
/// them in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Transition {
    pub word: Word,
    /// The open period in force from now on: the next time the breaker opens, it stays open this long.
    pub open_for: u64,
    /// Opening: when the open period ends.
    pub open_until: Option<u64>,
    /// Moving to half-open: no trial taken yet (the trials' tally starts again too).
    pub slots: Option<Slots>,
    /// Closing, forced or not: the window starts afresh.
    pub restart_window: bool,
}

/// A [`CircuitBreakerConfig`] compiled to integer nanoseconds and counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rules {
    failure_rate: f64,
    /// `None` when slow calls are not judged.
    slow_rate: Option<f64>,
    min_calls: u64,
    half_open_calls: u64,
    open_for: u64,
    max_open_for: Option<u64>,
    slow_call: Option<u64>,
}

impl Rules {
    pub(super) fn new(config: &CircuitBreakerConfig) -> Self {
        Rules {
            failure_rate: config.failure_rate(),
            slow_rate: config.slow_call().map(|_| config.slow_rate()),
            min_calls: config.min_calls().into(),
            half_open_calls: config.half_open_calls().into(),
            open_for: nanos(config.open_for()),
            max_open_for: config.max_open_for().map(nanos),
            slow_call: config.slow_call().map(nanos),
        }
    }

    /// The first open period, and the `retry_after` of a refusal while forced open.
    pub(super) const fn open_for(&self) -> u64 {
        self.open_for
    }

    /// Whether calls are timed (a call must then note when it started).
    #[inline]
    pub(super) const fn judges_slow_calls(&self) -> bool {
        self.slow_call.is_some()
    }

    /// Whether a call that started at `started` and ended at `now` was slow: it lasted longer than `slow_call`.
    #[inline]
    pub(super) fn is_slow(&self, started: Option<u64>, now: Option<u64>) -> bool {
        match (self.slow_call, started, now) {
            (Some(limit), Some(started), Some(now)) => now.saturating_sub(started) > limit,
            _ => false,
        }
    }

    /// A call at `now` that read the state `word`, the end of the open period `open_until` and the trial slots
    /// `slots` (the last two are looked at only in the states they belong to).
    pub(super) fn admit(&self, word: Word, open_until: u64, slots: Slots, now: u64) -> Admit {
        match word.0 & STATE_BITS {
            CLOSED => Admit::Call,
            OPEN if word.is_forced() => Admit::Refuse { retry_after: self.open_for },
            OPEN if now < open_until => Admit::Refuse { retry_after: open_until - now },
            OPEN => Admit::HalfOpen,
            _ if !slots.belong_to(word) => Admit::Reread,
            _ if slots.taken() < self.half_open_calls => Admit::Trial(Slots(slots.0 + 1)),
            _ => Admit::Refuse { retry_after: 0 },
        }
    }

    /// The rates that open a closed, unforced breaker whose window holds `window`, if they do: the window holds at
    /// least `min_calls` calls and the failure rate reaches `failure_rate` or the slow rate reaches `slow_rate`.
    pub(super) fn trips(&self, word: Word, window: Tally) -> Option<Rates> {
        if !word.is_judged() || window.calls < self.min_calls {
            return None;
        }
        let rates = Rates::of(window);
        self.over_threshold(rates).then_some(rates)
    }

    /// The trial calls `trials` after one more outcome, and what they decide: once `half_open_calls` outcomes are in,
    /// open again at the thresholds, close below them.
    pub(super) fn trial(&self, trials: Tally, failed: bool, slow: bool) -> (Tally, Verdict) {
        let trials = Tally {
            calls: trials.calls + 1,
            failures: trials.failures + u64::from(failed),
            slow: trials.slow + u64::from(slow),
        };
        if trials.calls < self.half_open_calls {
            return (trials, Verdict::Pending);
        }
        let rates = Rates::of(trials);
        let to = if self.over_threshold(rates) { Target::Open } else { Target::Closed };
        (trials, Verdict::Decided { to, rates })
    }

    /// The move from `from` to `to` at `now`, with `open_for` the open period in force.
    pub(super) fn transition(&self, from: Word, to: Target, open_for: u64, now: u64) -> Transition {
        let word = Word((from.generation() + 1) << GENERATION_SHIFT | to.bits());
        let open_for = match to {
            Target::Closed => self.open_for,
            Target::Open if from.state() == CircuitState::HalfOpen => self.next_open_for(open_for),
            _ => open_for,
        };
        Transition {
            word,
            open_for,
            open_until: (to == Target::Open).then(|| now.saturating_add(open_for)),
            slots: (to == Target::HalfOpen).then(|| Slots::fresh(word)),
            restart_window: matches!(to, Target::Closed | Target::ForcedClosed),
        }
    }

    /// The open period after `previous` when the trial calls failed: twice as long up to `max_open_for` if that is set.
    fn next_open_for(&self, previous: u64) -> u64 {
        match self.max_open_for {
            Some(max) => previous.saturating_mul(2).min(max).max(self.open_for),
            None => self.open_for,
        }
    }

    fn over_threshold(&self, rates: Rates) -> bool {
        rates.failure_rate >= self.failure_rate || self.slow_rate.is_some_and(|rate| rates.slow_rate >= rate)
    }
}

/// Durations past `u64::MAX` nanoseconds (584 years) saturate.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::config::Window;
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Calls in a count window of 10, verdicts from 4 calls, 30 s open, 2 trials; slow above 1 s at 0.5.
    fn rules() -> Rules {
        Rules::new(
            &CircuitBreakerConfig::new()
                .with_window(Window::Calls(10))
                .with_min_calls(4)
                .with_open_for(Duration::from_secs(30))
                .with_half_open_calls(2)
                .with_slow_call(Duration::from_secs(1), 0.5),
        )
    }

    fn word(state: u64, forced: bool, generation: u64) -> Word {
        Word(generation << GENERATION_SHIFT | if forced { FORCED } else { 0 } | state)
    }

    fn slots(generation: u64, taken: u64) -> Slots {
        Slots((generation & u64::from(u32::MAX)) << 32 | taken)
    }

    fn tally(calls: u64, failures: u64, slow: u64) -> Tally {
        Tally { calls, failures, slow }
    }

    #[test]
    fn admission_by_state() {
        let rules = rules();
        let cases = [
            ("closed admits", word(CLOSED, false, 0), 0, Slots::INITIAL, 0, Admit::Call),
            ("closed admits, whatever the rest says", word(CLOSED, false, 7), 99, slots(3, 9), 5, Admit::Call),
            ("forced closed admits", word(CLOSED, true, 1), 0, Slots::INITIAL, 0, Admit::Call),
            ("open refuses with the time left", word(OPEN, false, 1), 30 * S, Slots::INITIAL, 10 * S, refuse(20 * S)),
            ("open one nanosecond before its end", word(OPEN, false, 1), 30 * S, Slots::INITIAL, 30 * S - 1, refuse(1)),
            (
                "the open period is over at its end",
                word(OPEN, false, 1),
                30 * S,
                Slots::INITIAL,
                30 * S,
                Admit::HalfOpen,
            ),
            ("and after it", word(OPEN, false, 1), 30 * S, Slots::INITIAL, 3600 * S, Admit::HalfOpen),
            ("forced open refuses with open_for", word(OPEN, true, 1), 0, Slots::INITIAL, 3600 * S, refuse(30 * S)),
            ("half-open takes the first slot", word(HALF_OPEN, false, 2), 0, slots(2, 0), 0, Admit::Trial(slots(2, 1))),
            ("and the last", word(HALF_OPEN, false, 2), 0, slots(2, 1), 0, Admit::Trial(slots(2, 2))),
            ("every slot taken", word(HALF_OPEN, false, 2), 0, slots(2, 2), 0, refuse(0)),
            ("slots of a later half-open state", word(HALF_OPEN, false, 2), 0, slots(4, 0), 0, Admit::Reread),
            (
                "slots tagged with the low 32 bits of the generation",
                word(HALF_OPEN, false, (1 << 32) + 2),
                0,
                slots(2, 0),
                0,
                Admit::Trial(slots(2, 1)),
            ),
        ];
        for (case, word, open_until, slots, now, expected) in cases {
            assert_eq!(rules.admit(word, open_until, slots, now), expected, "{case}");
        }
    }

    fn refuse(retry_after: u64) -> Admit {
        Admit::Refuse { retry_after }
    }

    #[test]
    fn a_closed_window_trips_at_either_threshold_once_it_holds_min_calls() {
        let rules = rules();
        let closed = word(CLOSED, false, 0);
        let cases = [
            ("3 of 3 failed, fewer than min_calls", closed, tally(3, 3, 0), None),
            ("1 of 4 failed", closed, tally(4, 1, 0), None),
            ("2 of 4 is exactly the failure rate", closed, tally(4, 2, 0), Some((0.5, 0.0))),
            ("3 of 10 failed, 4 of 10 slow", closed, tally(10, 3, 4), None),
            ("5 of 10 slow reaches the slow rate", closed, tally(10, 0, 5), Some((0.0, 0.5))),
            ("forced closed never trips", word(CLOSED, true, 1), tally(10, 10, 10), None),
            ("neither does a state that is not closed", word(HALF_OPEN, false, 2), tally(10, 10, 0), None),
        ];
        for (case, word, window, expected) in cases {
            let rates = rules.trips(word, window).map(|r| (r.failure_rate, r.slow_rate));
            assert_eq!(rates, expected, "{case}");
        }
    }

    #[test]
    fn slow_calls_count_only_when_timed_and_only_above_slow_call() {
        let untimed = Rules::new(&CircuitBreakerConfig::new().with_min_calls(1));
        assert_eq!(untimed.trips(Word::INITIAL, tally(1, 0, 1)), None, "no slow_call: the slow rate is not judged");
        assert!(!untimed.is_slow(Some(0), Some(3600 * S)));

        let rules = rules();
        assert!(!rules.is_slow(Some(5 * S), Some(6 * S)), "exactly slow_call is not longer than it");
        assert!(rules.is_slow(Some(5 * S), Some(6 * S + 1)));
        assert!(!rules.is_slow(Some(5 * S), None), "no end time: not judged");
        assert!(!rules.is_slow(Some(5 * S), Some(4 * S)), "a clock read out of order is not slow");
    }

    #[test]
    fn half_open_decides_after_exactly_half_open_calls_outcomes() {
        let rules = rules();
        let (one, verdict) = rules.trial(Tally::default(), false, false);
        assert_eq!((one, verdict), (tally(1, 0, 0), Verdict::Pending));
        let cases = [
            ("two successes close", false, false, Target::Closed),
            ("a failure of two reaches 0.5 and opens", true, false, Target::Open),
            ("a slow success of two reaches the slow rate and opens", false, true, Target::Open),
        ];
        for (case, failed, slow, to) in cases {
            match rules.trial(one, failed, slow) {
                (trials, Verdict::Decided { to: decided, rates }) => {
                    assert_eq!((trials.calls, decided), (2, to), "{case}");
                    assert_eq!(rates.calls, 2, "{case}");
                }
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn transitions_write_what_the_next_state_reads() {
        let rules = rules();
        let open_for = 30 * S;
        let cases = [
            (
                "closed trips open",
                word(CLOSED, false, 0),
                Target::Open,
                open_for,
                Some(100 * S + open_for),
                None,
                false,
            ),
            ("open to half-open", word(OPEN, false, 1), Target::HalfOpen, open_for, None, Some(slots(2, 0)), false),
            ("failed trials reopen", word(HALF_OPEN, false, 2), Target::Open, open_for, Some(130 * S), None, false),
            ("trials close", word(HALF_OPEN, false, 2), Target::Closed, open_for, None, None, true),
            ("forced open", word(HALF_OPEN, false, 2), Target::ForcedOpen, open_for, None, None, false),
            ("forced closed", word(OPEN, true, 3), Target::ForcedClosed, open_for, None, None, true),
            ("reset", word(CLOSED, true, 4), Target::Closed, open_for, None, None, true),
        ];
        for (case, from, to, next_open_for, open_until, fresh_slots, restart_window) in cases {
            let next = rules.transition(from, to, open_for, 100 * S);
            let expected = Transition {
                word: Word((from.generation() + 1) << GENERATION_SHIFT | to.bits()),
                open_for: next_open_for,
                open_until,
                slots: fresh_slots,
                restart_window,
            };
            assert_eq!(next, expected, "{case}");
            assert_eq!(next.word.is_forced(), matches!(to, Target::ForcedOpen | Target::ForcedClosed), "{case}");
        }
    }

    #[test]
    fn the_open_period_grows_on_failed_trials_up_to_max_open_for_and_resets_on_closing() {
        let config = CircuitBreakerConfig::new().with_open_for(Duration::from_secs(10));
        let growing = Rules::new(&config.with_max_open_for(Duration::from_secs(40)));
        let half_open = word(HALF_OPEN, false, 2);
        let mut open_for = growing.open_for();
        let mut periods = vec![];
        for _ in 0..4 {
            let next = growing.transition(half_open, Target::Open, open_for, 0);
            assert_eq!(next.open_until, Some(next.open_for));
            open_for = next.open_for;
            periods.push(open_for / S);
        }
        assert_eq!(periods, [20, 40, 40, 40]);
        let trip = growing.transition(word(CLOSED, false, 0), Target::Open, open_for, 0);
        assert_eq!(trip.open_for, open_for, "a trip from closed opens for the period in force");
        assert_eq!(growing.transition(half_open, Target::Closed, open_for, 0).open_for, 10 * S, "closing resets it");
        assert_eq!(growing.transition(half_open, Target::ForcedOpen, open_for, 0).open_for, open_for);

        let fixed = Rules::new(&config);
        assert_eq!(fixed.transition(half_open, Target::Open, fixed.open_for(), 0).open_for, 10 * S);
    }

    #[test]
    fn a_trial_gives_its_slot_back_only_to_its_own_half_open_state() {
        let admitted = word(HALF_OPEN, false, 2);
        assert_eq!(slots(2, 2).released(admitted), Some(slots(2, 1)));
        assert_eq!(slots(2, 0).released(admitted), None, "nothing to give back");
        assert_eq!(slots(4, 1).released(admitted), None, "the slots moved on to a later half-open state");
    }

    /// What the breaker keeps in its atomics and under its lock, as plain values.
    struct Plain {
        word: Word,
        slots: Slots,
        open_until: u64,
        open_for: u64,
    }

    impl Plain {
        fn admit(&mut self, rules: &Rules, now: u64) -> Admit {
            let admit = rules.admit(self.word, self.open_until, self.slots, now);
            if let Admit::Trial(taken) = admit {
                self.slots = taken;
            }
            admit
        }

        fn apply(&mut self, rules: &Rules, to: Target, now: u64) {
            let next = rules.transition(self.word, to, self.open_for, now);
            (self.word, self.open_for) = (next.word, next.open_for);
            self.open_until = next.open_until.unwrap_or(self.open_until);
            self.slots = next.slots.unwrap_or(self.slots);
        }
    }

    /// The whole cycle, as the breaker drives it: a failing window opens, the open period ends on demand, the trials
    /// decide, and failed trials open for longer.
    #[test]
    fn a_breaker_cycle_on_plain_values() {
        let rules = Rules::new(
            &CircuitBreakerConfig::new()
                .with_min_calls(2)
                .with_open_for(Duration::from_secs(10))
                .with_max_open_for(Duration::from_secs(60))
                .with_half_open_calls(1),
        );
        let mut breaker =
            Plain { word: Word::INITIAL, slots: Slots::INITIAL, open_until: 0, open_for: rules.open_for() };

        assert_eq!(breaker.admit(&rules, 0), Admit::Call);
        assert!(rules.trips(breaker.word, tally(2, 1, 0)).is_some());
        breaker.apply(&rules, Target::Open, S);
        assert_eq!(breaker.admit(&rules, 5 * S), refuse(6 * S));
        assert_eq!(breaker.admit(&rules, 11 * S), Admit::HalfOpen);
        breaker.apply(&rules, Target::HalfOpen, 11 * S);
        assert!(matches!(breaker.admit(&rules, 11 * S), Admit::Trial(_)));
        assert_eq!(breaker.admit(&rules, 11 * S), refuse(0), "one trial at a time");
        let (_, verdict) = rules.trial(Tally::default(), true, false);
        assert!(matches!(verdict, Verdict::Decided { to: Target::Open, .. }));
        breaker.apply(&rules, Target::Open, 12 * S);
        assert_eq!(breaker.admit(&rules, 12 * S), refuse(20 * S), "open twice as long");
        assert_eq!(breaker.admit(&rules, 32 * S), Admit::HalfOpen);
        breaker.apply(&rules, Target::HalfOpen, 32 * S);
        assert!(matches!(breaker.admit(&rules, 32 * S), Admit::Trial(_)), "fresh slots for the new half-open state");
        let (_, verdict) = rules.trial(Tally::default(), false, false);
        assert!(matches!(verdict, Verdict::Decided { to: Target::Closed, .. }));
        breaker.apply(&rules, Target::Closed, 33 * S);
        assert_eq!((breaker.word.state(), breaker.word.generation()), (CircuitState::Closed, 5));
        assert_eq!(breaker.open_for, 10 * S, "back to open_for once closed");
    }
}
