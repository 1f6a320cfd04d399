//! One named breaker: the atomics and the lock its state lives in, the clock, the permits calls hold, metrics and logs,
//! and what operators see and steer. What each event does to the state is decided in [`algorithm`](super::algorithm).

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::time::Instant;

use super::algorithm::{Admit, Rates, Rules, Slots, Tally, Target, Verdict, Word};
use super::config::CircuitBreakerConfig;
use super::window::Window;
use super::{CircuitState, Record};
use crate::error::Error;
use crate::metrics::{self, Refresh};
use crate::sync::{AtomicU64, Mutex, MutexGuard};

metrics::family! {
    /// `adk_circuit_breaker_state{breaker}`: 0 closed, 1 open, 2 half-open.
    static STATE: gauge("adk_circuit_breaker_state", "Breaker state: 0 closed, 1 open, 2 half-open.", ["breaker"]);
}
metrics::family! {
    /// `adk_circuit_breaker_transitions_total{breaker,from,to}`
    pub(crate) static TRANSITIONS_TOTAL: counter(
        "adk_circuit_breaker_transitions_total",
        "Breaker state transitions.",
        ["breaker", "from", "to"]
    );
}
metrics::family! {
    /// `adk_circuit_breaker_calls_total{breaker,outcome}`
    pub(crate) static CALLS_TOTAL: counter(
        "adk_circuit_breaker_calls_total",
        "Calls seen by a breaker by outcome.",
        ["breaker", "outcome"]
    );
}

/// A circuit breaker shared by every function that names it. Functions reach it through a
/// [`CircuitBreakerPolicy`](super::CircuitBreakerPolicy); operators through
/// [`registry().circuit_breaker(name)`](crate::Registry::circuit_breaker).
///
/// ```
/// use adk_runtime::CircuitState;
/// use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
///
/// static PAYMENTS: CircuitBreakerPolicy =
///     CircuitBreakerPolicy::new("doc-payments", "docs.rs:1", CircuitBreakerConfig::new());
///
/// let breaker = PAYMENTS.breaker();
/// assert_eq!(breaker.state(), CircuitState::Closed);
/// breaker.force_open();          // e.g. during maintenance of the dependency
/// assert!(PAYMENTS.acquire().is_err());
/// breaker.reset();
/// assert!(PAYMENTS.acquire().is_ok());
/// ```
pub struct CircuitBreaker {
    /// The [`Word`], read by every call: alone on its cache line.
    state: Hot,
    window: Window,
    config: CircuitBreakerConfig,
    rules: Rules,
    needs_clock: bool,
    /// Times are kept as nanoseconds since this instant.
    base: Instant,
    /// While open: the end of the open period.
    open_until: AtomicU64,
    /// While half-open: the [`Slots`].
    trial_slots: AtomicU64,
    control: Mutex<Control>,
    name: String,
    metrics: BreakerMetrics,
}

#[repr(align(128))]
struct Hot(AtomicU64);

/// What transitions change, under the breaker's lock.
struct Control {
    /// The open period in force, in nanoseconds (see [`Transition::open_for`](super::algorithm::Transition)).
    open_for: u64,
    /// The trial calls decided so far, while half-open.
    trials: Tally,
}

/// What a breaker's window holds now, for operators and tests.
///
/// ```
/// use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
///
/// static SEARCH: CircuitBreakerPolicy =
///     CircuitBreakerPolicy::new("doc-search", "docs.rs:1", CircuitBreakerConfig::new());
/// SEARCH.acquire().unwrap().failure();
/// SEARCH.acquire().unwrap().success();
/// let window = SEARCH.breaker().snapshot();
/// assert_eq!((window.calls, window.failures, window.failure_rate), (2, 1, 0.5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct WindowSnapshot {
    /// The state the numbers belong to.
    pub state: CircuitState,
    /// Calls in the window (when closed or open) or trial calls decided so far (when half-open).
    pub calls: u64,
    /// How many of them failed.
    pub failures: u64,
    /// How many of them were slow.
    pub slow_calls: u64,
    /// `failures / calls`, 0 without calls.
    pub failure_rate: f64,
    /// `slow_calls / calls`, 0 without calls.
    pub slow_rate: f64,
}

impl CircuitBreaker {
    pub(crate) fn new(name: &str, config: CircuitBreakerConfig) -> Arc<Self> {
        let window = Window::new(config.window(), config.min_calls());
        let rules = Rules::new(&config);
        let breaker = Arc::new(CircuitBreaker {
            state: Hot(AtomicU64::new(Word::INITIAL.bits())),
            needs_clock: window.is_timed() || rules.judges_slow_calls(),
            window,
            config,
            rules,
            base: Instant::now(),
            open_until: AtomicU64::new(0),
            trial_slots: AtomicU64::new(Slots::INITIAL.bits()),
            control: Mutex::new(Control { open_for: rules.open_for(), trials: Tally::default() }),
            name: name.to_owned(),
            metrics: BreakerMetrics::new(name),
        });
        let weak: Weak<CircuitBreaker> = Arc::downgrade(&breaker);
        metrics::refresh_before_gathering(weak);
        breaker
    }

    /// The breaker's name.
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db", "docs.rs:1", CircuitBreakerConfig::new());
    /// assert_eq!(DB.breaker().name(), "doc-db");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings in force (those of the first declaration of the name).
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-config", "docs.rs:1", CircuitBreakerConfig::new());
    /// assert_eq!(DB.breaker().config().half_open_calls(), 10);
    /// ```
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// The current state. An open breaker whose open period is over still reports [`CircuitState::Open`] until a call
    /// arrives and moves it to half-open.
    ///
    /// ```
    /// # use adk_runtime::{CircuitState, circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy}};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-state", "docs.rs:1", CircuitBreakerConfig::new());
    /// assert_eq!(DB.breaker().state(), CircuitState::Closed);
    /// ```
    pub fn state(&self) -> CircuitState {
        self.word().state()
    }

    /// Whether an operator holds the breaker open or closed ([`force_open`](Self::force_open),
    /// [`force_closed`](Self::force_closed)) until [`reset`](Self::reset).
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-forced", "docs.rs:1", CircuitBreakerConfig::new());
    /// DB.breaker().force_closed();
    /// assert!(DB.breaker().is_forced());
    /// ```
    pub fn is_forced(&self) -> bool {
        self.word().is_forced()
    }

    /// The window (or, when half-open, the trial calls) as it stands.
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-snapshot", "docs.rs:1", CircuitBreakerConfig::new());
    /// assert_eq!(DB.breaker().snapshot().calls, 0);
    /// ```
    pub fn snapshot(&self) -> WindowSnapshot {
        let control = self.lock();
        let word = self.word();
        let tally = if word.state() == CircuitState::HalfOpen {
            control.trials
        } else {
            drop(control);
            self.window.judge(self.needs_clock.then(|| self.now()))
        };
        let rates = Rates::of(tally);
        WindowSnapshot {
            state: word.state(),
            calls: tally.calls,
            failures: tally.failures,
            slow_calls: tally.slow,
            failure_rate: rates.failure_rate,
            slow_rate: rates.slow_rate,
        }
    }

    /// Holds the breaker open, refusing every call, until [`reset`](Self::reset). Refusals carry the configured
    /// `open_for` as their `retry_after`.
    ///
    /// ```
    /// # use adk_runtime::{CircuitState, circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy}};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-open", "docs.rs:1", CircuitBreakerConfig::new());
    /// DB.breaker().force_open();
    /// assert_eq!(DB.breaker().state(), CircuitState::Open);
    /// ```
    pub fn force_open(&self) {
        let mut control = self.lock();
        self.transition(&mut control, self.word(), Target::ForcedOpen, self.now(), None);
    }

    /// Holds the breaker closed, admitting every call whatever the failure rate, until [`reset`](Self::reset).
    ///
    /// ```
    /// # use adk_runtime::{CircuitState, circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy}};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-closed", "docs.rs:1", CircuitBreakerConfig::new());
    /// DB.breaker().force_closed();
    /// assert_eq!(DB.breaker().state(), CircuitState::Closed);
    /// ```
    pub fn force_closed(&self) {
        let mut control = self.lock();
        self.transition(&mut control, self.word(), Target::ForcedClosed, self.now(), None);
    }

    /// Back to closed with an empty window and the initial `open_for`, releasing a forced state. Calls admitted before
    /// the reset that then fail, or are slow, are not recorded in the fresh window.
    ///
    /// ```
    /// # use adk_runtime::{CircuitState, circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy}};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-reset", "docs.rs:1", CircuitBreakerConfig::new());
    /// DB.breaker().force_open();
    /// DB.breaker().reset();
    /// assert_eq!((DB.breaker().state(), DB.breaker().is_forced()), (CircuitState::Closed, false));
    /// ```
    pub fn reset(&self) {
        let mut control = self.lock();
        self.transition(&mut control, self.word(), Target::Closed, self.now(), None);
    }

    /// Asks to make one call: a permit to report its outcome with, or [`Error::CircuitOpen`] (the call must not be
    /// made).
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-acquire", "docs.rs:1", CircuitBreakerConfig::new());
    /// let permit = DB.breaker().acquire().expect("closed");
    /// permit.success();
    /// ```
    #[inline]
    pub fn acquire(&self) -> Result<BreakerPermit<'_>, Error> {
        let word = self.word();
        if word.is_closed() {
            let started = if self.rules.judges_slow_calls() { Some(self.now()) } else { None };
            return Ok(BreakerPermit { breaker: self, admission: Admission::Closed(word), started });
        }
        self.acquire_when_not_closed(word)
    }

    /// Runs `call` if the breaker admits it, and records its outcome (`record` judges errors); a refusal is answered
    /// with `refuse(Error::CircuitOpen)` without running `call`. Dropping the returned future before it completes
    /// records nothing and frees a trial slot it held.
    ///
    /// ```
    /// # use adk_runtime::circuit_breaker::{self, CircuitBreakerConfig, CircuitBreakerPolicy};
    /// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-run", "docs.rs:1", CircuitBreakerConfig::new());
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let answer: Result<u32, adk_runtime::Error> =
    ///     DB.breaker().run(async { Ok(42) }, circuit_breaker::by_class, |refusal| Err(refusal)).await;
    /// assert_eq!(answer, Ok(42));
    /// # });
    /// ```
    #[inline]
    pub async fn run<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
        record: impl FnOnce(&E) -> Record,
        refuse: impl FnOnce(Error) -> Result<T, E>,
    ) -> Result<T, E> {
        let permit = match self.acquire() {
            Ok(permit) => permit,
            Err(refusal) => return refuse(refusal),
        };
        let result = call.await;
        permit.record(&result, record);
        result
    }

    #[cold]
    fn acquire_when_not_closed(&self, mut word: Word) -> Result<BreakerPermit<'_>, Error> {
        let now = self.now();
        let started = self.rules.judges_slow_calls().then_some(now);
        loop {
            let slots = self.trial_slots.load(Acquire);
            match self.rules.admit(word, self.open_until.load(Acquire), Slots::from_bits(slots), now) {
                Admit::Call => return Ok(BreakerPermit { breaker: self, admission: Admission::Closed(word), started }),
                Admit::Trial(taken) => {
                    if self.trial_slots.compare_exchange_weak(slots, taken.bits(), AcqRel, Acquire).is_ok() {
                        return Ok(BreakerPermit { breaker: self, admission: Admission::Trial(word), started });
                    }
                }
                Admit::Refuse { retry_after } => return Err(self.refuse(Duration::from_nanos(retry_after))),
                Admit::HalfOpen => {
                    let mut control = self.lock();
                    if self.word() == word {
                        self.transition(&mut control, word, Target::HalfOpen, now, None);
                    }
                }
                Admit::Reread => {}
            }
            word = self.word();
        }
    }

    #[cold]
    fn refuse(&self, retry_after: Duration) -> Error {
        self.metrics.rejected.inc();
        Error::circuit_open(self.name.clone(), retry_after)
    }

    #[inline]
    fn closed_outcome(&self, admitted: Word, started: Option<u64>, outcome: Outcome) {
        let now = if self.needs_clock { Some(self.now()) } else { None };
        let slow = self.rules.is_slow(started, now);
        match outcome {
            Outcome::Success if !slow => {
                if self.window.record_success(now) {
                    self.judge(now);
                }
            }
            Outcome::Ignored => self.metrics.ignored.inc(),
            _ => self.closed_event(admitted, outcome == Outcome::Failure, slow, now),
        }
    }

    #[cold]
    fn closed_event(&self, admitted: Word, failure: bool, slow: bool, now: Option<u64>) {
        self.metrics.count(failure, slow);
        if self.word() != admitted {
            return; // the window the call was admitted into is gone
        }
        let tally = self.window.record_event(failure, slow, now);
        self.trip_if_over(admitted, tally, now);
    }

    #[cold]
    fn judge(&self, now: Option<u64>) {
        let word = self.word();
        if !word.is_judged() {
            return;
        }
        let tally = self.window.judge(now);
        self.trip_if_over(word, tally, now);
    }

    fn trip_if_over(&self, word: Word, tally: Tally, now: Option<u64>) {
        if let Some(rates) = self.rules.trips(word, tally) {
            let now = now.unwrap_or_else(|| self.now());
            let mut control = self.lock();
            if self.word() == word {
                self.transition(&mut control, word, Target::Open, now, Some(rates));
            }
        }
    }

    #[cold]
    fn trial_outcome(&self, admitted: Word, started: Option<u64>, outcome: Outcome) {
        if outcome == Outcome::Ignored {
            self.metrics.ignored.inc();
            return self.release_trial(admitted);
        }
        let now = self.now();
        let failed = outcome == Outcome::Failure;
        let slow = self.rules.is_slow(started, Some(now));
        if !failed && !slow {
            self.window.count_success_outside();
        } else {
            self.metrics.count(failed, slow);
        }
        let mut control = self.lock();
        if self.word() != admitted {
            return;
        }
        let (trials, verdict) = self.rules.trial(control.trials, failed, slow);
        control.trials = trials;
        if let Verdict::Decided { to, rates } = verdict {
            self.transition(&mut control, admitted, to, now, Some(rates));
        }
    }

    /// Gives back the trial slot of a call that will not report an outcome.
    fn release_trial(&self, admitted: Word) {
        let mut slots = self.trial_slots.load(Acquire);
        while let Some(released) = Slots::from_bits(slots).released(admitted) {
            match self.trial_slots.compare_exchange_weak(slots, released.bits(), AcqRel, Acquire) {
                Ok(_) => return,
                Err(actual) => slots = actual,
            }
        }
    }

    /// Moves from the state word `from` to `to` at `now`: writes what [`Rules::transition`] says, the new word last,
    /// then reports it. `cause` is the verdict that moved it, `None` for an operator's or a call's doing. Call with the
    /// lock held.
    fn transition(&self, control: &mut Control, from: Word, to: Target, now: u64, cause: Option<Rates>) {
        let next = self.rules.transition(from, to, control.open_for, now);
        control.open_for = next.open_for;
        if next.restart_window {
            self.window.restart();
        }
        if let Some(open_until) = next.open_until {
            self.open_until.store(open_until, Release);
        }
        if let Some(slots) = next.slots {
            self.trial_slots.store(slots.bits(), Release);
            control.trials = Tally::default();
        }
        self.state.0.store(next.word.bits(), Release);

        let (from_state, to_state) = (from.state(), next.word.state());
        self.metrics.state.set(to_state.gauge());
        if from_state != to_state {
            self.metrics.transitions[from_state.index()][to_state.index()].inc();
        }
        let (failure_rate, slow_rate, calls) =
            cause.map_or((None, None, None), |r| (Some(r.failure_rate), Some(r.slow_rate), Some(r.calls)));
        let (breaker, from, forced) = (&self.name, from_state.as_str(), next.word.is_forced());
        match to_state {
            CircuitState::Open => tracing::warn!(
                breaker, from, to = "open", failure_rate, slow_rate, calls, forced,
                open_for = ?Duration::from_nanos(control.open_for), "circuit breaker opened"
            ),
            CircuitState::HalfOpen => tracing::info!(breaker, from, to = "half_open", "circuit breaker half-open"),
            CircuitState::Closed => tracing::info!(
                breaker,
                from,
                to = "closed",
                failure_rate,
                slow_rate,
                calls,
                forced,
                "circuit breaker closed"
            ),
        }
    }

    #[inline]
    fn word(&self) -> Word {
        Word::from_bits(self.state.0.load(Acquire))
    }

    /// The clock, read at most once per decision.
    #[inline]
    fn now(&self) -> u64 {
        u64::try_from(Instant::now().saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Refresh for CircuitBreaker {
    fn refresh(&self) {
        let successes = self.window.successes().saturating_sub(self.metrics.successes_before_reset.load(Relaxed));
        let reported = self.metrics.success.get();
        if successes > reported {
            self.metrics.success.inc_by(successes - reported);
        }
    }

    fn rebase(&self) {
        self.metrics.successes_before_reset.store(self.window.successes(), Relaxed);
    }
}

/// Leave to make one call through a breaker. Report its outcome with [`success`](Self::success),
/// [`failure`](Self::failure), [`ignore`](Self::ignore) or [`record`](Self::record); dropping it unreported (the call
/// was cancelled) records nothing and frees its trial slot.
///
/// ```
/// # use adk_runtime::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPolicy};
/// static DB: CircuitBreakerPolicy = CircuitBreakerPolicy::new("doc-db-permit", "docs.rs:1", CircuitBreakerConfig::new());
/// match DB.acquire() {
///     Ok(permit) => permit.failure(),
///     Err(refusal) => panic!("{refusal}"),
/// }
/// assert_eq!(DB.breaker().snapshot().failures, 1);
/// ```
#[must_use = "a permit records nothing unless its outcome is reported"]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    admission: Admission,
    /// When the call started, if calls are timed.
    started: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Ignored,
}

#[derive(Clone, Copy)]
enum Admission {
    /// Admitted by the closed breaker whose state word this is.
    Closed(Word),
    /// A trial call of the half-open breaker whose state word this is.
    Trial(Word),
    Reported,
}

impl BreakerPermit<'_> {
    /// The call succeeded.
    #[inline]
    pub fn success(self) {
        self.report(Outcome::Success);
    }

    /// The call failed in a way that counts against the dependency.
    pub fn failure(self) {
        self.report(Outcome::Failure);
    }

    /// The call failed in a way that says nothing about the dependency (e.g. refused by a rate limiter): not
    /// recorded.
    pub fn ignore(self) {
        self.report(Outcome::Ignored);
    }

    /// Reports `result`, judging an error with `judge` (e.g. [`by_class`](super::by_class)).
    #[inline]
    pub fn record<T, E>(self, result: &Result<T, E>, judge: impl FnOnce(&E) -> Record) {
        match result {
            Ok(_) => self.success(),
            Err(error) => match judge(error) {
                Record::Failure => self.failure(),
                Record::Ignore => self.ignore(),
            },
        }
    }

    #[inline]
    fn report(mut self, outcome: Outcome) {
        match std::mem::replace(&mut self.admission, Admission::Reported) {
            Admission::Closed(word) => self.breaker.closed_outcome(word, self.started, outcome),
            Admission::Trial(word) => self.breaker.trial_outcome(word, self.started, outcome),
            Admission::Reported => {}
        }
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if let Admission::Trial(word) = self.admission {
            self.breaker.release_trial(word);
        }
    }
}

impl BreakerPermit<'_> {
    /// Whether the call is one of half-open's trial calls.
    pub(super) fn is_trial(&self) -> bool {
        matches!(self.admission, Admission::Trial(_))
    }
}

impl fmt::Debug for BreakerPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit").field("breaker", &self.breaker.name).field("trial", &self.is_trial()).finish()
    }
}

/// The breaker's metric handles, resolved once.
struct BreakerMetrics {
    state: IntGauge,
    /// `[from][to]`, indexed by [`CircuitState::index`].
    transitions: [[IntCounter; 3]; 3],
    /// Brought up to date from the window's stripes when metrics are gathered.
    success: IntCounter,
    /// The stripes' total when the metrics were last reset, which `success` counts from. Read and written only under
    /// the metrics' refresh lock, which orders it.
    successes_before_reset: AtomicU64,
    failure: IntCounter,
    slow_success: IntCounter,
    slow_failure: IntCounter,
    ignored: IntCounter,
    rejected: IntCounter,
}

impl BreakerMetrics {
    fn new(name: &str) -> Self {
        let calls = |outcome: &str| CALLS_TOTAL.with(&[name, outcome]);
        let states = [CircuitState::Closed, CircuitState::Open, CircuitState::HalfOpen];
        let transitions =
            states.map(|from| states.map(|to| TRANSITIONS_TOTAL.with(&[name, from.as_str(), to.as_str()])));
        let state = STATE.with(&[name]);
        state.set(CircuitState::Closed.gauge());
        BreakerMetrics {
            state,
            transitions,
            success: calls("success"),
            successes_before_reset: AtomicU64::new(0),
            failure: calls("failure"),
            slow_success: calls("slow_success"),
            slow_failure: calls("slow_failure"),
            ignored: calls("ignored"),
            rejected: calls("rejected"),
        }
    }

    fn count(&self, failure: bool, slow: bool) {
        match (failure, slow) {
            (true, false) => self.failure.inc(),
            (true, true) => self.slow_failure.inc(),
            (false, true) => self.slow_success.inc(),
            (false, false) => {} // fast successes are counted by the window's stripes
        }
    }
}
