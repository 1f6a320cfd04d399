//! One fill of one key, as its waiters see it: the turn to run the body, passed from one caller to the next, and the
//! value, published once.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

/// What a waiter gets.
pub(crate) enum Outcome<V> {
    /// A run succeeded: its value.
    Ready(V),
    /// The run before failed or was dropped, and this waiter is next: it runs the body.
    Turn,
    /// The flight ended with no value to share (it was detached by an invalidation and its run failed): the waiter
    /// joins whatever fills the key now.
    Ended,
}

pub(crate) struct Flight<V> {
    value: OnceLock<V>,
    /// Holds a permit only between a run that ended without a value and the next waiter taking over. tokio's semaphore
    /// is fair and passes on a permit handed to a waiter dropped before it took it, so the turn goes to the waiter
    /// that has waited longest and is never lost. Closed when the flight ends.
    turn: Semaphore,
}

impl<V: Clone> Flight<V> {
    pub(crate) fn new() -> Self {
        Flight { value: OnceLock::new(), turn: Semaphore::new(0) }
    }

    /// Gives the turn to the next waiter.
    pub(crate) fn hand_over(&self) {
        self.turn.add_permits(1);
    }

    /// Publishes `value`, if any, and wakes every waiter.
    pub(crate) fn end(&self, value: Option<V>) {
        if let Some(value) = value {
            let _ = self.value.set(value);
        }
        self.turn.close();
    }

    pub(crate) async fn outcome(&self) -> Outcome<V> {
        match self.turn.acquire().await {
            Ok(permit) => {
                // The turn is held by running the body, not by the permit: the next hand-over adds a new one.
                permit.forget();
                Outcome::Turn
            }
            Err(_closed) => match self.value.get() {
                Some(value) => Outcome::Ready(value.clone()),
                None => Outcome::Ended,
            },
        }
    }
}
