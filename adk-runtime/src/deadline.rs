//! Deadlines that flow down a stack and into the annotated calls it makes.
//!
//! A `#[timeout]` (and a `#[retry(max_elapsed = ..)]`) runs the layers inside it under a deadline kept in a tokio
//! task-local, as gRPC propagates a call's deadline to the calls it makes. Every layer that would wait reads it:
//! `retry` never sleeps past it and returns a refusal at once when its `retry_after` ends after it, a rate limiter's
//! `on_limit = "wait"` and a bulkhead's `max_wait` are cut to it. So a quota or an open breaker under a total timeout
//! answers in microseconds with the refusal it is (`RateLimited`, `CircuitOpen`), not at the timeout as a `Timeout`.
//!
//! Nested annotated calls awaited in the same task inherit the deadline: an inner deadline is never later than the
//! one around it. A task spawned with `tokio::spawn` starts without one (task-locals do not cross tasks); run its
//! future under [`within`] with [`current`] to carry it over.
//!
//! ```
//! use std::time::Duration;
//! use adk_runtime::deadline;
//! use tokio::time::Instant;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! assert_eq!(deadline::current(), None);
//! let outer = Instant::now() + Duration::from_secs(2);
//! deadline::within(outer, async {
//!     assert_eq!(deadline::remaining(), Some(Duration::from_secs(2)));
//!     // A later deadline inside does not extend the one around it.
//!     deadline::within(outer + Duration::from_secs(5), async {
//!         assert_eq!(deadline::current(), Some(outer));
//!     })
//!     .await;
//! })
//! .await;
//! # });
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The deadline the current task runs under, if a `#[timeout]` or [`within`] set one.
#[inline]
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// The time left before [`current`], zero once it has passed; `None` without a deadline.
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// Runs `future` under `deadline`, or under the current deadline if that is earlier.
#[inline]
pub fn within<F: Future>(deadline: Instant, future: F) -> TaskLocalFuture<Instant, F> {
    let deadline = match current() {
        Some(outer) if outer < deadline => outer,
        _ => deadline,
    };
    DEADLINE.scope(deadline, future)
}

/// The earlier of `own` and the current deadline.
pub(crate) fn earliest(own: Option<Instant>) -> Option<Instant> {
    match (own, current()) {
        (Some(own), Some(outer)) => Some(own.min(outer)),
        (own, outer) => own.or(outer),
    }
}

/// `wait` cut to the time left before the current deadline.
pub(crate) fn cut(wait: Duration) -> Duration {
    match remaining() {
        Some(left) => wait.min(left),
        None => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_is_seen_inside_and_gone_outside() {
        let deadline = Instant::now() + Duration::from_millis(300);
        within(deadline, async {
            assert_eq!(current(), Some(deadline));
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(remaining(), Some(Duration::from_millis(200)));
            assert_eq!(cut(Duration::from_secs(1)), Duration::from_millis(200));
            assert_eq!(cut(Duration::from_millis(50)), Duration::from_millis(50));
        })
        .await;
        assert_eq!(current(), None);
        assert_eq!(cut(Duration::from_secs(1)), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_inner_deadline_never_extends_the_outer_one() {
        let outer = Instant::now() + Duration::from_secs(1);
        within(outer, async {
            within(outer + Duration::from_secs(1), async { assert_eq!(current(), Some(outer)) }).await;
            let sooner = outer - Duration::from_millis(500);
            within(sooner, async { assert_eq!(current(), Some(sooner)) }).await;
            assert_eq!(earliest(Some(outer + Duration::from_secs(3))), Some(outer));
            assert_eq!(earliest(None), Some(outer));
        })
        .await;
        assert_eq!(earliest(None), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_leaves_no_time() {
        let deadline = Instant::now() + Duration::from_millis(10);
        within(deadline, async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(remaining(), Some(Duration::ZERO));
        })
        .await;
    }
}
