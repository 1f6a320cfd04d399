//! Model checks of the breaker's state word and trial slots: loom runs each model under every interleaving of the
//! breaker's atomics and lock (see `crate::sync`) that its bounds allow, on the same code as every other build.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p adk-runtime --release --lib circuit_breaker::loom
//! ```
//!
//! Each model opens its breaker for zero seconds, so the first call after a trip finds the open period over and moves
//! it to half-open whatever the clock says, and every interleaving takes the same path through the state machine.
//!
//! The window's counters stay std's (its many stripes would multiply the interleavings), so the models judge what the
//! state word, the slots and the lock hold (states, trial admissions, decisions), not the window's contents. loom's
//! exploration is partial too: it can miss an interleaving in which one thread reads an atomic before another reads
//! and then writes it. So a model is only trusted once it fails with the step it guards broken (a plain store for the
//! slots' compare-and-swap, no check of the word under the lock).

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use ::loom::sync::atomic::AtomicUsize;
use ::loom::thread;

use super::{CircuitBreaker, CircuitBreakerConfig, CircuitState, Window};

/// Opens at the first failure, for zero seconds; `trials` trial calls when half-open.
fn config(trials: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig::new()
        .with_window(Window::Calls(4))
        .with_min_calls(1)
        .with_open_for(Duration::ZERO)
        .with_half_open_calls(trials)
}

/// A breaker that a failure has just opened.
fn tripped(name: &str, trials: u32) -> Arc<CircuitBreaker> {
    let breaker = CircuitBreaker::new(name, config(trials));
    breaker.acquire().expect("closed").failure();
    assert_eq!(breaker.state(), CircuitState::Open);
    breaker
}

/// How many times `name` has moved from `from` to `to`, ever: models read it before and after to count their own.
fn transitions(name: &str, from: &str, to: &str) -> u64 {
    super::breaker::TRANSITIONS_TOTAL.with(&[name, from, to]).get()
}

fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = ::loom::model::Builder::new();
    // Three preemptions keep the five models to a minute or two on two cores; LOOM_MAX_PREEMPTIONS overrides the bound
    // for a deeper search.
    builder.preemption_bound.get_or_insert(3);
    builder.check(model);
}

/// Three calls race to move an open breaker to half-open and take its two trial slots, each holding its slot while it
/// counts itself: never more than two trials at once, exactly two in all (a decided trial keeps its slot), and their
/// two successes close the breaker exactly once.
#[test]
fn racing_trial_admissions_never_admit_more_than_half_open_calls() {
    const NAME: &str = "loom-trial-admissions";
    check(|| {
        let breaker = tripped(NAME, 2);
        let closed_before = transitions(NAME, "half_open", "closed");
        let running = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let (breaker, running) = (breaker.clone(), running.clone());
                thread::spawn(move || match breaker.acquire() {
                    Ok(permit) if permit.is_trial() => {
                        let at_once = running.fetch_add(1, SeqCst) + 1;
                        assert!(at_once <= 2, "{at_once} trial calls at once");
                        running.fetch_sub(1, SeqCst);
                        permit.success();
                        1
                    }
                    Ok(permit) => {
                        permit.success();
                        0
                    }
                    Err(_) => 0,
                })
            })
            .collect();
        let trials: usize = calls.into_iter().map(|call| call.join().unwrap()).sum();
        assert_eq!(trials, 2, "both slots taken, no third trial");
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(transitions(NAME, "half_open", "closed") - closed_before, 1, "decided once");
    });
}

/// A trial that is cancelled gives its slot back, and another call may take it, but never while both would run.
#[test]
fn a_cancelled_trial_gives_its_slot_to_one_other_call() {
    const NAME: &str = "loom-cancelled-trial";
    check(|| {
        let breaker = tripped(NAME, 1);
        let running = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = [false, true]
            .into_iter()
            .map(|cancel| {
                let (breaker, running) = (breaker.clone(), running.clone());
                thread::spawn(move || {
                    let Ok(permit) = breaker.acquire() else { return 0 };
                    assert!(permit.is_trial(), "nothing closes the breaker while both calls ask");
                    assert_eq!(running.fetch_add(1, SeqCst), 0, "two trials at once");
                    running.fetch_sub(1, SeqCst);
                    if !cancel {
                        permit.failure();
                    }
                    1
                })
            })
            .collect();
        let trials: usize = calls.into_iter().map(|call| call.join().unwrap()).sum();
        assert!((1..=2).contains(&trials));
        // The failure, when a trial made it, opened the breaker again; a cancelled trial alone leaves it half-open.
        let snapshot = breaker.snapshot();
        match snapshot.state {
            CircuitState::Open => {}
            CircuitState::HalfOpen => assert_eq!(snapshot.calls, 0, "a cancelled trial records nothing"),
            CircuitState::Closed => panic!("closed by a failure"),
        }
    });
}

/// Two trial calls race their admissions and outcomes (one fails, one succeeds: 0.5 reaches the threshold): the
/// breaker decides exactly once, after both outcomes, and opens again.
#[test]
fn racing_outcomes_decide_exactly_once() {
    const NAME: &str = "loom-racing-outcomes";
    check(|| {
        let breaker = tripped(NAME, 2);
        let (opened_before, closed_before) =
            (transitions(NAME, "half_open", "open"), transitions(NAME, "half_open", "closed"));
        let calls: Vec<_> = [true, false]
            .into_iter()
            .map(|fails| {
                let breaker = breaker.clone();
                thread::spawn(move || {
                    let permit = breaker.acquire().expect("a trial slot for each call");
                    assert!(permit.is_trial());
                    if fails { permit.failure() } else { permit.success() }
                })
            })
            .collect();
        for call in calls {
            call.join().unwrap();
        }
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(transitions(NAME, "half_open", "open") - opened_before, 1, "decided once");
        assert_eq!(transitions(NAME, "half_open", "closed"), closed_before);
    });
}

/// An operator forces the breaker open while a call moves it from open to half-open and its trial's success would
/// close it: whichever comes first, the breaker ends forced open and refuses calls, and a reset then closes it.
#[test]
fn forcing_open_while_a_trial_decides_ends_forced_open() {
    const NAME: &str = "loom-force-open";
    check(|| {
        let breaker = tripped(NAME, 1);
        let trial = {
            let breaker = breaker.clone();
            thread::spawn(move || {
                if let Ok(permit) = breaker.acquire() {
                    permit.success();
                }
            })
        };
        let operator = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.force_open())
        };
        trial.join().unwrap();
        operator.join().unwrap();
        assert_eq!((breaker.state(), breaker.is_forced()), (CircuitState::Open, true));
        assert!(breaker.acquire().is_err(), "forced open refuses");
        breaker.reset();
        assert_eq!((breaker.state(), breaker.is_forced()), (CircuitState::Closed, false));
        breaker.acquire().expect("closed after the reset").success();
    });
}

/// An operator holds the breaker closed while a failure trips it: whichever comes first, the breaker ends forced
/// closed and admits calls, and failures do not open it until a reset.
#[test]
fn forcing_closed_while_a_failure_trips_ends_forced_closed() {
    const NAME: &str = "loom-force-closed";
    check(|| {
        let breaker = CircuitBreaker::new(NAME, config(1));
        let failing = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.acquire().expect("closed").failure())
        };
        let operator = {
            let breaker = breaker.clone();
            thread::spawn(move || breaker.force_closed())
        };
        failing.join().unwrap();
        operator.join().unwrap();
        assert_eq!((breaker.state(), breaker.is_forced()), (CircuitState::Closed, true));
        breaker.acquire().expect("forced closed admits").failure();
        assert_eq!(breaker.state(), CircuitState::Closed, "held closed");
        breaker.reset();
        breaker.acquire().expect("closed after the reset").failure();
        assert_eq!(breaker.state(), CircuitState::Open, "judged again after the reset");
    });
}
