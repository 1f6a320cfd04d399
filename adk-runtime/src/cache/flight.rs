//! One fill of one key, as its waiters see it: the outcome, published once, and a wake-up for those waiting.

use std::pin::pin;
use std::sync::OnceLock;

use tokio::sync::Notify;

/// How a fill ended.
pub(crate) enum Outcome<V> {
    /// The leader's value, for every waiter.
    Ready(V),
    /// The leader's body failed: nothing to share (errors are not `Clone`), so each waiter runs its own body.
    Failed,
    /// The leader was dropped before finishing (cancelled, or it panicked): the waiters elect a new one.
    Abandoned,
}

pub(crate) struct Flight<V> {
    outcome: OnceLock<Outcome<V>>,
    done: Notify,
}

impl<V: Clone> Flight<V> {
    pub(crate) fn new() -> Self {
        Flight { outcome: OnceLock::new(), done: Notify::new() }
    }

    /// Publishes the outcome (the first one wins) and wakes every waiter.
    pub(crate) fn finish(&self, outcome: Outcome<V>) {
        let _ = self.outcome.set(outcome);
        self.done.notify_waiters();
    }

    pub(crate) async fn outcome(&self) -> Outcome<V> {
        loop {
            let mut done = pin!(self.done.notified());
            // Registered before the check, so a `finish` between the check and the wait still wakes us.
            done.as_mut().enable();
            if let Some(outcome) = self.outcome.get() {
                return match outcome {
                    Outcome::Ready(value) => Outcome::Ready(value.clone()),
                    Outcome::Failed => Outcome::Failed,
                    Outcome::Abandoned => Outcome::Abandoned,
                };
            }
            done.await;
        }
    }
}
