//! Deadlines that flow down a stack and into the annotated calls it makes.
//!
//! A `#[timeout]` (and a `#[retry(max_elapsed = ..)]`) runs the layers inside it under a deadline kept in a tokio
//! task-local, as gRPC propagates a call's deadline to the calls it makes. Every layer that would wait reads it:
//! `retry` never sleeps past it and returns a refusal at once when its `retry_after` ends after it, a rate limiter's
//! `on_limit = "wait"` and a bulkhead's `max_wait` are cut to it. So a quota or an open breaker under a total timeout
//! answers in microseconds with the refusal it is (`RateLimited`, `CircuitOpen`), not at the timeout as a `Timeout`.
//!
//! Nested annotated calls awaited in the same task inherit the deadline: an inner deadline is never later than the
//! one around it. A task spawned with `tokio::spawn` starts without one (the deadline belongs to the future that set
//! it, as a task-local does); run its future under [`within`] with [`current`] to carry it over.
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

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

// A task-local in effect: set while a `Within` future is polled, restored when the poll returns (or unwinds), as
// `tokio::task_local!` does. tokio's `TaskLocalFuture` keeps the future in an `Option` beside the value, and moving a
// whole stack's future into it measured 600 more instructions per call (callgrind, a five-layer stack) than this
// wrapper, which keeps the future in place.
thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline the current task runs under, if a `#[timeout]` or [`within`] set one.
#[inline]
pub fn current() -> Option<Instant> {
    DEADLINE.with(Cell::get)
}

/// The time left before [`current`], zero once it has passed; `None` without a deadline.
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// Runs `future` under `deadline`, or under the current deadline if that is earlier.
#[inline]
pub fn within<F: Future>(deadline: Instant, future: F) -> Within<F> {
    Within { deadline: nearest(deadline), future }
}

pin_project_lite::pin_project! {
    /// The future of [`within`]: `future`, polled with its deadline in place.
    #[must_use = "futures do nothing unless polled"]
    pub struct Within<F> {
        deadline: Instant,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        poll_under(*this.deadline, || this.future.poll(cx))
    }
}

/// Runs one poll with `deadline` in place, restoring the one around it afterwards (also if the poll panics).
#[inline]
pub(crate) fn poll_under<R>(deadline: Instant, poll: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            DEADLINE.with(|deadline| deadline.set(self.0));
        }
    }
    let _restore = Restore(DEADLINE.with(|current| current.replace(Some(deadline))));
    poll()
}

/// The deadline `within(deadline, ..)` would run under, for futures that keep it themselves.
#[inline]
pub(crate) fn nearest(deadline: Instant) -> Instant {
    match current() {
        Some(outer) if outer < deadline => outer,
        _ => deadline,
    }
}

/// The earlier of `own` and the current deadline.
pub(crate) fn earliest(own: Option<Instant>) -> Option<Instant> {
    own.map(nearest).or_else(current)
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
    async fn a_deadline_does_not_leak_into_other_tasks_polled_on_the_same_thread() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let other = tokio::spawn(async move {
            tokio::task::yield_now().await;
            seen_tx.send(current()).unwrap();
        });
        within(deadline, async {
            // The other task runs while this one waits, on the same thread.
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(current(), Some(deadline), "restored when this task is polled again");
        })
        .await;
        assert_eq!(seen_rx.await.unwrap(), None);
        other.await.unwrap();
    }

    #[test]
    fn a_panicking_poll_restores_the_outer_deadline() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(1);
            let panicked = std::panic::AssertUnwindSafe(within(deadline, async { panic!("inside") }));
            let caught = catch_unwind(panicked).await;
            assert!(caught.is_err());
            assert_eq!(current(), None);
        });
    }

    /// A minimal `catch_unwind` for a future, polled in place.
    async fn catch_unwind<F: Future + std::panic::UnwindSafe>(future: F) -> std::thread::Result<F::Output> {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(move |cx| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(panic) => Poll::Ready(Err(panic)),
            }
        })
        .await
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
