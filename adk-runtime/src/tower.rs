//! adk's policies as `tower` layers, for axum, tonic and any `tower::Service` (feature `tower`).
//!
//! Each layer wraps one policy instance: built with a builder (`RateLimiter::builder`, `CircuitBreaker::builder`,
//! ...), or the registry's instance of a name (`RateLimitLayer::named("openai")`), which attributes using that name
//! share; so an annotated function and a service spend one quota or trip one breaker. A layer is `Clone`, and its
//! clones (one per connection under axum) share its instance. A refusal is an [`adk::Error`](crate::Error) turned
//! into the service's error with `From`, as for annotated functions; the breaker and retry layers judge the
//! service's errors with [`Classify`].
//!
//! ```
//! use std::time::Duration;
//! use adk_runtime::rate_limit::RateLimiter;
//! use adk_runtime::tower::{RateLimitLayer, TimeoutLayer};
//! use tower::{Layer, Service, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let limiter = RateLimiter::builder("doc-tower").rps(1).burst(1).build().unwrap();
//! let echo = tower::service_fn(|name: String| async move { Ok::<_, adk_runtime::Error>(format!("hi {name}")) });
//! let service = RateLimitLayer::new(limiter).layer(TimeoutLayer::new("doc-tower", Duration::from_secs(2)).unwrap().layer(echo));
//! assert_eq!(service.clone().oneshot("ada".into()).await.unwrap(), "hi ada");
//! assert!(matches!(service.oneshot("bob".into()).await, Err(adk_runtime::Error::RateLimited { .. })));
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use crate::bulkhead::Bulkhead;
use crate::cache::{CacheKey, CachePolicy, OkValues};
use crate::circuit_breaker::{self, CircuitBreaker};
use crate::error::{Classify, Error};
use crate::rate_limit::RateLimiter;
use crate::retry::{self, RetryPolicy, Step};
use crate::timeout::TimeoutPolicy;
use crate::{SettingsError, registry};

/// The future of a layer whose work outlives `call`'s borrow of the service.
pub type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// A layer's `Layer` impl and its service struct: the inner service beside the layer's fields, cloned from it.
macro_rules! layer_service {
    ($layer:ident => $service:ident { $($field:ident: $ty:ty),* }) => {
        impl<S> Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> Self::Service {
                $service { inner, $($field: self.$field.clone()),* }
            }
        }

        #[doc = concat!("The service of [`", stringify!($layer), "`].")]
        #[derive(Debug, Clone)]
        pub struct $service<S> {
            inner: S,
            $($field: $ty),*
        }
    };
}

/// Admits or refuses each request against a [`RateLimiter`] (one unit, no key).
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Arc<RateLimiter>,
}

impl RateLimitLayer {
    /// A layer over `limiter`.
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        RateLimitLayer { limiter }
    }

    /// A layer over the registry's limiter called `name` (declared by an attribute, or already in use), sharing its
    /// quota with every function limited by that name; `None` when nothing declares it.
    pub fn named(name: &str) -> Option<Self> {
        registry().rate_limiter(name).map(Self::new)
    }
}

layer_service!(RateLimitLayer => RateLimitService { limiter: Arc<RateLimiter> });

impl<S, Request> Service<Request> for RateLimitService<S>
where
    S: Service<Request>,
    S::Error: From<Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Admitted<S::Future, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => Admitted::Called { future: self.inner.call(request) },
            Err(denied) => Admitted::Refused { refusal: Some(S::Error::from(denied.into_error(self.limiter.name()))) },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RateLimitService`]: the inner call, or the refusal, without an allocation.
    #[project = AdmittedProjection]
    pub enum Admitted<F, T, E> {
        /// Admitted: the inner service's future.
        Called { #[pin] future: F },
        /// Refused: the error, taken once.
        Refused { refusal: Option<E>, },
        /// Never built; carries the response type.
        #[doc(hidden)]
        Unreachable { response: std::marker::PhantomData<fn() -> T> },
    }
}

impl<F, T, E> Future for Admitted<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmittedProjection::Called { future } => future.poll(cx),
            AdmittedProjection::Refused { refusal } => {
                Poll::Ready(Err(refusal.take().expect("an admitted future polled after completion")))
            }
            AdmittedProjection::Unreachable { .. } => unreachable!("never built"),
        }
    }
}

/// Refuses requests while a [`CircuitBreaker`] is open; records every outcome by the error's [`Classify`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    breaker: Arc<CircuitBreaker>,
}

impl CircuitBreakerLayer {
    /// A layer over `breaker`.
    pub fn new(breaker: Arc<CircuitBreaker>) -> Self {
        CircuitBreakerLayer { breaker }
    }

    /// A layer over the registry's breaker called `name`, shared with every function naming it; `None` when nothing
    /// declares it.
    pub fn named(name: &str) -> Option<Self> {
        registry().circuit_breaker(name).map(Self::new)
    }
}

layer_service!(CircuitBreakerLayer => CircuitBreakerService { breaker: Arc<CircuitBreaker> });

impl<S, Request> Service<Request> for CircuitBreakerService<S>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: From<Error> + Classify + Send + 'static,
    S::Response: Send + 'static,
    Request: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let breaker = self.breaker.clone();
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            // Asked before the service is called: an open breaker sends nothing.
            let permit = match breaker.acquire() {
                Ok(permit) => permit,
                Err(refusal) => return Err(S::Error::from(refusal)),
            };
            let result = inner.call(request).await;
            permit.record(&result, circuit_breaker::by_class);
            result
        })
    }
}

/// Bounds concurrent requests with a [`Bulkhead`]; a request finding it full waits up to `max_wait`, then is refused.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Arc<Bulkhead>,
    max_wait: Duration,
}

impl BulkheadLayer {
    /// A layer over `bulkhead`, refusing at once when it is full.
    pub fn new(bulkhead: Arc<Bulkhead>) -> Self {
        BulkheadLayer { bulkhead, max_wait: Duration::ZERO }
    }

    /// A layer over the registry's bulkhead called `name`, sharing its slots with every function naming it; `None`
    /// when nothing declares it.
    pub fn named(name: &str) -> Option<Self> {
        registry().bulkhead(name).map(Self::new)
    }

    /// How long a request waits for a slot (cut to the deadline it runs under).
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
}

layer_service!(BulkheadLayer => BulkheadService { bulkhead: Arc<Bulkhead>, max_wait: Duration });

impl<S, Request> Service<Request> for BulkheadService<S>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: From<Error> + Send + 'static,
    S::Response: Send + 'static,
    Request: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (bulkhead, max_wait) = (self.bulkhead.clone(), self.max_wait);
        let mut inner = take_ready(&mut self.inner);
        // The service is called once a slot is held, so a refused request sends nothing.
        Box::pin(async move {
            bulkhead
                .run(max_wait, async move { inner.call(request).await }, |refusal| Err(S::Error::from(refusal)))
                .await
        })
    }
}

/// Bounds each request; the request runs under the bound's deadline, as under `#[adk::timeout]`.
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    policy: Arc<TimeoutPolicy>,
}

impl TimeoutLayer {
    /// A bound of `after`, counted in `adk_timeouts_total{function}` under `function`.
    pub fn new(function: &'static str, after: Duration) -> Result<Self, SettingsError> {
        Ok(TimeoutLayer { policy: Arc::new(TimeoutPolicy::checked(function, after)?) })
    }
}

layer_service!(TimeoutLayer => TimeoutService { policy: Arc<TimeoutPolicy> });

impl<S, Request> Service<Request> for TimeoutService<S>
where
    S: Service<Request>,
    S::Future: Send + 'static,
    S::Error: From<Error> + Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let policy = self.policy.clone();
        let call = self.inner.call(request);
        Box::pin(async move { policy.run(call, |refusal| Err(S::Error::from(refusal))).await })
    }
}

/// The service `poll_ready` made ready, leaving a clone in its place: the ready one must answer this request, and a
/// future that outlives `call` cannot borrow it (tower's own advice for services that call their inner one later).
fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

/// Re-sends requests that failed with a transient error ([`Classify`]), as `#[adk::retry]` re-runs a body: the
/// request is cloned for each attempt and the service made ready again.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Arc<RetryPolicy>,
}

impl RetryLayer {
    /// A layer retrying under `policy` (see `RetryPolicy::builder`).
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer { policy: Arc::new(policy) }
    }
}

layer_service!(RetryLayer => RetryService { policy: Arc<RetryPolicy> });

impl<S, Request> Service<Request> for RetryService<S>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Classify + Send + 'static,
    S::Response: Send + 'static,
    Request: Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The ready service answers the first attempt; later attempts use a clone made ready again.
        let first = self.inner.call(request.clone());
        let (mut inner, policy) = (self.inner.clone(), self.policy.clone());
        Box::pin(async move {
            let mut attempts = policy.start();
            let mut result = attempts.attempt(first).await;
            loop {
                match attempts.next(result, retry::by_class) {
                    Step::Done(done) => return done,
                    Step::Retry(delay) => retry::pause(delay).await,
                }
                result = match std::future::poll_fn(|cx| inner.poll_ready(cx)).await {
                    Ok(()) => attempts.attempt(inner.call(request.clone())).await,
                    Err(error) => Err(error),
                };
            }
        })
    }
}

/// Answers requests from a [`CachePolicy`], keyed by `key(&request)`; only `Ok` responses are stored, and concurrent
/// misses on one key send one request (single flight).
pub struct CacheLayer<K> {
    policy: Arc<CachePolicy>,
    key: fn(&K) -> K,
}

impl<K> Clone for CacheLayer<K> {
    fn clone(&self) -> Self {
        CacheLayer { policy: self.policy.clone(), key: self.key }
    }
}

impl<K> std::fmt::Debug for CacheLayer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl<K> CacheLayer<K> {
    /// A layer caching under `policy` (give it `with_name` to share a named cache with attributes), keyed by the
    /// request itself through `key` (e.g. `Clone::clone`, or a function keeping the part that identifies it).
    pub fn new(policy: CachePolicy, key: fn(&K) -> K) -> Self {
        CacheLayer { policy: Arc::new(policy), key }
    }
}

impl<S, K> Layer<S> for CacheLayer<K> {
    type Service = CacheService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService { inner, layer: self.clone() }
    }
}

/// The service of [`CacheLayer`].
pub struct CacheService<S, K> {
    inner: S,
    layer: CacheLayer<K>,
}

impl<S: Clone, K> Clone for CacheService<S, K> {
    fn clone(&self) -> Self {
        CacheService { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S, K> Service<K> for CacheService<S, K>
where
    S: Service<K> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    S::Response: Clone + Send + Sync + 'static,
    K: CacheKey,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: K) -> Self::Future {
        let key = (self.layer.key)(&request);
        let (mut inner, policy) = (take_ready(&mut self.inner), self.layer.policy.clone());
        // The service is called only on a miss, by the one caller that fills the key.
        Box::pin(async move { policy.get_or_run(key, async move { inner.call(request).await }, OkValues).await })
    }
}
