//! One shape for running a call through a policy value: [`Policy::call`].
//!
//! The policies that decide once per call — a [`RateLimiter`], a [`CircuitBreaker`], a [`Bulkhead`], a
//! [`TimeoutPolicy`] — each take the call's future and give back a future of the same `Result`, a refusal being an
//! [`Error`] turned into the call's error with `From`, as for annotated functions. So values built by hand (per tenant,
//! per test) stack as the attributes do, innermost first, each layer just another `call`:
//!
//! ```
//! use std::time::Duration;
//! use adk_runtime::Error;
//! use adk_runtime::circuit_breaker::CircuitBreaker;
//! use adk_runtime::policy::Policy;
//! use adk_runtime::rate_limit::RateLimiter;
//! use adk_runtime::retry::RetryPolicy;
//! use adk_runtime::timeout::TimeoutPolicy;
//!
//! async fn search(query: &str) -> Result<String, Error> {
//!     Ok(format!("results for {query}"))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! // One tenant's policies, apart from every other tenant's and from the registry.
//! let limiter = RateLimiter::builder("tenant-7:search").rps(5).build().unwrap();
//! let breaker = CircuitBreaker::builder("tenant-7:search").build().unwrap();
//! let timeout = TimeoutPolicy::checked("tenant-7::search", Duration::from_secs(2)).unwrap();
//! let retry = RetryPolicy::builder("tenant-7::search").attempts(3).build().unwrap();
//!
//! // What `#[retry] #[timeout] #[circuit_breaker] #[rate_limited]` would do, by hand: the retry re-runs the chain.
//! let answer = retry.run(|| timeout.call(breaker.call(limiter.call(search("rust"))))).await;
//! assert_eq!(answer.unwrap(), "results for rust");
//! # });
//! ```
//!
//! A retry re-runs its call, so it takes a function making one ([`RetryPolicy::run`]); a cache answers by key, so it
//! takes the key too ([`CachePolicy::get_or_run`](crate::cache::CachePolicy::get_or_run)). The expansion of the
//! attributes uses each policy's own `run`, whose refusal is a continuation, so that no `From<Error>` is asked of a
//! function's error type that does not need it; the tower layers ([`crate::tower`], feature `tower`) are the same
//! policies for services.
//!
//! [`RetryPolicy::run`]: crate::retry::RetryPolicy::run

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::bulkhead::Bulkhead;
use crate::circuit_breaker::{self, CircuitBreaker};
use crate::error::{Classify, Error};
use crate::rate_limit::RateLimiter;
use crate::timeout::TimeoutPolicy;

/// A policy that runs a call once, or refuses it.
///
/// Called through a concrete type (or an `Arc` of one), the returned future is `Send` whenever `call` is, so it can be
/// spawned; generic code over `P: Policy` sees only `Future`.
pub trait Policy {
    /// Runs `call` under the policy, or answers with the policy's refusal turned into `E`. `call` is not polled when
    /// the call is refused, so nothing is sent.
    fn call<T, E, F>(&self, call: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error> + Classify;
}

/// One unit of the limiter's shared state per call (no key), refused at once when none is left.
impl Policy for RateLimiter {
    fn call<T, E, F>(&self, call: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error> + Classify,
    {
        let admitted = self.check().map_err(|denied| denied.into_error(self.name()));
        async move {
            match admitted {
                Ok(()) => call.await,
                Err(refusal) => Err(E::from(refusal)),
            }
        }
    }
}

/// Refused while the breaker is open (or its half-open trials are taken); the outcome is recorded by the error's
/// [`Classify`] (see [`circuit_breaker::by_class`]).
impl Policy for CircuitBreaker {
    fn call<T, E, F>(&self, call: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error> + Classify,
    {
        self.run(call, circuit_breaker::by_class, |refusal| Err(E::from(refusal)))
    }
}

/// Refused at once when every slot is taken; the slot is freed when the call ends or is dropped.
impl Policy for Bulkhead {
    fn call<T, E, F>(&self, call: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error> + Classify,
    {
        self.run(Duration::ZERO, call, |refusal| Err(E::from(refusal)))
    }
}

/// The call runs under the bound's deadline, as under `#[adk::timeout]`, and is dropped when it passes.
impl Policy for TimeoutPolicy {
    fn call<T, E, F>(&self, call: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error> + Classify,
    {
        self.run(call, |refusal| Err(E::from(refusal)))
    }
}

impl<P: Policy + ?Sized> Policy for Arc<P> {
    fn call<T, E, F>(&self, call: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error> + Classify,
    {
        (**self).call(call)
    }
}

impl<P: Policy + ?Sized> Policy for &P {
    fn call<T, E, F>(&self, call: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: From<Error> + Classify,
    {
        (**self).call(call)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    use super::*;
    use crate::CircuitState;
    use crate::retry::RetryPolicy;

    /// Counts the calls that were actually made.
    #[derive(Default)]
    struct Upstream(AtomicUsize);

    impl Upstream {
        async fn answer(&self, fail: bool) -> Result<usize, Error> {
            let n = self.0.fetch_add(1, Relaxed) + 1;
            if fail { Err(Error::Timeout { after: Duration::from_millis(1) }) } else { Ok(n) }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_policy_refuses_without_making_the_call() {
        let upstream = Upstream::default();
        let limiter = RateLimiter::builder("policy::tests::limiter").rpm(1).burst(1).build().unwrap();
        assert_eq!(limiter.call(upstream.answer(false)).await, Ok(1));
        assert!(matches!(limiter.call(upstream.answer(false)).await, Err(Error::RateLimited { .. })));

        let breaker = CircuitBreaker::builder("policy::tests::breaker").build().unwrap();
        breaker.force_open();
        assert!(matches!(breaker.call(upstream.answer(false)).await, Err(Error::CircuitOpen { .. })));

        let bulkhead = Bulkhead::builder("policy::tests::bulkhead", 1).build().unwrap();
        let _held = bulkhead.try_acquire().unwrap();
        assert!(matches!(bulkhead.call(upstream.answer(false)).await, Err(Error::BulkheadFull { .. })));

        assert_eq!(upstream.0.load(Relaxed), 1, "only the admitted call reached the upstream");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_drops_the_call_when_its_bound_passes() {
        let timeout = TimeoutPolicy::checked("policy::tests::timeout", Duration::from_millis(50)).unwrap();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Error>(())
        };
        assert!(matches!(timeout.call(slow).await, Err(Error::Timeout { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_built_by_hand_records_the_outcomes_of_its_calls() {
        let breaker = CircuitBreaker::builder("policy::tests::records").min_calls(2).build().unwrap();
        let upstream = Upstream::default();
        for _ in 0..2 {
            assert!(breaker.call(upstream.answer(true)).await.is_err());
        }
        assert_eq!(breaker.state(), CircuitState::Open, "two transient failures of two calls open it");
    }

    #[tokio::test(start_paused = true)]
    async fn stacked_by_hand_the_layers_compose_as_the_attributes_do_and_can_be_spawned() {
        let limiter = RateLimiter::builder("policy::tests::stack").rps(2).burst(2).build().unwrap();
        let breaker = CircuitBreaker::builder("policy::tests::stack").build().unwrap();
        let retry = RetryPolicy::builder("policy::tests::stack").attempts(5).build().unwrap();
        let upstream = Arc::new(Upstream::default());
        let task = tokio::spawn({
            let (limiter, breaker, upstream) = (limiter.clone(), breaker.clone(), upstream.clone());
            async move { retry.run(|| breaker.call(limiter.call(upstream.answer(upstream.0.load(Relaxed) == 0)))).await }
        });
        // The first attempt fails, the retry tries again within the quota, and the second succeeds.
        assert_eq!(task.await.unwrap(), Ok(2));
        assert_eq!(upstream.0.load(Relaxed), 2);
    }
}
